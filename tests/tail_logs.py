"""A prediction log with what the monitor's reading from the end must get right, and the monitor's answer from every
row (`records` of `read_log`) to check it against: two versions and variants, requests of one and of several records,
shadow, batch and error rows, another model's rows and rows of no named model, rows logged late (an earlier time,
a later ID) and at equal times, rows of no records and of no version (and of version 'None'), an input sent no more
and one sent null, inputs sent in either order, a request ID logged twice, a series never labelled and one shorter
than a window, feedback for one record or all, outcomes that label no record."""

from __future__ import annotations
import numpy as np
import pandas as pd
from lifecycle.operate.schema import Window
from lifecycle.operate.windows import _all_kept, kept_records
from lifecycle.serve.predlog import PredictionLog, add_feedback, read_log

T0 = 1_000_000.0


def fill(url: str, n: int = 900, seed: int = 0) -> None:
    "Log `n` requests and their feedback at `url`, times from T0 over about `n` seconds."
    rng = np.random.default_rng(seed)
    log = PredictionLog(url, interval_s=0.01)
    try:
        rows = []
        for i in range(n):
            k = int(rng.choice([1, 1, 1, 3])) if i % 29 else 0  # records in this request (none: some)
            ts = T0 + i + (0.0 if i % 7 else -40.0)  # every seventh: logged late
            if i % 11 == 0:
                ts = T0 + (i // 11)  # times that tie with another request's
            row = dict(
                request_id=f'{i:032x}',
                ts=ts,
                route='predict' if i % 13 else 'batch',
                variant='control' if rng.random() < 0.7 else ('treatment' if i % 31 else 'rare'),
                model_version=str(rng.choice(['1', '2'])) if i % 37 else (None if i % 2 else 'None'),
                model='m' if i % 17 else ('other' if i % 2 else None),
                shadow=i % 19 == 0,
                inputs=(
                    {'age': [float(rng.integers(18, 90)) for _ in range(k)], 'employed': ['Yes'] * k}
                    if i % 5
                    else {'employed': ['Yes'] * k, 'age': [float(rng.integers(18, 90)) for _ in range(k)]}
                )  # (sent in either order)
                | ({'dropped': [1.0] * k} if i < 60 else {})  # (an input sent no more)
                | ({'note': [None] * k} if i > n - 200 else {}),  # (one sent, and sent null)
                output=[float(rng.random()) for _ in range(k)],
                decision=[1] * k,
                status=200 if i % 23 else 422,
            )
            rows.append(row)
        ghost = dict(rows[-5], ts=T0 + 1.0, inputs={'age': [50.0], 'employed': ['No'], 'ghost': [1.0]})
        for p in log.log_many([*rows, ghost]):  # (a request ID logged twice, the other copy long before)
            p.wait()
        for i, r in enumerate(rows):
            if r['shadow'] or r['route'] == 'batch' or r['status'] != 200 or i % 3 or r['variant'] == 'rare':
                continue  # (the rare variant: never labelled)
            k = len(r['inputs']['age'])
            outcome = 'Yes' if i % 2 else ['No'] * k
            add_feedback(log, r['request_id'], outcome)
        for i, r in enumerate(rows):  # the newest feedback: outcomes that label no record
            if i >= n - 60 and i % 3 and not (r['shadow'] or r['route'] == 'batch' or r['status'] != 200):
                add_feedback(log, r['request_id'], [None] * len(r['inputs']['age']))
    finally:
        log.close()


def from_every_row(url: str, window: Window, lookback: int, now: float):
    "What `kept_records` must answer, from every row of the log."
    return _all_kept(read_log(url, shadow=False, model='m'), 'Yes', window, lookback, now)


def same(url: str, window: Window, lookback: int, now: float) -> None:
    "`kept_records` answers as reading every row does (and has records to answer with)."
    got, times = kept_records(url, 'm', 'Yes', window, lookback, now)
    want, want_times = from_every_row(url, window, lookback, now)
    assert len(want) and times == want_times
    pd.testing.assert_frame_equal(got.reset_index(drop=True), want.reset_index(drop=True), check_dtype=False)


WINDOWS = [Window(rows=50), Window(rows=7), Window(rows=None, seconds=60.0), Window(rows=None, seconds=7.5)]


def more(url: str, start: int, n: int, seed: int = 0) -> None:
    """Log `n` more requests at `url` (IDs from `start`): versions, variants and models of every kind, shadow and batch
    rows, requests of no, one and three records, every fifth logged late (an earlier time than those before)."""
    rng = np.random.default_rng(seed + start)
    log = PredictionLog(url, interval_s=0.01)
    try:
        rows = []
        for i in range(start, start + n):
            k = [0, 1, 1, 3][i % 4]
            rows.append(
                dict(
                    request_id=f'more{i}',
                    ts=T0 + 10 * i - (300.0 if i % 5 == 0 else 0.0),
                    route='batch' if i % 13 == 0 else 'predict',
                    variant=['control', 'treatment', 'rare'][int(rng.integers(3))],
                    model_version=[None, 'None', '1', '2', '2'][i % 5],
                    model=['m', 'm', 'other', None][i % 4 if i % 3 else 0],
                    shadow=i % 11 == 0,
                    inputs={'age': [30.0] * k},
                    output=[0.5] * k,
                    status=200,
                )
            )
        for p in log.log_many(rows):
            p.wait()
    finally:
        log.close()


def irregular_ab_log(url: str, seed: int = 0) -> None:
    """Both arms and a third variant; versions changed within an arm, rows of no version and of version 'None'; other
    routes, shadow and batch rows; errors and a missing latency; other models' rows and rows of no model; feedback of
    one outcome or one per record, some labelling nothing; tied times; errors with no latency, an answered request with
    none; rows of no status or no route."""
    rng = np.random.default_rng(seed)
    log = PredictionLog(url)
    try:
        rows = []
        for i in range(1500):
            k = [1, 1, 3][i % 3]
            rows.append(
                dict(
                    request_id=f'ab{i}',
                    ts=1_000.0 + i // 2,  # (pairs of equal times)
                    route='predict' if i % 7 else ['invocations', 'batch'][i % 2],
                    variant=['control', 'challenger', 'other'][int(rng.integers(3))],
                    model_version=['1', '2', '3', None, 'None'][int(rng.integers(5))] if i % 11 else '9',
                    model=['m', 'm', 'm', 'other', None][i % 5],
                    shadow=i % 13 == 0,
                    inputs={'age': [30.0] * k},
                    output=[0.5] * k,
                    decision=[int(rng.integers(2)) for _ in range(k)],
                    latency_ms=float(rng.uniform(0.5, 5)),
                    status=int(rng.choice([200, 200, 200, 422, 500])),
                )
            )
        last = dict(rows[1], route='predict', shadow=False, model='m', status=200, latency_ms=1.0)
        for j, (arm, version) in enumerate(
            [('control', '1'), ('control', '2'), ('challenger', '3'), ('challenger', '2')]
        ):
            rows.append(dict(last, request_id=f'last{j}', ts=9_000.0, variant=arm, model_version=version))  # (a tie)
        for r in rows[5::50]:
            r['status'] = None  # (no status: an error, as `arm_stats` counts it)
        for r in rows[7::60]:
            r['route'] = None  # (no route: a row of its arm's versions, not an answered request)
        rows[-4]['latency_ms'] = None  # (the control's last version: an answered request not timed)
        for r in rows[::4]:
            if r['status'] != 200:
                r['latency_ms'] = None  # (an error answered before it was timed)
        for p in log.log_many(rows):
            p.wait()
        for i, r in enumerate(rows):
            if r['status'] == 200 and not r['shadow'] and r['route'] != 'batch' and i % 3:
                k = len(r['decision'])
                add_feedback(
                    log, r['request_id'], ['Yes', 'No', True, 1, 0][i % 5] if i % 2 else [None, 'Yes', 'No'][:k]
                )
    finally:
        log.close()


def ab_rows_logged_meanwhile(url: str, monkeypatch) -> tuple:
    """Log 30 control requests of version 1, and make the A/B report's first query be followed by two of version 3
    (committed by another connection): what the report must answer, as of its first query."""
    from sqlalchemy import create_engine, text
    from lifecycle.deliver import rollout

    log = PredictionLog(url)
    row = dict(route='predict', variant='control', model='m', status=200, inputs={'age': [1.0]}, decision=[1])
    for p in log.log_many([dict(row, request_id=f'v1-{i}', ts=T0 + i, model_version='1') for i in range(30)]):
        p.wait()
    log.close()
    real, done = rollout._ArmQuery.rows, []

    def then_more(self, *a, **kw):
        got = real(self, *a, **kw)
        if not done:
            done.append(True)
            with create_engine(url).begin() as c:  # (a writer's commit, while the report reads)
                for i in range(2):
                    c.execute(
                        text(
                            'INSERT INTO predictions (request_id, ts, route, variant, model_version, model, shadow, '
                            "inputs, status) VALUES (:r, :ts, 'predict', 'control', '3', 'm', :f, '{}', 200)"
                        ),
                        dict(r=f'v3-{i}', ts=T0 + 100 + i, f=False),
                    )
        return got

    monkeypatch.setattr(rollout._ArmQuery, 'rows', then_more)
    return ('1', 30, {})
