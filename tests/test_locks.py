"""Locks scoped to what they protect: a second `lifecycle run` waits for the first (or, with --no-wait, refuses
naming it); two cold runs at once both succeed; processes racing to create MLflow's database create it once; the
kill switch does not wait behind a run."""

from __future__ import annotations
import json
import os
import subprocess
import sys
import time
import pytest
from conftest import LIFECYCLE, clean_env, cli, cli_json, make_workspace
from lifecycle.core.locks import hold, holder

pytestmark = pytest.mark.slow  # cold pipeline runs racing each other


def test_a_run_with_no_wait_refuses_naming_the_run_in_progress(workspace):
    with hold(workspace / '.lifecycle', 'pipeline', command='lifecycle run') as me:
        r = cli(workspace, 'run', '--no-wait', '--no-site', own_process=True)  # this process holds the lock
    assert r.returncode == 2, r.stderr
    assert (
        f"another run is in progress, no stage ran: the pipeline lock ({workspace / '.lifecycle/locks/pipeline.lock'}) "
        f"is held by pid {os.getpid()} (lifecycle run) since {me['since']}"
    ) in r.stderr
    assert not (workspace / 'reports/runs').exists()


RACE = """
import sys, time
from pathlib import Path
from lifecycle.core.tracking import configure_mlflow
d = Path(sys.argv[1]); (d / f'ready-{sys.argv[2]}').touch()
while not (d / 'go').exists(): time.sleep(0.002)
ml = configure_mlflow(f'sqlite:///{d}/mlflow.db', d)
print(len(ml.search_experiments()))
"""


READ_ONLY = """
import errno, sys
from pathlib import Path
from lifecycle.core import tracking
d = Path(sys.argv[1])
def refused(state_dir, name, *a, **k):  # what `os.open` of a lock's file says on a read-only mount
    raise OSError(errno.EROFS, 'Read-only file system', str(Path(state_dir) / 'locks' / f'{name}.lock'))
tracking.hold = refused
try:
    ml = tracking.configure_mlflow(f'sqlite:///{d}/mlflow.db', d)
except OSError as e:
    print('refused', e.errno == errno.EROFS)
else:
    print(len(ml.search_experiments()))
"""


def test_a_read_only_workspace_reads_its_mlflow_database_without_the_lock(tmp_path):
    """`status` or `govern check` on a workspace that cannot be written (review AB): the lock that guards creating the
    database cannot be taken, and an existing database is only read; a missing one is still refused."""
    (tmp_path / 'go').touch()
    made = subprocess.run([sys.executable, '-c', RACE, str(tmp_path), '0'], env=clean_env(), capture_output=True)
    assert made.returncode == 0, made.stderr[-2000:]
    run = [sys.executable, '-c', READ_ONLY]
    read = subprocess.run([*run, str(tmp_path)], env=clean_env(), capture_output=True, text=True)
    assert (read.returncode, read.stdout.strip()) == (0, '1'), read.stderr[-2000:]
    missing = subprocess.run([*run, str(tmp_path / 'new')], env=clean_env(), capture_output=True, text=True)
    assert (missing.returncode, missing.stdout.strip()) == (0, 'refused True'), missing.stderr[-2000:]


def test_processes_racing_to_create_the_mlflow_database_all_succeed(tmp_path):
    procs = [
        subprocess.Popen(
            [sys.executable, '-c', RACE, str(tmp_path), str(i)],
            env=clean_env(),
            text=True,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        for i in range(3)
    ]
    deadline = time.time() + 120
    while len(list(tmp_path.glob('ready-*'))) < 3 and time.time() < deadline:
        time.sleep(0.05)
    (tmp_path / 'go').touch()  # all three meet the fresh database at once
    outs = [p.communicate(timeout=300) for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0], [err[-2000:] for _, err in outs]
    assert [out.strip() for out, _ in outs] == ['1'] * 3  # one database, its default experiment
    assert holder(tmp_path, 'mlflow-db') is None


def test_two_cold_runs_at_once_both_succeed_and_the_kill_switch_does_not_wait(tmp_path):
    ws = make_workspace(tmp_path / 'ws')
    procs = [
        subprocess.Popen(
            [LIFECYCLE, 'run', '--no-site'],
            cwd=ws,
            env=clean_env(),
            text=True,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        for _ in range(2)
    ]
    outs = [p.communicate(timeout=1800) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], [err[-3000:] for _, err in outs]
    said = [' '.join(err.split()) for _, err in outs]
    (waiter,) = [i for i, err in enumerate(said) if 'waiting for the run in progress in this workspace' in err]
    assert (
        f"waiting for the run in progress in this workspace: pid {procs[1 - waiter].pid} (lifecycle run) since"
        in said[waiter]
    )
    runs = [json.loads(p.read_text()) for p in (ws / 'reports/runs').glob('*/manifest.json')]
    assert sorted([st['status'] for st in m['stages'].values()] for m in runs) == [['cached'] * 6, ['ok'] * 6]
    assert cli(ws, 'audit', 'verify').returncode == 0
    assert cli(ws, 'flags', 'init').returncode == 0
    with hold(ws / '.lifecycle', 'pipeline', command='lifecycle run'):  # a run in progress
        t0 = time.time()
        r, out = cli_json(ws, 'flags', 'kill', '--reason', 'incident 12')
    assert r.returncode == 0 and out['flags']['kill'] is True and time.time() - t0 < 120, r.stderr


GUARD_LOOK = """
import sys, time
from pathlib import Path
from lifecycle.core.workspace import Workspace
from lifecycle.deliver import rollout
from lifecycle.serve import flags as fl
ws = Workspace.open(Path(sys.argv[1]))
with rollout.locked(ws):  # a guard look: read the flags, decide, write them back
    spec, name = fl.load_spec(ws)
    (Path(sys.argv[1]) / 'read').touch()
    time.sleep(1.5)
    fl.write_spec(ws, spec.model_copy(update={'percentage': 50.0}), name)
"""


def test_a_kill_switch_pulled_during_a_guard_look_is_applied_after_it_not_lost(tmp_path):
    from lifecycle.core.params import FlagsParams
    from lifecycle.serve import flags as fl

    from test_flags import registered_workspace

    ws = registered_workspace(tmp_path, 'm', versions=2)
    fl.init_flags(ws, FlagsParams(control='1', challenger='2', safe='1', percentage=10), 'm', lambda a: a)
    look = subprocess.Popen(
        [sys.executable, '-c', GUARD_LOOK, str(tmp_path)], env=clean_env(), text=True, stderr=subprocess.PIPE
    )
    deadline = time.time() + 60
    while not (tmp_path / 'read').exists() and time.time() < deadline and look.poll() is None:
        time.sleep(0.02)
    assert (tmp_path / 'read').exists(), look.communicate()[1][-2000:]
    waited = []
    t0 = time.monotonic()
    fl.kill(ws, actor='carol', reason='incident')  # the look holds the flags: the kill waits for it, then applies
    waited.append(time.monotonic() - t0)
    assert look.wait(60) == 0, look.stderr.read()[-2000:]
    spec, _ = fl.load_spec(ws)
    assert spec.kill is True and spec.percentage == 50.0, spec  # both writes kept: neither overwrote the other
    assert waited[0] > 0.5  # it did wait for the look (1.5 s) instead of racing it
    assert holder(tmp_path / '.lifecycle', 'flags') is None
