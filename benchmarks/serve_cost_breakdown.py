"""Where `lifecycle serve`'s CPU per request goes: the same server measured in layers, one record per request, in one
run with the layers interleaved round by round (this machine's speed drifts by half within minutes: only numbers of
the same run compare).

    python benchmarks/serve_cost_breakdown.py [--workspace DIR] [--rounds R] [--duration S] [--warmup S]
                                              [--concurrency C] [--json]

Layers, each `lifecycle serve`'s own start-up (`serving.serve`: uvicorn, the protocol answering invocations itself,
the same limits) with one part replaced in the server process before it starts:

- `uvicorn`: invocations answered with a fixed JSON body by the protocol itself, as `lifecycle serve` answers them
  (`lifecycle.serve.direct`, a `FastInvocations` whose `start` answers at once): uvicorn, the protocol and the kernel's
  loopback, no lifecycle code per request (the floor the others are compared with);
- `asgi`: the same fixed answer from a bare ASGI app, served by uvicorn's ASGI path (what every invocation took
  before 2026-12-02, and what the requests the direct path leaves alone still take);
- `http`: the real application with `score_many` answering a precomputed result: reading the body, the JSON and
  routing to the batcher, the answer, metrics, but no flags, parsing, checks, model or log;
- `scoring`: everything but the prediction log (rows go nowhere, nothing waits);
- `batched`: as served with `prediction_log_commit = batched` (answers go before their rows are committed);
- `durable`: as served by default (each answer waits until its row is committed, the WAL fsynced; the writer is a
  process of its own, whose acknowledgements the server's event loop reads);
- `thread`: `durable` with the writer as a thread of the server process (as served before the writer process), to
  compare the two.

The differences between consecutive layers are the costs of the part each adds (`asgi` and `http` over `uvicorn`).
Medians over rounds; wrk as in `serve_vs_peers.py` (closed loop, C connections, default 8); CPU per request is the
server process's user + system CPU during the measured run over its requests. A diagnostic, with no goal:
`serve_vs_peers.py` holds the goals.
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
from serve_vs_mlflow import PAYLOAD, Server, clean_env, free_port, post, prepare_workspace, say  # noqa: E402
from serve_vs_peers import measure  # noqa: E402

LAYERS = ('uvicorn', 'asgi', 'http', 'scoring', 'batched', 'durable', 'thread')
BELOW = {
    'asgi': 'uvicorn',
    'http': 'uvicorn',
    'scoring': 'http',
    'batched': 'scoring',
    'durable': 'scoring',
    'thread': 'scoring',
}
WHAT = {
    'uvicorn': 'uvicorn + protocol, fixed answer',
    'asgi': 'the same through ASGI',
    'http': 'ours, score precomputed',
    'scoring': 'ours, no prediction log',
    'batched': 'ours, batched log',
    'durable': 'ours as served (durable)',
    'thread': 'durable, writer thread',
}

# The server process: `lifecycle serve`'s start-up with the layer's part replaced first (uvicorn imports the app
# factory from the module already imported here, so the replacements are what it runs).
LAUNCH = '''
import os, sys
layer = os.environ['BREAKDOWN_LAYER']
from lifecycle.core.workspace import Workspace
from lifecycle.serve import serving, server


class NoLog:
    "A prediction log that keeps nothing and never makes anyone wait."
    durable, problem, errors = False, '', 0

    def log_many(self, rows):
        return [None] * len(rows)

    def log(self, **row):
        return None

    def pending(self):
        return 0

    def flush(self, timeout=30):
        return True

    def attach(self, loop):
        pass

    def poll(self):
        pass

    async def started(self, timeout=10):
        return True

    def pseudonymise(self):
        pass

    def close(self):
        pass


if layer in ('uvicorn', 'asgi'):
    from types import SimpleNamespace
    BODY = b'{"predictions":[0]}'

    async def bare(scope, receive, send):
        if scope['type'] != 'http':
            return
        more = True
        while more:
            more = (await receive()).get('more_body', False)
        headers = [(b'content-type', b'application/json'), (b'content-length', b'%d' % len(BODY))]
        await send({'type': 'http.response.start', 'status': 200, 'headers': headers})
        await send({'type': 'http.response.body', 'body': BODY})

    class Fixed(serving.FastInvocations):
        "Invocations answered by the protocol with the fixed body; any other request (`/health`) by `bare`."

        def start(self, body, mime, done):
            done(serving.JsonAnswer(BODY))

        async def __call__(self, scope, receive, send):
            await bare(scope, receive, send)

    front = Fixed(SimpleNamespace(state=SimpleNamespace(server=SimpleNamespace(max_body=1_000_000))))
    serving.app_factory = (lambda: front) if layer == 'uvicorn' else (lambda: bare)
elif layer == 'http':
    real, memo = serving.score_many, []

    def precomputed(payloads, route, flags, live, plog, **kw):
        if not memo:
            memo.append(real(payloads[:1], route, flags, live, NoLog())[0])
        return [memo[0]] * len(payloads)

    serving.score_many = precomputed
if layer in ('http', 'scoring'):
    made = server.Server.__init__

    def init(self, *a, **k):
        made(self, *a, **k)
        self.log.close()
        self.log = NoLog()

    server.Server.__init__ = init
if layer == 'thread':
    made_log = server.PredictionLog
    server.PredictionLog = lambda *a, **k: made_log(*a, **{**k, 'process': False})
serving.serve(Workspace.open(), '127.0.0.1', int(sys.argv[1]))
'''


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--workspace', type=Path, help='reuse (or build and keep) this workspace instead of a temp one')
    ap.add_argument('--concurrency', type=int, default=8, help='wrk connections (default 8)')
    ap.add_argument('--duration', type=float, default=6, help='measured seconds per layer and round (default 6)')
    ap.add_argument('--warmup', type=float, default=2, help='uncounted seconds before each run (default 2)')
    ap.add_argument('--rounds', type=int, default=4, help='rounds over all layers (median reported; default 4)')
    ap.add_argument('--json', action='store_true', help='print the figures as JSON')
    a = ap.parse_args()
    if a.rounds < 1 or a.duration <= 0 or a.concurrency < 1:
        ap.error('--rounds and --concurrency must be at least 1 and --duration positive')
    if not shutil.which('wrk'):
        sys.exit('wrk: not on PATH (apt-get install wrk)')
    tmp = Path(tempfile.mkdtemp(prefix='serve-breakdown-'))
    (tmp / 'launch.py').write_text(LAUNCH)
    body = json.dumps(PAYLOAD).encode()
    runs = {k: [] for k in LAYERS}
    try:
        ws = prepare_workspace((a.workspace or tmp / 'ws').resolve())
        for r in range(a.rounds):
            for layer in LAYERS:  # one server at a time: the others must not share the two cores with it
                port = free_port()
                env = clean_env(BREAKDOWN_LAYER=layer)  # durable or batched, whatever settings.ini says
                env['LIFECYCLE_PREDICTION_LOG_COMMIT'] = 'batched' if layer == 'batched' else 'durable'
                srv = Server(layer, [sys.executable, str(tmp / 'launch.py'), str(port)], ws, env, port, '/health', tmp)
                try:
                    srv.wait_ready(120)
                    url = srv.url + '/invocations'
                    status, _, out = post(url, body)
                    if status != 200:
                        sys.exit(f"{layer}: POST /invocations answered {status}: {out}")
                    res = measure(srv, url, body, a, tmp)
                    res['cpu_us_per_request'] = 1e3 * res.pop('cpu_ms_per_request')
                finally:
                    srv.stop()
                runs[layer].append(res)
                say(
                    f"round {r + 1} {layer}: {res['rps']:,.0f} req/s, {res['cpu_us_per_request']:.0f} µs CPU/request, "
                    f"p99 {res['p99_ms']:.2f} ms, non-2xx {res['non_2xx']}"
                )
    except KeyboardInterrupt:
        sys.exit(130)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    med = {
        k: {m: statistics.median(x[m] for x in v) for m in ('rps', 'p50_ms', 'p99_ms', 'cpu_us_per_request')}
        | {'non_2xx': sum(x['non_2xx'] for x in v)}
        for k, v in runs.items()
    }
    adds = {k: med[k]['cpu_us_per_request'] - med[b]['cpu_us_per_request'] for k, b in BELOW.items()}
    out = dict(
        load=f"wrk -c{a.concurrency}, {a.warmup:g} s warm-up + {a.duration:g} s measured per layer and round, "
        f"{a.rounds} round(s), layers interleaved; one-record requests; 1 worker process",
        layers={k: {m: round(v, 3) for m, v in d.items()} for k, d in med.items()},
        adds_us={k: round(v, 1) for k, v in adds.items()},
        durable_vs_batched_cpu=round(med['durable']['cpu_us_per_request'] / med['batched']['cpu_us_per_request'], 3),
        process_vs_thread=dict(
            rps=round(med['durable']['rps'] / med['thread']['rps'], 3),
            cpu=round(med['durable']['cpu_us_per_request'] / med['thread']['cpu_us_per_request'], 3),
            p99=round(med['durable']['p99_ms'] / med['thread']['p99_ms'], 3),
        ),
        rounds=runs,
    )
    if a.json:
        print(json.dumps(out, indent=1))
    else:
        print(out['load'])
        print(f"{'layer':<34}{'req/s':>9}{'p50 ms':>9}{'p99 ms':>9}{'CPU µs/req':>12}{'adds µs':>9}{'non-2xx':>9}")
        for k, v in med.items():
            add = f"{adds[k]:>9.0f}" if k in adds else f"{'':>9}"
            print(
                f"{k + ': ' + WHAT[k]:<34}{v['rps']:>9,.0f}{v['p50_ms']:>9.2f}{v['p99_ms']:>9.2f}"
                f"{v['cpu_us_per_request']:>12.0f}{add}{v['non_2xx']:>9}"
            )
        print(
            "adds: over the layer above it (asgi and http: over 'uvicorn'; batched, durable, thread: over 'scoring'); "
            f"durable / batched CPU per request: {out['durable_vs_batched_cpu']:.2f}x"
        )
        pt = out['process_vs_thread']
        print(
            f"writer process / writer thread: req/s {pt['rps']:.2f}x, CPU per request {pt['cpu']:.2f}x, "
            f"p99 {pt['p99']:.2f}x"
        )
    sys.exit(1 if any(v['non_2xx'] for v in med.values()) else 0)


if __name__ == '__main__':
    main()
