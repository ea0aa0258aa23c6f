"""The durable prediction log's journal, in the writer's own terms (`_Journaled` on a temporary SQLite file, no server):
a journal replaced when it grows past its size or is damaged, and deleted once its rows are in; rows refused when too
many wait for a locked database; another writer's dead journal replayed by a rescan; a writer whose journal directory
is unusable committing each group instead; two writers on one database (a server's two workers) under load, one of them
killed; and how long a server's startup waits for its writer."""

from __future__ import annotations
import asyncio
import contextlib
import errno
import fcntl
import os
import random
import signal
import sqlite3
import threading
import time
from pathlib import Path
import pytest
from conftest import wait_until
from lifecycle.serve import journal as jr
from lifecycle.serve import predlog as P
from lifecycle.serve import writer as W
from lifecycle.serve.journal import Journal, records
from lifecycle.serve.predlog import LogFailed, PredictionLog, journal_dir, read_log

ROW = dict(ts=1.0, route='predict', variant='control', model_version='1', inputs={'age': [30]}, status=200)


def rows(prefix: str, n: int) -> list[list]:
    "`n` rows as the writer decodes them from a frame."
    return [list(P._encoded(dict(ROW, request_id=f'{prefix}{i}'))) for i in range(n)]


def stored(db: Path) -> list[str]:
    with sqlite3.connect(db) as c:
        return [r for (r,) in c.execute('SELECT request_id FROM predictions ORDER BY id')]


@pytest.fixture
def writer(tmp_path):
    "A journaled writer's state on a fresh database (the store not durable: its inserts are unsynced, as the writer's)."
    url = f'sqlite:///{tmp_path}/p.db'
    store = P._Store(url, None, durable=False, timeout_s=0.2)
    w = W._Journaled(store, Journal(journal_dir(url)), journal_s=0.05, probe_s=0.1)
    yield w, tmp_path / 'p.db'
    w.close()
    store.close()


def test_a_journal_past_its_size_is_replaced_and_deleted_once_its_rows_are_in(writer, monkeypatch):
    w, db = writer
    monkeypatch.setattr(W, '_ROTATE_BYTES', 400)
    first = w.journal
    assert w.append(rows('a', 5)) == (None, {}) and first.end > 400
    assert w.apply() and w.journal is not first and not first.path.exists() and w.retired == []
    assert w.append(rows('b', 2)) == (None, {}) and w.apply()
    assert stored(db) == [f'a{i}' for i in range(5)] + ['b0', 'b1']  # each row once
    with sqlite3.connect(db) as c:
        assert dict(c.execute('SELECT name, applied FROM prediction_log_journal')) == {w.journal.name: w.journal.end}


def test_a_damaged_journal_is_retired_and_its_refused_rows_never_reach_the_database(writer, monkeypatch):
    w, db = writer
    assert w.append(rows('ok', 1)) == (None, {})
    damaged = w.journal
    real, calls = jr._pwrite_all, []

    def failing(fd, data, at):  # the group's bytes half written, then the disk fails (and zeroing them fails too)
        calls.append(at)
        if fd == damaged.fd and len(calls) <= 2:
            real(fd, data[: len(data) // 2 // damaged.align * damaged.align], at)  # (whole blocks: direct I/O)
            raise OSError(5, 'Input/output error')
        return real(fd, data, at)

    monkeypatch.setattr(jr, '_pwrite_all', failing)
    error, _ = w.append(rows('refused', 3))
    assert 'cannot be written' in error and 'Input/output error' in error
    assert damaged.damaged and w.retired == [damaged] and w.journal is not damaged  # a new journal from here on
    assert w.append(rows('next', 1)) == (None, {}) and w.apply()
    assert stored(db) == ['ok0', 'next0'] and not damaged.path.exists() and w.retired == []


def test_rows_are_refused_while_too_many_wait_for_a_locked_database(writer, monkeypatch):
    w, db = writer
    monkeypatch.setattr(W, '_MAX_WAITING', 4)
    holder = sqlite3.connect(db, isolation_level=None, timeout=0.1)
    holder.execute('BEGIN EXCLUSIVE')
    try:
        assert w.append(rows('w', 4)) == (None, {})
        assert not w.apply() and 'locked' in w.problem  # the rows wait in the journal
        error, _ = w.append(rows('x', 1))
        assert error == 'the prediction log is behind: 4 rows wait for the database'
    finally:
        holder.execute('ROLLBACK')
        holder.close()
    assert w.apply() and w.problem == '' and stored(db) == [f'w{i}' for i in range(4)]


def test_a_rescan_replays_another_writers_dead_journal(writer):
    w, db = writer
    other = Journal(w.directory)  # another worker's writer ...
    other.append([W.orjson.dumps(rows('o', 3))])
    other.close()  # ... killed: its lock released, its journal left
    assert other.path.exists()
    w.scanned = time.monotonic() - W._RESCAN_S
    assert w.rescan_due()
    w.rescan()
    assert w.replayed == '' and not other.path.exists() and stored(db) == ['o0', 'o1', 'o2']
    w.rescan()  # nothing twice
    assert stored(db) == ['o0', 'o1', 'o2']


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


@pytest.mark.slow
def test_two_writers_on_one_database_lose_and_repeat_nothing_when_one_is_killed(tmp_path):
    """A server's workers each have a writer process and a journal, in one directory. Both take rows in groups while
    the first one's writer is killed (it inserts its rows once a second: most acknowledged ones are in its journal
    only); that log starts another writer, which replays the dead journal, racing a third log's writer starting at the
    same time. Every acknowledged row is in the database once, and no journal is left."""
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
                except LogFailed:  # held by the killed writer: not answered, so not owed
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
    assert len(acked[0]) >= target - 3 and len(acked[1]) >= target  # only the group the killed writer held failed
    assert list(journal_dir(url).glob('*.journal')) == []


def test_the_old_path_of_writer_main_resolves_to_the_writer_module_with_a_warning():
    "A server started before the writer moved to its own module starts its writer by the old path."
    with pytest.warns(DeprecationWarning, match='lifecycle.serve.writer'):
        assert P.writer_main is W.writer_main
    with pytest.raises(AttributeError):
        P.no_such_name


def test_started_ends_at_its_timeout_or_when_the_writer_it_waits_for_dies(tmp_path, monkeypatch):
    "What a server's startup waits on (`PredictionLog.started`): the writer started now, at most `timeout` s."
    monkeypatch.setattr(P, '_WRITER', 'import time; time.sleep(2); ' + P._WRITER)  # a writer that starts slowly
    log = PredictionLog(f'sqlite:///{tmp_path}/p.db', process=True, probe_s=0.1)

    async def run() -> float:
        log.attach(asyncio.get_running_loop())
        child = log._writer.child
        assert await log.started(timeout=0.2) is False and not child.ready  # still starting: the timeout ends it
        waiting = asyncio.create_task(log.started(timeout=30))
        await asyncio.sleep(0.05)
        t0 = time.monotonic()
        os.kill(child.proc.pid, signal.SIGKILL)
        assert await waiting is True  # its death ends the wait, not the writer started after it
        return time.monotonic() - t0

    try:
        assert asyncio.run(run()) < 5
        assert 'exited' in log.problem
    finally:
        log.close()


def test_poll_settles_on_the_loop_what_the_writer_acknowledged_before_the_loop_turns(tmp_path):
    "A server's batch reads the acknowledgements that came meanwhile (`poll`): answers go before the loop's next turn."
    log = PredictionLog(f'sqlite:///{tmp_path}/p.db', process=True, probe_s=0.1)

    def acknowledged(child, timeout: float = 10) -> bool:  # the writer's line is in the pipe, not yet read
        import select

        return bool(select.select([child.inp], [], [], timeout)[0])

    async def run() -> None:
        loop = asyncio.get_running_loop()
        log.attach(loop)
        assert await log.started()
        pending = log.log(**dict(ROW, request_id='r1'))
        child = log._writer.child
        assert acknowledged(child)  # (this coroutine holds the loop: its reader of the pipe cannot run)
        assert not pending.done
        other = threading.Thread(target=log.poll)  # on another thread: nothing is read
        other.start()
        other.join()
        assert not pending.done
        log.poll()
        assert pending.done
        pending.check()
        assert child.inflight == {}

    try:
        asyncio.run(run())
    finally:
        log.close()


@pytest.mark.slow
@pytest.mark.parametrize('raising', [False, True], ids=['plain', 'a-waiter-raises'])
def test_poll_finds_a_dead_writer_fails_what_it_held_and_the_next_row_starts_another(tmp_path, raising):
    """Seen by `poll` (the loop's reader not run): the writer's death fails its rows, its pipes are released (else the
    loop would find its end of output readable at every turn) and the next row goes to a new one; all of that too when
    the first row's waiter raises as it is failed, the exception going on after."""
    log = PredictionLog(f'sqlite:///{tmp_path}/p.db', process=True, probe_s=0.1)

    async def run() -> None:
        loop = asyncio.get_running_loop()
        log.attach(loop)
        assert await log.started()
        child = log._writer.child
        os.kill(child.proc.pid, signal.SIGSTOP)  # (stopped: the rows wait in the pipe, then they die with it)
        first = log.log(**dict(ROW, request_id='first'))
        if raising:
            assert first.when_settled(loop, lambda e: (_ for _ in ()).throw(Stop()))
        held = log.log(**dict(ROW, request_id='held'))
        os.kill(child.proc.pid, signal.SIGKILL)
        child.proc.wait(10)
        with pytest.raises(Stop) if raising else contextlib.nullcontext():
            log.poll()
        assert child.dead and first.done and held.done
        with pytest.raises(LogFailed, match='writer process exited'):
            held.check()
        await asyncio.sleep(0.05)  # (its pipes are released on the loop's next turn)
        assert child.proc.stdout.closed and child.proc.stdin.closed
        after = log.log(**dict(ROW, request_id='after'))
        assert log._writer.child is not child
        await after.wait_async(10)

    try:
        asyncio.run(run())
        assert set(read_log(log).request_id) == {'after'}
    finally:
        log.close()


class Stop(BaseException):
    "What a waiter raises that `except Exception` does not catch (an interrupt, say)."


@pytest.mark.slow
def test_a_waiter_that_raises_leaves_no_other_frame_or_acknowledgement_unapplied(tmp_path):
    """The writer's acknowledgements read together, the first frame's waiter raising as it is settled: the frames and
    lines after it are still applied, then the exception goes on (a row waiting for a line dropped with it would wait
    for its deadline, and its request be refused)."""
    import termios

    # (no insert for 3 s, then at close: until then the only lines are the groups' acknowledgements)
    log = PredictionLog(f'sqlite:///{tmp_path}/p.db', process=True, probe_s=0.1, journal_s=3)

    def in_pipe(child) -> int:  # bytes of acknowledgements waiting to be read
        n = bytearray(4)
        fcntl.ioctl(child.inp, termios.FIONREAD, n)
        return int.from_bytes(n, 'little')

    def grows(child, past: int) -> int:
        deadline = time.monotonic() + 10
        while (n := in_pipe(child)) <= past and time.monotonic() < deadline:
            time.sleep(0.01)
        return n

    async def run() -> None:
        loop = asyncio.get_running_loop()
        log.attach(loop)
        assert await log.started()
        child = log._writer.child
        first = log.log(**dict(ROW, request_id='first'))  # (this coroutine holds the loop: nothing reads the pipe)
        assert first.when_settled(loop, lambda e: (_ for _ in ()).throw(Stop()))
        one = grows(child, 0)
        second, third = log.log_many([dict(ROW, request_id='second'), dict(ROW, request_id='third')])
        assert grows(child, one) > one  # its acknowledgement is a line of its own, after the first's
        with pytest.raises(Stop):
            log.poll()
        assert first.done and second.done and third.done and child.inflight == {}
        first.check(), second.check(), third.check()

        os.kill(child.proc.pid, signal.SIGSTOP)  # two frames in the pipe at once: one group, one acknowledgement
        try:
            fourth = log.log(**dict(ROW, request_id='fourth'))
            assert fourth.when_settled(loop, lambda e: (_ for _ in ()).throw(Stop()))
            fifth = log.log(**dict(ROW, request_id='fifth'))
        finally:
            os.kill(child.proc.pid, signal.SIGCONT)
        grows(child, 0)
        with pytest.raises(Stop):
            log.poll()
        assert fourth.done and fifth.done and child.inflight == {}
        fifth.check()

    try:
        asyncio.run(run())
    finally:
        log.close()


def _direct_block(folder: Path) -> int:
    "The block a direct write takes in `folder` (512 on this machine's ext4; 4096 on some disks), 1 if none (tmpfs?)."
    import mmap

    fd = os.open(folder / 'probe', os.O_RDWR | os.O_CREAT)
    try:
        fcntl.fcntl(fd, fcntl.F_SETFL, fcntl.fcntl(fd, fcntl.F_GETFL) | os.O_DIRECT)
        with mmap.mmap(-1, 4096) as block:
            for size in (512, 4096):
                try:
                    if os.pwrite(fd, memoryview(block)[:size], 0) == size:
                        return size
                except OSError:
                    pass
        return 1
    except OSError:
        return 1
    finally:
        os.close(fd)
        (folder / 'probe').unlink()


def test_direct_appends_keep_every_earlier_byte_and_read_back_as_buffered_ones_do(tmp_path):
    """On a file system that takes direct I/O (this machine's ext4), a journal writes whole blocks: each append rewrites
    the part of the last block that earlier records fill. Records of every size, across block and megabyte bounds,
    read back as written, no earlier byte ever changes, and the file holds what a buffered journal's holds."""
    direct, buffered = Journal(tmp_path / 'd'), Journal(tmp_path / 'b', direct=False)
    blocks = Journal(tmp_path / 'k', direct=False)
    blocks.align = 512  # whole blocks through the page cache: the same bookkeeping, on any file system
    assert direct.align == _direct_block(tmp_path) and buffered.align == 1
    rng, written = random.Random(7), []
    for i in range(300):
        payload = rng.randbytes(rng.choice([1, 7, 500, 511, 513, 4095, 9000, 20000]))
        before = direct.path.read_bytes()[: direct.end]
        assert direct.append([payload]) == buffered.append([payload]) == blocks.append([payload])
        assert direct.path.read_bytes()[: len(before)] == before  # (the rewritten block: the same bytes)
        written.append(payload)
    assert direct.size > 1 << 20  # (it grew past its first megabyte)
    assert [p for _, p in records(direct.path.read_bytes())] == written
    assert direct.path.read_bytes() == buffered.path.read_bytes() == blocks.path.read_bytes()
    for j in (direct, buffered, blocks):
        j.remove()


def test_a_failed_direct_append_is_zeroed_in_whole_blocks_and_the_next_one_reads_back(tmp_path, monkeypatch):
    "The disk fails halfway through an append, and zeroing it again works: earlier records kept, the next one read."
    j = Journal(tmp_path / 'j')
    j.append([b'[1]' * 100])
    before, real, calls = j.path.read_bytes()[: j.end], jr._pwrite_all, []

    def failing(fd, data, at):
        calls.append(len(data))
        if len(calls) == 1:  # the append's write: half of it (whole blocks), then an I/O error
            real(fd, data[: len(data) // 2 // j.align * j.align], at)
            raise OSError(5, 'Input/output error')
        return real(fd, data, at)

    monkeypatch.setattr(jr, '_pwrite_all', failing)
    with pytest.raises(OSError, match='Input/output'):
        j.append([b'[2]' * 2000])
    assert len(calls) == 2 and not j.damaged  # zeroed again
    data = j.path.read_bytes()
    assert data[: len(before)] == before and data[len(before) : len(before) + 8000] == bytes(8000)
    monkeypatch.setattr(jr, '_pwrite_all', real)
    j.append([b'[3]'])
    assert [p for _, p in records(j.path.read_bytes())] == [b'[1]' * 100, b'[3]']
    j.remove()


def test_a_file_system_without_direct_io_gets_buffered_appends(tmp_path, monkeypatch):
    "Direct I/O refused (a write of any block size fails with EINVAL, as on a file system without it): buffered."
    real = os.pwrite

    def refusing(fd, data, at):
        if fcntl.fcntl(fd, fcntl.F_GETFL) & os.O_DIRECT:
            raise OSError(errno.EINVAL, 'Invalid argument')
        return real(fd, data, at)

    monkeypatch.setattr(os, 'pwrite', refusing)
    j = Journal(tmp_path / 'j')
    assert j.align == 1 and not fcntl.fcntl(j.fd, fcntl.F_GETFL) & os.O_DIRECT
    assert j.append([b'[1]']) == 11 and [p for _, p in records(j.path.read_bytes())] == [b'[1]']
    j.remove()


def test_rows_journaled_during_an_insert_wait_for_the_next_and_their_journal_is_kept_until_then(writer):
    """The writer journals what comes while it inserts (`between` the insert's statements). Those rows are not in that
    insert: they go in with the next; a journal retired meanwhile (here: replaced as if damaged) is deleted only
    once all it holds is in. An insert that fails keeps its rows, first, ahead of those that came during it."""
    w, db = writer
    assert w.append(rows('a', 200)) == (None, {})  # (more than one statement: `between` is called)
    first, calls = w.journal, []

    def between():
        calls.append(len(calls))
        if len(calls) == 1:
            assert w.inserting and w.rows == []  # (the batch is out of `rows`)
            assert w.append(rows('b', 2)) == (None, {})
            w._replace()

    assert w.apply(between) and calls
    assert stored(db) == [f'a{i}' for i in range(200)]
    assert w.retired == [first] and first.path.exists()  # its 'b' rows are in it only
    assert [r[P._COLS.index('request_id')] for r in w.rows] == ['b0', 'b1'] and w.inserting == []
    assert w.apply() and stored(db)[-2:] == ['b0', 'b1'] and w.retired == [] and not first.path.exists()

    assert w.append(rows('c', 100)) == (None, {})

    def failing():
        w.append(rows('d', 1))
        raise sqlite3.OperationalError('disk I/O error')

    assert not w.apply(failing) and 'disk I/O error' in w.problem
    assert [r[P._COLS.index('request_id')] for r in w.rows] == [f'c{i}' for i in range(100)] + ['d0']
    assert w.apply() and stored(db)[-101:] == [f'c{i}' for i in range(100)] + ['d0']  # each once, in order


def test_frames_that_come_during_an_insert_are_acknowledged_before_it_ends_and_not_as_applied(writer):
    """The writer's loop: a frame that comes while journaled rows are inserted is journaled and acknowledged
    (`upto`) before the insert's own acknowledgement, which says `applied` only up to the frames the insert held."""
    w, db = writer
    acks, raised = _loop_acks(w, [W.orjson.dumps([2, rows('b', 1)])])  # (frame 2 waits in the pipe: read `between`)
    assert raised is None
    assert [(a.get('upto'), a.get('applied')) for a in acks] == [(1, None), (2, None), (None, 1)]
    assert stored(db) == [f'a{i}' for i in range(150)] and len(w.rows) == 1


def _loop_acks(w, frames: list) -> tuple[list, Exception | None]:
    "`frames` come while the writer inserts the rows of frame 1 (150 rows): its acknowledgements, and what it raised."
    src_r, src_w = os.pipe()
    out_r, out_w = os.pipe()
    loop, raised = W._Writer(W._Pipe(src_r, out_w), w.store, w, probe_s=0.1), None
    try:
        loop.group([[1, rows('a', 150)]])
        os.write(src_w, b''.join(P._frame(f) for f in frames))
        try:
            loop.insert()
        except BaseException as e:
            raised = e
        return [W.orjson.loads(line) for line in os.read(out_r, 1 << 16).splitlines()], raised
    finally:
        for fd in (src_r, src_w, out_r, out_w):
            os.close(fd)


def test_a_frame_whose_rows_all_fail_during_an_insert_is_not_said_applied_before_the_insert_is(writer):
    bad = [*rows('x', 1)[0][:6], None, *rows('x', 1)[0][7:]]  # (no shadow flag: refused, never journaled)
    acks, raised = _loop_acks(writer[0], [W.orjson.dumps([2, [bad]])])
    assert raised is None and [(a.get('upto'), a.get('applied')) for a in acks] == [(1, None), (2, None), (None, 2)]
    assert acks[1]['failed'] == {'2': {'0': "column 'shadow': expected true or false"}}


def test_a_frame_the_writer_cannot_read_during_an_insert_ends_it_instead_of_failing_the_insert(writer):
    "As outside an insert: the writer ends (the server refuses what it held), not taken for the database failing."
    w, db = writer
    acks, raised = _loop_acks(w, [b'not json'])
    assert isinstance(raised, W._Broken) and not isinstance(raised, Exception)
    assert w.problem == '' and [(a.get('upto'), a.get('applied')) for a in acks] == [(1, None)]


def test_rows_being_inserted_count_toward_the_rows_a_writer_may_hold(writer, monkeypatch):
    w, db = writer
    monkeypatch.setattr(W, '_MAX_WAITING', 201)
    assert w.append(rows('a', 200)) == (None, {})
    got = []

    def between():  # (called before the 2nd, 3rd and 4th of the insert's statements of 64 rows; acts once)
        if not got:  # 200 rows being inserted, none waiting: two more fit, a third does not
            got.extend([w.append(rows('b', 2)), w.append(rows('c', 1))])

    assert w.apply(between)
    assert got == [(None, {}), ('the prediction log is behind: 202 rows wait for the database', {})]


def test_the_writer_counts_how_long_each_group_took_to_reach_the_disk_and_reports_it_when_due():
    "Each group in the bucket its time falls in (a bound is its bucket's: Prometheus's `le`); sent when due, once."
    now = [100.0]
    t = W._Timings(clock=lambda: now[0])
    for seconds in (0.0001, 0.00012, 0.004, 5):
        t.observe(seconds)
    bucket = {b: i for i, b in enumerate(P._SYNC_BOUNDS)}
    assert t.counts[bucket[0.0001]] == t.counts[bucket[0.00015]] == t.counts[bucket[0.005]] == t.counts[-1] == 1
    assert sum(t.counts) == 4 and t.seconds == pytest.approx(5.00422)
    assert t.due(1) == {'synced': [*t.counts, t.seconds]}  # (the first report: at once)
    t.observe(0.0002)
    now[0] += 0.5
    assert t.due(1) == {} and t.unsent  # (less than a second since the last)
    now[0] += 0.5
    assert t.due(1)['synced'][bucket[0.0002]] == 1 and not t.unsent
    t.observe(0.0003)
    assert t.due(0)['synced'][bucket[0.0003]] == 1  # (an insert's acknowledgement: whenever some are new)
    assert t.due(0) == {}  # (none new)


class Acks:
    "The writer's end of its pipe, keeping what it acknowledges."

    def __init__(self):
        self.sent = []

    def ack(self, **msg):
        self.sent.append(msg)


def test_an_idle_writer_reports_its_timings_within_a_second_and_at_the_end():
    "Groups timed and not yet sent keep the writer's wait for input to a second; its report then, or at the end."
    pipe = Acks()
    w = W._Writer(pipe, store=None, journaled=None, probe_s=5)
    assert w.timeout(None) is None and w.timeout(0.25) == 0.25  # (nothing to report: as long as it likes)
    w.timings.observe(0.0004)
    assert w.timeout(None) == 1 and w.timeout(0.25) == 0.25 and w.timeout(30) == 1
    w.report()
    assert pipe.sent[-1]['synced'][P._SYNC_BOUNDS.index(5e-4)] == 1 and pipe.sent[-1]['problem'] == ''
    assert w.timeout(None) is None
    w.report()
    assert len(pipe.sent) == 1  # (nothing new: nothing sent)


@pytest.mark.slow
def test_sync_times_add_up_every_group_across_a_writer_s_death(tmp_path):
    "What the server shows at /metrics: every group its writers reported putting on disk, the dead writers' too."
    log = PredictionLog(f'sqlite:///{tmp_path}/p.db', process=True, probe_s=0.1)
    try:
        assert log.sync_times() is None
        for i in range(3):
            log.log(**dict(ROW, request_id=f'r{i}')).wait(10)  # (each waited for: a group each)
        wait_until(lambda: (t := log.sync_times()) is not None and sum(t.counts) == 3)  # (the inserts' reports)
        before = log.sync_times()
        child = log._writer.child
        os.kill(child.proc.pid, signal.SIGKILL)
        wait_until(lambda: child.dead)
        log.log(**dict(ROW, request_id='after')).wait(30)
        wait_until(lambda: sum(log.sync_times().counts) == 4)
        assert log.sync_times().seconds > before.seconds > 0
    finally:
        log.close()


NO_BAD = (
    "CREATE TRIGGER no_bad BEFORE INSERT ON predictions WHEN NEW.request_id LIKE 'bad%' "
    "BEGIN SELECT RAISE(ABORT, 'no bad rows'); END"
)


def sql(db: Path, *statements: str) -> None:
    "The database's owner changing it (a trigger of theirs, say) from another connection."
    with contextlib.closing(sqlite3.connect(db)) as c:
        for s in statements:
            c.execute(s)
        c.commit()


def set_aside(w) -> list[dict]:
    path = W.set_aside_path(w.directory)
    return [W.orjson.loads(line) for line in path.read_bytes().splitlines()] if path.exists() else []


def test_journaled_rows_the_table_refuses_are_set_aside_and_the_others_go_in_with_their_journal(writer):
    w, db = writer
    assert w.append(rows('ok', 1)) == (None, {}) and w.apply()  # the table exists and takes rows
    sql(db, NO_BAD)  # then its owner adds a trigger refusing some
    batch = rows('ok', 4)[1:]
    batch[1:1] = rows('bad', 2)  # ok1, bad0, bad1, ok2, ok3
    assert w.append(batch) == (None, {})
    journal = w.journal
    assert w.apply() and w.problem == '' and w.set_aside == 2  # not retried for ever: the log goes on
    assert stored(db) == ['ok0', 'ok1', 'ok2', 'ok3']  # each other row once, in order
    kept = set_aside(w)
    assert [r['request_id'] for r in kept] == ['bad0', 'bad1'] and all('no bad rows' in r['why'] for r in kept)
    assert kept[0]['inputs'] == '{"age":[30]}' and kept[0]['route'] == 'predict'  # the row as the table would hold it
    assert os.stat(W.set_aside_path(w.directory)).st_mode & 0o777 == 0o600
    with sqlite3.connect(db) as c:  # the journal's position is in: a replay would not set them aside again
        assert dict(c.execute('SELECT name, applied FROM prediction_log_journal'))[journal.name] == journal.end
    assert w.append(rows('bad', 3)[2:]) == (None, {}) and w.apply()  # a batch of refused rows only: set aside too
    assert stored(db) == ['ok0', 'ok1', 'ok2', 'ok3'] and [r['request_id'] for r in set_aside(w)][-1] == 'bad2'


@pytest.mark.parametrize('before', [['ok0'], []], ids=['a-row-stored-before', 'an-empty-table'])
def test_a_table_that_refuses_every_row_keeps_the_rows_in_the_journal_and_says_so(writer, before):
    w, db = writer
    assert w.append(rows('ok', len(before))) == (None, {}) and w.apply()
    sql(db, "CREATE TRIGGER none BEFORE INSERT ON predictions BEGIN SELECT RAISE(ABORT, 'closed for now'); END")
    assert w.append(rows('a', 3)) == (None, {})
    assert not w.apply() and 'closed for now' in w.problem  # (a copy of the row it holds refused too, or every row)
    assert set_aside(w) == [] and len(w.rows) == 3 and stored(db) == before
    sql(db, 'DROP TRIGGER none')
    assert w.apply() and w.problem == '' and stored(db) == [*before, 'a0', 'a1', 'a2']


def test_a_fresh_writer_sets_aside_rows_refused_for_their_values_not_the_whole_batch(writer):
    "Rows refused for their values, the first of a batch or all of one, are set aside; the rows the table takes go in."
    w, db = writer
    sql(
        db,
        "CREATE TRIGGER no_negative BEFORE INSERT ON predictions WHEN NEW.inputs LIKE '%-1%' "
        "BEGIN SELECT RAISE(ABORT, 'no negative ages'); END",
    )
    negative = list(P._encoded(dict(ROW, request_id='neg', inputs={'age': [-1]})))
    assert w.append([negative, *rows('ok', 3)]) == (None, {})
    assert w.apply() and w.problem == '' and stored(db) == ['ok0', 'ok1', 'ok2']
    assert [r['request_id'] for r in set_aside(w)] == ['neg']
    assert w.append([negative, negative]) == (None, {}) and w.apply()  # a batch refused whole: its rows, not the table
    assert stored(db) == ['ok0', 'ok1', 'ok2'] and [r['request_id'] for r in set_aside(w)] == ['neg'] * 3


def test_while_a_refused_batch_is_searched_the_writer_still_journals_what_comes(writer):
    "One statement per row for a table refusing every row: `between` journals and answers what comes meanwhile."
    w, db = writer
    assert w.append(rows('ok', 1)) == (None, {}) and w.apply()
    sql(db, "CREATE TRIGGER none BEFORE INSERT ON predictions BEGIN SELECT RAISE(ABORT, 'closed for now'); END")
    calls = []
    assert w.append(rows('a', 200)) == (None, {}) and not w.apply(lambda: calls.append(1))
    assert len(calls) >= 2 * 200 - 2 and 'closed for now' in w.problem and len(w.rows) == 200  # (a call per part)


@pytest.mark.parametrize(
    'rule',
    [
        "CREATE TRIGGER retired BEFORE INSERT ON predictions WHEN NEW.model_version = '1' "
        "BEGIN SELECT RAISE(ABORT, 'version 1 retired'); END",
        'CREATE UNIQUE INDEX one_each ON predictions (model_version, route)',  # (a copy of a stored row breaks it)
    ],
    ids=['the-stored-rows-values-retired', 'a-unique-index'],
)
def test_a_rule_against_a_stored_rows_values_or_a_unique_index_does_not_fail_the_good_rows(writer, rule):
    "A rule against a stored row's values or a unique index does not make the table's failure of a batch it refuses."
    w, db = writer
    assert w.append(rows('ok', 1)) == (None, {}) and w.apply()  # model version 1, request ok0
    sql(db, rule)
    v2 = [
        list(P._encoded(dict(ROW, request_id=f'v2-{i}', model_version='2', route=r)))
        for i, r in enumerate(['predict', 'shadow'])
    ]
    assert w.append([*rows('ok', 1), *v2]) == (None, {})  # ok0 again: version 1, refused either way
    assert w.apply() and w.problem == '' and stored(db) == ['ok0', 'v2-0', 'v2-1']
    assert [r['request_id'] for r in set_aside(w)] == ['ok0']
    assert w.append(rows('ok', 2)) == (None, {}) and w.apply() and w.problem == ''  # refused rows only: theirs too
    assert [r['request_id'] for r in set_aside(w)] == ['ok0', 'ok0', 'ok1']


NEEDS_INPUTS = (
    "CREATE TRIGGER needs_inputs BEFORE INSERT ON predictions WHEN NEW.inputs IS NULL "
    "BEGIN SELECT RAISE(ABORT, 'inputs required'); END"
)


@pytest.mark.parametrize('rules', [[NO_BAD], [NO_BAD, NEEDS_INPUTS]], ids=['a-rule', 'and-one-the-empty-row-breaks'])
def test_a_lone_refused_row_on_an_empty_table_is_set_aside_not_taken_for_the_tables_failure(writer, rules):
    """Under the default policy the server refuses requests while the log fails: no good row would come to tell. The
    empty row asked then is refused too by a rule of its own, but not for the row's reason."""
    w, db = writer
    sql(db, *rules)
    assert w.append(rows('bad', 1)) == (None, {}) and w.apply() and w.problem == ''
    assert stored(db) == [] and [r['request_id'] for r in set_aside(w)] == ['bad0']


def test_a_trigger_that_rolls_the_whole_transaction_back_is_reported_as_its_own_failure(writer):
    w, db = writer
    sql(db, NO_BAD.replace("RAISE(ABORT, 'no bad rows')", "RAISE(ROLLBACK, 'rolled back')"))
    assert w.append(rows('ok', 1) + rows('bad', 1)) == (None, {})
    assert not w.apply() and 'rolled back' in w.problem and 'savepoint' not in w.problem  # (no row can be told apart)
    assert set_aside(w) == [] and len(w.rows) == 2 and stored(db) == []


@pytest.fixture
def commit_fails_once(monkeypatch):
    """`arm(after=0)`: the next commit of journaled rows but `after` (of one journal each) fails (the disk, say), after
    any refused ones were set aside."""
    real, fails = P._positions, []

    def failing(positions):  # (once the rows are in: the positions are the transaction's last statements)
        for statement in real(positions):
            if fails and fails[0] == 0:
                fails.pop()
                raise sqlite3.OperationalError('disk I/O error')
            if fails:
                fails[0] -= 1
            yield statement

    monkeypatch.setattr(P, '_positions', failing)
    return lambda after=0: fails.append(after)


def test_rows_set_aside_by_an_insert_whose_commit_failed_are_not_set_aside_again_by_its_retry(
    writer, commit_fails_once
):
    w, db = writer
    assert w.append(rows('ok', 1)) == (None, {}) and w.apply()
    sql(db, NO_BAD)
    commit_fails_once()
    assert w.append(rows('ok', 2)[1:] + rows('bad', 2)) == (None, {})
    assert not w.apply() and 'disk I/O error' in w.problem and w.set_aside == 0 and len(w.rows) == 3
    assert [r['request_id'] for r in set_aside(w)] == ['bad0', 'bad1']  # (on disk before the commit)
    assert w.apply() and w.problem == '' and w.set_aside == 2 and stored(db) == ['ok0', 'ok1']
    assert [r['request_id'] for r in set_aside(w)] == ['bad0', 'bad1']  # once each
    assert w.append(rows('bad', 1)) == (None, {}) and w.apply()  # (committed: a row alike later is another)
    assert [r['request_id'] for r in set_aside(w)] == ['bad0', 'bad1', 'bad0']


def test_a_dead_writers_refused_rows_whose_replay_failed_are_set_aside_once_by_the_next(writer, commit_fails_once):
    w, db = writer
    sql(db, NO_BAD)
    other = Journal(w.directory)  # another worker's writer, killed with rows the table refuses
    other.append([W.orjson.dumps(rows('o', 1) + rows('bad', 2))])
    other.close()
    commit_fails_once()
    w.rescan()
    assert 'disk I/O error' in w.replayed and other.path.exists() and stored(db) == []
    w.rescan()
    assert w.replayed == '' and not other.path.exists() and stored(db) == ['o0'] and w.set_aside == 2
    assert w.aside.uncommitted == set()  # (committed: a row alike later is set aside again)
    assert [r['request_id'] for r in set_aside(w)] == ['bad0', 'bad1']


def test_a_replay_that_fails_part_way_counts_the_rows_its_committed_inserts_set_aside(
    writer, commit_fails_once, monkeypatch
):
    w, db = writer
    sql(db, NO_BAD)
    monkeypatch.setattr(W, '_INSERT_ROWS', 2)  # (a dead writer's journal is inserted 2 rows at a time)
    other = Journal(w.directory)
    other.append([W.orjson.dumps(rows('bad', 1) + rows('o', 1))])
    other.append([W.orjson.dumps([rows('bad', 2)[1], rows('o', 2)[1]])])
    other.close()
    commit_fails_once(after=1)  # the first insert commits, the second fails
    w.rescan()
    assert 'disk I/O error' in w.replayed and stored(db) == ['o0'] and w.set_aside == 1  # (told, not lost)
    w.rescan()
    assert w.replayed == '' and stored(db) == ['o0', 'o1'] and w.set_aside == 2
    assert [r['request_id'] for r in set_aside(w)] == ['bad0', 'bad1']


def test_a_starting_writer_tells_the_server_of_the_rows_its_replays_set_aside_when_it_says_it_is_ready(tmp_path):
    url = f'sqlite:///{tmp_path}/p.db'
    store = P._Store(url, None, durable=False)
    sql(tmp_path / 'p.db', NO_BAD)
    dead = Journal(journal_dir(url))  # a writer killed with a row the table refuses
    dead.append([W.orjson.dumps(rows('bad', 1))])
    dead.close()
    j = W._Journaled(store, Journal(journal_dir(url)), journal_s=0.05, probe_s=0.1)  # (it replays the dead journal)
    src, feed = os.pipe()
    os.close(feed)  # no input: the server is gone at once
    out, sent = os.pipe()
    W._Writer(W._Pipe(src, sent), store, j, probe_s=0.1).run([])  # (it closes the journal and the store)
    os.close(sent)
    with os.fdopen(out, 'rb') as f:
        acks = [W.orjson.loads(line) for line in f.read().splitlines()]
    assert acks[0] == {'problem': '', 'set_aside': 1}


def test_a_dead_writers_journal_with_refused_rows_is_replayed_and_deleted_and_an_idle_writer_says_so(writer):
    w, db = writer
    sql(db, NO_BAD)
    other = Journal(w.directory)  # another worker's writer, killed with rows the table refuses
    other.append([W.orjson.dumps(rows('o', 2) + rows('bad', 1))])
    other.close()
    w.scanned = time.monotonic() - W._RESCAN_S  # (a rescan is due)
    pipe = Acks()
    W._Writer(pipe, w.store, w, probe_s=0.1).idle(None)  # nothing comes: the writer looks for dead writers' journals
    assert w.replayed == '' and not other.path.exists() and stored(db) == ['o0', 'o1']
    assert [r['request_id'] for r in set_aside(w)] == ['bad0']
    assert pipe.sent == [{'problem': '', 'set_aside': 1}] and w.set_aside == 0  # told now, for the server to count


def test_a_server_whose_database_refuses_some_rows_keeps_answering_and_counts_them(tmp_path):
    db = tmp_path / 'p.db'
    log = PredictionLog(f'sqlite:///{db}', process=True, probe_s=0.1)
    try:
        log.log(**dict(ROW, request_id='ok0')).wait(10)
        assert log.flush(30)
        sql(db, NO_BAD)
        for rid in ['bad0', 'ok1', 'bad1', 'ok2']:
            log.log(**dict(ROW, request_id=rid)).wait(10)  # answered: each is journaled
        assert log.flush(30)
        assert log.errors == 2 and log.problem == ''  # (a problem would have the server refuse requests)
        assert list(read_log(f'sqlite:///{db}')['request_id']) == ['ok0', 'ok1', 'ok2']
    finally:
        log.close()
    assert [r['request_id'] for r in set_aside_rows(db)] == ['bad0', 'bad1']


def set_aside_rows(db: Path) -> list[dict]:
    path = W.set_aside_path(journal_dir(f'sqlite:///{db}'))
    return [W.orjson.loads(line) for line in path.read_bytes().splitlines()]


def test_closing_a_log_whose_writer_inserts_rarely_ends_its_writer_at_once_and_its_rows_are_in(tmp_path):
    """`close` waited for a writer process's journaled rows to reach the database before it ended the writer, so with a
    `journal_s` longer than 30 s it waited out its 30 s limit first (the library notebook's example took 30 s). On
    disk is enough: the writer inserts what it journaled as it ends, and `close` returns when it has."""
    url = f'sqlite:///{tmp_path}/p.db'
    plog = PredictionLog(url, process=True, journal_s=3600)
    for p in plog.log_many([dict(ROW, request_id=f'r{i}') for i in range(3)]):
        p.wait()  # journaled: the writer would insert them in an hour
    began = time.monotonic()
    plog.close()
    assert time.monotonic() - began < 10  # (the wait it replaced: 30 s)
    assert stored(tmp_path / 'p.db') == ['r0', 'r1', 'r2']


def test_closing_a_log_whose_database_is_locked_a_while_still_inserts_its_journaled_rows(tmp_path):
    """`close` ends a writer process once its rows are journaled, and the writer inserts them as it ends; it tried that
    three times (each `timeout_s`, then `probe_s`), so a database locked for longer as the log closed (a reader's long
    transaction, a retention run) kept them out: not in the database after close (read_log missed them) until a later
    writer replayed the journal, where close had waited 30 s for them before. It now tries for 20 s."""
    db = tmp_path / 'p.db'
    plog = PredictionLog(f'sqlite:///{db}', process=True, journal_s=3600, timeout_s=0.2, probe_s=0.1)
    for p in plog.log_many([dict(ROW, request_id=f'r{i}') for i in range(3)]):
        p.wait()  # journaled: the writer would insert them in an hour, or as it ends
    lock = sqlite3.connect(db, isolation_level=None, check_same_thread=False)
    lock.execute('BEGIN EXCLUSIVE')
    threading.Timer(2, lambda: lock.execute('COMMIT')).start()  # (longer than three tries: 0.9 s)
    plog.close()
    lock.close()
    assert stored(db) == ['r0', 'r1', 'r2']
