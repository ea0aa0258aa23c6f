"""A lock's waiter names its holder even when it looks in the moment between the holder taking the lock and recording
itself (over a dead holder's record, too); a lock freed in that moment is taken, not waited for; a holder that never
records itself is reported as such, within the waiter's timeout."""

from __future__ import annotations
import fcntl
import json
import os
import subprocess
import sys
import threading
import time
import pytest
from lifecycle.core import locks
from lifecycle.core.locks import LockBusy, hold, lock_path


def me() -> dict:
    "A record of a live holder (this process)."
    return {'pid': os.getpid(), 'command': 'lifecycle run', 'since': '2026-12-04T10:00:00Z'}


def bare_holder(state_dir, name: str, left: dict | None = None) -> int:
    """Take the named lock as `hold` does, but record nothing yet (the file holds `left`, a dead holder's record, or
    nothing): the moment a waiter can look in."""
    p = lock_path(state_dir, name)
    p.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(p, os.O_RDWR | os.O_CREAT, 0o644)
    fcntl.flock(fd, fcntl.LOCK_EX)  # (flock locks of two open files conflict within one process too)
    if left is not None:
        os.pwrite(fd, json.dumps(left).encode(), 0)
    return fd


@pytest.fixture
def after_first_look(monkeypatch):
    """`after_first_look(*steps)`: run `steps` in a thread once the waiter has read the lock's record for the first
    time (so the steps happen while it looks again, however slow the machine), with ten seconds of patience."""
    looked, threads = threading.Event(), []
    read = locks._record

    def record(fd):
        try:
            return read(fd)
        finally:
            looked.set()

    monkeypatch.setattr(locks, '_record', record)
    monkeypatch.setattr(locks, '_PATIENCE_S', 10.0)

    def start(*steps):
        def run():
            looked.wait(30)
            for step in steps:
                step()

        t = threading.Thread(target=run, daemon=True)
        t.start()
        threads.append(t)

    yield start
    for t in threads:
        t.join(30)


def test_a_waiter_that_looks_before_the_holder_records_itself_names_it(tmp_path, after_first_look):
    fd = bare_holder(tmp_path, 'pipeline')
    after_first_look(lambda: os.pwrite(fd, json.dumps(me()).encode(), 0))
    try:
        with pytest.raises(LockBusy) as e, hold(tmp_path, 'pipeline', wait=False):
            pass
    finally:
        os.close(fd)
    assert f'is held by pid {os.getpid()} (lifecycle run) since 2026-12-04T10:00:00Z' in str(e.value)


def test_a_dead_holders_record_is_not_taken_for_the_new_holders(tmp_path, after_first_look):
    gone = subprocess.run([sys.executable, '-c', 'import os; print(os.getpid())'], capture_output=True, text=True)
    dead = {'pid': int(gone.stdout), 'command': 'lifecycle run', 'since': '2026-12-04T09:00:00Z'}
    fd = bare_holder(tmp_path, 'pipeline', left=dead)  # killed, its record left; the new holder not recorded yet
    after_first_look(lambda: os.ftruncate(fd, 0), lambda: os.pwrite(fd, json.dumps(me()).encode(), 0))
    try:
        with pytest.raises(LockBusy) as e, hold(tmp_path, 'pipeline', wait=False):
            pass
    finally:
        os.close(fd)
    assert f'is held by pid {os.getpid()} (lifecycle run)' in str(e.value) and str(dead['pid']) not in str(e.value)


def test_a_waiter_is_told_who_it_waits_for_then_takes_the_lock(tmp_path, after_first_look):
    fd = bare_holder(tmp_path, 'pipeline')
    after_first_look(
        lambda: os.pwrite(fd, json.dumps(me()).encode(), 0),
        lambda: time.sleep(0.3),
        lambda: os.ftruncate(fd, 0),  # a clean release: the record goes, then the lock
        lambda: os.close(fd),
    )
    seen = []
    with hold(tmp_path, 'pipeline', timeout=20, on_wait=seen.append) as rec:
        assert rec['pid'] == os.getpid() and 'recovered_from' not in rec
    assert seen == [me()]


def test_a_lock_freed_before_its_holder_recorded_itself_is_taken_not_waited_for(tmp_path, after_first_look):
    fd = bare_holder(tmp_path, 'pipeline')
    after_first_look(lambda: os.close(fd))
    seen = []
    with hold(tmp_path, 'pipeline', timeout=20, on_wait=seen.append) as rec:
        assert rec['pid'] == os.getpid()
    assert seen == []  # (taken where it looked: no wait to tell of)


@pytest.mark.parametrize('timeout', [None, 0.3], ids=['no-wait', 'timeout-0.3'])
def test_a_holder_that_never_records_itself_is_reported_as_such(tmp_path, timeout):
    fd = bare_holder(tmp_path, 'pipeline')
    t0 = time.monotonic()
    try:
        with pytest.raises(LockBusy) as e, hold(tmp_path, 'pipeline', wait=timeout is not None, timeout=timeout):
            pass
    finally:
        os.close(fd)
    took = time.monotonic() - t0
    assert 'is held by another process (which has not recorded itself yet)' in str(e.value)
    if timeout is None:  # refused once its patience (a second) is over
        assert 0.9 <= took < 10
    else:  # the patience comes out of the timeout, not on top of it
        assert 0.25 <= took < 0.9 and 'gave up after waiting 0.3s' in str(e.value)


def test_holder_does_not_name_a_dead_holder_for_a_new_one_not_yet_recorded(tmp_path):
    gone = subprocess.run([sys.executable, '-c', 'import os; print(os.getpid())'], capture_output=True, text=True)
    fd = bare_holder(tmp_path, 'pipeline', left={'pid': int(gone.stdout), 'command': 'lifecycle run', 'since': 'T'})
    try:
        assert locks.holder(tmp_path, 'pipeline') == {'pid': None}
        os.pwrite(fd, json.dumps(me()).encode(), 0)
        assert locks.holder(tmp_path, 'pipeline') == me()
    finally:
        os.close(fd)
    assert locks.holder(tmp_path, 'pipeline') is None
