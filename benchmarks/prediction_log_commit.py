"""Serving throughput and latency with the prediction log's durable group commit against the earlier batching, in
one run on the same workspace and machine.

    python benchmarks/prediction_log_commit.py [--workspace DIR] [--concurrency C] [--duration S] [--json]

Without --workspace a tiny workspace is built in a temp dir (`lifecycle.serve.local.tiny_workspace`: two signed,
validated versions). For each mode of `prediction_log_commit` (batched: answered first, rows written within
~100 ms; durable: answered once the row's batch is committed, SQLite WAL fsynced) a `lifecycle serve` process
(1 worker) gets a warm-up run (2 s, not counted), then C keep-alive clients (default 8) POST one-record /predict
bodies for S seconds (default 10). Printed per mode: requests/s, p50 and p99 latency, and rows logged against
requests answered (after the server is stopped, i.e. flushed)."""

from __future__ import annotations
import argparse
import json
import os
import subprocess
import tempfile
import threading
import time
from pathlib import Path
import httpx
import numpy as np

REC = {'age': 30, 'checks': 2, 'employed': 'Yes', 'citizen': 'No'}


def run(url: str, concurrency: int, seconds: float) -> list[float]:
    "Latencies (s) of every 200 answer from `concurrency` keep-alive clients over `seconds`."
    out, lock = [], threading.Lock()

    def client(n: int):
        mine = []
        with httpx.Client(base_url=url, timeout=30) as c:
            end, i = time.monotonic() + seconds, 0
            while time.monotonic() < end:
                t = time.perf_counter()
                r = c.post('/predict', json={'records': [REC], 'context': {'targetingKey': f'b{n}-{i}'}})
                if r.status_code == 200:
                    mine.append(time.perf_counter() - t)
                i += 1
        with lock:
            out.extend(mine)

    threads = [threading.Thread(target=client, args=(n,)) for n in range(concurrency)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return out


def main() -> None:
    from lifecycle.serve.local import LocalServer, tiny_workspace
    from lifecycle.core.settings import load_settings
    from lifecycle.serve.predlog import default_url, read_log

    ap = argparse.ArgumentParser()
    ap.add_argument('--workspace')
    ap.add_argument('--concurrency', type=int, default=8)
    ap.add_argument('--duration', type=float, default=10)
    ap.add_argument('--json', action='store_true')
    a = ap.parse_args()
    ws = Path(a.workspace) if a.workspace else tiny_workspace(Path(tempfile.mkdtemp()) / 'ws').root
    for k in [k for k in os.environ if k.startswith('LIFECYCLE_')]:
        del os.environ[k]  # (the servers run without the caller's overrides: the log's URL is read so too)
    db = default_url(load_settings(ws))  # (the workspace's own: its state_dir and prediction_log_url)
    results = {}
    for mode in ('batched', 'durable'):
        env = dict(os.environ)
        env['LIFECYCLE_PREDICTION_LOG_COMMIT'] = mode
        before = len(read_log(db))
        with LocalServer(ws, env=env, log=subprocess.DEVNULL, timeout=300) as srv:
            run(srv.url, a.concurrency, 2)  # warm-up
            since = len(read_log(db))
            t0 = time.monotonic()
            lat = run(srv.url, a.concurrency, a.duration)
            took = time.monotonic() - t0
        logged = len(read_log(db)) - since
        results[mode] = dict(
            requests_per_s=round(len(lat) / took, 1),
            p50_ms=round(float(np.percentile(lat, 50)) * 1000, 2),
            p99_ms=round(float(np.percentile(lat, 99)) * 1000, 2),
            answered=len(lat),
            logged=logged,
            warmup_rows=since - before,
        )
    if a.json:
        print(json.dumps(results, indent=1))
        return
    print(f"{'mode':<9} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8} {'answered':>9} {'logged':>7}")
    for mode, r in results.items():
        print(
            f"{mode:<9} {r['requests_per_s']:>8} {r['p50_ms']:>8} {r['p99_ms']:>8} {r['answered']:>9} {r['logged']:>7}"
        )


if __name__ == '__main__':
    main()
