"""`start_invocation`, the `/invocations` route as callbacks (what the direct protocol calls), against stand-ins whose
futures and callbacks the test settles: the answer waits for its row's commit and is given once; refusals come at
once; a row that failed, a wait that timed out, a failing model, a bug and a cancelled scoring each get their answer,
never a hang."""

from __future__ import annotations
import asyncio
import json
from types import SimpleNamespace
import numpy as np
import pytest
from lifecycle.serve.metrics import Metrics
from lifecycle.serve.models import CsvBody
from lifecycle.serve.predlog import LogFailed
from lifecycle.serve.scoring import ModelFailed, Scored
from lifecycle.serve.serving import mime_type, start_invocation

BODY = json.dumps({'dataframe_records': [{'age': 30}]}).encode()


class Srv:
    "What `start_invocation` reads of a `Server`."

    def __init__(self, durable: bool = True, on_log_failure: str = 'refuse'):
        self.log = SimpleNamespace(durable=durable, problem='')
        self.on_log_failure, self.max_depth, self.metrics, self.refusal = on_log_failure, 32, Metrics(), None
        self.columns = {'age': None}  # (the contract's columns: a key given twice is named when one of them)

    def log_refusal(self):
        return self.refusal


class Batcher:
    "Takes payloads; the test settles the futures it hands out."

    def __init__(self):
        self.payloads, self.futures = [], []

    def submit(self, payload):
        self.payloads.append(payload)
        self.futures.append(asyncio.get_running_loop().create_future())
        return self.futures[-1]


class Row:
    "A prediction row's `Pending`: `when_settled` keeps the callbacks the test calls; `check` raises `failed`."

    def __init__(self, done: bool = False, failed: str = ''):
        self.done, self.failed, self.waits = done, failed, []

    def when_settled(self, loop, fn, timeout: float = 60) -> bool:
        if not self.done:
            self.waits.append(fn)
        return not self.done

    def check(self):
        if self.failed:
            raise LogFailed(f'prediction log: the row could not be written ({self.failed})')


def scored(row: Row | None) -> Scored:
    model = SimpleNamespace(version='3')
    scores = np.array([0.8])
    return Scored('r1', 'invocations', None, 'control', model, {}, scores, np.array([1]), 0.5, 0.001, None, row)


async def ticks(n: int = 5) -> None:
    for _ in range(n):
        await asyncio.sleep(0)


def body(resp) -> dict:
    return json.loads(resp.body)


def run(coro):
    return asyncio.run(coro)


def test_the_answer_waits_for_its_rows_commit_and_is_given_once():
    async def go():
        srv, batcher, answers, row = Srv(), Batcher(), [], Row()
        start_invocation(srv, batcher, BODY, 'application/json', answers.append)
        assert batcher.payloads == [{'dataframe_records': [{'age': 30}]}] and answers == []
        batcher.futures[0].set_result(scored(row))
        await ticks()
        assert answers == [] and len(row.waits) == 1  # scored, waiting for the commit
        row.waits[0](None)  # (the answer is given in the call itself: no turn of the loop after it)
        assert len(answers) == 1 and answers[0].status_code == 200 and body(answers[0]) == {'predictions': [1]}
        assert dict(answers[0].raw_headers)[b'x-request-id'] == b'r1'
        assert dict(answers[0].raw_headers)[b'x-model-version'] == b'3'
        assert srv.metrics.requests.labels('invocations', 'control', '3', '200')._value.get() == 1

    run(go())


def test_a_row_already_committed_is_answered_without_waiting():
    async def go():
        srv, batcher, answers = Srv(), Batcher(), []
        start_invocation(srv, batcher, BODY, 'application/json', answers.append)
        batcher.futures[0].set_result(scored(Row(done=True)))
        await ticks()
        assert [a.status_code for a in answers] == [200]

    run(go())


@pytest.mark.parametrize('setting, status', [('refuse', 503), ('answer', 200)])
def test_a_row_the_log_could_not_store_is_refused_or_answered_as_the_setting_says(setting, status):
    async def go():
        srv, batcher, answers, row = Srv(on_log_failure=setting), Batcher(), [], Row(failed='disk full')
        start_invocation(srv, batcher, BODY, 'application/json', answers.append)
        batcher.futures[0].set_result(scored(row))
        await ticks()
        row.waits[0](None)
        assert [a.status_code for a in answers] == [status]
        if status == 503:
            why = body(answers[0])['error']
            assert 'disk full' in why and 'refusing to answer unlogged' in why

    run(go())


def test_a_wait_that_timed_out_is_refused():
    async def go():
        srv, batcher, answers, row = Srv(), Batcher(), [], Row()
        start_invocation(srv, batcher, BODY, 'application/json', answers.append)
        batcher.futures[0].set_result(scored(row))
        await ticks()
        row.waits[0](LogFailed('prediction log: the row was not committed within 60 s'))
        assert [a.status_code for a in answers] == [503], answers
        assert 'within 60 s' in body(answers[0])['error']

    run(go())


def test_no_wait_when_the_log_is_not_durable_or_is_known_broken_and_told_to_answer():
    async def go():
        for srv in (Srv(durable=False), Srv(on_log_failure='answer')):
            srv.log.problem = 'disk full' if srv.log.durable else ''
            batcher, answers, row = Batcher(), [], Row()
            start_invocation(srv, batcher, BODY, 'application/json', answers.append)
            batcher.futures[0].set_result(scored(row))
            await ticks()
            assert [a.status_code for a in answers] == [200] and row.waits == []

    run(go())


def test_refusals_come_at_once_without_scoring():
    async def go():
        srv, batcher, answers = Srv(), Batcher(), []
        srv.refusal = 'not ready: no flags are active yet'
        start_invocation(srv, batcher, BODY, 'application/json', answers.append)
        assert [a.status_code for a in answers] == [503] and batcher.payloads == []
        srv.refusal = None
        start_invocation(srv, batcher, b'{"dataframe_records": [', 'application/json', answers.append)
        start_invocation(srv, batcher, b'', 'application/json', answers.append)
        assert [a.status_code for a in answers] == [503, 400, 400] and batcher.payloads == []
        assert 'malformed JSON' in body(answers[1])['error']
        start_invocation(srv, batcher, b'age\n30\n', 'text/csv', answers.append)
        assert batcher.payloads == [CsvBody(b'age\n30\n')] and len(answers) == 3

    run(go())


def test_a_failing_model_a_bug_and_a_cancelled_scoring_each_get_a_500():
    async def go():
        srv = Srv()
        failed = ModelFailed('invocations', 'challenger', '4', 'ValueError')
        failed.__cause__ = ValueError('30')
        settles = (lambda f: f.set_exception(failed), lambda f: f.set_exception(KeyError('x')), lambda f: f.cancel())
        for settle in settles:
            batcher, answers = Batcher(), []
            start_invocation(srv, batcher, BODY, 'application/json', answers.append)
            settle(batcher.futures[0])
            await ticks()
            assert [a.status_code for a in answers] == [500]
            assert '30' not in body(answers[0])['error']
        assert srv.metrics.requests.labels('invocations', 'challenger', '4', '500')._value.get() == 1
        assert srv.metrics.errors.labels('invocations', '500')._value.get() == 3

    run(go())


def test_the_media_type_of_a_content_type():
    assert mime_type('text/csv; charset=utf-8') == 'text/csv'
    assert mime_type(' Application/JSON ') == 'application/json'
    assert mime_type('') == ''


def batcher_with(monkeypatch, poll):
    "A `TickBatcher` whose server's log polls with `poll` and whose `score_many` records each batch; the calls made."
    import lifecycle.serve.serving as S

    calls = []

    def score_many(payloads, route, flags, live, plog, keys, attrs, max_records):
        calls.append(('score', list(payloads)))
        return [f'scored {p}' for p in payloads]

    monkeypatch.setattr(S, 'score_many', score_many)
    srv = SimpleNamespace(log=SimpleNamespace(poll=lambda: poll(calls)), flags=None, gate=SimpleNamespace(live=None))
    srv.max_records = 10
    return S.TickBatcher(srv, 'invocations'), calls


def test_the_batcher_reads_the_logs_acknowledgements_before_it_scores(monkeypatch):
    "Answers whose rows were acknowledged meanwhile go before the batch's work (`PredictionLog.poll`), once a batch."
    batcher, calls = batcher_with(monkeypatch, lambda calls: calls.append('poll'))

    async def go():
        return await asyncio.wait_for(asyncio.gather(batcher.submit('a'), batcher.submit('b')), 5)

    assert run(go()) == ['scored a', 'scored b']
    assert calls == ['poll', ('score', ['a', 'b'])]


def test_a_poll_that_fails_is_logged_and_the_batch_still_scored(monkeypatch, caplog):
    def broken(calls):
        raise RuntimeError('a bug')

    batcher, calls = batcher_with(monkeypatch, broken)

    async def go():
        return await asyncio.wait_for(batcher.submit('a'), 5)  # (a poll that raises out of the batch: never scored)

    assert run(go()) == 'scored a' and calls == [('score', ['a'])]
    assert "reading the prediction log's acknowledgements failed" in caplog.text
