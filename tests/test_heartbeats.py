"""Heartbeats of the watchers: the retraining loop (`retrain run`, also with `--every`) and the rollout guard beat
through `lifecycle.core.heartbeats` (the guard lives below operate), and the monitor names the one that went silent."""

from __future__ import annotations
import time
from conftest import cli, cli_json, set_yaml


def test_the_loop_and_the_guard_beat_and_the_monitor_names_the_silent_one(workspace):
    from lifecycle.core.heartbeats import beat, heartbeats
    from lifecycle.core.workspace import Workspace
    from lifecycle.deliver import rollout
    from lifecycle.operate import heartbeats as old_path

    assert old_path.beat is beat and old_path.heartbeats is heartbeats  # the old import path still works
    ws = Workspace.open(workspace)
    assert heartbeats(ws.state_dir, ['guard', 'retrain']) == {'guard': float('inf'), 'retrain': float('inf')}
    assert rollout.guard(ws, ws.params['rollout'].guard, 1, str(ws.state_dir / 'no-log')) is None  # nothing running
    r = cli(workspace, 'retrain', 'run', '--every', '0.01', '--times', '2')
    assert r.returncode == 0, r.stdout + r.stderr
    ages = heartbeats(ws.state_dir, ['guard', 'retrain'])
    assert ages['guard'] < 60 and ages['retrain'] < 60, ages
    beat(ws.state_dir, 'guard', now=time.time() - 3600)  # the guard went silent an hour ago
    beat(ws.state_dir, 'monitor')
    set_yaml(workspace / 'params/monitor.yaml', watchers=['monitor', 'guard', 'retrain'], heartbeat_max_age_s=300)
    r, st = cli_json(workspace, 'monitor', 'status')
    assert r.returncode != 0, r.stdout  # a dead watcher is a failing status
    assert st['watchers']['guard']['alive'] is False and st['watchers']['guard']['age_s'] > 3000
    assert st['watchers']['retrain']['alive'] is True and st['watchers']['monitor']['alive'] is True
    # the failing status says which watcher is not running and how it is kept running, in JSON and in words
    assert st['ok'] is False and st['error'].startswith('guard: not running (last heartbeat 3'), st['error']
    assert '`lifecycle rollout guard`' in st['error'] and 'retrain' not in st['error'], st['error']
    r = cli(workspace, 'monitor', 'status')
    assert r.returncode == 1 and 'guard: not running (last heartbeat' in r.stdout, r.stdout
    assert 'retrain: alive' in r.stdout and 'DEAD' not in r.stdout, r.stdout


def test_a_watcher_that_never_beat_is_said_not_started_with_how_to_start_it():
    from lifecycle.operate.commands import MonitorStatus

    st = {'watchers': {'monitor': {'age_s': None, 'alive': False}}}
    data = MonitorStatus(st).data()
    assert data['ok'] is False and data['error'] == (
        'monitor: not running (no heartbeat yet: `lifecycle monitor run --every 60` keeps it running)'
    )
    assert MonitorStatus({'watchers': {'monitor': {'age_s': 3.0, 'alive': True}}}).data() == {
        'ok': True,
        'watchers': {'monitor': {'age_s': 3.0, 'alive': True}},
    }
