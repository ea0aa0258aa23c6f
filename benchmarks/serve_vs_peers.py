"""Serving the same ONNX file: `lifecycle serve` against Seldon MLServer 1.7 (a custom onnxruntime runtime) and BentoML
(an onnxruntime service), plus `mlflow models serve` on the same registered version, measured in one run.

    python benchmarks/serve_vs_peers.py [--workspace DIR] [--concurrency C] [--duration S] [--warmup S]
                                        [--rounds R] [--peers mlserver,bentoml,mlflow[,batched]] [--venvs DIR] [--json]

The model: the workspace's registered version that `lifecycle serve` routes /invocations to (a throw-away workspace
is built with `lifecycle run` unless --workspace is given); its `model.onnx` (which `lifecycle serve` serves, parity
having passed at release) is what MLServer and BentoML load with onnxruntime, one intra-op thread each as ours.
MLflow serves the registered model itself (its scikit-learn flavour: MLflow has no ONNX form of it).

Each server runs one worker process on 127.0.0.1 (MLServer with `parallel_workers: 0`, inference in its server
process, its fastest single-process setting). `lifecycle serve` runs as configured by default: durable prediction
logging (a prediction is answered once its row is committed to the SQLite log) and every input checked against the
column contract; the peers log nothing and check only what their codecs check. Every server first answers one
record and the answers must agree (the same label). Then, in each of R rounds (default 2), each server in turn gets a
warm-up (default 2 s) and a measured run (default 10 s) of one-record requests from wrk (`wrk -t2 -cC`, C connections,
default 8: a closed loop, so the load is bounded by C requests in flight) while the others idle. CPU per request is
the server's process tree's user + system CPU seconds during the measured run over its requests. Per server the
median over rounds is reported: requests/s, p50/p99 latency, CPU per request, and the ratios of ours to each peer.
Each round of ours also says, from its /metrics (`lifecycle_prediction_log_sync_seconds`), how long its durable log's
writer took to put the run's groups of rows on disk: the bound of the bucket holding their p99, and the share over 1
and 2 ms. Each of those holds every request in flight (C), so a round whose disk was slow has a slow p99.

Peers are installed in their own virtual environments under --venvs (default /tmp/lifecycle-bench-venvs):
`mlserver==1.7.*` with `uvloop==0.21.*` (MLServer 1.7 needs it), and `bentoml`, each with onnxruntime and numpy; a
peer that cannot be installed from PyPI is reported with the reason and the script exits non-zero.

Goals against MLServer and BentoML: requests/s at least 3x, CPU per request at most 1/3, p99 at most 1/3. Exit status
1 if a goal is missed, the answers disagree, or ours, MLServer or BentoML answered anything but 2xx.

`--peers ...,batched` adds, with no goal, `lifecycle serve` itself with `prediction_log_commit = batched` (each answer
goes before its row is committed; rows are committed in groups, 100 ms or 500 rows): the ratio of ours to it is what
durable prediction logging costs, measured in the same run (ours always runs durable, whatever the workspace's
settings.ini says; both write to the workspace's one prediction log, one at a time).
"""

from __future__ import annotations
import argparse
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from serve_vs_mlflow import (  # noqa: E402  (the shared harness: servers, wrk, the workspace)
    PAYLOAD,
    Server,
    clean_env,
    free_port,
    mlflow_server,
    post,
    prepare_workspace,
    run_wrk,
    say,
    tool,
)

GOALS = {'rps_ratio_min': 3.0, 'cpu_ratio_max': 1 / 3, 'p99_ratio_max': 1 / 3}
PEERS = {
    'mlserver': ['mlserver==1.7.*', 'uvloop==0.21.*', 'onnxruntime', 'numpy'],
    'bentoml': ['bentoml', 'onnxruntime', 'numpy'],
}
_NP = {'tensor(float)': 'float32', 'tensor(double)': 'float64', 'tensor(int64)': 'int64', 'tensor(string)': 'object'}
_V2 = {'float32': 'FP32', 'float64': 'FP64', 'int64': 'INT64', 'object': 'BYTES'}

MLSERVER_RUNTIME = '''
import numpy as np
import onnxruntime as ort
from mlserver import MLModel
from mlserver.codecs import NumpyCodec
from mlserver.types import InferenceRequest, InferenceResponse

NP = {"tensor(float)": np.float32, "tensor(double)": np.float64, "tensor(int64)": np.int64, "tensor(string)": object}


class OnnxRuntime(MLModel):
    async def load(self) -> bool:
        so = ort.SessionOptions()
        so.intra_op_num_threads, so.inter_op_num_threads = 1, 1
        self.sess = ort.InferenceSession(self.settings.parameters.uri, so, providers=["CPUExecutionProvider"])
        self.types = {i.name: NP[i.type] for i in self.sess.get_inputs()}
        self.out = [o.name for o in self.sess.get_outputs()]
        return True

    async def predict(self, payload: InferenceRequest) -> InferenceResponse:
        feed = {
            i.name: np.asarray(getattr(i.data, "root", i.data), dtype=self.types[i.name]).reshape(-1, 1)
            for i in payload.inputs
        }
        label, proba = self.sess.run(self.out[:2], feed)
        return InferenceResponse(model_name=self.name, outputs=[
            NumpyCodec.encode_output("label", np.asarray(label).reshape(-1)),
            NumpyCodec.encode_output("probability", np.asarray(proba)[:, 1].astype(np.float64)),
        ])
'''

BENTO_SERVICE = '''
import numpy as np
import onnxruntime as ort
import bentoml

NP = {"tensor(float)": np.float32, "tensor(double)": np.float64, "tensor(int64)": np.int64, "tensor(string)": object}


@bentoml.service(workers=1)
class Scorer:
    def __init__(self):
        so = ort.SessionOptions()
        so.intra_op_num_threads, so.inter_op_num_threads = 1, 1
        self.sess = ort.InferenceSession(MODEL, so, providers=["CPUExecutionProvider"])
        self.types = {i.name: NP[i.type] for i in self.sess.get_inputs()}
        self.out = [o.name for o in self.sess.get_outputs()]

    @bentoml.api(route="/invocations")
    def invocations(self, dataframe_split: dict) -> dict:
        cols, rows = dataframe_split["columns"], dataframe_split["data"]
        feed = {n: np.asarray([r[cols.index(n)] for r in rows], dtype=t).reshape(-1, 1) for n, t in self.types.items()}
        label, proba = self.sess.run(self.out[:2], feed)
        return {"predictions": np.asarray(label).reshape(-1).tolist(), "probability": np.asarray(proba)[:, 1].tolist()}
'''


def ensure_venv(root: Path, name: str) -> Path:
    "The peer's own environment (created and installed from PyPI if missing); exits naming the reason if it cannot be."
    venv = root / name
    py = venv / 'bin' / 'python'
    probe = {'mlserver': 'import mlserver, uvloop, onnxruntime', 'bentoml': 'import bentoml, onnxruntime'}[name]
    if py.exists() and subprocess.run([py, '-c', probe], capture_output=True).returncode == 0:
        return venv
    say(f"installing {' '.join(PEERS[name])} into {venv} ...")
    r = subprocess.run([sys.executable, '-m', 'venv', str(venv)], capture_output=True, text=True)
    if r.returncode == 0:
        r = subprocess.run([py, '-m', 'pip', 'install', '-q', *PEERS[name]], capture_output=True, text=True)
    if r.returncode:
        sys.exit(f"{name}: cannot be installed from PyPI into {venv}: {r.stderr.strip()[-1500:]}")
    return venv


def onnx_of(ws: Path, name: str, version: str, dst: Path) -> Path:
    "The registered version's model.onnx (downloaded from MLflow), checked to be the form `lifecycle serve` serves."
    import mlflow
    from lifecycle.core.settings import load_settings

    uri = load_settings(ws).tracking_uri
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    folder = Path(mlflow.artifacts.download_artifacts(artifact_uri=f'models:/{name}/{version}', dst_path=str(dst)))
    onnx = next(iter(folder.rglob('model.onnx')), None)
    parity = next(iter(folder.rglob('onnx_parity.json')), None)
    if onnx is None or parity is None or not json.loads(parity.read_text()).get('passed'):
        sys.exit(f"models:/{name}/{version} has no ONNX form that passed parity: lifecycle serves scikit-learn there")
    return onnx


def cpu_seconds(pid: int) -> float:
    "User + system CPU seconds of a process and all its descendants (alive ones)."
    import psutil

    try:
        p = psutil.Process(pid)
        procs = [p, *p.children(recursive=True)]
    except psutil.NoSuchProcess:
        return 0.0
    total = 0.0
    for q in procs:
        try:
            t = q.cpu_times()
            total += t.user + t.system
        except psutil.NoSuchProcess:
            pass
    return total


def sync_buckets(base: str) -> tuple[list[float], list[float]] | None:
    """A `lifecycle serve`'s `lifecycle_prediction_log_sync_seconds` from its /metrics: (bucket bounds, cumulative
    counts) of how long its log's writer took to put each group of rows on disk; None if it shows none (no writer)."""
    import urllib.request
    from prometheus_client.parser import text_string_to_metric_families

    with urllib.request.urlopen(base + '/metrics', timeout=10) as r:
        text = r.read().decode()
    for f in text_string_to_metric_families(text):
        if f.name == 'lifecycle_prediction_log_sync_seconds':
            got = [(float(x.labels['le']), x.value) for x in f.samples if x.name.endswith('_bucket')]
            return [b for b, _ in got], [c for _, c in got]
    return None


def sync_summary(before, after) -> dict:
    """The groups the writer put on disk between two `sync_buckets`: how many, the bound of the bucket holding their
    99th percentile (no interpolation: p99 at most that; None past the last bound, 1 s), and the share that took over
    1 and over 2 ms."""
    if after is None:
        return {}
    bounds, counts = after
    n = [c - b for c, b in zip(counts, before[1] if before else [0] * len(counts))]
    total = n[-1]
    if total <= 0:
        return {}
    over = {f'sync_over_{ms}ms': round(1 - n[bounds.index(ms / 1e3)] / total, 5) for ms in (1, 2)}
    p99 = next(b for b, c in zip(bounds, n) if c >= 0.99 * total)
    return {'sync_groups': int(total), 'sync_p99_le_ms': p99 * 1e3 if p99 != float('inf') else None} | over


def measure(srv, url: str, body: bytes, a, tmp: Path, ours: bool = False) -> dict:
    """One measured wrk run against `srv` after its warm-up, with the server process tree's CPU per request (ms); for
    `ours`, how long its prediction log's writer took to put the groups of the run on disk (`sync_summary`)."""
    if a.warmup > 0:
        run_wrk(url, body, a.concurrency, a.warmup, tmp)
    if ours:  # (the writer reports with each insert's acknowledgement: every 50 ms while rows come)
        time.sleep(0.2)
    synced = sync_buckets(srv.url) if ours else None
    c0 = cpu_seconds(srv.proc.pid)
    res = run_wrk(url, body, a.concurrency, a.duration, tmp)
    res['cpu_ms_per_request'] = 1e3 * (cpu_seconds(srv.proc.pid) - c0) / max(res['requests'] or 1, 1)
    if ours:
        time.sleep(0.2)
        res |= sync_summary(synced, sync_buckets(srv.url))
    return res


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--workspace', type=Path, help='reuse (or build and keep) this workspace instead of a temp one')
    ap.add_argument('--concurrency', type=int, default=8, help='wrk connections (default 8)')
    ap.add_argument('--duration', type=float, default=10, help='measured seconds per server and round (default 10)')
    ap.add_argument('--warmup', type=float, default=2, help='uncounted seconds before each run (default 2)')
    ap.add_argument('--rounds', type=int, default=2, help='rounds over all servers (median reported; default 2)')
    ap.add_argument('--peers', default='mlserver,bentoml,mlflow', help='comma-separated peers to run')
    ap.add_argument('--venvs', type=Path, default=Path('/tmp/lifecycle-bench-venvs'), help='peer environments root')
    ap.add_argument('--json', action='store_true', help='print the figures as JSON')
    a = ap.parse_args()
    peers = [p for p in a.peers.split(',') if p]
    if unknown := [p for p in peers if p not in ('mlserver', 'bentoml', 'mlflow', 'batched')]:
        ap.error(f"unknown peers {unknown}")
    if not shutil.which('wrk'):
        sys.exit('wrk: not on PATH (apt-get install wrk)')
    venvs = {p: ensure_venv(a.venvs, p) for p in peers if p in PEERS}
    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
    tmp = Path(tempfile.mkdtemp(prefix='serve-vs-peers-'))
    servers: dict[str, Server] = {}
    try:
        ws = prepare_workspace((a.workspace or tmp / 'ws').resolve())

        def lifecycle(name: str, commit: str) -> Server:
            "`lifecycle serve` with this prediction_log_commit, whatever the workspace's settings.ini says."
            port = free_port()
            cmd = [tool('lifecycle'), 'serve', '--host', '127.0.0.1', '--port', str(port), '--workers', '1']
            return Server(name, cmd, ws, clean_env(LIFECYCLE_PREDICTION_LOG_COMMIT=commit), port, '/ready', tmp)

        servers['lifecycle'] = ours = lifecycle('lifecycle', 'durable')  # the goals hold with durable logging
        ours.wait_ready(180)
        from lifecycle.core.settings import load_settings

        s = load_settings(ws)
        spec = json.loads((s.state_dir / 'flags' / 'spec.json').read_text())
        name, version = spec['model_name'], spec['control']
        onnx = onnx_of(ws, name, version, tmp / 'model')
        import onnxruntime as ort

        types = {i.name: _NP[i.type] for i in ort.InferenceSession(str(onnx)).get_inputs()}
        cols, row = PAYLOAD['dataframe_split']['columns'], PAYLOAD['dataframe_split']['data'][0]
        if set(types) - set(cols):
            sys.exit(f"the ONNX model reads {sorted(types)}; the benchmark's record has {cols}")
        split = json.dumps(PAYLOAD).encode()
        bodies, paths = {'lifecycle': split, 'batched': split, 'bentoml': split, 'mlflow': split}, {}
        bodies['mlserver'] = json.dumps(
            {
                'inputs': [
                    {'name': n, 'shape': [1, 1], 'datatype': _V2[t], 'data': [row[cols.index(n)]]}
                    for n, t in types.items()
                ]
            }
        ).encode()
        paths.update(lifecycle='/invocations', batched='/invocations', bentoml='/invocations', mlflow='/invocations')
        paths['mlserver'] = f'/v2/models/{name}/infer'
        if 'mlserver' in peers:
            d = tmp / 'mlserver'
            d.mkdir()
            (d / 'runtime.py').write_text(MLSERVER_RUNTIME)
            hp, gp, mp = free_port(), free_port(), free_port()
            (d / 'settings.json').write_text(
                json.dumps(
                    {
                        'host': '127.0.0.1',
                        'http_port': hp,
                        'grpc_port': gp,
                        'metrics_port': mp,
                        'parallel_workers': 0,
                        'debug': False,
                    }
                )
            )
            (d / 'model-settings.json').write_text(
                json.dumps({'name': name, 'implementation': 'runtime.OnnxRuntime', 'parameters': {'uri': str(onnx)}})
            )
            env = clean_env(PATH=f"{venvs['mlserver'] / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}")
            env.pop('PYTHONPATH', None)
            servers['mlserver'] = Server(
                'mlserver',
                [str(venvs['mlserver'] / 'bin' / 'mlserver'), 'start', str(d)],
                d,
                env,
                hp,
                '/v2/health/ready',
                tmp,
            )
        if 'bentoml' in peers:
            d = tmp / 'bento'
            d.mkdir()
            (d / 'service.py').write_text(f'MODEL = {str(onnx)!r}\n' + BENTO_SERVICE)
            bp = free_port()
            env = clean_env(BENTOML_DO_NOT_TRACK='True')
            env.pop('PYTHONPATH', None)
            servers['bentoml'] = Server(
                'bentoml',
                [
                    str(venvs['bentoml'] / 'bin' / 'bentoml'),
                    'serve',
                    'service:Scorer',
                    '--host',
                    '127.0.0.1',
                    '--port',
                    str(bp),
                ],
                d,
                env,
                bp,
                '/readyz',
                tmp,
            )
        if 'batched' in peers:  # ours, answering before its rows are committed: what durable logging costs
            servers['batched'] = lifecycle('batched', 'batched')
        if 'mlflow' in peers:
            mp_ = free_port()
            uri = s.tracking_uri
            servers['mlflow'] = mlflow_server(ws, uri, name, version, mp_, 1, tmp)
        for k, srv in servers.items():
            if k != 'lifecycle':
                srv.wait_ready(300)
        labels = {}
        for k, srv in servers.items():
            status, _, out = post(srv.url + paths[k], bodies[k])
            if status != 200:
                sys.exit(f"{k}: POST {paths[k]} answered {status}: {out}")
            if k == 'mlserver':
                out = {'predictions': next(o['data'] for o in out['outputs'] if o['name'] == 'label')}
            labels[k] = [
                str(int(float(x))) if str(x).replace('.', '').isdigit() else str(x) for x in out['predictions']
            ]
        if len({tuple(v) for v in labels.values()}) != 1:
            sys.exit(f"the servers disagree on the record's label: {labels}")
        runs = {k: [] for k in servers}
        for r in range(a.rounds):
            for k, srv in servers.items():
                res = measure(srv, srv.url + paths[k], bodies[k], a, tmp, ours=k in ('lifecycle', 'batched'))
                res['load_average'] = os.getloadavg()[0]
                runs[k].append(res)
                p99 = res.get('sync_p99_le_ms')
                disk = (
                    f"; its log's groups to disk: p99 {f'<= {p99:g}' if p99 is not None else '> 1000'} ms, "
                    f"{100 * res['sync_over_1ms']:.2f}% over 1 ms, {100 * res['sync_over_2ms']:.2f}% over 2 ms"
                    if 'sync_groups' in res
                    else ''
                )
                say(
                    f"round {r + 1} {k}: {res['rps']:,.0f} req/s, p99 {res['p99_ms']:.2f} ms, "
                    f"{res['cpu_ms_per_request']:.3f} ms CPU/request, non-2xx {res['non_2xx']}{disk}"
                )
    except KeyboardInterrupt:
        sys.exit(130)
    finally:
        for srv in servers.values():
            srv.stop()
        shutil.rmtree(tmp, ignore_errors=True)

    med = {
        k: {m: statistics.median(x[m] for x in v) for m in ('rps', 'p50_ms', 'p99_ms', 'cpu_ms_per_request')}
        | {'non_2xx': sum(x['non_2xx'] for x in v), 'requests': sum(x['requests'] or 0 for x in v)}
        for k, v in runs.items()
    }
    o = med['lifecycle']
    ratios, passed = {}, {}
    for k in servers:
        if k == 'lifecycle':
            continue
        p = med[k]
        ratios[k] = dict(
            rps=o['rps'] / p['rps'],
            cpu=o['cpu_ms_per_request'] / p['cpu_ms_per_request'],
            p99=o['p99_ms'] / p['p99_ms'],
        )
        if k in PEERS:
            passed[k] = (
                ratios[k]['rps'] >= GOALS['rps_ratio_min']
                and ratios[k]['cpu'] <= GOALS['cpu_ratio_max']
                and ratios[k]['p99'] <= GOALS['p99_ratio_max']
            )
    errors = {k: v['non_2xx'] for k, v in med.items() if v['non_2xx']}
    failed = [k for k in errors if k == 'lifecycle' or k in PEERS]  # a server with no goal reports, never fails
    out = dict(
        model=f'models:/{name}/{version}',
        load=f"wrk -t{min(2, a.concurrency)} -c{a.concurrency}, {a.warmup:g} s warm-up + {a.duration:g} s measured "
        f"per server and round, {a.rounds} round(s); one-record requests; 1 worker process per server; "
        f"{os.cpu_count()} shared CPUs",
        servers={k: {m: round(v, 4) for m, v in d.items()} for k, d in med.items()},
        rounds={k: v for k, v in runs.items()},
        ratios={k: {m: round(v, 3) for m, v in d.items()} for k, d in ratios.items()},
        goals=GOALS,
        passed=passed,
        non_2xx=errors,
    )
    if a.json:
        print(json.dumps(out, indent=1))
    else:
        print(f"POST one record, {out['model']}; {out['load']}")
        print(f"{'server':<26}{'req/s':>9}{'p50 ms':>9}{'p99 ms':>9}{'CPU ms/req':>12}{'non-2xx':>9}")
        label = {
            'lifecycle': 'lifecycle serve (ONNX)',
            'batched': 'ours, batched log',
            'mlserver': 'MLServer 1.7 (ONNX)',
            'bentoml': 'BentoML (ONNX)',
            'mlflow': 'mlflow models serve (sk)',
        }
        for k, v in med.items():
            print(
                f"{label[k]:<26}{v['rps']:>9,.0f}{v['p50_ms']:>9.2f}{v['p99_ms']:>9.2f}"
                f"{v['cpu_ms_per_request']:>12.3f}{v['non_2xx']:>9}"
            )
        for k, r in ratios.items():
            if k in passed:
                print(
                    f"ours vs {k:<9} req/s {r['rps']:5.2f}x (>= 3)  CPU/req {r['cpu']:5.2f}x (<= 0.33)  "
                    f"p99 {r['p99']:5.2f}x (<= 0.33)  {'PASS' if passed[k] else 'FAIL'}"
                )
            else:
                print(
                    f"ours vs {k:<9} req/s {r['rps']:5.2f}x         CPU/req {r['cpu']:5.2f}x           "
                    f"p99 {r['p99']:5.2f}x           (no goal)"
                )
    sys.exit(0 if all(passed.values()) and not failed else 1)


if __name__ == '__main__':
    main()
