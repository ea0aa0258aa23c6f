"""The closed loop's decisions, measured on simulated traffic from fixed candidates (not full retrains):

    python benchmarks/loop_decisions.py [--runs N] [--seed S] [--json]

Three candidates are trained once on the default dataset's training years (1997-2000): the champion (a logistic
regression), a sound candidate (gradient-boosted trees: as accurate, disagreeing on about 2% of requests) and a
degraded logistic regression (trained on an extract that repeats every row not of
the positive class, the rollout demo's degraded candidate, milder: it passes the offline gates and does worse live).
Each run replays requests drawn (seeded) from the later years through the decision part of the loop, with the
workspace's params: the shadow comparison on the same requests once labelled (`lifecycle.loop.shadow.compare`,
params/retrain.yaml), then the canary under the rollout guard (`lifecycle.deliver.rollout.judge`, params/rollout.yaml,
each look on the traffic the step's share gets); promoted when the guard completes, reverted otherwise.

Goals: the degraded candidate reverted in at least 99 of 100 runs, the sound one promoted in at least 95 of 100.
Stable replays: windows of 500 rows resampled from the training rows (no drift by construction) measured as the
monitor does (`window_metrics`), alert rules of params/monitor.yaml with their cooldowns (a window an hour), and the
drift and performance triggers of params/retrain.yaml judged after each window (`lifecycle.loop.triggers.evaluate`,
with their debounce): at most 1 false trigger per 100 windows. A replay with every age 15 years older shows the same
path does fire (its count is printed, not a goal).
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
FEATS = ['age', 'checks', 'employed', 'citizen']
DEGRADE_FACTOR = 3  # the degraded candidate's extract repeats every negative row this many times
GOALS = dict(degraded_reverted=0.99, sound_promoted=0.95, false_triggers_per_window=0.01)


def _model(train: pd.DataFrame, C: float | None = 1.0):
    "A logistic regression (C), or with C None gradient-boosted trees (another family), on the four features."
    from sklearn.compose import make_column_transformer
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    pre = make_column_transformer((StandardScaler(), ['age', 'checks']), (OneHotEncoder(), ['employed', 'citizen']))
    est = LogisticRegression(C=C, max_iter=1000) if C else HistGradientBoostingClassifier(max_depth=3, random_state=0)
    return make_pipeline(pre, est).fit(train[FEATS], train['released'] == 'Yes')


def candidates() -> dict:
    "The fixed candidates and the replayed traffic: decisions of each on every later-year row, and the labels."
    from sklego.datasets import load_arrests
    from sklearn.model_selection import train_test_split
    from lifecycle.deliver.simulate import skewed_extract

    df = load_arrests(as_frame=True)
    early, later = df[df.year <= 2000], df[df.year > 2000].reset_index(drop=True)
    train, hold = train_test_split(early, test_size=0.25, random_state=42, stratify=early['released'])
    models = dict(
        champion=_model(train, 1.0),
        sound=_model(train, None),
        degraded=_model(skewed_extract(train, 'released', 'Yes', DEGRADE_FACTOR), 1.0),
    )
    y = (later['released'] == 'Yes').to_numpy(float)
    dec = {k: (m.predict_proba(later[FEATS])[:, 1] >= 0.5).astype(float) for k, m in models.items()}
    yh = (hold['released'] == 'Yes').to_numpy(float)
    offline = {k: float(((m.predict_proba(hold[FEATS])[:, 1] >= 0.5) == yh).mean()) for k, m in models.items()}
    live = {k: float((d == y).mean()) for k, d in dec.items()}
    return dict(y=y, decisions=dec, offline_accuracy=offline, live_accuracy=live)


def _arm(correct: int, n: int) -> dict:
    return dict(
        requests=n,
        errors=0,
        feedback=n,
        correct=correct,
        error_rate=0.0,
        accuracy=correct / n if n else None,
        p50_ms=5.0,
        p95_ms=9.0,
        versions='',
    )


def one_run(c: dict, who: str, rng, retrain, rollout) -> tuple[str, str]:
    "One replay: the shadow comparison, then the guarded canary. (outcome, where it was decided)."
    from lifecycle.deliver.rollout import judge
    from lifecycle.loop.shadow import compare

    y, champ, chal = c['y'], c['decisions']['champion'], c['decisions'][who]
    n = retrain.shadow.min_labelled + int(rng.integers(0, 50))  # labels arrive in batches: the first pass past the bar
    i = rng.integers(0, len(y), n)
    v = compare(pd.DataFrame(dict(y=y[i], champion=champ[i], challenger=chal[i])), retrain.shadow)
    if v.verdict != 'pass':
        return 'reverted', 'shadow'
    g, steps = rollout.guard, retrain.canary.steps or rollout.steps
    for pct in steps[:-1]:
        tests, cc = {}, [0, 0, 0, 0]  # control correct, control n, challenger correct, challenger n
        per_look = max(20, int(round(20 * 100 / pct)))  # about 20 challenger requests a look at this share
        while True:
            i = rng.integers(0, len(y), per_look)
            to_challenger = rng.random(per_look) < pct / 100
            ok_c, ok_t = champ[i] == y[i], chal[i] == y[i]
            cc[0] += int(ok_c[~to_challenger].sum())
            cc[1] += int((~to_challenger).sum())
            cc[2] += int(ok_t[to_challenger].sum())
            cc[3] += int(to_challenger.sum())
            d = judge(dict(control=_arm(cc[0], cc[1]), challenger=_arm(cc[2], cc[3])), tests, g, len(steps), 0.0)
            if d.action == 'rollback':
                return 'reverted', f'canary {pct:g}%'
            if d.action == 'advance':
                break
    return 'promoted', 'canary'


def decisions(runs: int, seed: int) -> dict:
    from lifecycle.core.params import load_params
    from lifecycle.loop.schema import load_retrain_params

    c = candidates()
    retrain, rollout = load_retrain_params(ROOT / 'params'), load_params(ROOT / 'params')['rollout']
    out = {}
    for k, who in enumerate(('sound', 'degraded')):
        rng = np.random.default_rng(seed + 1000 * k)
        t0 = time.perf_counter()
        res = [one_run(c, who, rng, retrain, rollout) for _ in range(runs)]
        where = {}
        for o, w in res:
            where[f'{o} at {w}'] = where.get(f'{o} at {w}', 0) + 1
        out[who] = dict(
            promoted=sum(o == 'promoted' for o, _ in res),
            reverted=sum(o == 'reverted' for o, _ in res),
            runs=runs,
            where=where,
            offline_accuracy=c['offline_accuracy'][who],
            live_accuracy=c['live_accuracy'][who],
            seconds=time.perf_counter() - t0,
        )
    out['champion'] = dict(
        offline_accuracy=c['offline_accuracy']['champion'], live_accuracy=c['live_accuracy']['champion']
    )
    return out


def false_triggers(replays: int, windows: int, seed: int, shift: float = 0.0) -> dict:
    """Stable replays through window metrics, the monitor's alert rules and the retraining triggers (with `shift`
    years added to every age: a drifted replay, the check that the same path does fire)."""
    from sklearn.model_selection import train_test_split
    from sklego.datasets import load_arrests
    from lifecycle.data import drift
    from lifecycle.loop.schema import load_retrain_params
    from lifecycle.loop.triggers import evaluate
    from lifecycle.operate.alerts import judge
    from lifecycle.operate.schema import Window, load_monitor_params
    from lifecycle.operate.windows import Baseline, assign_windows, window_metrics

    df = load_arrests(as_frame=True)
    df = df[df.year <= 2000]
    train, hold = train_test_split(df, test_size=0.25, random_state=42, stratify=df['released'])
    model = _model(train, 1.0)
    base = Baseline.from_holdout(
        drift.profile(train[FEATS]), model.predict_proba(hold[FEATS])[:, 1], (hold['released'] == 'Yes').astype(int)
    )
    mp, rp = load_monitor_params(ROOT / 'params'), load_retrain_params(ROOT / 'params')
    rp = rp.model_copy(update={'triggers': rp.triggers.model_copy(update={'schedule': None, 'new_labels': None})})
    rules = [r for r in mp.rules if r.metric not in ('silence_s', 'label_silence_s', 'heartbeat_age_s')]
    size, hour, fires, alerts_n, by = mp.window.rows or 500, 3600.0, 0, 0, {}
    for k in range(replays):
        rows = train.sample(windows * size, replace=True, random_state=seed + k).reset_index(drop=True)
        rows['age'] = rows['age'] + shift
        s = model.predict_proba(rows[FEATS])[:, 1]
        n = len(rows)
        ts = np.arange(n, dtype=float) * hour / size  # one window an hour
        rec = pd.DataFrame(
            dict(
                request_id=[f'r{i}' for i in range(n)],
                ts=ts,
                variant='control',
                model_version='1',
                status=200,
                latency_ms=2.0,
                first=True,
                score=s,
                decision=(s >= 0.5).astype(float),
                label=(rows['released'] == 'Yes').astype(float),
                feedback_ts=ts + 60.0,
            )
        )
        rec = assign_windows(pd.concat([rec, rows[FEATS]], axis=1), Window(rows=size))
        m = window_metrics(rec, {'1': base}).sort_values('window')
        mstate, tstate, raised = {}, {'last_fired': {}, 'started': []}, []
        for w in m.to_dict('records'):
            now = float(w['window_end']) + 60.0
            new = judge([dict(w, series='1/control')], rules, mstate, now=now)
            raised += [dict(a.__dict__) for a in new]
            alerts_n += len(new)
            v = evaluate(rp, dict(alerts=raised, new_labels=0, last_retrain=0.0), tstate, now)
            if v.fire:
                fires += 1
                for name in v.fired:
                    tstate['last_fired'][name] = now
                    by[name] = by.get(name, 0) + 1
                tstate['started'].append(now)
    total = replays * windows
    return dict(
        windows=total, replays=replays, triggers=fires, per_window=fires / total, alerts=alerts_n, by_trigger=by
    )


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    ap.add_argument('--runs', type=int, default=100)
    ap.add_argument('--replays', type=int, default=10, help="stable replays of 100 windows each")
    ap.add_argument('--seed', type=int, default=0)
    ap.add_argument('--json', action='store_true')
    a = ap.parse_args()
    d, f = decisions(a.runs, a.seed), false_triggers(a.replays, 100, a.seed)
    drifted = false_triggers(1, 100, a.seed, shift=15.0)
    ok = dict(
        degraded_reverted=d['degraded']['reverted'] >= GOALS['degraded_reverted'] * a.runs,
        sound_promoted=d['sound']['promoted'] >= GOALS['sound_promoted'] * a.runs,
        false_triggers=f['per_window'] <= GOALS['false_triggers_per_window'],
    )
    if a.json:
        print(json.dumps(dict(decisions=d, false_triggers=f, drifted_replay=drifted, goals_met=ok)))
    else:
        ch = d['champion']
        print(
            f"champion: accuracy {ch['offline_accuracy']:.3f} offline (holdout), "
            f"{ch['live_accuracy']:.3f} live (2001-2002)"
        )
        for who, goal in (('degraded', 'reverted'), ('sound', 'promoted')):
            r = d[who]
            print(
                f"{who} candidate (accuracy {r['offline_accuracy']:.3f} offline, {r['live_accuracy']:.3f} live): "
                f"{r[goal]}/{r['runs']} {goal} (goal >= {GOALS[who + '_' + goal]:.0%}) "
                f"{'ok' if ok[who + '_' + goal] else 'MISSED'}; {r['where']}; {r['seconds']:.1f} s"
            )
        print(
            f"stable replays: {f['triggers']} false trigger(s) over {f['windows']} windows "
            f"({f['per_window']:.2%} per window, goal <= {GOALS['false_triggers_per_window']:.0%}) "
            f"{'ok' if ok['false_triggers'] else 'MISSED'}; {f['alerts']} alert(s); "
            f"by trigger {f['by_trigger'] or 'none'}"
        )
        print(
            f"check: a replay with every age 15 years older fires {drifted['triggers']} trigger(s) in "
            f"{drifted['windows']} windows ({drifted['alerts']} alert(s); by trigger {drifted['by_trigger'] or 'none'})"
        )
    return 0 if all(ok.values()) else 1


if __name__ == '__main__':
    sys.exit(main())
