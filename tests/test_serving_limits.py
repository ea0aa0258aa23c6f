"""`lifecycle serve` as a process, under faults: killed with SIGKILL under load, alone or with its prediction log's
writer (no answered prediction may be missing from the log, once a new server has replayed the journal), and held
open by hundreds of idle sockets against a small descriptor limit (normal requests must still be answered)."""

from __future__ import annotations
import resource
import signal
from pathlib import Path
import socket
import subprocess
import threading
import time
import httpx
import psutil
import pytest
from conftest import clean_env
from lifecycle.serve.local import LocalServer
from lifecycle.serve.predlog import read_log

REC = {'age': 30, 'checks': 2, 'employed': 'Yes', 'citizen': 'No'}
pytestmark = pytest.mark.slow


@pytest.fixture(scope='module')
def ws(tiny_ws):
    "Two signed versions of the default model (1: champion), flags initialised: this module's copy."
    return tiny_ws


def _load_then_kill(ws: Path, kill) -> list[str]:
    "Four clients (two per scoring route) load a new server; once 200 are answered, `kill(server)`; the IDs answered."
    srv = LocalServer(ws, env=clean_env(), log=subprocess.DEVNULL, timeout=240).start()
    answered, lock, stop = [], threading.Lock(), threading.Event()

    def client(n: int, route: str):
        with httpx.Client(base_url=srv.url, timeout=10) as http:
            for i in range(n):
                if stop.is_set():
                    return
                try:
                    if route == '/predict':
                        r = http.post(route, json={'records': [REC], 'context': {'targetingKey': f'k{i}'}})
                    else:  # answered by the protocol itself (`lifecycle.serve.direct`)
                        r = http.post(route, json={'dataframe_records': [REC]})
                except httpx.HTTPError:
                    return  # the server is gone: this request was not answered
                if r.status_code == 200:
                    with lock:
                        answered.append(r.headers.get('x-request-id') or r.json()['request_id'])

    routes = ['/predict', '/invocations'] * 2
    threads = [threading.Thread(target=client, args=(150, r)) for r in routes]  # at most 600 requests
    for t in threads:
        t.start()
    end = time.monotonic() + 60
    while len(answered) < 200 and time.monotonic() < end and any(t.is_alive() for t in threads):
        time.sleep(0.01)
    kill(srv)
    stop.set()
    for t in threads:
        t.join(30)
    assert len(answered) >= 200
    return answered


def _dead(p: psutil.Process) -> bool:
    try:
        return p.status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def test_kill_9_under_load_loses_no_answered_prediction(ws):
    writers = []

    def kill(srv):
        writers.extend(psutil.Process(srv.proc.pid).children())
        srv.proc.kill()  # SIGKILL mid-load: no flush, no shutdown
        srv.proc.wait()

    answered = _load_then_kill(ws, kill)
    psutil.wait_procs(writers, timeout=30)  # its writer puts what it journaled into the database, and exits
    logged = set(read_log(f"sqlite:///{ws / '.lifecycle/predictions.db'}").request_id)
    missing = set(answered) - logged
    assert not missing, f'{len(missing)} of {len(answered)} answered predictions not logged'


def test_kill_9_of_server_and_writer_loses_nothing_once_restarted(ws):
    def kill(srv):
        srv.proc.send_signal(signal.SIGSTOP)  # (stopped: it cannot start another writer between the two kills)
        writers = psutil.Process(srv.proc.pid).children()
        for p in writers:  # the writer first: what it journaled and had not inserted stays in its journal
            p.kill()
        end = time.monotonic() + 30  # (dead: a zombie, as its stopped parent cannot reap it; its lock is released)
        while not all(_dead(p) for p in writers) and time.monotonic() < end:
            time.sleep(0.01)
        srv.proc.kill()
        srv.proc.wait()

    answered = _load_then_kill(ws, kill)
    orphaned = list((ws / '.lifecycle/predictions.db.journals').glob('*.journal'))
    assert orphaned  # the dead writer's journal, not replayed yet
    url = f"sqlite:///{ws / '.lifecycle/predictions.db'}"
    with LocalServer(ws, env=clean_env(), log=subprocess.DEVNULL, timeout=240):  # its writer replays the journal
        end = time.monotonic() + 30
        while (missing := set(answered) - set(read_log(url).request_id)) or any(p.exists() for p in orphaned):
            left = [p.name for p in orphaned if p.exists()]
            assert time.monotonic() < end, f'{len(missing)} of {len(answered)} not logged; journals left: {left}'
            time.sleep(0.2)  # (then the orphan is gone too: replayed, then deleted)


def test_idle_sockets_cannot_starve_normal_requests(ws):
    def few_descriptors():
        resource.setrlimit(resource.RLIMIT_NOFILE, (256, 256))

    env = {**clean_env(), 'LIFECYCLE_MAX_CONNECTIONS': '100', 'LIFECYCLE_HEADER_TIMEOUT_S': '2'}
    with LocalServer(ws, env=env, log=subprocess.DEVNULL, timeout=240, preexec_fn=few_descriptors) as srv:
        idle = []
        try:
            for _ in range(400):  # more half-open connections than the server has descriptors
                so = socket.create_connection(('127.0.0.1', srv.port), timeout=5)
                idle.append(so)
            slow = idle[-1]
            slow.sendall(b'POST /predict HTTP/1.1\r\nHost: x\r\n')  # headers never finished
            t0 = time.monotonic()
            with httpx.Client(base_url=srv.url, timeout=10) as http:
                codes = [http.post('/predict', json={'records': [REC]}).status_code for _ in range(20)]
            assert codes == [200] * 20 and time.monotonic() - t0 < 10
            open_fds = len(list(Path(f'/proc/{srv.proc.pid}/fd').iterdir()))
            assert open_fds < 256
        finally:
            for so in idle:
                so.close()
