"""A lock's waiter names its holder even when it looks in the moment between the holder taking the lock and recording
itself; a lock freed in that moment is taken, not waited for; a holder that never records itself is still reported."""

from __future__ import annotations
import fcntl
import json
import os
import threading
import time
import pytest
from lifecycle.core.locks import LockBusy, hold, lock_path

HOLDER = {'pid': 4242, 'command': 'lifecycle run', 'since': '2026-12-04T10:00:00Z'}


def bare_holder(state_dir, name: str) -> int:
    "Take the named lock as `hold` does but record nothing yet: the moment a waiter can look in."
    p = lock_path(state_dir, name)
    p.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(p, os.O_RDWR | os.O_CREAT, 0o644)
    fcntl.flock(fd, fcntl.LOCK_EX)  # (flock locks of two open files conflict within one process too)
    return fd


def later(s: float, *steps) -> threading.Thread:
    def run():
        time.sleep(s)
        for step in steps:
            step()

    t = threading.Thread(target=run, daemon=True)
    t.start()
    return t


def test_a_waiter_that_looks_before_the_holder_records_itself_names_it(tmp_path):
    fd = bare_holder(tmp_path, 'pipeline')
    t = later(0.2, lambda: os.pwrite(fd, json.dumps(HOLDER).encode(), 0))
    try:
        with pytest.raises(LockBusy) as e, hold(tmp_path, 'pipeline', wait=False):
            pass
    finally:
        t.join(10)
        os.close(fd)
    assert 'is held by pid 4242 (lifecycle run) since 2026-12-04T10:00:00Z' in str(e.value)


def test_a_waiter_is_told_who_it_waits_for_then_takes_the_lock(tmp_path):
    fd = bare_holder(tmp_path, 'pipeline')
    t = later(
        0.2,
        lambda: os.pwrite(fd, json.dumps(HOLDER).encode(), 0),
        lambda: time.sleep(0.3),
        lambda: os.ftruncate(fd, 0),
        lambda: os.close(fd),
    )  # records itself, works, releases cleanly
    seen = []
    with hold(tmp_path, 'pipeline', timeout=20, on_wait=seen.append) as me:
        assert me['pid'] == os.getpid() and 'recovered_from' not in me
    t.join(10)
    assert seen == [HOLDER]


def test_a_lock_freed_before_its_holder_recorded_itself_is_taken_not_refused(tmp_path):
    fd = bare_holder(tmp_path, 'pipeline')
    t = later(0.2, lambda: os.close(fd))
    seen = []
    with hold(tmp_path, 'pipeline', wait=False, on_wait=seen.append) as me:
        assert me['pid'] == os.getpid()
    t.join(10)
    assert seen == []


def test_a_holder_that_never_records_itself_is_reported_as_such_after_a_second(tmp_path):
    fd = bare_holder(tmp_path, 'pipeline')
    t0 = time.monotonic()
    try:
        with pytest.raises(LockBusy) as e, hold(tmp_path, 'pipeline', wait=False):
            pass
    finally:
        os.close(fd)
    assert 0.9 <= time.monotonic() - t0 < 10
    assert 'is held by another process (which has not recorded itself yet)' in str(e.value)
