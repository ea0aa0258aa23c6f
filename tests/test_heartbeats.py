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


def test_a_watcher_whose_every_pass_is_missed_is_said_alive_but_not_making_progress(workspace, monkeypatch):
    """`retrain run --every` beat its heartbeat at each pass, so a watcher whose every pass a rollout refused for hours
    read as a healthy watcher (`monitor status` exit 0, 'retrain: alive'); a pass the `retrain` lock held back beat not
    at all, so a watcher waiting behind a person's long pass read as dead. Each pass beats with its outcome: the
    status says alive, every pass for how long missed and why, and stuck once that is past heartbeat_max_age_s; a
    pass that went through ends the misses."""
    import json
    from lifecycle.loop import iteration as loop
    from lifecycle.core.heartbeats import beat, heartbeats, missed
    from lifecycle.core.locks import hold
    from lifecycle.core.workspace import Workspace

    ws = Workspace.open(workspace)
    set_yaml(workspace / 'params/monitor.yaml', watchers=['monitor', 'retrain'], heartbeat_max_age_s=300)
    beat(ws.state_dir, 'monitor')
    with hold(ws.state_dir, 'retrain'):  # (a person's long pass holds the lock: it walks the loop, the watcher waits)
        r = cli(workspace, 'retrain', 'run', '--every', '0.01', '--times', '2')
    assert r.returncode == 1, r.stdout + r.stderr
    assert heartbeats(ws.state_dir, ['retrain'])['retrain'] < 60 and missed(ws.state_dir, 'retrain') is None
    d = loop.iterations_dir(ws.state_dir)  # another model's retraining unfinished: in the way of every pass
    d.mkdir(parents=True)
    it = dict(id='it1', status='data', started=1.7e9, history=[], trigger={'summary': 'x'}, champion={'version': '1'})
    (d / 'it1.json').write_text(json.dumps(dict(it, model='another-model')))
    r = cli(workspace, 'retrain', 'run', '--every', '0.01', '--times', '2')
    assert r.returncode == 2, r.stdout + r.stderr
    m = missed(ws.state_dir, 'retrain')
    assert m['passes'] == 2 and 'finish it first' in m['reason'], m  # (missed: beat, and said why)
    r, st = cli_json(workspace, 'monitor', 'status')
    assert r.returncode == 0 and st['watchers']['retrain']['alive'] is True, r.stdout  # not past the limit yet
    assert 'every pass for' in cli(workspace, 'monitor', 'status').stdout
    beat(ws.state_dir, 'retrain', now=time.time() - 3601, missed='')  # a pass went through an hour ago
    beat(ws.state_dir, 'retrain', now=time.time() - 3600, missed='a rollout is running')  # then an hour of misses
    beat(ws.state_dir, 'retrain', missed='a rollout is running')
    assert missed(ws.state_dir, 'retrain')['for_s'] > 3500
    r, st = cli_json(workspace, 'monitor', 'status')  # (alive, not failed: a person's rollout may run that long)
    assert r.returncode == 0 and st['watchers']['retrain']['stuck'] is True and 'error' not in st, r.stdout
    said = cli(workspace, 'monitor', 'status').stdout
    assert 'retrain: alive (last heartbeat 0 s ago), but every pass for 36' in said, said
    assert "past monitor.yaml's heartbeat_max_age_s): a rollout is running" in said, said
    from lifecycle.app.site import _watcher_words
    from lifecycle.operate.monitor import health

    said = _watcher_words('retrain', health(ws).watchers['retrain'])  # the site's landing page says so too
    assert said.startswith('retrain alive, but every pass since ') and '(2 in a row)' in said, said
    beat(ws.state_dir, 'retrain')  # (a pass starting keeps the misses: alive is not progress)
    assert missed(ws.state_dir, 'retrain')['passes'] == 2
    (d / 'it1.json').unlink()  # (out of the way)
    r = cli(workspace, 'retrain', 'run', '--every', '0.01', '--times', '1')  # a pass that goes through
    assert r.returncode == 0, r.stdout + r.stderr
    assert missed(ws.state_dir, 'retrain') is None
    r, st = cli_json(workspace, 'monitor', 'status')
    assert r.returncode == 0 and 'missed' not in st['watchers']['retrain'], r.stdout


def test_a_beat_from_a_clock_since_set_back_is_no_beat(tmp_path):
    """A beat written while the clock was an hour ahead (set back since: NTP, a person), or a hand-edited `Infinity`,
    read as 0 s old until the clock caught up: a watcher killed right after read as alive for that hour. Its age
    cannot be told, so it is no beat; a beat a few seconds ahead (another host's clock) still is."""
    import json
    from lifecycle.core.heartbeats import beat, heartbeats

    now = time.time()
    beat(tmp_path, 'retrain', now=now + 3600)
    assert heartbeats(tmp_path, ['retrain'], now) == {'retrain': float('inf')}
    (tmp_path / 'heartbeats' / 'retrain.json').write_text(json.dumps({'ts': float('inf')}))
    assert heartbeats(tmp_path, ['retrain'], now) == {'retrain': float('inf')}
    beat(tmp_path, 'retrain', now=now + 5)
    assert heartbeats(tmp_path, ['retrain'], now) == {'retrain': 0.0}


def test_retrain_status_says_the_passes_were_missed_and_why(workspace):
    """`retrain status` said where the loop stands but not that the watcher's every pass for an hour was missed (a
    rollout in the way): it reads as a loop waiting on nothing. It says so, in words and as JSON."""
    from lifecycle.core.heartbeats import beat
    from lifecycle.core.workspace import Workspace

    ws = Workspace.open(workspace)
    r, st = cli_json(workspace, 'retrain', 'status')
    assert r.returncode == 0 and st['watcher'] == {'age_s': None, 'missed': None}, r.stdout
    beat(ws.state_dir, 'retrain', now=time.time() - 3600, missed='a rollout is running')
    beat(ws.state_dir, 'retrain', missed='a rollout is running')
    r, st = cli_json(workspace, 'retrain', 'status')
    assert st['watcher']['missed']['passes'] == 2 and st['watcher']['age_s'] < 60, r.stdout
    r = cli(workspace, 'retrain', 'status')
    assert r.returncode == 0 and 'passes: every one for 36' in r.stdout, r.stdout
    assert '(2 in a row, the last 0 s ago): a rollout is running' in r.stdout, r.stdout


def test_a_guard_whose_every_look_the_log_refuses_is_said_alive_but_judging_nothing(tmp_path, monkeypatch):
    """`rollout guard` beat at each look, so a guard whose every look the prediction log refused (a database down for
    an hour) read as a healthy guard while it judged nothing. A look the log refuses beats as missed, with why; one
    that goes through ends the misses."""
    from types import SimpleNamespace
    from lifecycle.core.heartbeats import beat, missed
    from lifecycle.deliver import rollout
    from lifecycle.serve.predlog import LogUnreadable

    def refused(s, *args):
        beat(s.state_dir, 'guard')  # (as a look does, first)
        raise LogUnreadable('the prediction log at sqlite:///p.db cannot be read: database is locked')

    s, g = SimpleNamespace(state_dir=tmp_path), SimpleNamespace(interval_s=0.0)
    monkeypatch.setattr(rollout, 'load_state', lambda s: None)  # (one look: no rollout running after it)
    monkeypatch.setattr(rollout, 'look', refused)
    rollout.guard(s, g, 1, 'sqlite:///p.db')
    rollout.guard(s, g, 1, 'sqlite:///p.db')
    m = missed(tmp_path, 'guard')
    assert m['passes'] == 2 and m['reason'].endswith('cannot be read: database is locked'), m
    monkeypatch.setattr(rollout, 'look', lambda s, *args: None)
    rollout.guard(s, g, 1, 'sqlite:///p.db')
    assert missed(tmp_path, 'guard') is None


def test_metrics_prom_says_since_when_a_watchers_every_pass_was_missed(workspace):
    """metrics.prom gave Prometheus each watcher's last heartbeat alone, so a retraining watcher whose every pass was
    missed for hours read as alive there too, with nothing to alert on. Each watcher whose passes are missed has a
    `lifecycle_monitor_watcher_missed_since_seconds` gauge (none once a pass went through)."""
    from lifecycle.core.heartbeats import beat
    from lifecycle.core.workspace import Workspace

    ws = Workspace.open(workspace)
    set_yaml(workspace / 'params/monitor.yaml', watchers=['monitor', 'retrain'])
    beat(ws.state_dir, 'retrain', now=1.7e9, missed='a rollout is running')
    beat(ws.state_dir, 'retrain', missed='a rollout is running')
    r = cli(workspace, 'monitor', 'run')
    assert r.returncode == 0, r.stdout + r.stderr
    prom = (ws.state_dir / 'monitor' / 'metrics.prom').read_text()
    assert 'lifecycle_monitor_watcher_missed_since_seconds{watcher="retrain"} 1700000000.000\n' in prom, prom
    beat(ws.state_dir, 'retrain', missed='')
    assert cli(workspace, 'monitor', 'run').returncode == 0
    prom = (ws.state_dir / 'monitor' / 'metrics.prom').read_text()
    assert 'missed_since_seconds{' not in prom and 'heartbeat_timestamp_seconds{watcher="retrain"}' in prom, prom


def test_hand_edited_misses_are_no_misses_and_break_no_reader(tmp_path):
    """A heartbeat's `missed.since` was taken as any finite number: a hand-edited 1e20 (or -1e20) ended the site's
    build in a traceback (OverflowError: the date of it), `passes: true` read 'True in a row' and a beat counted on
    from -5. Misses since before 1970 or after the beat itself, or no count of passes, are no misses; misses kept
    from a beat written while the clock was ahead start no later than the beat that keeps them."""
    import json
    from lifecycle.app.site import _watcher_words
    from lifecycle.core.heartbeats import beat, missed

    now, f = time.time(), tmp_path / 'heartbeats' / 'retrain.json'
    beat(tmp_path, 'retrain', now=now)
    for since, passes in [(1e20, 3), (-1e20, 3), (now + 3600, 3), (now - 10, True), (now - 10, -5), (now - 10, 0)]:
        f.write_text(json.dumps(dict(ts=now, missed=dict(reason='x', since=since, passes=passes))))
        assert missed(tmp_path, 'retrain', now) is None, (since, passes)
        assert beat(tmp_path, 'retrain', now=now, missed='y')['missed'] == dict(reason='y', since=now, passes=1)
    f.write_text(json.dumps(dict(ts=now, missed=dict(reason='x', since=now - 10, passes=2))))
    m = missed(tmp_path, 'retrain', now)
    assert m['passes'] == 2 and m['for_s'] == 10.0, m
    words = _watcher_words('retrain', dict(alive=True, missed_since=round(m['since']), missed_passes=m['passes']))
    assert words.endswith('was missed (2 in a row)'), words
    f.unlink()
    beat(tmp_path, 'retrain', now=now + 3600, missed='x')  # (the clock an hour ahead, then set back)
    assert missed(tmp_path, 'retrain', now) is None  # (a beat from the future is no beat, nor its misses)
    assert beat(tmp_path, 'retrain', now=now, missed='y')['missed'] == dict(reason='y', since=now, passes=2)


def test_a_beat_dated_ahead_of_this_clock_is_said_so_not_no_heartbeat_yet():
    """A watcher on a host whose clock is 2 minutes ahead (or this clock set back) beats, but `monitor status` said
    'not running (no heartbeat yet ...)': a person looks for a watcher that never started. It says the beat is dated
    ahead of this clock, and by how much (still failing: its age cannot be told)."""
    import tempfile
    from pathlib import Path
    from types import SimpleNamespace
    from lifecycle.core.heartbeats import beat
    from lifecycle.operate.commands import MonitorStatus
    from lifecycle.operate.monitor import _watcher

    d, now = Path(tempfile.mkdtemp()), time.time()
    mp = SimpleNamespace(heartbeat_max_age_s=300)
    beat(d, 'retrain', now=now + 120)
    w = _watcher(d, 'retrain', float('inf'), mp, now)
    assert w['alive'] is False and round(w['ahead_s']) == 120, w
    data = MonitorStatus({'watchers': {'retrain': w}}).data()
    assert data['ok'] is False and 'dated 120 s ahead of this clock' in data['error'], data
    assert 'no heartbeat yet' not in data['error'], data
    assert 'ahead_s' not in _watcher(d, 'guard', float('inf'), mp, now), 'never beat'


def test_the_sites_health_key_changes_when_another_pass_is_missed(tmp_path):
    """The landing page says a watcher is 'alive, but every pass since ... was missed (K in a row)', but the site's
    cache key (`health_key`) held only since when: a second, third missed pass left the page saying '1 in a row'. The
    key holds the count too; a watcher not alive (whose misses the page does not say) by its last beat alone."""
    from types import SimpleNamespace
    from lifecycle.core.heartbeats import beat
    from lifecycle.operate.heartbeats import health_key

    s = SimpleNamespace(state_dir=tmp_path / 'state', params_dir=tmp_path / 'params')
    s.params_dir.mkdir()
    (s.params_dir / 'monitor.yaml').write_text('heartbeat_max_age_s: 60\nwatchers: [monitor, retrain]\n')
    beat(s.state_dir, 'retrain', now=1000, missed='a rollout is running')
    k = health_key(s, now=1010)
    beat(s.state_dir, 'retrain', now=1005, missed='a rollout is running')
    assert health_key(s, now=1010) != k  # 2 in a row now
    assert health_key(s, now=2000)[-1] == ('retrain', False, 1005)  # (stale: the page says its last beat alone)


def test_a_persons_one_off_pass_refused_is_no_beat_of_the_watcher(workspace, monkeypatch):
    """Review EJ: a person's single `retrain run` held back by the `retrain` lock beat the watcher's heartbeat, so a
    watcher that was not running read alive for heartbeat_max_age_s after each such try. A one-off pass the lock held
    back beats nothing (one that took the lock walked the loop: from cron, that is how the loop is kept going); a
    watcher's pass does."""
    from lifecycle.core.heartbeats import heartbeats, missed
    from lifecycle.core.locks import hold
    from lifecycle.core.workspace import Workspace

    ws = Workspace.open(workspace)
    with hold(ws.state_dir, 'retrain'):
        r = cli(workspace, 'retrain', 'run')
        assert r.returncode == 1 and 'retrain lock' in r.stderr, r.stdout + r.stderr
        assert heartbeats(ws.state_dir, ['retrain'])['retrain'] == float('inf')  # (no beat: no watcher ran)
        r = cli(workspace, 'retrain', 'run', '--every', '0.01', '--times', '1')
        assert r.returncode == 1 and heartbeats(ws.state_dir, ['retrain'])['retrain'] < 60  # (the watcher's pass)
    assert missed(ws.state_dir, 'retrain') is None
    from lifecycle.loop import iteration

    def in_the_way(state_dir):
        raise iteration.RetrainBlocked('a rollout is running: the pass waits for it')

    monkeypatch.setattr(iteration, 'active', in_the_way)  # (past the lock: a pass from cron, say, missed)
    r = cli(workspace, 'retrain', 'run')
    assert r.returncode == 2 and missed(ws.state_dir, 'retrain')['passes'] == 1, r.stdout + r.stderr


def test_a_pass_that_went_through_beside_a_plain_beat_is_not_undone_by_it(tmp_path, monkeypatch):
    """Review EJ: `beat` read the heartbeat, then wrote it: a person's pass that went through (misses cleared) written
    between a watcher's plain beat reading the misses and writing them back was undone, and status said every pass was
    missed right after one went through. One beat of a name at a time."""
    import threading
    from lifecycle.core import heartbeats as hb

    hb.beat(tmp_path, 'retrain', missed='a rollout is running')
    read, wrote = threading.Event(), []
    real = hb._read

    def slow_read(state_dir, name):  # (the plain beat reads the misses, then the pass's beat comes)
        out = real(state_dir, name)
        if threading.current_thread().name == 'plain':
            read.set()
            threading.Event().wait(0.3)
        return out

    monkeypatch.setattr(hb, '_read', slow_read)
    plain = threading.Thread(target=lambda: wrote.append(hb.beat(tmp_path, 'retrain')), name='plain')
    plain.start()
    assert read.wait(5)
    hb.beat(tmp_path, 'retrain', missed='')  # (the pass went through: it waits for the plain beat, then clears)
    plain.join(5)
    assert hb.missed(tmp_path, 'retrain') is None and wrote and 'missed' in wrote[0]


def test_a_file_where_the_heartbeats_or_locks_folder_belongs_is_named_not_errno_17(tmp_path):
    """A plain file at `<state>/heartbeats` made every watcher's beat fail with a bare `[Errno 17] File exists`; a file
    where a folder must be is now named, with what was expected, what was found and the fix (an OSError: exit 1 from
    the CLI), for the locks folder too; nothing is written in its place."""
    import pytest
    from lifecycle.core.heartbeats import beat

    for folder in ('heartbeats', 'locks'):
        state = tmp_path / folder
        state.mkdir()
        (state / folder).write_text('not a folder')
        with pytest.raises(NotADirectoryError) as e:
            beat(state, 'monitor')
        assert str(e.value).startswith(f"{state / folder}: expected a folder (to hold {state / folder}/"), str(e.value)
        assert str(e.value).endswith(", found a file; move it aside") and 'Errno' not in str(e.value)
        assert (state / folder).read_text() == 'not a folder'
    (tmp_path / 'gone' / 'heartbeats').parent.mkdir()
    (tmp_path / 'gone' / 'heartbeats').symlink_to(tmp_path / 'elsewhere')  # (a link to nothing: as a file was)
    with pytest.raises(NotADirectoryError) as e:
        beat(tmp_path / 'gone', 'monitor')
    said = f"found a link to {tmp_path / 'elsewhere'}, which is missing; move it aside"
    assert str(e.value).startswith(f"{tmp_path / 'gone' / 'heartbeats'}: expected a folder") and said in str(e.value)
