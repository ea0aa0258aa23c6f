"""The durable prediction log's journals, in the server's and the writer's own terms (`Journals` and `_Tail` on a
temporary SQLite file, no process): a journal replaced when it grows past its size or is damaged, and deleted once its
rows are in; rows waiting for a locked database, refused past the limit; another server's dead journal replayed by a
rescan, and a dead server's journal going in once whether its own writer or another gets there first; a log whose
journal directory is unusable committing each group instead; two servers on one database (a server's two workers)
under load, one's writer killed."""

from __future__ import annotations
import os
import signal
import sqlite3
import threading
import time
from pathlib import Path
import orjson
import pytest
from lifecycle.serve import journal as jr
from lifecycle.serve import predlog as P
from lifecycle.serve import writer as W
from lifecycle.serve.journal import Journal, Journals, records
from lifecycle.serve.predlog import LogFailed, PredictionLog, journal_dir, read_log

ROW = dict(ts=1.0, route='predict', variant='control', model_version='1', inputs={'age': [30]}, status=200)


def rows(prefix: str, n: int) -> list[list]:
    "`n` rows as the writer decodes them from a frame."
    return [list(P._encoded(dict(ROW, request_id=f'{prefix}{i}'))) for i in range(n)]


def stored(db: Path) -> list[str]:
    with sqlite3.connect(db) as c:
        return [r for (r,) in c.execute('SELECT request_id FROM predictions ORDER BY id')]


@pytest.fixture
def pair(tmp_path):
    """A server's journals (`Journals`) and its writer's end of them (`_Tail`) on a fresh database (the store not
    durable: the writer's inserts are unsynced)."""
    url = f'sqlite:///{tmp_path}/p.db'
    store = P._Store(url, None, durable=False, timeout_s=0.2)
    a, t = Journals(journal_dir(url)), W._Tail(store, journal_dir(url), journal_s=0.05, probe_s=0.1)
    yield a, t, tmp_path / 'p.db'
    a.close()
    store.close()


def group(prefix: str, n: int) -> bytes:
    "One journal record: a group of `n` rows, as the server appends it."
    return orjson.dumps(rows(prefix, n))


def sent(a: Journals, t: W._Tail) -> None:
    "What the server's frames would tell the writer: how far each journal is."
    for name, end, replaced in a.positions():
        t.note(name, end, 1, replaced)


def synced(a: Journals, t: W._Tail) -> bool:
    "The writer puts what it was told into the database; the server releases the journals it deleted."
    sent(a, t)
    ok = t.apply()
    a.done(t.deleted)
    t.deleted = []
    return ok


def test_a_journal_past_its_size_is_replaced_and_deleted_once_its_rows_are_in(pair, monkeypatch):
    a, t, db = pair
    monkeypatch.setattr(jr, '_ROTATE_BYTES', 400)
    first = a.current
    assert a.append(group('a', 5)) == first.end > 400 and a.current is not first
    assert [r for _, _, r in a.positions()] == [True, False]  # the first replaced, held until deleted
    assert synced(a, t) and not first.path.exists() and list(a.held) == [a.current.name]
    a.append(group('b', 2))
    assert synced(a, t)
    assert stored(db) == [f'a{i}' for i in range(5)] + ['b0', 'b1']  # each row once
    with sqlite3.connect(db) as c:
        positions = dict(c.execute('SELECT name, applied FROM prediction_log_journal'))
    assert positions[a.current.name] == a.current.end and positions[first.name] < 0  # (deleted: marked so)


def test_a_damaged_journal_is_replaced_and_its_refused_rows_never_reach_the_database(pair, monkeypatch):
    a, t, db = pair
    a.append(group('ok', 1))
    damaged = a.current
    real, calls = jr._pwrite_all, []

    def failing(fd, data, at):  # the group's bytes half written, then the disk fails (and zeroing them fails too)
        calls.append(at)
        if fd == damaged.fd and len(calls) <= 2:
            real(fd, data[: len(data) // 2], at)
            raise OSError(5, 'Input/output error')
        return real(fd, data, at)

    monkeypatch.setattr(jr, '_pwrite_all', failing)
    with pytest.raises(OSError, match='Input/output error'):
        a.append(group('refused', 3))
    assert damaged.damaged and a.current is not damaged and damaged.name in a.held  # a new journal from here on
    a.append(group('next', 1))
    assert synced(a, t)
    assert stored(db) == ['ok0', 'next0'] and not damaged.path.exists() and list(a.held) == [a.current.name]


def test_a_damaged_journal_released_by_a_dying_server_is_replayed_without_its_refused_rows(pair, monkeypatch):
    a, t, db = pair
    a.append(group('ok', 1))
    damaged, real = a.current, jr._pwrite_all

    def failing(fd, data, at):  # the whole group written, then the disk fails (and zeroing it fails too)
        real(fd, data, at)
        if fd == damaged.fd and at == damaged.end:
            raise OSError(5, 'Input/output error')

    monkeypatch.setattr(jr, '_pwrite_all', failing)
    with pytest.raises(OSError):
        a.append(group('refused', 2))
    monkeypatch.setattr(jr, '_pwrite_all', real)
    assert damaged.damaged and damaged.path.stat().st_size == damaged.end  # the file ends before the refused rows
    a.close()  # the server dies before its writer heard of any of it
    t.drain(wait_s=0)
    assert stored(db) == ['ok0'] and list(t.directory.glob('*.journal')) == []


def test_a_journal_replaced_before_its_first_record_is_deleted_and_released(pair):
    a, t, _ = pair
    empty = a.current
    a._replace()  # (as when its first append failed)
    sent(a, t)
    assert t.apply() and t.deleted == [empty.name] and not empty.path.exists()
    a.done(t.deleted)
    assert empty.fd == -1 and list(a.held) == [a.current.name]


def test_rows_wait_in_the_journal_for_a_locked_database_and_are_refused_past_the_limit(tmp_path, monkeypatch):
    monkeypatch.setattr(P, '_MAX_WAITING', 4)
    url = f'sqlite:///{tmp_path}/p.db'
    log = PredictionLog(url, process=True, timeout_s=0.1, probe_s=0.1, journal_s=0.01)
    try:
        log.log(**ROW, request_id='first').wait(30)
        assert log.flush(30)  # (the database exists, with its tables)
        holder = sqlite3.connect(tmp_path / 'p.db', isolation_level=None, timeout=0.1)
        holder.execute('BEGIN EXCLUSIVE')
        try:
            for p in log.log_many([dict(ROW, request_id=f'w{i}') for i in range(4)]):
                p.wait(30)  # answered: in the journal
            end = time.monotonic() + 30
            while 'locked' not in log.problem:  # the writer cannot put them in, and says so
                assert time.monotonic() < end
                time.sleep(0.01)
            with pytest.raises(LogFailed, match='the prediction log is behind: 4 rows wait for the database'):
                log.log(**ROW, request_id='x').wait(30)
        finally:
            holder.execute('ROLLBACK')
            holder.close()
        assert log.flush(30) and log.problem == ''
        log.log(**ROW, request_id='after').wait(30)  # none waits any more: taken again
    finally:
        log.close()
    assert stored(tmp_path / 'p.db') == ['first', 'w0', 'w1', 'w2', 'w3', 'after']


def test_a_rescan_replays_another_servers_dead_journal(pair):
    a, t, db = pair
    other = Journal(t.directory)  # another worker ...
    other.append([W.orjson.dumps(rows('o', 3))])
    other.close()  # ... killed: its lock released, its journal left
    assert other.path.exists()
    t.scanned = time.monotonic() - W._RESCAN_S
    assert t.rescan_due()
    t.rescan()
    assert t.replayed == '' and not other.path.exists() and stored(db) == ['o0', 'o1', 'o2']
    t.rescan()  # nothing twice
    assert stored(db) == ['o0', 'o1', 'o2']


@pytest.mark.parametrize('first', ['tail', 'replay'])
def test_a_dead_servers_journal_goes_in_once_whether_its_writer_or_another_gets_there_first(pair, first):
    """A server dies: its writer still holds positions of its journal while another worker's writer replays it. Each
    insert takes the journal on from where the database has it, so whichever comes second inserts nothing twice."""
    a, t, db = pair
    a.append(group('d', 3))
    sent(a, t)  # told, not yet inserted
    a.append(group('e', 2))  # journaled and answered; its frame never sent
    a.close()  # the server dies
    if first == 'tail':
        assert t.apply() and stored(db) == ['d0', 'd1', 'd2']
    other = W._Tail(t.store, t.directory, journal_s=0.05, probe_s=0.1)  # a writer starting replays it
    assert other.replayed == '' and stored(db) == ['d0', 'd1', 'd2', 'e0', 'e1']
    if first == 'replay':
        assert t.apply()  # deleted meanwhile: nothing of it goes in again
    t.drain(wait_s=0)
    assert stored(db) == ['d0', 'd1', 'd2', 'e0', 'e1'] and list(t.directory.glob('*.journal')) == []


def test_a_writer_whose_position_moved_under_it_inserts_nothing_twice(pair):
    "Another writer put some of the journal in after this one last looked: it goes on from where the database is."
    a, t, db = pair
    a.append(group('f', 2))
    assert synced(a, t)  # (it holds the journal's position now)
    end = a.append(group('g', 2))
    data = a.current.path.read_bytes()
    [(upto, rows_g)] = list(W._groups(data, t.at[a.current.name]))
    t.store.apply(rows_g, [(a.current.name, upto)], expect=t.at[a.current.name])  # another writer got there first
    assert upto == end and synced(a, t) and stored(db) == ['f0', 'f1', 'g0', 'g1']


def test_a_replay_that_finds_the_journal_moving_leaves_it_to_its_writer_without_a_problem(pair, monkeypatch):
    a, t, db = pair
    a.append(group('h', 1))
    assert synced(a, t)
    a.append(group('i', 1))
    a.close()  # the server died; its writer is still putting the journal in ...
    stale = t.store.applied
    monkeypatch.setattr(t.store, 'applied', lambda name: 0)  # ... as this replay read where the database had it
    assert W._replay(t.store, t.directory) == '' and a.current.path.exists()  # a conflict: not a problem, left
    monkeypatch.setattr(t.store, 'applied', stale)
    assert W._replay(t.store, t.directory) == '' and not a.current.path.exists()
    assert stored(db) == ['h0', 'i0']


def test_a_writer_of_this_version_commits_the_row_frames_of_a_server_started_before_it(tmp_path):
    "A server started before its journals moved into it sends rows (its config has no `positions`): each is committed."
    import pickle
    import subprocess
    import sys

    url = f'sqlite:///{tmp_path}/p.db'
    cfg = dict(url=url, mask=None, durable=True, timeout_s=5, checkpoint_s=0.25, probe_s=0.1,
               journal=str(journal_dir(url)), journal_s=0.05)  # fmt: skip
    frames = P._frame(pickle.dumps(cfg)) + P._frame(orjson.dumps([1, rows('old', 2)]))
    done = subprocess.run([sys.executable, '-c', P._WRITER], input=frames, capture_output=True, timeout=60)
    acks = [orjson.loads(line) for line in done.stdout.splitlines()]
    assert done.returncode == 0, done.stderr
    assert acks[1] == {'upto': 1, 'error': None, 'failed': {}, 'problem': '', 'applied': 1}  # committed, then acked
    assert stored(tmp_path / 'p.db') == ['old0', 'old1']


def test_an_insert_expecting_another_position_changes_nothing(tmp_path):
    store = P._Store(f'sqlite:///{tmp_path}/p.db', None, durable=False)
    try:
        store.apply(rows('a', 2), [('j', 10)], expect=0)
        with pytest.raises(P.Conflict, match='journal j is not at offset 0'):
            store.apply(rows('b', 2), [('j', 20)], expect=0)
        assert store.applied('j') == 10 and stored(tmp_path / 'p.db') == ['a0', 'a1']
        store.apply(rows('c', 1), [('j', 20)], expect=10)  # the connection is fine after a conflict
        assert store.applied('j') == 20 and stored(tmp_path / 'p.db') == ['a0', 'a1', 'c0']
    finally:
        store.close()


def test_a_writer_whose_journal_directory_is_unusable_commits_each_group(tmp_path):
    url = f'sqlite:///{tmp_path}/p.db'
    journal_dir(url).write_text('a file where the journals would go')
    log = PredictionLog(url, process=True)
    try:
        for p in log.log_many([dict(ROW, request_id=f'u{i}') for i in range(3)]):
            p.wait(30)
        assert stored(tmp_path / 'p.db') == ['u0', 'u1', 'u2'] and log.problem == ''  # committed before answered
        assert list(read_log(log).request_id) == ['u0', 'u1', 'u2']
    finally:
        log.close()


def test_records_never_read_past_the_zero_filled_rest(tmp_path):
    j = Journal(tmp_path / 'j')
    j.append([b'[1]'])
    data = j.path.read_bytes()
    assert len(data) == 1 << 20 and [p for _, p in records(data)] == [b'[1]']  # a megabyte ahead, zeros after it
    j.remove()


def test_two_writers_on_one_database_lose_and_repeat_nothing_when_one_is_killed(tmp_path):
    """A server's workers each have a writer process and a journal, in one directory. Both take rows in groups while
    the first one's writer is killed (it inserts its rows once a second: most answered ones are in the journal only);
    that log goes on journaling and starts another writer, which is told how far the journal is and puts in what the
    dead one had not, while a third log's writer starts and looks for dead servers' journals. Every row is answered
    and in the database once, and no journal is left."""
    url = f'sqlite:///{tmp_path}/p.db'
    logs = [PredictionLog(url, process=True, probe_s=0.1, journal_s=s) for s in (1, 0.05)]
    acked, target = [[], []], 300

    def send(k: int) -> None:
        i = 0
        while i < target:
            ids = [f'w{k}-{i + j}' for j in range(1 + i % 3)]  # groups of 1 to 3 rows
            i += len(ids)
            for rid, p in zip(ids, logs[k].log_many([dict(ROW, request_id=r) for r in ids])):
                try:
                    p.wait(30)
                    acked[k].append(rid)
                except LogFailed:  # (none: journaling needs no writer)
                    pass

    threads = [threading.Thread(target=send, args=(k,)) for k in range(2)]
    try:
        for t in threads:
            t.start()
        deadline = time.monotonic() + 60
        while len(acked[0]) < 60 and time.monotonic() < deadline:
            time.sleep(0.005)
        os.kill(logs[0]._writer.child.proc.pid, signal.SIGKILL)
        logs.append(PredictionLog(url, process=True, probe_s=0.1))
        logs[2].log(**ROW, request_id='third').wait(30)
        acked.append(['third'])
        for t in threads:
            t.join(120)
        assert not any(t.is_alive() for t in threads)
    finally:
        for log in logs:
            log.close()
    got = list(read_log(url).request_id)
    assert len(got) == len(set(got))  # nothing twice
    assert set().union(*acked) <= set(got)  # nothing acknowledged lost
    assert len(acked[0]) >= target and len(acked[1]) >= target and logs[0].errors == 0  # nothing refused
    assert list(journal_dir(url).glob('*.journal')) == []


def test_the_old_path_of_writer_main_resolves_to_the_writer_module_with_a_warning():
    "A server started before the writer moved to its own module starts its writer by the old path."
    with pytest.warns(DeprecationWarning, match='lifecycle.serve.writer'):
        assert P.writer_main is W.writer_main
    with pytest.raises(AttributeError):
        P.no_such_name
