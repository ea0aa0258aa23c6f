"""Time our drift path (`lifecycle.drift.compare` against a stored profile) next to Evidently's DataDriftPreset on the
same data, in the same run, and check that every column's verdict agrees.

    python benchmarks/drift_vs_evidently.py [--rows N] [--repeat R] [--json]

The data: a reference and a current frame of N rows each (default 1,000,000) and 10 columns, 8 numeric (normal,
lognormal, wide integers, zero-inflated, heavy-tailed, 4-valued, ages with nulls, bimodal) and 2 categorical, four
of them shifted in the current frame. Each side runs in its own subprocess on the same Parquet files, so their memory
figures do not pollute each other: peak RSS during the measured call (Linux high-water mark, reset just before it)
and its increase over the RSS before the call. Imports are done before timing on both sides.

Goal: ours (compare) at least 20x faster than Evidently, with identical verdicts.
"""

from __future__ import annotations
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

GOAL = 20.0


def make_frames(rows: int, seed: int = 0):
    "The reference and current frames: 8 numeric and 2 categorical columns, four shifted in the current one."
    import numpy as np
    import pandas as pd

    def frame(rng, cur: bool):
        n = rows
        d = {
            'n_normal': rng.normal(0.2 if cur else 0.0, 1.0, n),  # mean shift -> drift
            'n_lognormal': rng.lognormal(0.0, 1.0 if cur else 0.8, n),  # scale shift -> drift
            'n_int_wide': rng.integers(0, 100_000, n),  # many distinct ints
            'n_zero_infl': np.where(rng.random(n) < 0.3, 0.0, rng.exponential(1.0, n)),  # a heavy atom at 0
            'n_heavy_tail': rng.standard_t(3, n),  # heavy tails
            'n_few': rng.choice(4, n, p=[0.4, 0.3, 0.2, 0.1] if cur else [0.25] * 4),  # 4 values -> JS; drift
            'n_age': rng.integers(18, 91, n).astype(float),  # 73 values, 5% nulls
            'n_bimodal': np.where(rng.random(n) < 0.5, rng.normal(-2, 1, n), rng.normal(2, 1, n))
            + (0.05 if cur else 0),
        }
        d['n_age'][rng.random(n) < 0.05] = np.nan
        d['c_region'] = rng.choice(np.array(['north', 'south', 'east', 'west', 'centre'], dtype=object), n)
        plans = np.array(['free', 'basic', 'pro', 'enterprise'], dtype=object)
        d['c_plan'] = rng.choice(
            plans, n, p=[0.4, 0.2, 0.2, 0.2] if cur else [0.5, 0.3, 0.2, 0]
        )  # a new category -> drift
        return pd.DataFrame(d)

    rng = np.random.default_rng(seed)
    return frame(rng, False), frame(rng, True)


def _rss_reset() -> bool:
    try:
        Path('/proc/self/clear_refs').write_text('5')
        return True
    except OSError:
        return False


def _status_kib(key: str) -> int:
    for line in Path('/proc/self/status').read_text().splitlines():
        if line.startswith(key + ':'):
            return int(line.split()[1])
    return 0


def _measure(fn):
    "Run fn once; return its result, seconds, peak RSS during the call and RSS before it (MiB)."
    import gc
    import resource

    gc.collect()
    before = _status_kib('VmRSS')
    reset = _rss_reset()
    t0 = time.perf_counter()
    out = fn()
    dt = time.perf_counter() - t0
    peak = _status_kib('VmHWM') if reset else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return out, dt, peak / 1024, before / 1024


def side(name: str, data: Path, repeat: int) -> dict:
    "One side of the benchmark, in its own process: load the frames, time the call(s), print JSON."
    import pandas as pd

    ref, cur = pd.read_parquet(data / 'ref.parquet'), pd.read_parquet(data / 'cur.parquet')
    import scipy.stats
    import scipy.spatial.distance  # noqa: F401  (imported before timing, as Evidently imports them)

    if name == 'evidently':
        from lifecycle.drift import evidently_verdicts
        import evidently.presets  # noqa: F401

        res, dt, peak, before = _measure(lambda: evidently_verdicts(ref, cur))
        return dict(
            seconds=dt,
            peak_rss_mib=peak,
            rss_before_mib=before,
            dataset_drift=bool(res.attrs['dataset_drift']),
            columns=res[['column', 'method', 'score', 'drifted']].to_dict('records'),
        )
    from lifecycle.drift import profile, compare, summary

    prof, t_prof, peak_prof, before_prof = _measure(lambda: profile(ref))
    text = json.dumps(prof, allow_nan=False)
    stored = json.loads(text)  # as stored with the snapshot
    runs = [_measure(lambda: compare(stored, cur)) for _ in range(repeat)]
    res = runs[0][0]
    return dict(
        profile_seconds=t_prof,
        profile_peak_rss_mib=peak_prof,
        profile_rss_before_mib=before_prof,
        profile_json_bytes=len(text),
        compare_seconds=statistics.median(r[1] for r in runs),
        compare_seconds_all=[r[1] for r in runs],
        peak_rss_mib=max(r[2] for r in runs),
        rss_before_mib=runs[0][3],
        dataset_drift=summary(res)['dataset_drift'],
        columns=res[['column', 'method', 'score', 'drifted']].to_dict('records'),
    )


def run_side(name: str, data: Path, repeat: int) -> dict:
    r = subprocess.run(
        [sys.executable, __file__, '--side', name, '--data', str(data), '--repeat', str(repeat)],
        capture_output=True,
        text=True,
    )
    if r.returncode:
        sys.exit(f"the {name} side failed (exit {r.returncode}):\n{r.stderr[-3000:]}")
    return json.loads(r.stdout.strip().splitlines()[-1])


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument(
        '--rows', type=int, default=1_000_000, help='rows in each of reference and current (default 1,000,000)'
    )
    ap.add_argument('--repeat', type=int, default=3, help='compare runs on our side (the median is reported)')
    ap.add_argument('--json', action='store_true', help='print the figures as JSON')
    ap.add_argument('--side', choices=['ours', 'evidently'], help=argparse.SUPPRESS)
    ap.add_argument('--data', type=Path, help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.side:
        print(json.dumps(side(a.side, a.data, a.repeat)))
        return
    with tempfile.TemporaryDirectory() as d:
        t0 = time.perf_counter()
        ref, cur = make_frames(a.rows)
        ref.to_parquet(Path(d) / 'ref.parquet')
        cur.to_parquet(Path(d) / 'cur.parquet')
        del ref, cur
        print(f"data: 2 x {a.rows:,} rows x 10 columns in {time.perf_counter() - t0:.1f}s", file=sys.stderr)
        ours = run_side('ours', Path(d), a.repeat)
        print(f"ours: profile {ours['profile_seconds']:.2f}s, compare {ours['compare_seconds']:.3f}s", file=sys.stderr)
        ev = run_side('evidently', Path(d), 1)
        print(f"evidently: {ev['seconds']:.1f}s", file=sys.stderr)
    evc = {c['column']: c for c in ev['columns']}
    cols = []
    for c in ours['columns']:
        e = evc.get(c['column'], {})
        cols.append(
            dict(
                column=c['column'],
                method=c['method'],
                evidently_method=e.get('method'),
                score=c['score'],
                evidently_score=e.get('score'),
                drifted=c['drifted'],
                evidently_drifted=e.get('drifted'),
                agree=c['method'] == e.get('method') and c['drifted'] == e.get('drifted'),
            )
        )
    disagree = [c for c in cols if not c['agree']] + [
        dict(column=k, missing='ours') for k in evc if k not in {c['column'] for c in cols}
    ]
    both = ours['profile_seconds'] + ours['compare_seconds']
    out = dict(
        rows=a.rows,
        cpus=os.cpu_count(),
        evidently_seconds=round(ev['seconds'], 3),
        compare_seconds=round(ours['compare_seconds'], 4),
        profile_seconds=round(ours['profile_seconds'], 3),
        profile_plus_compare_seconds=round(both, 3),
        speedup_compare=round(ev['seconds'] / ours['compare_seconds'], 1),
        speedup_profile_plus_compare=round(ev['seconds'] / both, 1),
        evidently_peak_rss_mib=round(ev['peak_rss_mib']),
        evidently_rss_before_mib=round(ev['rss_before_mib']),
        compare_peak_rss_mib=round(ours['peak_rss_mib']),
        compare_rss_before_mib=round(ours['rss_before_mib']),
        profile_peak_rss_mib=round(ours['profile_peak_rss_mib']),
        profile_rss_before_mib=round(ours['profile_rss_before_mib']),
        profile_json_bytes=ours['profile_json_bytes'],
        verdicts_agree=not disagree,
        disagreements=disagree,
        dataset_drift=dict(ours=ours['dataset_drift'], evidently=ev['dataset_drift']),
        max_abs_score_diff=max(
            abs(c['score'] - c['evidently_score']) for c in cols if c['evidently_score'] is not None
        ),
        columns=cols,
        goal_speedup=GOAL,
    )
    if a.json:
        print(json.dumps(out, indent=1))
        return
    print(f"{'':<28}{'seconds':>10}{'peak RSS MiB':>14}{'(+ over start)':>16}")
    print(
        f"{'Evidently DataDriftPreset':<28}{ev['seconds']:>10.2f}{ev['peak_rss_mib']:>14.0f}"
        f"{ev['peak_rss_mib'] - ev['rss_before_mib']:>+16.0f}"
    )
    print(
        f"{'ours: compare':<28}{ours['compare_seconds']:>10.3f}{ours['peak_rss_mib']:>14.0f}"
        f"{ours['peak_rss_mib'] - ours['rss_before_mib']:>+16.0f}"
    )
    print(
        f"{'ours: profile (once)':<28}{ours['profile_seconds']:>10.3f}{ours['profile_peak_rss_mib']:>14.0f}"
        f"{ours['profile_peak_rss_mib'] - ours['profile_rss_before_mib']:>+16.0f}"
    )
    print(f"{'ours: profile + compare':<28}{both:>10.3f}")
    print(
        f"speed-up: {out['speedup_compare']}x (compare), {out['speedup_profile_plus_compare']}x (profile + compare); "
        f"goal {GOAL:.0f}x"
    )
    print(f"profile JSON: {ours['profile_json_bytes'] / 1024:.0f} KiB")
    print(f"{'column':<14}{'method':<27}{'ours':>12}{'evidently':>12}  drifted (ours/evidently)")
    for c in cols:
        theirs = c['evidently_score'] if c['evidently_score'] is not None else float('nan')
        print(
            f"{c['column']:<14}{c['method']:<27}{c['score']:>12.6g}{theirs:>12.6g}"
            f"  {c['drifted']}/{c['evidently_drifted']}"
        )
    print(f"max |score difference|: {out['max_abs_score_diff']:.2e}")
    print(f"dataset drift: ours {ours['dataset_drift']}, evidently {ev['dataset_drift']}")
    print("verdicts: all columns agree" if not disagree else f"verdicts DISAGREE: {disagree}")


if __name__ == '__main__':
    main()
