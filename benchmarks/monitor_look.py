"""One monitor look at a large prediction log: the windows the monitor keeps read from the log's end
(`lifecycle.operate.windows.kept_records`, what `lifecycle monitor run` does since stop 54) against reading every row
(`read_log` and `records`, what it did before, kept as the fallback for databases whose SQL reads no JSON), in the
same run, on the same log; and a look that follows another (`monitor run --every`), which keeps the first look's
tally of each series and counts only the rows logged since (none here: the log does not grow during the run).

    python benchmarks/monitor_look.py [--rows 1000000] [--lookback 200] [--window-rows 500] [--json]

The log: an SQLite prediction log made by `PredictionLog` (its tables and indexes), filled with `--rows` rows shaped
like the default dataset's served requests (one record each, every 20th of three; two variants; feedback for every
10th row), inserted in bulk. Each way runs in a process of its own: its wall time and peak resident memory
(`ru_maxrss`). The two answers must be the same records in the same windows, and the same series' times (the run
fails otherwise; both share the windowing code after the read, so this checks what is read: the irregular logs, late
and tied times, shadow and batch rows and the rest, are `tests/test_log_tail.py`'s). No goal: the ratio is what a look
no longer costs.
"""

from __future__ import annotations
import argparse
import json
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

LOOK = r"""
import hashlib, json, resource, sys, time
import pandas as pd
from lifecycle.operate.schema import Window
from lifecycle.operate.windows import _all_kept, kept_records
from lifecycle.serve.logtail import Tally
from lifecycle.serve.predlog import read_log

url, way, lookback, rows, now = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), float(sys.argv[5])
tally = Tally() if way == 'next' else None
if tally is not None:  # the look before (untimed): it counts every series' records and keeps the tally
    kept_records(url, 'm', 'Yes', Window(rows=rows), lookback, now, tally)
t0 = time.perf_counter()
if way in ('end', 'next'):
    rec, times = kept_records(url, 'm', 'Yes', Window(rows=rows), lookback, now, tally)
else:
    rec, times = _all_kept(read_log(url, shadow=False, model='m'), 'Yes', Window(rows=rows), lookback, now)
s = time.perf_counter() - t0
frame = rec.reset_index(drop=True)
digest = hashlib.sha256(
    repr(list(frame.columns)).encode()  # (the columns, named and in order, then the values)
    + pd.util.hash_pandas_object(frame.astype(str)).values.tobytes()
).hexdigest()
print(json.dumps(dict(seconds=s, peak_mib=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                      records=len(rec), digest=digest, times=[list(t) for t in times])))
"""


def make_log(path: Path, rows: int, seed: int = 0) -> float:
    "An SQLite prediction log of `rows` requests (and feedback for a tenth); the time of its last row."
    import numpy as np
    from lifecycle.serve.predlog import PredictionLog

    PredictionLog(f'sqlite:///{path}').close()  # (its tables and indexes, as a server makes them)
    rng = np.random.default_rng(seed)
    t0 = 1_790_000_000.0
    con = sqlite3.connect(path)
    cols = (
        'request_id, ts, route, variant, model_version, model, shadow, inputs, output, decision, threshold, '
        'latency_ms, status'
    )
    for start in range(0, rows, 100_000):
        batch, labels = [], []
        for i in range(start, min(rows, start + 100_000)):
            k = 3 if i % 20 == 0 else 1
            ages = rng.integers(12, 70, k).tolist()
            x = {
                'age': [float(a) for a in ages],
                'checks': [float(c) for c in rng.integers(0, 7, k)],
                'employed': ['Yes'] * k,
                'citizen': ['No'] * k,
            }
            out = [round(float(v), 4) for v in rng.random(k)]
            rid = f'{i:032x}'
            batch.append(
                (
                    rid,
                    t0 + i * 0.01,
                    'invocations',
                    'control' if i % 10 else 'treatment',
                    '1',
                    'm',
                    0,
                    json.dumps(x),
                    json.dumps(out),
                    json.dumps([int(v >= 0.5) for v in out]),
                    0.5,
                    1.0,
                    200,
                )
            )
            if i % 10 == 3:
                labels.append((rid, t0 + i * 0.01 + 60, json.dumps('Yes' if rng.random() < 0.5 else 'No'), 'bench'))
        con.executemany(f'INSERT INTO predictions ({cols}) VALUES ({", ".join("?" * 13)})', batch)
        con.executemany('INSERT INTO feedback (request_id, ts, outcome, actor) VALUES (?, ?, ?, ?)', labels)
        con.commit()
    con.close()
    return t0 + rows * 0.01


def look(url: str, way: str, lookback: int, window_rows: int, now: float) -> dict:
    out = subprocess.run(
        [sys.executable, '-c', LOOK, url, way, str(lookback), str(window_rows), str(now)],
        capture_output=True,
        text=True,
        check=False,
    )
    if out.returncode:
        sys.exit(
            f"the {way} look failed: {out.stderr.strip().splitlines()[-1] if out.stderr.strip() else out.returncode}"
        )
    return json.loads(out.stdout)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split('\n\n')[0], formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument('--rows', type=int, default=1_000_000, help='requests in the generated log (default 1,000,000)')
    ap.add_argument('--lookback', type=int, default=200, help="closed windows kept per series (the default params')")
    ap.add_argument('--window-rows', type=int, default=500, help="records a window (the default params')")
    ap.add_argument('--json', action='store_true', help='print the result as JSON')
    a = ap.parse_args()
    if a.rows < 1 or a.lookback < 1 or a.window_rows < 1:
        sys.exit('error: --rows, --lookback and --window-rows must be at least 1')
    with tempfile.TemporaryDirectory(prefix='lifecycle-monitor-look-') as d:
        path = Path(d) / 'predictions.db'
        t = time.perf_counter()
        now = make_log(path, a.rows)
        made = time.perf_counter() - t
        url = f'sqlite:///{path}'
        end = look(url, 'end', a.lookback, a.window_rows, now)
        every = look(url, 'every', a.lookback, a.window_rows, now)
        after = look(url, 'next', a.lookback, a.window_rows, now)
        size = path.stat().st_size
    if (end['digest'], end['times']) != (every['digest'], every['times']):
        sys.exit('error: the look from the end and the look at every row answered differently')
    if (after['digest'], after['times']) != (end['digest'], end['times']):
        sys.exit('error: the look that followed another answered differently from a first look')
    res = dict(
        rows=a.rows,
        log_mib=round(size / 2**20),
        made_s=round(made, 1),
        lookback=a.lookback,
        window_rows=a.window_rows,
        records_kept=end['records'],
        end=dict(seconds=round(end['seconds'], 2), peak_mib=round(end['peak_mib'])),
        every_row=dict(seconds=round(every['seconds'], 2), peak_mib=round(every['peak_mib'])),
        next_look=dict(seconds=round(after['seconds'], 2), peak_mib=round(after['peak_mib'])),
        time_ratio=round(end['seconds'] / every['seconds'], 4),
        memory_ratio=round(end['peak_mib'] / every['peak_mib'], 4),
        next_time_ratio=round(after['seconds'] / every['seconds'], 4),
        same_answer=True,
    )
    if a.json:
        print(json.dumps(res))
        return
    print(
        f"log: {a.rows:,} requests ({res['log_mib']:,} MiB), {res['records_kept']:,} records kept "
        f"({a.lookback} windows of {a.window_rows} a series)"
    )
    shown = [('from the end', res['end'], ''), ('every row', res['every_row'], '')]
    shown.append(('a next look', res['next_look'], " (the process's: both looks)"))
    for name, r, note in shown:
        print(f"  {name:>12}: {r['seconds']:8.2f} s  peak {r['peak_mib']:7,} MiB{note}")
    print(f"  ratio (end / every row): time {res['time_ratio']:.3f}x, memory {res['memory_ratio']:.3f}x; same answer")
    print(f"  a next look (its tally kept) / every row: time {res['next_time_ratio']:.3f}x; same answer")


if __name__ == '__main__':
    main()
