"""The monitor's own goals, measured: windowed drift checks are fast, and a stable replay raises (almost) no alert.

    python benchmarks/monitor_windows.py [--windows W] [--json]

1. Speed: ten drift checks of 100,000-row windows against a training profile (the arrests dataset's columns, the
   measures `lifecycle monitor` computes per window: Evidently's default measure and verdict, PSI, KS, KL), timed
   together. Goal: at most 2 s.
2. False alerts: a stable replay of W windows (default 1,000) of 500 rows each, resampled from the default dataset's
   training rows (so no drift by construction), scored by a logistic regression whose holdout calibrates the
   estimates; labels are the true outcomes. Every window goes through `window_metrics` and the workspace's rules
   (`params/monitor.yaml`, silence and heartbeats aside). Goal: at most 1 alert per 100 windows.
"""

from __future__ import annotations
import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
SPEED_GOAL_S, FALSE_ALERT_GOAL = 2.0, 0.01


def speed() -> dict:
    from lifecycle.data import drift
    from lifecycle.operate.windows import input_drift
    from sklego.datasets import load_arrests

    df = load_arrests(as_frame=True)[['age', 'checks', 'employed', 'citizen', 'colour', 'sex', 'year']]
    prof = drift.profile(df)
    r = np.random.default_rng(0)
    big = df.sample(1_000_000, replace=True, random_state=1).reset_index(drop=True)
    big['age'] = big['age'] + r.normal(0, 1, len(big)).round()  # a little shift, so the measures have work
    input_drift(prof, big.iloc[:1000])  # imports done before timing
    t0 = time.perf_counter()
    for i in range(10):
        input_drift(prof, big.iloc[i * 100_000 : (i + 1) * 100_000])
    return dict(windows=10, rows=100_000, columns=len(prof['order']), seconds=time.perf_counter() - t0)


def false_alerts(windows: int, size: int = 500) -> dict:
    from sklearn.compose import make_column_transformer
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import train_test_split
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler
    from sklego.datasets import load_arrests
    from lifecycle.data import drift
    from lifecycle.operate.alerts import judge
    from lifecycle.operate.schema import Window, load_monitor_params
    from lifecycle.operate.windows import INPUT, Baseline, assign_windows, window_metrics

    feats = ['age', 'checks', 'employed', 'citizen']
    df = load_arrests(as_frame=True)
    train, hold = train_test_split(df, test_size=0.25, random_state=0, stratify=df['released'])
    pre = make_column_transformer((StandardScaler(), ['age', 'checks']), (OneHotEncoder(), ['employed', 'citizen']))
    model = make_pipeline(pre, LogisticRegression(max_iter=1000)).fit(train[feats], train['released'] == 'Yes')
    base = Baseline.from_holdout(
        drift.profile(train[feats]), model.predict_proba(hold[feats])[:, 1], (hold['released'] == 'Yes').astype(int)
    )
    rows = train.sample(windows * size, replace=True, random_state=2).reset_index(drop=True)
    s = model.predict_proba(rows[feats])[:, 1]
    n = len(rows)
    rec = pd.DataFrame(
        dict(
            request_id=[f'r{i}' for i in range(n)],
            ts=np.arange(n, dtype=float),
            variant='control',
            model_version='1',
            status=200,
            latency_ms=2.0,
            first=True,
            score=s,
            decision=(s >= 0.5).astype(float),
            label=(rows['released'] == 'Yes').astype(float),
            feedback_ts=np.arange(n, dtype=float) + 60.0,
        )
    )
    rec = pd.concat([rec, rows[feats].add_prefix(INPUT)], axis=1)  # named as records() names inputs
    rec = assign_windows(rec, Window(rows=size))
    t0 = time.perf_counter()
    m = window_metrics(rec, {'1': base})
    seconds = time.perf_counter() - t0
    mp = load_monitor_params(ROOT / 'params')
    clock = ('silence_s', 'label_silence_s', 'heartbeat_age_s', 'server_alerts', 'guard_alerts', 'rows_set_aside')
    rules = [r for r in mp.rules if r.metric not in clock]
    obs = [dict(r, series='1/control') for r in m.to_dict('records')]
    alerts = judge(obs, [r.model_copy(update={'cooldown_s': 0}) for r in rules], {}, now=0.0)
    by_rule = {}
    for a in alerts:
        by_rule[a.rule] = by_rule.get(a.rule, 0) + 1
    return dict(
        windows=len(m),
        size=size,
        alerts=len(alerts),
        per_window=len(alerts) / len(m),
        by_rule=by_rule,
        rules=[r.name for r in rules],
        seconds=seconds,
    )


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    ap.add_argument('--windows', type=int, default=1000)
    ap.add_argument('--json', action='store_true')
    a = ap.parse_args()
    sp, fa = speed(), false_alerts(a.windows)
    ok = dict(speed=sp['seconds'] <= SPEED_GOAL_S, false_alerts=fa['per_window'] <= FALSE_ALERT_GOAL)
    if a.json:
        print(json.dumps(dict(speed=sp, false_alerts=fa, goals_met=ok)))
    else:
        print(
            f"drift: {sp['windows']} windows of {sp['rows']:,} rows x {sp['columns']} columns in {sp['seconds']:.2f} s "
            f"(goal <= {SPEED_GOAL_S:g} s) {'ok' if ok['speed'] else 'MISSED'}"
        )
        print(
            f"false alerts: {fa['alerts']} over a stable replay of {fa['windows']} windows of {fa['size']} rows "
            f"({fa['per_window']:.2%} per window, goal <= {FALSE_ALERT_GOAL:.0%}) "
            f"{'ok' if ok['false_alerts'] else 'MISSED'}"
            f"; by rule {fa['by_rule'] or 'none'}; rules judged: {', '.join(fa['rules'])}; "
            f"{fa['seconds']:.1f} s to measure every window"
        )
    return 0 if all(ok.values()) else 1


if __name__ == '__main__':
    sys.exit(main())
