"""A batched prediction log (`durable=False`: answers do not wait for their rows) keeps the batches its database
refuses while a one-row probe fails too, and writes them once it is back, in order, each row once; a database that
fails again right after answering a probe has them kept still; the open batch is kept as it fills, and `max_kept` bounds
what waits; closing writes what is kept once the database is back. The database is a stand-in whose state the test
sets (the notebook `01_predlog` shows the same with a real SQLite lock). On a real SQLite database: a batch's first row
that the database refuses fails alone, as do bad rows side by side, a locked database fails a batch at once with no
probe, and a table that refuses every row fails the batch whole; with a stand-in insert, a database failing during the
split fails the rows not yet in, or the batch when none is."""

from __future__ import annotations
import sqlite3
from contextlib import closing
import threading
import time

import pytest

from conftest import wait_until
from lifecycle.serve.predlog import LogFailed, PredictionLog, _encoded, read_log

ROW = dict(ts=1.0, route='invocations', variant='control', model_version='1', inputs={'age': [30]}, status=200)


class Db:
    """`write` and `probe` of the log's store: 'down' refuses both, 'up' takes both. `refused` writes are refused
    even while probes answer (a database failing again just after it answered), then it is `then`."""

    def __init__(self):
        self.state, self.written, self.refused, self.then = 'down', [], 0, 'down'
        self.seconds = 0.0  # what a write takes once up

    def write(self, rows):
        if self.state == 'down' or self.refused:
            if self.refused:
                self.refused -= 1
                self.state = self.state if self.refused else self.then
            return 'OperationalError: database is locked', {}
        time.sleep(self.seconds)
        self.written += [r[0] for r in rows]
        return None, {}

    def probe(self) -> str:
        return '' if self.state == 'up' else 'OperationalError: database is locked'


@pytest.fixture
def log(tmp_path):
    plog = PredictionLog(f'sqlite:///{tmp_path}/p.db', durable=False, interval_s=0.01, probe_s=0.05)
    db = Db()
    plog.store.write, plog.store.probe = db.write, db.probe
    yield plog, db
    db.state = 'up'
    plog.close()


def test_kept_rows_are_written_once_in_order_even_when_the_database_fails_again_after_a_probe(log):
    plog, db = log
    plog.log_many([dict(ROW, request_id=f'a{i}') for i in range(3)])
    wait_until(lambda: plog.problem and plog._kept)
    plog.log_many([dict(ROW, request_id=f'b{i}') for i in range(2)])
    # it answers the probes, refuses the next two writes (the kept batch's, and its one more try), then is down
    db.refused, db.then = 2, 'down'
    db.state = 'up'  # (last: the writer may look at any moment)
    wait_until(lambda: db.state == 'down')
    time.sleep(0.2)  # (several retries while it is down)
    assert plog.errors == 0 and plog.pending() == 5 and db.written == []
    db.state = 'up'
    assert plog.flush(5) and plog.errors == 0 and plog.problem == ''
    assert db.written == ['a0', 'a1', 'a2', 'b0', 'b1']


def test_the_open_batch_is_kept_as_it_fills_and_max_kept_bounds_what_waits(log):
    plog, db = log
    plog.batch_rows, plog.max_kept = 10, 25
    plog.log(request_id='first', **ROW)
    wait_until(lambda: plog._kept)
    for i in range(60):
        plog.log(request_id=f'r{i}', **ROW)
        assert plog.pending() <= plog.max_kept + plog.batch_rows
    assert plog.errors >= 61 - plog.max_kept - plog.batch_rows and plog.errors + plog.pending() == 61
    lost = plog.errors
    db.state = 'up'
    assert plog.flush(5) and plog.errors == lost
    assert db.written == [f'r{i}' for i in range(60)][-len(db.written) :]  # the newest, in order


def test_close_writes_what_is_kept_once_the_database_is_back(log):
    plog, db = log
    for i in range(5):
        plog.log_many([dict(ROW, request_id=f'c{i}-{j}') for j in range(400)])
        wait_until(lambda: plog.pending() == 400 * (i + 1) and not plog._open.rows)
    db.state, db.seconds = 'up', 0.3  # 1.5 s to write them all: longer than the wait for a failing database
    plog.close()  # (not cut short: the database writes)
    assert plog.errors == 0 and plog.pending() == 0 and len(db.written) == 2000


@pytest.mark.filterwarnings('ignore::pytest.PytestUnhandledThreadExceptionWarning')  # (the bug, on purpose)
def test_a_writer_that_dies_leaves_no_row_waiting(log):
    "A bug that ends the writer thread (here, in the probe) fails the rows it held, and those logged after it at once."
    plog, db = log

    def broken():
        raise RuntimeError('a bug')

    plog.store.probe = broken
    plog.log(request_id='a', **ROW)
    wait_until(lambda: not plog._thread.is_alive())
    p = plog.log(request_id='b', **ROW)
    assert p.done and plog.flush(1) and plog.errors == 2 and plog.pending() == 0
    with pytest.raises(LogFailed, match='closed'):
        p.check()


@pytest.fixture
def sqlite_log(tmp_path):
    "Makes a batched log on a real SQLite database in `tmp_path` (the tests below); closed after the test."
    made = []

    def make(**kw) -> PredictionLog:
        made.append(PredictionLog(f'sqlite:///{tmp_path}/p.db', durable=False, **kw))
        return made[-1]

    yield make
    for plog in made:
        plog.close()


def test_a_first_row_the_database_refuses_fails_alone_and_the_rows_behind_it_are_written(sqlite_log):
    "A real SQLite log: the batch's first row breaks a constraint (no request ID); the probe answers, so it is the row."
    plog = sqlite_log(interval_s=0.01)
    first, *rest = plog.log_many([dict(ROW, request_id=None)] + [dict(ROW, request_id=f'g{i}') for i in range(3)])
    assert plog.flush(5) and plog.errors == 1 and plog.problem == ''
    with pytest.raises(LogFailed, match='IntegrityError'):
        first.check()
    for p in rest:
        p.check()
    assert read_log(plog).request_id.tolist() == ['g0', 'g1', 'g2']


def test_closing_writes_a_lingering_batch_at_once(sqlite_log):
    "A batch waiting its interval for more rows is written when the log closes, not after the interval."
    plog = sqlite_log(interval_s=60)
    plog.log(request_id='last', **ROW)
    wait_until(lambda: plog._want)  # (the writer lingers for more rows)
    start = time.monotonic()
    plog.close()
    assert time.monotonic() - start < 30 and plog.pending() == 0 and read_log(plog).request_id.tolist() == ['last']


def test_a_locked_database_fails_the_batch_on_its_own_error_with_no_probe(sqlite_log, tmp_path):
    "The first row failing alone with the database's own error (locked): the batch fails whole at once, unprobed."
    store, probes = sqlite_log(timeout_s=0.1).store, []
    store.probe = lambda: probes.append(1) or 'probed'
    rows = [_encoded(dict(ROW, request_id=f'r{i}')) for i in range(3)]
    with closing(sqlite3.connect(tmp_path / 'p.db')) as other:
        other.execute('BEGIN IMMEDIATE')  # another writer holds the database
        error, failed = store.write(rows)
        other.rollback()
    assert error.startswith('OperationalError') and 'locked' in error and failed == {} and probes == []


def test_a_table_that_refuses_every_row_fails_the_batch_whole_and_says_so(sqlite_log, tmp_path):
    "Every row refused (a trigger) while the database answers probes: the table's fault, the log's problem."
    plog = sqlite_log(interval_s=0.01)
    with closing(sqlite3.connect(tmp_path / 'p.db')) as db, db:
        db.execute("CREATE TRIGGER refuse BEFORE INSERT ON predictions BEGIN SELECT RAISE(ABORT, 'refused'); END")
    inserts, insert = [], plog.store._insert
    plog.store._insert = lambda rows, *a, **k: inserts.append(len(rows)) or insert(rows, *a, **k)
    rows = [_encoded(dict(ROW, request_id=f'r{i}')) for i in range(50)]
    assert plog.store.write(rows) == ('IntegrityError: refused', {})
    assert inserts[:4] == [50, 50, 1, 49] and len(inserts) == 3 + 2 * 49 - 1  # the batch twice, row 0, the rest halved
    plog.log_many([dict(ROW, request_id=f'r{i}') for i in range(3)])
    wait_until(lambda: plog.problem == 'IntegrityError: refused')


def test_bad_rows_side_by_side_fail_alone_and_the_good_ones_are_written(sqlite_log, tmp_path):
    "Two rows refused the same way at the batch's head (a 'bad' key) do not take the good rows behind them down."
    plog = sqlite_log(interval_s=0.01)
    with closing(sqlite3.connect(tmp_path / 'p.db')) as db, db:
        db.execute(
            "CREATE TRIGGER refuse BEFORE INSERT ON predictions WHEN NEW.request_id LIKE 'bad%' "
            "BEGIN SELECT RAISE(ABORT, 'refused'); END"
        )
    ids = ['bad0', 'bad1', *(f'g{i}' for i in range(6)), 'bad2', 'g6']
    error, failed = plog.store.write([_encoded(dict(ROW, request_id=i)) for i in ids])
    assert error is None and failed == {
        0: 'IntegrityError: refused',
        1: 'IntegrityError: refused',
        8: 'IntegrityError: refused',
    }
    assert read_log(plog).request_id.tolist() == [i for i in ids if not i.startswith('bad')]


class OperationalError(Exception):
    "Named as the drivers name the database's own errors (locked, unreachable)."


class IntegrityError(Exception):
    "Named as the drivers name a row's."


def test_the_database_failing_during_a_split_fails_what_is_not_in_or_the_batch_when_nothing_is(sqlite_log):
    "A stand-in insert: a part with a bad row is refused; else the database is locked once `locks_after` rows are in."
    store = sqlite_log().store
    store.probe = lambda: ''
    bad_row, lock = 'IntegrityError: refused', 'OperationalError: database is locked'

    def run(locks_after: int, bad: set) -> tuple:
        done, locked = [], []

        def insert(rows, *a, **k):
            if bad & {r[0] for r in rows}:
                raise IntegrityError('refused')
            if len(done) >= locks_after:
                locked.append(len(rows))
                raise OperationalError('database is locked')
            done.extend(r[0] for r in rows)

        store._insert = insert
        return store.write([(f'r{i}',) for i in range(6)]), done, len(locked)

    # rows in, then the lock: the rows not in fail with it (those in a part still to try too), and nothing more is tried
    assert run(locks_after=2, bad={'r2'}) == ((None, {2: bad_row, 3: lock, 4: lock, 5: lock}), ['r0', 'r1'], 1)
    assert run(locks_after=1, bad={'r1'}) == ((None, {1: bad_row, 2: lock, 3: lock, 4: lock, 5: lock}), ['r0'], 1)
    # a bad first row, then a part in, then the lock: what went in is not failed
    assert run(locks_after=2, bad={'r0', 'r3'}) == ((None, {0: bad_row, 3: bad_row, 4: lock, 5: lock}), ['r1', 'r2'], 1)
    # a bad first row (the probe answers), then the lock before anything is in: the batch fails whole
    assert run(locks_after=0, bad={'r0'}) == ((lock, {}), [], 1)


def test_threads_wait_for_their_batch_and_one_settled_already_makes_no_event():
    "A batch holds no event until a thread waits (a server makes thousands a second): waiting threads still wake."
    from lifecycle.serve.predlog import Pending, _Batch

    b = _Batch()
    woke = []
    waiters = [threading.Thread(target=lambda: woke.append(b.wait(10))) for _ in range(3)]
    for t in waiters:
        t.start()
    wait_until(lambda: b._event is not None, timeout=5)
    b.settle(None, {})
    for t in waiters:
        t.join(timeout=5)
    assert woke == [True, True, True] and Pending(b, 0).done
    Pending(b, 0).wait(timeout=0)  # stored: no error

    gone = _Batch()
    gone.settle('the database is locked', {1: 'a bad row'})
    assert gone.wait(0) and gone._event is None
    with pytest.raises(LogFailed, match='the database is locked'):
        Pending(gone, 0).wait(timeout=1)

    open_ = _Batch()
    assert not open_.wait(0.05) and not Pending(open_, 0).done
    with pytest.raises(LogFailed, match='not committed within 0.05 s'):
        Pending(open_, 0).wait(timeout=0.05)


def test_a_database_failing_on_and_off_is_said_six_times_a_minute_then_with_how_many_changes_were_not(tmp_path, caplog):
    "The server's output says when the log starts failing and writes again; a flapping database does not flood it."
    log = PredictionLog(f'sqlite:///{tmp_path}/p.db', durable=False)
    now = [1000.0]
    log._clock = lambda: now[0]
    try:
        with caplog.at_level('WARNING', logger='lifecycle.serving'):
            for i in range(20):  # 20 changes within a minute
                log.problem = 'OperationalError: database is locked' if i % 2 == 0 else ''
                now[0] += 1
            said = [m for m in caplog.messages if m.startswith('prediction log: ')]
            assert len(said) == 6 and 'cannot be written' in said[0] and said[1] == 'prediction log: writing again'
            log.problem = ''  # (the same state again: not a change; the minute is not over)
            assert len([m for m in caplog.messages if m.startswith('prediction log: ')]) == 6
            now[0] += 60
            log.problem = ''  # the minute is over: the state now, and how many changes were not said
            said = [m for m in caplog.messages if m.startswith('prediction log: ')]
            assert len(said) == 7
            assert said[-1] == (
                'prediction log: writing again (14 changes between failing and writing before this were not shown)'
            )
            log.problem = 'OperationalError: database is locked'  # an ordinary change again: said as it comes
            assert caplog.messages[-1] == 'prediction log: cannot be written (OperationalError: database is locked)'
    finally:
        log.close()
