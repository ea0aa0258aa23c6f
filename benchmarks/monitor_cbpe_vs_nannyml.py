"""Performance estimated without labels: our CBPE (`lifecycle.operate.cbpe`, numpy) next to NannyML 0.13's CBPE on
the same data, in the same run; then our estimate against the realised accuracy on the default dataset.

    python benchmarks/monitor_cbpe_vs_nannyml.py [--rows N] [--chunk C] [--windows W] [--json]

1. Agreement and speed. A calibrated synthetic set: a reference and an analysis part of N rows each (default
   1,000,000), scores drawn from Beta(2, 3) in the reference and Beta(3, 2) in the analysis part (a covariate shift,
   so the chunks' performance moves), labels drawn from the scores, decisions at 0.5. NannyML runs in its own virtual
   environment (created on first use at $LIFECYCLE_NANNYML_VENV, default ~/.cache/lifecycle/nannyml-0.13, with
   `nannyml==0.13.*` and statsmodels from PyPI) on the same Parquet files; both sides fit on the reference and
   estimate accuracy, precision, recall and ROC AUC per chunk of C rows (default 10,000). Timed: fit + estimate,
   imports and file reading excluded on both sides. Goals: every chunk's estimates within 0.002 of NannyML's; ours
   at least 10x faster.
2. Estimate against realised. The default dataset (scikit-lego's Toronto arrests): a logistic regression trained on
   1997-2000, calibrated on a 25 % holdout of those years, then W (default 300) windows of 500 rows resampled from
   2001-2002 with their true labels. Goals: mean absolute error of the estimated accuracy at most 0.02, and the
   realised accuracy inside the estimate's 95 % interval in at least 90 % of windows.
"""

from __future__ import annotations
import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

SPEED_GOAL, AGREE_GOAL, MAE_GOAL, COVER_GOAL = 10.0, 0.002, 0.02, 0.90
METRICS = ['accuracy', 'precision', 'recall', 'roc_auc']

NANNYML = r'''
import json, sys, time
import pandas as pd
import nannyml as nml
ref, ana, chunk = pd.read_parquet(sys.argv[1]), pd.read_parquet(sys.argv[2]), int(sys.argv[3])
t0 = time.perf_counter()
est = nml.CBPE(y_pred_proba='p', y_pred='y_pred', y_true='y', problem_type='classification_binary',
               metrics=['accuracy', 'precision', 'recall', 'roc_auc'], chunk_size=chunk)
est.fit(ref)
res = est.estimate(ana).filter(period='analysis').to_df()
seconds = time.perf_counter() - t0
out = {m: res[(m, 'value')].tolist() for m in ['accuracy', 'precision', 'recall', 'roc_auc']}
print(json.dumps({'seconds': seconds, 'estimates': out, 'version': nml.__version__}))
'''


def nannyml_python() -> Path:
    "The Python of a virtual environment holding NannyML 0.13 (made on first use)."
    venv = Path(os.environ.get('LIFECYCLE_NANNYML_VENV', Path.home() / '.cache' / 'lifecycle' / 'nannyml-0.13'))
    py = venv / 'bin' / 'python'
    if not py.exists():
        print(f'creating {venv} with nannyml 0.13 (once) ...', file=sys.stderr)
        subprocess.run([sys.executable, '-m', 'venv', str(venv)], check=True)
        subprocess.run([str(py), '-m', 'pip', 'install', '-q', 'nannyml==0.13.*', 'statsmodels', 'pyarrow'], check=True)
    return py


def synthetic(rows: int, seed: int = 0):
    "A calibrated reference and analysis set: scores are the labels' probabilities."
    import pandas as pd

    r = np.random.default_rng(seed)

    def part(a, b):
        p = r.beta(a, b, rows)
        return pd.DataFrame({'p': p, 'y_pred': (p >= 0.5).astype(int), 'y': (r.random(rows) < p).astype(int)})

    return part(2, 3), part(3, 2)


def ours(ref, ana, chunk: int) -> tuple[float, dict]:
    from lifecycle.operate.cbpe import estimate, fit_calibrator

    p_ref, y_ref = ref['p'].to_numpy(), ref['y'].to_numpy()
    p, d = ana['p'].to_numpy(), ana['y_pred'].to_numpy()
    t0 = time.perf_counter()
    cal = fit_calibrator(p_ref, y_ref)
    e = estimate(cal(p), d, np.arange(len(p)) // chunk)
    seconds = time.perf_counter() - t0
    return seconds, {m: e[m].tolist() for m in METRICS}


def agreement(rows: int, chunk: int) -> dict:
    ref, ana = synthetic(rows)
    py = nannyml_python()
    with tempfile.TemporaryDirectory() as d:
        ref.to_parquet(f'{d}/ref.parquet')
        ana.to_parquet(f'{d}/ana.parquet')
        r = subprocess.run(
            [str(py), '-c', NANNYML, f'{d}/ref.parquet', f'{d}/ana.parquet', str(chunk)], capture_output=True, text=True
        )
    if r.returncode:
        raise SystemExit(f'NannyML failed:\n{r.stderr[-3000:]}')
    theirs = json.loads(r.stdout.strip().splitlines()[-1])
    ours(ref.head(1000), ana.head(1000), chunk)  # warm: imports done before timing, as on their side
    secs, mine = ours(ref, ana, chunk)
    n = min(len(mine['accuracy']), len(theirs['estimates']['accuracy']))
    diff = {m: float(np.max(np.abs(np.subtract(mine[m][:n], theirs['estimates'][m][:n])))) for m in METRICS}
    return dict(
        rows=rows,
        chunk=chunk,
        chunks=n,
        nannyml_version=theirs['version'],
        nannyml_s=theirs['seconds'],
        ours_s=secs,
        speedup=theirs['seconds'] / secs,
        max_abs_diff=diff,
    )


def _windows(cal, scores, labels, windows: int, size: int, seed: int) -> dict:
    from lifecycle.operate.cbpe import estimate

    r = np.random.default_rng(seed)
    idx = r.integers(0, len(labels), (windows, size))
    s, t = scores[idx].ravel(), labels[idx].ravel()
    d = (s >= 0.5).astype(int)
    win = np.repeat(np.arange(windows), size)
    e = estimate(cal(s), d, win, reference_rows=cal.rows)
    real = np.bincount(win, weights=(d == t)) / size
    err = np.abs(e['accuracy'] - real)
    return dict(
        rows=int(len(labels)),
        mae=float(err.mean()),
        inside_95=float((err <= 1.96 * e['accuracy_sd']).mean()),
        mean_estimate=float(e['accuracy'].mean()),
        mean_realised=float(real.mean()),
    )


def realised(windows: int, size: int = 500, seed: int = 0) -> dict:
    """Estimated against realised accuracy on resampled windows of the default dataset: a logistic regression trained
    on half of it, calibrated on a quarter, judged on windows resampled from the last quarter (the goal); and, for
    information, trained and calibrated on 1997-2000 and judged on 2001-2002 (the later years shift)."""
    from sklearn.compose import make_column_transformer
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import train_test_split
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler
    from sklego.datasets import load_arrests
    from lifecycle.operate.cbpe import fit_calibrator

    df = load_arrests(as_frame=True)
    X, y = df[['age', 'checks', 'employed', 'citizen']], (df['released'] == 'Yes').astype(int).to_numpy()

    def fitted(Xtr, ytr):
        pre = make_column_transformer((StandardScaler(), ['age', 'checks']), (OneHotEncoder(), ['employed', 'citizen']))
        return make_pipeline(pre, LogisticRegression(max_iter=1000)).fit(Xtr, ytr)

    Xtr, Xrest, ytr, yrest = train_test_split(X, y, test_size=0.5, random_state=0, stratify=y)
    Xho, Xev, yho, yev = train_test_split(Xrest, yrest, test_size=0.5, random_state=0, stratify=yrest)
    model = fitted(Xtr, ytr)
    cal = fit_calibrator(model.predict_proba(Xho)[:, 1], yho)
    same = _windows(cal, model.predict_proba(Xev)[:, 1], yev, windows, size, seed)
    early = (df['year'] <= 2000).to_numpy()
    Xtr, Xho, ytr, yho = train_test_split(X[early], y[early], test_size=0.25, random_state=0, stratify=y[early])
    model = fitted(Xtr, ytr)
    cal = fit_calibrator(model.predict_proba(Xho)[:, 1], yho)
    later = _windows(cal, model.predict_proba(X[~early])[:, 1], y[~early], windows, size, seed)
    return dict(windows=windows, size=size, **same, later_years=later)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    ap.add_argument('--rows', type=int, default=1_000_000)
    ap.add_argument('--chunk', type=int, default=10_000)
    ap.add_argument('--windows', type=int, default=300)
    ap.add_argument('--json', action='store_true')
    ap.add_argument('--skip-nannyml', action='store_true', help='only the estimate-vs-realised part')
    a = ap.parse_args()
    agree = agreement(a.rows, a.chunk) if not a.skip_nannyml else None
    real = realised(a.windows)
    ok = dict(mae=real['mae'] <= MAE_GOAL, coverage=real['inside_95'] >= COVER_GOAL)
    if agree:
        ok.update(agreement=max(agree['max_abs_diff'].values()) <= AGREE_GOAL, speed=agree['speedup'] >= SPEED_GOAL)
    if a.json:
        print(json.dumps(dict(agreement=agree, realised=real, goals_met=ok)))
        return 0 if all(ok.values()) else 1
    if agree:
        print(f"CBPE on {a.rows:,} reference + {a.rows:,} analysis rows, chunks of {a.chunk:,} ({agree['chunks']}):")
        print(
            f"  NannyML {agree['nannyml_version']}: {agree['nannyml_s']:.2f} s   ours: {agree['ours_s']:.3f} s   "
            f"-> {agree['speedup']:.1f}x (goal >= {SPEED_GOAL:g}x) {'ok' if ok['speed'] else 'MISSED'}"
        )
        print(
            '  largest per-chunk difference: '
            + ', '.join(f'{m} {v:.5f}' for m, v in agree['max_abs_diff'].items())
            + f" (goal <= {AGREE_GOAL}) {'ok' if ok['agreement'] else 'MISSED'}"
        )
    lat = real['later_years']
    print(
        f"Estimated vs realised accuracy, {real['windows']} windows of {real['size']} rows resampled from the default "
        f"dataset's evaluation quarter ({real['rows']} rows; trained on half, calibrated on a quarter):"
    )
    print(
        f"  mean absolute error {real['mae']:.4f} (goal <= {MAE_GOAL}) {'ok' if ok['mae'] else 'MISSED'}; realised "
        f"inside the 95% interval in {real['inside_95']:.1%} of windows (goal >= {COVER_GOAL:.0%}) "
        f"{'ok' if ok['coverage'] else 'MISSED'}; mean estimate {real['mean_estimate']:.4f}, "
        f"mean realised {real['mean_realised']:.4f}"
    )
    print(
        f"  for information, trained on 1997-2000 and judged on 2001-2002 ({lat['rows']} rows, the years shift): "
        f"mean absolute error {lat['mae']:.4f}, inside the interval {lat['inside_95']:.1%}, mean estimate "
        f"{lat['mean_estimate']:.4f}, mean realised {lat['mean_realised']:.4f}"
    )
    return 0 if all(ok.values()) else 1


if __name__ == '__main__':
    sys.exit(main())
