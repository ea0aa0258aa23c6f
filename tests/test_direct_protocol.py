"""The direct protocol (`lifecycle.serve.direct`) under uvicorn, with a stand-in for scoring, on what HTTP asks of it:
a client that never reads its answers, an answer given at once with the next request in the same packet, HTTP/1.0,
shutdown with an invocation in flight, background work after a client left, and the header deadline after an answer."""

from __future__ import annotations
import asyncio
import socket
import time
from contextlib import contextmanager
from types import SimpleNamespace
import pytest
from fastapi import FastAPI
from conftest import http_answers, uvicorn_thread
from starlette.background import BackgroundTask
from lifecycle.serve.direct import DirectHttpToolsProtocol
from lifecycle.serve.serving import FastInvocations, answer

pytestmark = pytest.mark.slow  # servers in threads, timers of a second


class StandIn(FastInvocations):
    """Answers an invocation with its body's size, padded with `pad` bytes: at once for the body `"now"`, else after
    `delay` seconds; each answer's background work notes the size. Everything else goes to the application."""

    def __init__(self, app, delay: float = 0.0, pad: int = 0):
        super().__init__(app)
        self.delay, self.pad, self.background = delay, pad, []

    def start(self, body, mime, done):
        note = BackgroundTask(self.background.append, len(body))
        a = answer({'bytes': len(body), 'pad': 'x' * self.pad}, background=note)
        if body == b'"now"':
            done(a)
        else:
            asyncio.get_running_loop().call_later(self.delay, done, a)

    async def __call__(self, scope, receive, send):
        await self.app(scope, receive, send)


def stand_in(**kw) -> StandIn:
    plain = FastAPI()
    plain.state.server = SimpleNamespace(max_body=1000)

    @plain.get('/slow')
    async def slow():
        await asyncio.sleep(1.0)
        return {'slow': True}

    @plain.post('/invocations')
    async def via_app():
        return {'via': 'app'}

    return StandIn(plain, **kw)


@contextmanager
def running(app, **config):
    "uvicorn with the direct protocol on a free port of 127.0.0.1, in a thread (`conftest.uvicorn_thread`)."
    with uvicorn_thread(app, http=DirectHttpToolsProtocol, log_level='error', lifespan='off', **config) as running:
        yield running


def post(body: bytes, version: str = '1.1', extra: str = '') -> bytes:
    head = f'POST /invocations HTTP/{version}\r\nhost: x\r\ncontent-type: application/json\r\n{extra}'
    return head.encode() + b'content-length: %d\r\n\r\n' % len(body) + body


def test_a_client_that_never_reads_its_answers_cannot_make_the_server_buffer_them_all():
    app = stand_in(pad=60_000)
    with running(app) as (server, port), socket.socket() as so:
        so.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        so.connect(('127.0.0.1', port))
        for _ in range(200):  # 12 MB of answers asked for, one request at a time, none read
            so.sendall(post(b'"now"'))
            time.sleep(0.005)
        time.sleep(0.5)
        held = sum(c.transport.get_write_buffer_size() for c in list(server.server_state.connections))
        assert held < 1_000_000, f'{held:,} bytes of answers buffered for a client that reads none'


def test_an_answer_given_at_once_does_not_cut_off_the_next_request_of_its_packet():
    slow = b'GET /slow HTTP/1.1\r\nhost: x\r\n\r\n'
    with running(stand_in(), timeout_keep_alive=0.3) as (_, port), socket.create_connection(('127.0.0.1', port)) as so:
        so.settimeout(10)
        so.sendall(post(b'"now"') + slow)  # answered at once, then a request that takes 1 s, past the keep-alive
        (_, first), (head, second) = http_answers(so, 2)
        assert first['bytes'] == 5 and head.startswith(b'HTTP/1.1 200') and second == {'slow': True}


def test_http_1_0_and_connection_close_end_the_connection_after_the_answer():
    with running(stand_in()) as (server, port):
        for request in (post(b'{}', version='1.0'), post(b'{}', extra='connection: close\r\n')):
            with socket.create_connection(('127.0.0.1', port)) as so:
                so.settimeout(10)
                so.sendall(request)
                [(head, got)] = http_answers(so, 1)
                assert b'connection: close' in head and got['bytes'] == 2
                assert so.recv(10) == b''
        assert server.server_state.total_requests == 2


def test_shutdown_answers_the_invocation_in_flight_then_closes():
    app = stand_in(delay=1.0)
    with running(app) as (server, port), socket.create_connection(('127.0.0.1', port)) as so:
        so.settimeout(10)
        so.sendall(post(b'{"a": 1}'))
        time.sleep(0.2)
        server.should_exit = True  # while the answer is a second away
        [(head, got)] = http_answers(so, 1)
        assert head.startswith(b'HTTP/1.1 200') and b'connection: close' in head and got['bytes'] == 8
        assert so.recv(10) == b''


def test_background_work_runs_even_when_the_client_left_before_its_answer():
    app = stand_in(delay=0.3)
    with running(app) as (_, port):
        with socket.create_connection(('127.0.0.1', port)) as so:
            so.sendall(post(b'{"a": 1}'))
        end = time.monotonic() + 10
        while not app.background and time.monotonic() < end:
            time.sleep(0.05)
        assert app.background == [8]  # (the shadow's scoring is such work: its row is logged all the same)


def test_a_request_pipelined_behind_a_direct_one_is_not_cut_off_by_the_header_deadline(monkeypatch):
    monkeypatch.setattr(DirectHttpToolsProtocol, '_limits', (64, 0.3))  # (0.3 s for a request's headers)
    slow = b'GET /slow HTTP/1.1\r\nhost: x\r\n\r\n'
    with running(stand_in()) as (_, port), socket.create_connection(('127.0.0.1', port)) as so:
        so.settimeout(10)
        so.sendall(post(b'{}') + slow)  # the first answered on a later turn; the second queued, then takes 1 s
        (_, first), (head, second) = http_answers(so, 2)
        assert first['bytes'] == 2 and head.startswith(b'HTTP/1.1 200') and second == {'slow': True}


def test_after_a_direct_answer_the_next_requests_headers_are_due_in_time(monkeypatch):
    monkeypatch.setattr(DirectHttpToolsProtocol, '_limits', (64, 0.5))  # (at most 64 connections; 0.5 s for headers)
    with running(stand_in()) as (_, port), socket.create_connection(('127.0.0.1', port)) as so:
        so.settimeout(10)
        so.sendall(post(b'"now"'))
        assert http_answers(so, 1)[0][1]['bytes'] == 5
        t0 = time.monotonic()
        so.sendall(b'POST /invocations HTTP/1.1\r\n')  # never finishes its headers
        assert so.recv(10) == b'' and time.monotonic() - t0 < 5  # closed by the header deadline
