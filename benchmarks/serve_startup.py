"""How `lifecycle serve` answers in the first second after `/ready` says it is ready, against the seconds after: the
server is started N times on one workspace, and each time, as soon as `/ready` answers 200, wrk runs for one second
(the first second), then for S seconds more (steady). Medians over the starts. A diagnostic, with no goal: a server
that says it is ready should answer at its steady latency. Until 2026-12-02 it did not: the durable prediction log's
writer process was still starting then, and every row waited for it (4 starts: a first-second p99 of 281.4 ms, 27x
the steady 10.3 ms; since a server serves once its writer is up, 11.9 ms against 12.1 ms).

    python benchmarks/serve_startup.py [--workspace DIR] [--starts N] [--steady S] [--concurrency C]
                                       [--commit durable|batched] [--json]

wrk as in `serve_vs_peers.py` (closed loop, C connections, default 8, one-record requests to /invocations). The
server's readiness is asked every 50 ms. Answers other than 2xx and socket errors are reported (a fast first second
of refusals is not a fast first second).
"""

from __future__ import annotations
import argparse
import json
import shutil
import statistics
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from serve_vs_mlflow import PAYLOAD, Server, clean_env, free_port, prepare_workspace, run_wrk, say, tool  # noqa: E402


def one_start(ws: Path, commit: str, concurrency: int, steady_s: int, tmp: Path, body: bytes) -> dict:
    "Start the server, wait for /ready (asked every 50 ms), then the first second and `steady_s` more under wrk."
    port = free_port()
    cmd = [tool('lifecycle'), 'serve', '--host', '127.0.0.1', '--port', str(port), '--workers', '1']
    srv = Server('lifecycle', cmd, ws, clean_env(LIFECYCLE_PREDICTION_LOG_COMMIT=commit), port, '/ready', tmp)
    try:
        ready_s = srv.wait_ready(180, poll_s=0.05)
        url = f'http://127.0.0.1:{port}/invocations'
        first = run_wrk(url, body, concurrency, 1, tmp)
        steady = run_wrk(url, body, concurrency, steady_s, tmp)
    finally:
        srv.stop()
    return {'ready_s': ready_s, 'first': first, 'steady': steady}


def refused(r: dict) -> str:
    "What wrk saw go wrong in one run ('' if nothing): answers other than 2xx, socket errors."
    errors = sum(r['socket_errors'].values())
    return f" ({r['non_2xx']} non-2xx, {errors} socket errors)" if r['non_2xx'] or errors else ''


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--workspace', type=Path, help='reuse (or build and keep) this workspace instead of a temp one')
    ap.add_argument('--starts', type=int, default=4, help='server starts (median reported; default 4)')
    ap.add_argument('--steady', type=int, default=4, help='seconds measured after the first one (default 4)')
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
            r = one_start(ws, a.commit, a.concurrency, a.steady, tmp, body)
            runs.append(r)
            say(
                f"start {i + 1}/{a.starts}: ready in {r['ready_s']:.2f} s; first second {r['first']['rps']:,.0f} "
                f"req/s, p99 {r['first']['p99_ms']:.1f} ms{refused(r['first'])}; then {r['steady']['rps']:,.0f} "
                f"req/s, p99 {r['steady']['p99_ms']:.1f} ms{refused(r['steady'])}"
            )
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    def med(part: str, key: str) -> float:
        return round(statistics.median(r[part][key] for r in runs), 3)

    out = {
        'commit': a.commit,
        'load': f'wrk -c{a.concurrency}, 1 s right after /ready, then {a.steady} s; {a.starts} start(s)',
        'ready_s': round(statistics.median(r['ready_s'] for r in runs), 2),
        'first_second': {k: med('first', k) for k in ('rps', 'p50_ms', 'p99_ms')},
        'steady': {k: med('steady', k) for k in ('rps', 'p50_ms', 'p99_ms')},
        'non_2xx': sum(r[part]['non_2xx'] for r in runs for part in ('first', 'steady')),
        'socket_errors': sum(sum(r[part]['socket_errors'].values()) for r in runs for part in ('first', 'steady')),
        'runs': runs,
    }
    out['first_vs_steady_p99'] = round(out['first_second']['p99_ms'] / out['steady']['p99_ms'], 2)
    if a.json:
        print(json.dumps(out, indent=1))
        return
    f, s = out['first_second'], out['steady']
    print(f"ready in {out['ready_s']} s (median of {a.starts} starts, prediction_log_commit = {a.commit})")
    print(f"first second after ready: {f['rps']:,.0f} req/s, p50 {f['p50_ms']} ms, p99 {f['p99_ms']} ms")
    print(f"after it ({a.steady} s):       {s['rps']:,.0f} req/s, p50 {s['p50_ms']} ms, p99 {s['p99_ms']} ms")
    print(f"first second's p99 / steady p99: {out['first_vs_steady_p99']}x")
    if out['non_2xx'] or out['socket_errors']:
        print(f"refused or failed: {out['non_2xx']} non-2xx answers, {out['socket_errors']} socket errors")


if __name__ == '__main__':
    main()
