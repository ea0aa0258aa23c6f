"""Scoring latency of the scikit-learn pipeline next to its ONNX export (`lifecycle.portable.OnnxScorer`), in the
same run, for each model family on the arrests data.

    python benchmarks/onnx_latency.py [--calls N] [--batch-rows R] [--json]

Single row: the median of N calls (default 2,000) scoring one record, both as a serving request arrives (a dict:
scikit-learn needs it turned into a one-row DataFrame first) and from a ready one-row DataFrame. Batch: the median
of 20 calls scoring R rows (default 10,000). Parity on the holdout is printed beside the timings: a fast export
that scores differently is not a candidate. A family that cannot be exported is listed with the reason.
"""

from __future__ import annotations
import argparse
import json
import os
import statistics
import sys
import time
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
FAMILIES = {'logistic_regression': {'C': 1.0, 'max_iter': 500}, 'random_forest': {}, 'hist_gradient_boosting': {}}


def median_s(fn, calls: int) -> float:
    "Median wall time of one call, after a few warm-up calls."
    for _ in range(min(20, calls)):
        fn()
    ts = []
    for _ in range(calls):
        t0 = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t0)
    return statistics.median(ts)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--calls', type=int, default=2000, help='single-row calls per measurement (median reported)')
    ap.add_argument('--batch-rows', type=int, default=10_000, help='rows in the batch measurement')
    ap.add_argument('--json', action='store_true', help='print the figures as JSON')
    a = ap.parse_args()
    warnings.simplefilter('ignore')
    import pandas as pd
    from sklego.datasets import load_arrests
    from lifecycle.features import build_transformer, input_columns
    from lifecycle.params import TrainParams, load_params
    from lifecycle.portable import OnnxScorer, check_parity, to_onnx
    from lifecycle.train import make_pipeline, split_holdout, xy

    fp = load_params(Path(__file__).resolve().parents[1] / 'params')['features']
    train, holdout = split_holdout(load_arrests(as_frame=True), fp.target, 0.25, 42)
    inputs = input_columns(fp)
    X, y = xy(train, inputs, fp)
    Xh = xy(holdout, inputs, fp)[0]
    rec = Xh.iloc[0].to_dict()
    row = Xh.head(1)
    batch = Xh.sample(a.batch_rows, replace=True, random_state=0).reset_index(drop=True)
    out = {'calls': a.calls, 'batch_rows': a.batch_rows, 'cpus': os.cpu_count(), 'families': {}}
    for family, params in FAMILIES.items():
        pipe = make_pipeline(
            build_transformer(fp), TrainParams(experiment='b', model={'family': family, 'params': params})
        )
        pipe.fit(X, y)
        conv = to_onnx(pipe, X)
        if not conv.ok:
            out['families'][family] = {'exported': False, 'reason': conv.reason}
            continue
        sc, sc2 = OnnxScorer(conv.onnx), OnnxScorer(conv.onnx, threads=2)
        par = check_parity(pipe, conv.onnx, Xh)
        n_batch = max(5, min(20, a.calls // 100))
        r = {
            'exported': True,
            'onnx_bytes': len(conv.onnx),
            'parity_max_abs_diff': par['max_abs_diff'],
            'parity_passed': par['passed'],
            'one_record_sklearn_us': 1e6 * median_s(lambda: pipe.predict_proba(pd.DataFrame([rec])), a.calls),
            'one_record_onnx_us': 1e6 * median_s(lambda: sc.predict_proba(rec), a.calls),
            'one_row_frame_sklearn_us': 1e6 * median_s(lambda: pipe.predict_proba(row), a.calls),
            'one_row_frame_onnx_us': 1e6 * median_s(lambda: sc.predict_proba(row), a.calls),
            'batch_sklearn_ms': 1e3 * median_s(lambda: pipe.predict_proba(batch), n_batch),
            'batch_onnx_ms': 1e3 * median_s(lambda: sc.predict_proba(batch), n_batch),
            'batch_onnx_2threads_ms': 1e3 * median_s(lambda: sc2.predict_proba(batch), n_batch),
        }
        out['families'][family] = r
    if a.json:
        print(json.dumps(out, indent=1))
        return
    print(f"median latency; single row over {a.calls} calls, batch of {a.batch_rows:,} rows; {os.cpu_count()} cpus")
    print(f"{'family':<24}{'case':<26}{'sklearn':>12}{'onnx':>12}{'sklearn/onnx':>14}")
    for family, r in out['families'].items():
        if not r['exported']:
            print(f"{family:<24}not exported: {r['reason']}")
            continue
        for case, s, o, unit in [
            ('one record (dict)', 'one_record_sklearn_us', 'one_record_onnx_us', 'us'),
            ('one row (DataFrame)', 'one_row_frame_sklearn_us', 'one_row_frame_onnx_us', 'us'),
            ('batch, 1 thread', 'batch_sklearn_ms', 'batch_onnx_ms', 'ms'),
            ('batch, 2 threads', 'batch_sklearn_ms', 'batch_onnx_2threads_ms', 'ms'),
        ]:
            print(f"{family:<24}{case:<26}{r[s]:>9.1f} {unit}{r[o]:>9.1f} {unit}{r[s] / r[o]:>13.1f}x")
        print(
            f"{family:<24}{'parity on holdout':<26}max |dp| {r['parity_max_abs_diff']:.2g} "
            f"({'passed' if r['parity_passed'] else 'FAILED'}), ONNX {r['onnx_bytes'] / 1e3:,.0f} kB"
        )


if __name__ == '__main__':
    main()
