"""How `lifecycle serve` answers in the first second after `/ready` says it is ready, against the seconds after: the
server is started N times on one workspace, and each time, as soon as `/ready` answers 200, wrk runs for one second
(the first second), then for S seconds more (steady). Medians over the starts. A diagnostic, with no goal: a server
that says it is ready should answer at its steady latency. Until 2026-12-02 it did not: the durable prediction log's
writer process was still starting then, and every row waited for it (4 starts, a noisy machine: a first-second p99
of 305 ms, 14.3x the steady 21 ms; since the port opens once the writer is up, 24 ms, 1.34x the steady 18 ms).

    python benchmarks/serve_startup.py [--workspace DIR] [--starts N] [--steady S] [--concurrency C]
                                       [--commit durable|batched] [--json]

wrk as in `serve_vs_peers.py` (closed loop, C connections, default 8, one-record requests to /invocations). The
server's readiness is polled every 50 ms.
"""

from __future__ import annotations
import argparse
import json
import shutil
import statistics
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from serve_vs_mlflow import PAYLOAD, Server, clean_env, free_port, prepare_workspace, run_wrk, say, tool  # noqa: E402


def ready_now(srv: Server, timeout: float = 180) -> float:
    "Seconds until `/ready` answers 200, polled every 50 ms (the harness's `wait_ready` polls every 250 ms)."
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < timeout:
        if srv.proc.poll() is not None:
            sys.exit(f"{srv.name} exited ({srv.proc.returncode}) before it was ready:\n{srv.tail()}")
        try:
            with urllib.request.urlopen(srv.url + '/ready', timeout=2) as r:
                if r.status == 200:
                    return time.perf_counter() - t0
        except (urllib.error.URLError, ConnectionError, OSError):
            pass
        time.sleep(0.05)
    sys.exit(f"{srv.name}: not ready after {timeout:.0f} s:\n{srv.tail()}")


def one_start(ws: Path, a, tmp: Path, body: bytes) -> dict:
    "Start the server, wait for /ready, then the first second and the steady seconds under wrk; stop it."
    port = free_port()
    cmd = [tool('lifecycle'), 'serve', '--host', '127.0.0.1', '--port', str(port), '--workers', '1']
    srv = Server('lifecycle', cmd, ws, clean_env(LIFECYCLE_PREDICTION_LOG_COMMIT=a.commit), port, '/ready', tmp)
    try:
        ready_s = ready_now(srv)
        url = f'http://127.0.0.1:{port}/invocations'
        first = run_wrk(url, body, a.concurrency, 1, tmp)
        steady = run_wrk(url, body, a.concurrency, a.steady, tmp)
    finally:
        srv.stop()
    return {'ready_s': ready_s, 'first': first, 'steady': steady}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--workspace', type=Path, help='reuse (or build and keep) this workspace instead of a temp one')
    ap.add_argument('--starts', type=int, default=4, help='server starts (median reported; default 4)')
    ap.add_argument('--steady', type=float, default=4, help='seconds measured after the first one (default 4)')
    ap.add_argument('--concurrency', type=int, default=8, help='wrk connections (default 8)')
    ap.add_argument('--commit', choices=('durable', 'batched'), default='durable', help='prediction_log_commit')
    ap.add_argument('--json', action='store_true', help='print the figures as JSON')
    a = ap.parse_args()
    if a.starts < 1 or a.steady < 1:
        ap.error('--starts and --steady must be at least 1')
    if not shutil.which('wrk'):
        sys.exit('wrk: not on PATH (apt-get install wrk)')
    tmp = Path(tempfile.mkdtemp(prefix='serve-startup-'))
    try:
        ws = prepare_workspace((a.workspace or tmp / 'ws').resolve())
        body = json.dumps(PAYLOAD).encode()
        runs = []
        for i in range(a.starts):
            r = one_start(ws, a, tmp, body)
            runs.append(r)
            say(
                f"start {i + 1}/{a.starts}: ready in {r['ready_s']:.2f} s; first second {r['first']['rps']:,.0f} "
                f"req/s, p99 {r['first']['p99_ms']:.1f} ms; then {r['steady']['rps']:,.0f} req/s, "
                f"p99 {r['steady']['p99_ms']:.1f} ms"
            )
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    def med(part: str, key: str) -> float:
        return round(statistics.median(r[part][key] for r in runs), 3)

    out = {
        'commit': a.commit,
        'load': f'wrk -c{a.concurrency}, 1 s right after /ready, then {a.steady:g} s; {a.starts} start(s)',
        'ready_s': round(statistics.median(r['ready_s'] for r in runs), 2),
        'first_second': {k: med('first', k) for k in ('rps', 'p50_ms', 'p99_ms')},
        'steady': {k: med('steady', k) for k in ('rps', 'p50_ms', 'p99_ms')},
        'runs': runs,
    }
    out['first_vs_steady_p99'] = round(out['first_second']['p99_ms'] / out['steady']['p99_ms'], 2)
    if a.json:
        print(json.dumps(out, indent=1))
        return
    f, s = out['first_second'], out['steady']
    print(f"ready in {out['ready_s']} s (median of {a.starts} starts, prediction_log_commit = {a.commit})")
    print(f"first second after ready: {f['rps']:,.0f} req/s, p50 {f['p50_ms']} ms, p99 {f['p99_ms']} ms")
    print(f"after it ({a.steady:g} s):       {s['rps']:,.0f} req/s, p50 {s['p50_ms']} ms, p99 {s['p99_ms']} ms")
    print(f"first second's p99 / steady p99: {out['first_vs_steady_p99']}x")


if __name__ == '__main__':
    main()
