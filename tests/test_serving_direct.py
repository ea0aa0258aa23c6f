"""`POST /invocations` answered by the protocol itself (`lifecycle.serve.direct`) against the same requests through the
application (uvicorn's plain ASGI path): the same statuses, bodies and headers for good input, bad input, a failing
model and a server that must refuse; the committed row behind every answer; the requests it leaves to the application;
keep-alive, pipelining, `Connection: close`, a client that leaves before its answer, and no garbage per request."""

from __future__ import annotations
import collections
import gc
import json
import logging
import socket
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from types import SimpleNamespace
import httpx
import pytest
from conftest import clean_env, http_answers, uvicorn_thread
from lifecycle.core.workspace import Workspace
from lifecycle.serve.direct import DirectHttpToolsProtocol
from lifecycle.serve.limits import GuardedH11Protocol, GuardedHttpToolsProtocol
from lifecycle.serve.predlog import default_url, read_log
from lifecycle.serve.server import Server
from lifecycle.serve.serving import FastInvocations, create_app

REC = {'age': 30, 'checks': 2, 'employed': 'Yes', 'citizen': 'No'}
pytestmark = pytest.mark.slow


class Counting(FastInvocations):
    "`FastInvocations` noting the path of each request the application saw."

    def __init__(self, app):
        super().__init__(app)
        self.seen: list[str] = []

    async def __call__(self, scope, receive, send):
        if scope['type'] == 'http':
            self.seen.append(scope['path'])
        await super().__call__(scope, receive, send)


@contextmanager
def serving(root, protocol, max_body: int = 1_000_000):
    "A server of the workspace under uvicorn with `protocol`, in a thread on a free port of 127.0.0.1."
    srv = Server(Workspace.open(root), max_body_bytes=max_body)
    app = Counting(create_app(srv))
    with uvicorn_thread(app, http=protocol, access_log=False) as (_, port):
        yield SimpleNamespace(url=f'http://127.0.0.1:{port}', port=port, srv=srv, app=app)


SPLIT = {'dataframe_split': {'columns': list(REC), 'data': [list(REC.values())] * 3}}
CSV = ','.join(REC) + '\n' + ','.join(str(v) for v in REC.values()) + '\n'
REQUESTS = [  # (body, content type)
    (json.dumps(SPLIT), 'application/json'),
    (json.dumps({'dataframe_records': [REC, {**REC, 'age': 61}]}), 'application/json; charset=utf-8'),
    (CSV, 'text/csv'),
    ('{"dataframe_split": ', 'application/json'),  # malformed: 400
    ('', 'application/json'),  # empty: 400
    (json.dumps({'dataframe_records': [{**REC, 'checks': 'many'}]}), 'application/json'),  # a string for a number: 422
    (json.dumps({'dataframe_records': [{**REC, 'employed': 'Maybe'}]}), 'application/json'),  # outside the contract
    (json.dumps({'dataframe_records': [REC], 'extra': 1}), 'application/json'),  # unknown field: 422
    ('[' * 40 + ']' * 40, 'application/json'),  # nested too deep: 400
    (json.dumps({'dataframe_records': [REC]}), 'application/xml'),  # not JSON or CSV: 415, as MLflow answers
]


def _answers(url: str) -> list[tuple[int, dict, list[str]]]:
    "(status, JSON body, header names in order) of each of `REQUESTS` (the request ID is in a header, not compared)."
    out = []
    with httpx.Client(base_url=url, timeout=30) as c:
        for body, mime in REQUESTS:
            r = c.post('/invocations', content=body.encode(), headers={'content-type': mime})
            out.append((r.status_code, r.json(), [k for k, _ in r.headers.multi_items()]))
    return out


def test_the_direct_path_answers_every_invocation_as_the_application_does(tiny_ws):
    with serving(tiny_ws, DirectHttpToolsProtocol) as d:
        direct = _answers(d.url)
        assert d.app.seen == []  # none of them went through the application
    with serving(tiny_ws, GuardedHttpToolsProtocol) as a:
        plain = _answers(a.url)
        assert a.app.seen == ['/invocations'] * len(REQUESTS)
    assert direct == plain
    statuses = [s for s, _, _ in direct]
    assert statuses == [200, 200, 200, 400, 400, 422, 422, 422, 400, 415]
    assert direct[-1][1]['error'] == "content-type: expected application/json or text/csv, found 'application/xml'"
    assert len(direct[0][1]['predictions']) == 3 and len(direct[1][1]['predictions']) == 2
    assert direct[0][2] == ['date', 'server', 'x-request-id', 'x-model-version', 'content-length', 'content-type']


def test_each_direct_answer_leaves_only_once_its_row_is_committed(tiny_ws):
    with serving(tiny_ws, DirectHttpToolsProtocol) as d, httpx.Client(base_url=d.url, timeout=30) as c:
        ids = []
        for _ in range(5):
            r = c.post('/invocations', json=SPLIT)
            assert r.status_code == 200 and r.headers['x-model-version'] == '1'
            ids.append(r.headers['x-request-id'])
            logged = set(read_log(default_url(d.srv.s)).request_id)  # another reader: journaled rows
            assert r.headers['x-request-id'] in logged  # read right after the answer: the row was committed first
        assert d.app.seen == []


def test_a_failing_model_and_a_refusing_server_answer_alike_on_both_paths(tiny_ws):
    def broken(cols):
        raise ValueError('a message that might quote 30')

    got = {}
    for protocol in (DirectHttpToolsProtocol, GuardedHttpToolsProtocol):
        with serving(tiny_ws, protocol) as s, httpx.Client(base_url=s.url, timeout=30) as c:
            model = s.srv.gate.live.models['1']
            model.score = broken
            failed = c.post('/invocations', json=SPLIT)
            errors = s.srv.metrics.errors.labels('invocations', '500')._value.get()
            s.srv.log_refusal = lambda: 'not ready: a test says so'
            refused = c.post('/invocations', json=SPLIT)
            got[protocol] = (failed.status_code, failed.json(), errors, refused.status_code, refused.json())
    direct, plain = got.values()
    assert direct == plain
    assert direct[:3] == (500, {'error': 'internal error: ValueError', 'status': 500}, 1.0)
    assert direct[3:] == (503, {'error': 'not ready: a test says so', 'status': 503})


def test_invocations_the_direct_path_leaves_alone_are_answered_by_the_application(tiny_ws):
    with serving(tiny_ws, DirectHttpToolsProtocol, max_body=2_000) as d, httpx.Client(base_url=d.url, timeout=30) as c:
        body = json.dumps(SPLIT).encode()
        chunked = c.post('/invocations', content=iter([body[:10], body[10:]]), headers={'content-type': 'text/json'})
        assert chunked.status_code == 200 and len(chunked.json()['predictions']) == 3
        big = json.dumps({'dataframe_records': [REC] * 40}).encode()
        assert len(big) > 2_000 and c.post('/invocations', content=big).status_code == 413
        assert c.post('/invocations?format=json', content=body).status_code == 200
        expect = c.post('/invocations', content=body, headers={'expect': '100-continue'})
        assert expect.status_code == 200
        assert d.app.seen == ['/invocations'] * 4
        assert c.post('/invocations', content=body).status_code == 200 and len(d.app.seen) == 4  # this one: direct


def _post(rows: int, extra: str = '') -> bytes:
    body = json.dumps({'dataframe_split': {'columns': list(REC), 'data': [list(REC.values())] * rows}}).encode()
    head = f'POST /invocations HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n{extra}'
    return head.encode() + b'content-length: %d\r\n\r\n' % len(body) + body


def test_kept_alive_and_pipelined_invocations_are_answered_in_order(tiny_ws):
    with serving(tiny_ws, DirectHttpToolsProtocol) as d, socket.create_connection(('127.0.0.1', d.port)) as so:
        so.settimeout(30)
        for rows in (1, 2, 3):  # one after the other on one connection
            so.sendall(_post(rows))
            [(head, body)] = http_answers(so, 1)
            assert head.startswith(b'HTTP/1.1 200') and len(body['predictions']) == rows
        so.sendall(_post(1) + _post(2) + _post(3))  # pipelined: the application answers those behind the first
        assert [len(b['predictions']) for _, b in http_answers(so, 3)] == [1, 2, 3]
        so.sendall(_post(2, 'connection: close\r\n'))
        [(head, body)] = http_answers(so, 1)
        assert b'connection: close' in head and len(body['predictions']) == 2
        assert so.recv(10) == b''  # the server closed the connection
        assert len(d.app.seen) == 2  # the two pipelined behind a direct one (one write on loopback: one read)


def test_a_client_that_leaves_before_its_answer_disturbs_nothing(tiny_ws, caplog):
    with caplog.at_level(logging.WARNING), serving(tiny_ws, DirectHttpToolsProtocol) as d:
        for _ in range(20):
            with socket.create_connection(('127.0.0.1', d.port)) as so:
                so.sendall(_post(3))  # and gone before the answer
        with httpx.Client(base_url=d.url, timeout=30) as c:
            assert c.post('/invocations', json=SPLIT).status_code == 200
        time.sleep(0.2)
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR], [r.getMessage() for r in caplog.records]


def cyclic_garbage_of_300_invocations(root: Path) -> dict[str, int]:
    """The objects the cycle collector finds after 300 direct invocations to a server of workspace `root` (in this
    process, warmed by 50 first), by type name."""
    with serving(root, DirectHttpToolsProtocol) as d, socket.create_connection(('127.0.0.1', d.port)) as so:
        so.settimeout(30)
        for _ in range(50):  # (warm: the first requests make what lives on, caches and series)
            so.sendall(_post(1))
            http_answers(so, 1)
        gc.collect()
        gc.disable()
        gc.set_debug(gc.DEBUG_SAVEALL)
        try:
            for _ in range(300):
                so.sendall(_post(1))
                http_answers(so, 1)
            gc.collect()
            return dict(collections.Counter(type(o).__name__ for o in gc.garbage))
        finally:
            gc.set_debug(0)
            gc.garbage.clear()
            gc.enable()


def test_a_direct_invocation_leaves_no_garbage_for_the_cycle_collector(tiny_ws):
    """Every object a request makes is freed by its reference count: the collector never pauses the loop for them.
    Counted in a process of its own: a thread another test left at work in this one (drawing a figure, say) would
    add its garbage to the count."""
    code = (
        'import json, sys; from pathlib import Path; sys.path.insert(0, sys.argv[2]); '
        'from test_serving_direct import cyclic_garbage_of_300_invocations as count; '
        'print(json.dumps(count(Path(sys.argv[1]))))'
    )
    tests = Path(__file__).resolve().parent
    r = subprocess.run(
        [sys.executable, '-c', code, str(tiny_ws), str(tests)],
        cwd=tiny_ws,
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert r.returncode == 0, r.stderr[-3000:]
    kinds = collections.Counter(json.loads(r.stdout.splitlines()[-1]))
    assert sum(kinds.values()) < 30, kinds.most_common(10)  # far under one object per request


def test_a_client_that_leaves_while_sending_its_body_is_no_server_error(tiny_ws, caplog):
    """A client gone before its body has all come (a dropped connection, a timed-out client) sent no request to answer:
    no traceback in the server's log (ours or uvicorn's), no 500 counted in `/metrics`, and the server answers on."""
    uvicorn_said: list[logging.LogRecord] = []
    catcher = logging.Handler(logging.ERROR)
    catcher.emit = uvicorn_said.append
    logging.getLogger('uvicorn.error').addHandler(catcher)
    cut = [  # a declared length never reached (the app reads /predict and /feedback), a chunked body never ended
        b'POST /predict HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: 500\r\n\r\n{"re',
        b'POST /feedback HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: 500\r\n\r\n{"re',
        b'POST /invocations HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ntransfer-encoding: chunked\r\n\r\n'
        b'5\r\n{"dat\r\n',
    ]
    try:
        with caplog.at_level(logging.WARNING), serving(tiny_ws, DirectHttpToolsProtocol) as d:
            for request in cut:
                with socket.create_connection(('127.0.0.1', d.port)) as so:
                    so.sendall(request)
                    time.sleep(0.3)  # the server is reading the body when the client goes
            time.sleep(0.3)
            with httpx.Client(base_url=d.url, timeout=30) as c:
                assert c.post('/predict', json={'records': [REC]}).status_code == 200
                metrics = c.get('/metrics').text
    finally:
        logging.getLogger('uvicorn.error').removeHandler(catcher)
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR], [r.getMessage() for r in caplog.records]
    assert not uvicorn_said, [r.getMessage() for r in uvicorn_said]
    assert 'kind="500"' not in metrics, [line for line in metrics.splitlines() if 'kind="500"' in line]


@pytest.mark.parametrize('protocol', [DirectHttpToolsProtocol, GuardedH11Protocol])
def test_a_body_held_back_after_its_headers_cannot_hold_a_connection(tiny_ws, protocol, monkeypatch):
    """A client that sends a request's headers and then holds its body back (or trickles it) has `header_timeout_s`
    for the body too, and waits for it as a client yet to send its headers does: at the connection limit, a new client
    takes its place. Before, only the headers had a deadline: such clients held their connections for ever, and a
    few of them at the limit had the server answer every other client 503."""
    monkeypatch.setattr(protocol, '_limits', (3, 1.0))  # (3 connections, 1 s: this process's limits, as `serve` sets)
    held_back = b'POST /predict HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: 100\r\n\r\n'
    with serving(tiny_ws, protocol) as d:
        holders = [socket.create_connection(('127.0.0.1', d.port), timeout=10) for _ in range(3)]
        try:
            for so in holders:
                so.sendall(held_back + b'{"rec')
            time.sleep(0.3)
            with socket.create_connection(('127.0.0.1', d.port), timeout=10) as so:  # at the limit: one gives way
                body = json.dumps({'records': [REC]}).encode()
                so.sendall(b'POST /predict HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n'
                           b'content-length: %d\r\n\r\n' % len(body) + body)
                [(head, answer)] = http_answers(so, 1)
                assert head.startswith(b'HTTP/1.1 200'), (head, answer)
            start = time.monotonic()
            for so in holders[1:]:  # the others: closed once their body is late
                while so.recv(1 << 16):
                    pass
            assert time.monotonic() - start < 5
        finally:
            for so in holders:
                so.close()


def _closed_in_time(so, why: str) -> None:
    """Read `so` until the server closes it: within 3 s of now (its deadline, 1 s here), never only at uvicorn's
    keep-alive of 5 s; `why` fails the test when it is still open after 4 s."""
    start = time.monotonic()
    so.settimeout(4)
    try:
        while so.recv(1 << 16):
            pass
    except socket.timeout:
        pytest.fail(why)
    assert time.monotonic() - start < 3


@pytest.mark.parametrize('protocol', [DirectHttpToolsProtocol, GuardedH11Protocol])
def test_a_body_sent_after_its_answer_leaves_the_next_headers_due(tiny_ws, protocol, monkeypatch):
    """A request answered before its body has all come (a 413 on its declared length) leaves its connection waiting
    for the next request's headers, with their deadline: the rest of its body arriving later took the deadline away
    (httptools: `on_message_complete` disarmed it), and uvicorn's keep-alive timer, cancelled by that data, was not
    set again, so such a connection was held for ever and never the one closed at the connection limit."""
    monkeypatch.setattr(protocol, '_limits', (8, 1.0))  # (1 s for headers: this process's limits, as `serve` sets)
    head = b'POST /predict HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: 200\r\n\r\n'
    with serving(tiny_ws, protocol, max_body=100) as d:
        with socket.create_connection(('127.0.0.1', d.port), timeout=10) as so:
            so.sendall(head)
            [(answer, _)] = http_answers(so, 1)  # refused on its declared length, before its body is read
            assert answer.startswith(b'HTTP/1.1 413'), answer
            so.sendall(b' ' * 200)  # the body, after its answer: the connection now waits for the next request
            _closed_in_time(so, 'the connection was still open 4 s after its answer: no deadline for the next headers')


@pytest.mark.parametrize('protocol', [DirectHttpToolsProtocol, GuardedH11Protocol])
def test_a_pipelined_request_whose_body_is_held_back_is_dropped_in_time(tiny_ws, protocol, monkeypatch):
    """A request pipelined behind another, its headers sent and its body held back: h11's protocol reads it once the
    first is answered (`on_response_complete`), not in `data_received`, where alone the body's deadline was set, so
    such a request had none and held its connection for ever (review revGS)."""
    monkeypatch.setattr(protocol, '_limits', (8, 1.0))  # (1 s: this process's limits, as `serve` sets)
    body = json.dumps({'records': [REC]}).encode()
    first = b'POST /predict HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: %d\r\n\r\n' % len(
        body
    )
    held = b'POST /predict HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: 100\r\n\r\n{"re'
    with serving(tiny_ws, protocol) as d:
        with socket.create_connection(('127.0.0.1', d.port), timeout=10) as so:
            so.sendall(first + body + held)
            [(answer, _)] = http_answers(so, 1)
            assert answer.startswith(b'HTTP/1.1 200'), answer
            _closed_in_time(so, 'a pipelined request whose body never came still held its connection after 4 s')
