"""Progressive delivery: the guard's statistics under repeated looks, the whole loop through a running server for a
degraded challenger (a sound one completes in production: test_demo_approvals.py), manual canary / blue-green actions
with their audit trail, and the A/B report. Every test that needs a trained workspace takes its own copy of the
session's template (`trained`, `two_versions`)."""

from __future__ import annotations
import json
import time
from pathlib import Path
import numpy as np
import pytest
from conftest import cli, cli_json, make_workspace, set_yaml
from lifecycle.params import GuardParams
from lifecycle.rollout import judge

# -- the guard's decision rule on simulated arms ------------------------------------------------------------------


def arm(n, errors, labelled, correct, p95=1.0):
    return dict(
        requests=n,
        errors=errors,
        feedback=labelled,
        correct=correct,
        feedback_requests=labelled,  # (requests of one record each: as many samples by request as by record)
        correct_requests=correct,
        error_rate=errors / n if n else None,
        accuracy=correct / labelled if labelled else None,
        p95_ms=p95,
    )


def simulate_rollout(rng, acc_c, acc_t, err_c, err_t, g: GuardParams, steps=3, look_every=50, max_per_arm=3000):
    "Feed the guard growing counts step by step; return ('rollback', samples per arm) or ('complete', ...)."
    for _ in range(steps):
        tests, n, c, t = {}, 0, np.zeros(3, int), np.zeros(3, int)
        while True:
            n += look_every
            c += [look_every, rng.binomial(look_every, err_c), rng.binomial(look_every, acc_c)]
            t += [look_every, rng.binomial(look_every, err_t), rng.binomial(look_every, acc_t)]
            d = judge(
                {'control': arm(c[0], c[1], c[0], c[2]), 'challenger': arm(t[0], t[1], t[0], t[2])}, tests, g, steps, 0
            )
            if d.action == 'rollback':
                return 'rollback', n
            if d.action == 'advance' or n >= max_per_arm:
                break
    return 'complete', None


@pytest.mark.slow  # 400 simulated rollouts
def test_false_rollbacks_of_a_sound_challenger_stay_under_alpha():
    "No difference, the guard looking every 50 requests: the whole-rollout false-rollback rate stays under alpha."
    g = GuardParams(
        min_requests=1000, min_feedback=1000, alpha=0.05, max_error_rate_increase=0.0, max_accuracy_drop=0.0
    )
    rng = np.random.default_rng(7)
    runs = [
        simulate_rollout(rng, 0.83, 0.83, 0.01, 0.01, g, look_every=50, max_per_arm=2000)[0] for _ in range(400)
    ]  # 60 looks
    rate = runs.count('rollback') / len(runs)
    assert rate <= g.alpha, rate


def test_a_real_regression_is_caught_within_a_bounded_sample():
    "Accuracy 0.83 -> 0.73 or errors 1% -> 8%: rolled back within a bounded sample per arm in >= 95% of runs."
    g = GuardParams(min_requests=5000, min_feedback=5000, alpha=0.05)  # minimums high: the step never advances
    rng = np.random.default_rng(11)
    for acc_t, err_t, bound in ((0.73, 0.01, 1500), (0.83, 0.08, 600)):
        out = [
            simulate_rollout(rng, 0.83, acc_t, 0.01, err_t, g, steps=1, look_every=50, max_per_arm=bound)[0]
            for _ in range(200)
        ]
        assert out.count('rollback') / len(out) >= 0.95, (acc_t, err_t, out.count('rollback'))


# -- the whole loop through a running server -------------------------------------------------------------------------


def quick_guard(ws: Path) -> Path:
    """The guard looks twice a second and may decide on 100 requests and 80 labels per arm. Latencies of a few ms on a
    shared machine under load are not what the demos are about: the p95 rule gets a wide margin (it rolled a sound
    challenger back once in CI, at 6.8 ms against 6.7 allowed)."""
    set_yaml(
        ws / 'params/rollout.yaml',
        guard__min_requests=100,
        guard__min_feedback=80,
        guard__interval_s=0.5,
        guard__p95_margin_ms=1000,
    )
    return ws


@pytest.fixture
def ws(two_versions) -> Path:
    "A copy of the two-version workspace (v1 champion, v2 challenger), flags initialised: control v1, nothing deployed."
    return quick_guard(two_versions)


def audit_entries(ws: Path, n: int = 200) -> list[dict]:
    return json.loads(cli(ws, 'audit', 'show', '-n', str(n), '--json').stdout)['entries']


@pytest.mark.slow
def test_a_degraded_challenger_is_rolled_back_on_its_own(trained):
    ws = quick_guard(trained)
    r, out = cli_json(
        ws, 'rollout', 'demo', '--challenger-kind', 'degraded', '--steps', '10,50,100', '--max-seconds', '240'
    )
    assert r.returncode == 0, r.stderr
    assert out['status'] == 'rolled_back' and out['challenger'] == '2', out['history']
    last = out['history'][-1]
    assert last['action'] == 'rollback' and last['actor'] == 'guard' and 'live accuracy down' in last['reason']
    assert last['metrics']['challenger']['accuracy'] < last['metrics']['control']['accuracy']
    _, flags = cli_json(ws, 'flags', 'show')
    assert flags['flags']['challenger'] is None and flags['flags']['control'] == '1'  # everyone back on the control
    log = audit_entries(ws)
    assert any(e['action'] == 'rollout.rollback' and e['actor'] == 'guard' for e in log)
    assert any(e['action'] == 'alert' and e['subject'] == 'rollout.regression' for e in log)
    html = Path(out['report'])
    assert html.is_file() and 'Every decision' in html.read_text() and 'rolled back' in html.read_text()


def _listening(ports=range(28100, 28200)):
    "A socket listening on the first free port of `ports` (the range this suite's servers may take)."
    import socket

    for port in ports:
        so = socket.socket()
        try:
            so.bind(('127.0.0.1', port))
        except OSError:
            so.close()
            continue
        so.listen()
        return so
    pytest.skip(f'no free port in {ports}')


def test_rollout_demo_refuses_a_port_in_use_naming_it_before_anything_starts(workspace):
    "Review: `rollout demo` served on a port of its own choosing only; `--port N` chooses it, a taken one is refused."
    so = _listening()
    port = so.getsockname()[1]
    try:
        r = cli(workspace, 'rollout', 'demo', '--port', str(port))
    finally:
        so.close()
    msg = ' '.join(r.stderr.split())
    assert r.returncode == 2 and f'--port {port}: 127.0.0.1:{port} is taken' in msg, r.stdout + r.stderr
    assert 'Traceback' not in r.stderr and not (workspace / '.lifecycle' / 'rollout.json').exists()
    assert not list((workspace / 'reports').glob('runs/candidate-*'))  # nothing trained
    r = cli(workspace, 'rollout', 'demo', '--help')
    assert '--port' in r.stdout and 'a free' in r.stdout, r.stdout


@pytest.mark.slow
def test_a_local_server_listens_on_the_port_it_is_given(tiny_ws):
    import httpx
    from conftest import clean_env
    from lifecycle.serve.local import LocalServer

    so = _listening()
    port = so.getsockname()[1]
    so.close()
    with LocalServer(tiny_ws, env=clean_env(), timeout=240, port=port) as srv:
        assert srv.url == f'http://127.0.0.1:{port}' and httpx.get(srv.url + '/ready', timeout=10).status_code == 200


@pytest.mark.slow
def test_a_local_server_serves_where_it_asks_and_takes_no_other_server_for_its_own(tiny_ws):
    """Review BG: the demo's server bound settings.ini's host while the demo asked 127.0.0.1 whether it was ready, so
    another server listening there answered for it and took the demo's traffic; a port taken is refused now, and the
    child binds 127.0.0.1 whatever the settings say."""
    import httpx
    from conftest import clean_env
    from lifecycle.serve.local import LocalServer

    so = _listening()
    port = so.getsockname()[1]
    try:
        with pytest.raises(RuntimeError, match=f'127.0.0.1:{port} is taken'):
            LocalServer(tiny_ws, env=clean_env(), timeout=60, port=port).start()
    finally:
        so.close()
    with LocalServer(tiny_ws, env={**clean_env(), 'LIFECYCLE_HOST': '192.0.2.2'}, timeout=240) as srv:
        assert httpx.get(srv.url + '/ready', timeout=10).status_code == 200


@pytest.mark.slow  # five CLI processes, one of them importing the report stack
def test_reports_on_a_workspace_without_traffic_fail_cleanly(tmp_path):
    fresh = make_workspace(tmp_path / 'fresh')
    r = cli(fresh, 'experiment', 'report', '--no-render')
    assert r.returncode == 0, r.stderr
    assert 'decision: continue' in r.stdout and 'control has 0 trials, fewer than 200' in r.stdout, r.stdout
    for args, words in (
        (('rollout', 'status'), 'no rollout yet'),
        (('rollout', 'guard', '--once'), 'no running rollout to guard'),
        (('flags', 'show'), 'no flags yet; run `lifecycle flags init`'),
        (('experiment', 'report', '--treatment', 'control'), "name the same variant 'control'"),
    ):
        r = cli(fresh, *args)
        assert r.returncode == 2 and r.stderr.startswith('error: ') and words in r.stderr, (args, r.stderr)
        assert 'Traceback' not in r.stderr, (args, r.stderr)
    assert not (fresh / '.lifecycle/predictions.db').exists()


def log_traffic(ws: Path, arms: dict, rng, n: int = 400) -> None:
    "Write `n` answered, labelled predictions per arm straight into the prediction log: {variant: (version, accuracy)}."
    from lifecycle.core.settings import load_settings
    from lifecycle.serve.predlog import PredictionLog, add_feedback, default_url

    log = PredictionLog(default_url(load_settings(ws)))
    try:
        for variant, (version, acc) in arms.items():
            ids = [f'{variant}-{time.time_ns()}-{i}' for i in range(n)]
            for rid in ids:
                log.log(
                    request_id=rid,
                    ts=time.time(),
                    route='predict',
                    variant=variant,
                    model_version=version,
                    decision=[1],
                    latency_ms=1.0,
                    status=200,
                )
            log.flush()
            for rid in ids:
                add_feedback(log, rid, 'Yes' if rng.random() < acc else 'No')
    finally:
        log.close()


def test_experiment_report_compares_the_variants(ws):
    log_traffic(ws, {'control': ('1', 0.83), 'challenger': ('2', 0.60)}, np.random.default_rng(5))
    r, a = cli_json(ws, 'experiment', 'report')
    assert r.returncode == 0, r.stderr
    assert set(a['variants']) == {'control', 'challenger'}
    assert a['variants']['control']['labelled'] == a['variants']['challenger']['labelled'] == 400
    assert a['decision']['decision'] == 'keep_control', a['decision']  # 0.83 against 0.60 on 400 each
    probs = {k: v['prob_best'] for k, v in a['bayes']['arms'].items()}
    assert abs(sum(probs.values()) - 1) < 1e-9 and probs['control'] > 0.99
    lo, hi = a['frequentist']['newcombe_95']
    assert lo < a['frequentist']['difference'] < hi < 0  # the challenger is worse
    page = Path(a['report']).read_text()
    assert 'Bayesian and frequentist comparison' in page and 'image/png' in page and 'probability to be best' in page
    saved = sorted((ws / 'reports' / 'experiments').glob('*/analysis.json'))
    r = cli(ws, 'experiment', 'report', '--since', '2099-01-01')  # no traffic there yet: refused, nothing saved
    assert r.returncode == 2 and 'expected a time in the past' in r.stderr, r.stderr
    r, look = cli_json(ws, 'experiment', 'report', '--no-save')  # a look writes no new evidence
    assert r.returncode == 0 and look['report'] is None and look['decision'] == a['decision'], r.stderr
    assert sorted((ws / 'reports' / 'experiments').glob('*/analysis.json')) == saved
    from lifecycle.core import audit
    from lifecycle.core.settings import load_settings

    on_record = [
        e['details']['report'] for e in audit.read(load_settings(ws).audit_path) if e['action'] == 'experiment.report'
    ]
    assert on_record == [str(p) for p in saved]  # each saved report is on record (its removal would show)


@pytest.mark.slow
def test_experiment_report_promotes_a_clearly_better_challenger(ws):
    """The challenger arm served v3 (poor) before v2 replaced it by hand: v2 is judged on its own rows (pooled with
    v3's, the challenger's accuracy would be about 0.58, below the control's 0.60)."""
    log_traffic(ws, {'challenger': ('3', 0.30)}, np.random.default_rng(7))
    log_traffic(ws, {'control': ('1', 0.60), 'challenger': ('2', 0.85)}, np.random.default_rng(6))
    r, a = cli_json(ws, 'experiment', 'report', '--no-render')
    assert r.returncode == 0 and a['decision']['decision'] == 'promote', (r.stderr, a.get('decision'))
    assert a['set_aside'] == {'challenger': {'3': 400}} and a['variants']['challenger']['versions'] == '2'


def test_manual_canary_steps_pause_resume_and_rollback_are_audited(ws):
    r, out = cli_json(ws, 'rollout', 'start', '--challenger', '2', '--steps', '5,25,100', '--reason', 'manual canary')
    assert r.returncode == 0, r.stderr
    assert out['rollout']['percentage'] == 5 and cli_json(ws, 'flags', 'show')[1]['flags']['percentage'] == 5
    r = cli(ws, 'rollout', 'start', '--challenger', '2')
    assert r.returncode == 2 and 'finish or roll it back first' in r.stderr
    for action, expect in (('pause', 'paused'), ('resume', 'running')):
        _, out = cli_json(ws, 'rollout', action, '--reason', f'{action} by carol')
        assert out['rollout']['status'] == expect
    step_started = out['rollout']['step_started']
    r, out = cli_json(ws, 'rollout', 'resume', '--reason', 'oops')  # (running: it wiped the guard's evidence, review K)
    assert r.returncode == 2 and 'is running, not paused: there is nothing to resume' in out['error'], out
    assert cli_json(ws, 'rollout', 'status')[1]['rollout']['step_started'] == step_started
    _, out = cli_json(ws, 'rollout', 'advance')
    assert out['rollout']['percentage'] == 25 and cli_json(ws, 'flags', 'show')[1]['flags']['percentage'] == 25
    _, out = cli_json(ws, 'rollout', 'rollback', '--reason', 'pager went off')
    assert out['rollout']['status'] == 'rolled_back'
    f = cli_json(ws, 'flags', 'show')[1]['flags']
    assert f['challenger'] is None and f['percentage'] == 0 and f['control'] == '1'
    log = [e for e in audit_entries(ws) if e['action'].startswith('rollout.')]
    assert [e['action'] for e in log] == [
        'rollout.start',
        'rollout.advance',
        'rollout.pause',
        'rollout.resume',
        'rollout.advance',
        'rollout.rollback',
    ]
    assert (
        log[-1]['reason'] == 'pager went off' and log[2]['reason'] == 'pause by carol' and all(e['actor'] for e in log)
    )
    r = cli(ws, 'rollout', 'advance')
    assert r.returncode == 2 and 'no rollout in progress' in r.stderr
    r = cli(ws, 'rollout', 'start', '--challenger', '2', '--steps', '50,5')
    assert r.returncode == 2 and 'steps' in r.stderr


def test_rollout_status_never_shows_the_waiting_reasons_of_a_step_the_rollout_has_left(ws):
    """`rollout status` printed the guard's last look whatever step it was of: right after `rollout advance` (or
    `resume`) it said "waiting: control: 30 requests of 100 needed" for a step whose evidence had started afresh, with
    thousands of requests served since (found by QA). A look belongs to its step: a new step starts with none."""
    from lifecycle.core.workspace import Workspace
    from lifecycle.deliver import rollout as ro
    from lifecycle.serve.predlog import default_url

    s = Workspace.open(ws)
    ro.start(s, '2', s.params['rollout'], steps=[5, 25, 100], actor='carol', reason='canary')
    log_traffic(ws, {'control': ('1', 0.83), 'challenger': ('2', 0.83)}, np.random.default_rng(3), n=30)
    g, positive = s.params['rollout'].guard, s.params['features'].positive_class
    d = ro.look(s, g, positive, default_url(s))
    assert d.action == 'wait' and 'control: 30 requests of 100 needed' in d.reasons, d
    assert 'control: 30 requests of 100 needed' in cli(ws, 'rollout', 'status').stdout  # (the step it was of)
    for act in (ro.advance, ro.resume):  # (a resumed step's evidence starts afresh too)
        if act is ro.resume:
            assert ro.look(s, g, positive, default_url(s)).action == 'wait'  # (a look at the new step, then a pause)
            ro.pause(s, actor='carol')
        act(s, actor='carol')
        assert 'last_look' not in ro.load_state(s)
        out = cli(ws, 'rollout', 'status').stdout
        assert 'requests of 100 needed' not in out and 'no guard look at this step yet' in out, out


def test_the_audit_checkpoint_copy_is_written_after_each_flags_write_with_the_lock_free(ws, monkeypatch):
    """The tracking server's copy of the audit checkpoint may take minutes when that server refuses connections. It was
    written under the flags lock by every rollout action (a kill from elsewhere waited behind it), and after this
    stop's change to the flags not at all by `flags init` and a bundle's flags (review). Now once per write, after."""
    from lifecycle.core.locks import holds
    from lifecycle.core.params import FlagsParams
    from lifecycle.core.workspace import Workspace
    from lifecycle.deliver import rollout as ro
    from lifecycle.serve import flags as fl

    s = Workspace.open(ws)
    calls = []
    monkeypatch.setattr(Workspace, 'mirror_checkpoint', lambda self: calls.append(holds(self.state_dir, 'flags')))
    for act in (
        lambda: fl.init_flags(s, s.params['flags'], s.params['register'].model_name, lambda a: '1', if_absent=False),
        lambda: fl.bundle_flags(s, FlagsParams(), {'model_name': s.params['register'].model_name, 'model_version': 1}),
        lambda: ro.start(s, '2', s.params['rollout'], steps=[10, 100], actor='carol', reason='canary'),
        lambda: ro.kill(s, actor='carol', reason='pager went off'),
        lambda: fl.kill(s, actor='carol'),
    ):
        before = len(calls)
        act()
        assert len(calls) > before and not any(calls[before:]), calls  # written, and never under the lock


@pytest.mark.parametrize('action, status', [('kill', 'killed'), ('rollback', 'rolled_back')])
def test_a_kill_or_rollback_the_audit_log_cannot_record_still_ends_the_rollout(ws, monkeypatch, action, status):
    """The flags change of a kill or a rollback stays live when the audit log cannot record it (it only takes exposure
    away): the rollout ends with it, saying it went unrecorded, so no guard judges and no hold keeps an arm gone."""
    from conftest import make_audit_unwritable
    from lifecycle.core import audit
    from lifecycle.core.workspace import Workspace
    from lifecycle.deliver import rollout as ro
    from lifecycle.serve import flags as fl

    s = Workspace.open(ws)
    st = ro.start(s, '2', s.params['rollout'], steps=[10, 100], actor='carol', reason='canary')
    entries = len(audit.read(s.audit_path))
    make_audit_unwritable(monkeypatch)
    said = rf"rollout {st['id']} {status.replace('_', ' ')}, its flags change unrecorded: the change is live"
    with pytest.raises(audit.AuditError, match=said):
        getattr(ro, action)(s, actor='carol', reason='pager went off')
    monkeypatch.undo()
    after = ro.load_state(s)
    assert (after['status'], after['percentage'], after['history'][-1]['unrecorded']) == (status, 0.0, True)
    assert fl.load_hold(s) is None and len(audit.read(s.audit_path)) == entries
    spec = fl.load_spec(s)[0]
    assert (spec.challenger, spec.percentage, spec.kill) == (None, 0, action == 'kill')
    r = cli(ws, 'rollout', 'status', '--json')
    assert r.returncode == 0 and json.loads(r.stdout)['rollout']['status'] == status, r.stdout + r.stderr


def test_the_rollback_of_a_completed_rollout_the_audit_log_cannot_record_is_undone_and_can_be_tried_again(
    ws, monkeypatch
):
    """Rolling back a completed rollout brings its old control back (more exposure): unrecorded, it is undone, and the
    rollout stays completed, to be rolled back once the log takes it (it was saved as rolled back, and could not be)."""
    from conftest import make_audit_unwritable
    from lifecycle.core import audit
    from lifecycle.core.workspace import Workspace
    from lifecycle.deliver import rollout as ro
    from lifecycle.serve import flags as fl

    s = Workspace.open(ws)
    ro.start(s, '2', s.params['rollout'], steps=[50, 100], actor='carol', reason='canary')
    assert ro.advance(s, actor='carol', reason='to 100%')['status'] == 'completed' and fl.load_spec(s)[0].control == '2'
    make_audit_unwritable(monkeypatch)
    with pytest.raises(audit.AuditError, match='^nothing changed: the audit log'):
        ro.rollback(s, actor='carol', reason='pager went off')
    monkeypatch.undo()
    assert ro.load_state(s)['status'] == 'completed' and fl.load_spec(s)[0].control == '2'
    assert ro.rollback(s, actor='carol', reason='pager went off')['status'] == 'rolled_back'
    assert fl.load_spec(s)[0].control == '1'


def test_the_rollback_of_a_completed_rollout_takes_the_safe_version_back_too_when_it_was_made_the_new_one(ws):
    """Once a rollout has completed, the README has the new control made the safe version too; rolling the rollout
    back left the safe version on the version rolled back, so the next kill switch sent everyone to it (found by
    review)."""
    from lifecycle.core.workspace import Workspace
    from lifecycle.deliver import rollout as ro
    from lifecycle.serve import flags as fl

    s = Workspace.open(ws)
    ro.start(s, '2', s.params['rollout'], steps=[50, 100], actor='carol', reason='canary')
    assert ro.advance(s, actor='carol', reason='to 100%')['status'] == 'completed'
    fl.change_flags(s, {'safe': '2'}, actor='carol', reason='the new version is the known-good one now')
    assert ro.rollback(s, actor='carol', reason='pager went off')['status'] == 'rolled_back'
    spec = fl.load_spec(s)[0]
    assert (spec.control, spec.safe) == ('1', '1')
    assert fl.kill(s, actor='carol', reason='incident').spec.safe == '1'


def test_no_step_is_taken_by_hand_while_the_kill_switch_is_on(ws):
    """`flags kill` during a rollout sends everyone to the safe version: the challenger serves no one, so a step, a
    switch to it or a completion (which moves the environment's alias to it) would rest on nothing. The guard waits;
    `advance` and `switch` were taken and completed the rollout onto a version no one had been served (a review)."""
    assert cli(ws, 'rollout', 'start', '--challenger', '2', '--steps', '5,50,100').returncode == 0
    assert cli(ws, 'flags', 'kill', '--reason', 'bad answers').returncode == 0
    for _ in range(2):  # (5 -> 50 -> completed, before)
        r = cli(ws, 'rollout', 'advance', '--reason', 'x')
        assert r.returncode == 2 and 'the kill switch is on' in r.stderr and 'flags unkill' in r.stderr, r.stderr
    _, st = cli_json(ws, 'rollout', 'status')
    assert st['rollout']['percentage'] == 5 and st['held_by_kill_switch'] is True  # (said: running, review K)
    said = cli(ws, 'rollout', 'status').stdout
    assert 'held: the kill switch is on' in said and 'waiting:' not in said, said
    assert cli(ws, 'flags', 'unkill').returncode == 0 and cli_json(ws, 'rollout', 'advance')[0].returncode == 0
    assert 'held_by_kill_switch' not in cli_json(ws, 'rollout', 'status')[1]
    assert cli(ws, 'rollout', 'rollback', '--reason', 'next').returncode == 0
    assert cli(ws, 'rollout', 'start', '--challenger', '2', '--strategy', 'blue_green').returncode == 0
    assert cli(ws, 'flags', 'kill', '--reason', 'bad answers').returncode == 0
    r = cli(ws, 'rollout', 'switch')
    assert r.returncode == 2 and 'the kill switch is on' in r.stderr, r.stderr
    assert cli(ws, 'flags', 'unkill').returncode == 0 and cli_json(ws, 'rollout', 'switch')[0].returncode == 0
    assert cli(ws, 'flags', 'kill', '--reason', 'again').returncode == 0
    r = cli(ws, 'rollout', 'advance')  # (completing: the alias would move to the challenger)
    assert r.returncode == 2 and 'the kill switch is on' in r.stderr, r.stderr
    _, out = cli_json(ws, 'rollout', 'switch')  # back to the control: always allowed
    assert out['rollout']['percentage'] == 0 and out['rollout']['status'] == 'running'
    assert cli_json(ws, 'status')[1]['models'][0]['aliases'] == {'dev': '1'}  # (the alias never moved)


def test_blue_green_switches_all_traffic_and_back_at_once(ws):
    r, out = cli_json(ws, 'rollout', 'start', '--challenger', '2', '--strategy', 'blue_green', '--steps', '5,100')
    said = 'a blue-green rollout (--strategy blue_green) takes no steps'  # (review AX: steps unused)
    assert r.returncode == 2 and said in out['error'], out
    r, out = cli_json(ws, 'rollout', 'start', '--challenger', '2', '--strategy', 'blue_green', '--reason', ' ')
    assert r.returncode == 2 and out['error'].startswith('--reason: expected why'), out  # (given empty: review AX)
    r, out = cli_json(ws, 'rollout', 'start', '--challenger', '2', '--strategy', 'blue_green')
    assert r.returncode == 0 and out['rollout']['percentage'] == 0, r.stderr
    assert out['rollout']['steps'] == [100.0], out['rollout']  # (it recorded a canary's steps it never took)
    r, out = cli_json(ws, 'rollout', 'pause', '--reason', '')
    assert r.returncode == 2 and out['error'].startswith('--reason: expected why'), out
    r = cli(ws, 'rollout', 'advance')  # before any switch it completed the rollout on no traffic at all
    assert r.returncode == 2 and 'rollout switch' in r.stderr, r.stdout + r.stderr
    for expect in (100, 0, 100):
        _, out = cli_json(ws, 'rollout', 'switch')
        assert out['rollout']['percentage'] == expect == cli_json(ws, 'flags', 'show')[1]['flags']['percentage']
    assert cli(ws, 'rollout', 'pause', '--reason', 'night').returncode == 0
    _, out = cli_json(ws, 'rollout', 'switch')  # back to the control: allowed while paused
    assert out['rollout']['percentage'] == 0 and out['rollout']['status'] == 'paused'
    r = cli(ws, 'rollout', 'switch')  # to the challenger again: not while no guard looks
    assert r.returncode == 2 and 'paused (night)' in r.stderr, r.stderr
    assert cli_json(ws, 'flags', 'show')[1]['flags']['percentage'] == 0
    assert cli(ws, 'rollout', 'resume').returncode == 0 and cli_json(ws, 'rollout', 'switch')[0].returncode == 0
    _, out = cli_json(ws, 'rollout', 'kill', '--reason', 'drill')
    flags = cli_json(ws, 'flags', 'show')[1]['flags']
    assert out['rollout']['status'] == 'killed' and flags['kill'] is True and flags['challenger'] is None
    assert cli(ws, 'flags', 'unkill').returncode == 0  # the control alone serves again: no suspect comes back
    flags = cli_json(ws, 'flags', 'show')[1]['flags']
    assert flags['kill'] is False and flags['challenger'] is None and flags['percentage'] == 0


def test_blue_green_guard_compares_the_switched_version_with_the_control_before_the_switch(ws):
    "After the switch the control gets no traffic: the guard's yardstick is the control's traffic before it."
    r, out = cli_json(ws, 'rollout', 'start', '--challenger', '2', '--strategy', 'blue_green')
    assert r.returncode == 0 and out['rollout']['control'] == '1', r.stderr
    rng = np.random.default_rng(3)
    log_traffic(ws, {'control': ('1', 0.83)}, rng)
    _, out = cli_json(ws, 'rollout', 'switch')
    log_traffic(ws, {'control': ('1', 0.0)}, rng, n=1200)  # answered after the switch (in flight): no yardstick
    r = cli(ws, 'rollout', 'guard', '--once')  # no traffic since the switch: one look says so (it printed nothing)
    assert r.returncode == 0 and r.stdout.startswith('wait: '), r.stdout + r.stderr
    log_traffic(ws, {'challenger': ('2', 0.30)}, rng)
    r = cli(ws, 'rollout', 'guard', '--once')
    assert r.returncode == 0 and r.stdout.startswith('rollback: live accuracy down'), r.stdout + r.stderr
    assert cli_json(ws, 'rollout', 'status')[1]['rollout']['status'] == 'rolled_back'


def test_a_step_without_enough_data_pauses(ws):
    set_yaml(ws / 'params/rollout.yaml', guard__max_step_seconds=0.5)  # this test's own copy of the workspace
    r, _ = cli_json(ws, 'rollout', 'start', '--challenger', '2', '--steps', '10,100')
    assert r.returncode == 0, r.stderr
    time.sleep(0.6)
    r = cli(ws, 'rollout', 'guard', '--once')
    assert r.returncode == 0 and r.stdout.startswith('pause: not enough data'), r.stdout + r.stderr
    assert cli_json(ws, 'rollout', 'status')[1]['rollout']['status'] == 'paused'
    r = cli(ws, 'rollout', 'advance')  # it moved the share and stayed paused: more traffic, and no guard looking
    assert r.returncode == 2 and 'paused (not enough data' in r.stderr and 'rollout resume' in r.stderr, r.stderr
    assert cli_json(ws, 'flags', 'show')[1]['flags']['percentage'] == 10
    assert [e['action'] for e in audit_entries(ws) if e['action'].startswith('rollout.')][-1] == 'rollout.pause'
    assert cli(ws, 'rollout', 'resume').returncode == 0
    _, out = cli_json(ws, 'rollout', 'advance')  # resumed, a person may take the step the guard did not
    assert out['rollout']['status'] == 'completed' and cli_json(ws, 'flags', 'show')[1]['flags']['control'] == '2'


@pytest.mark.parametrize('since', [None, 1_100.0])
def test_an_ab_report_from_the_database_is_the_analysis_of_every_row(tmp_path, since):
    "`experiment report` reads each arm's latencies and labelled rows, not the whole log: the same analysis."
    from lifecycle.core.params import ExperimentParams
    from lifecycle.deliver.experiment import analyse, analyse_stats
    from lifecycle.deliver.rollout import arm_stats_in_log
    from tail_logs import irregular_ab_log
    from lifecycle.serve.predlog import read_log

    url = f'sqlite:///{tmp_path}/p.db'
    irregular_ab_log(url)
    ep = ExperimentParams()
    want = analyse(read_log(url, since=since, shadow=False, model='m'), 'Yes', ep)
    stats, aside = arm_stats_in_log(url, 'Yes', ('control', 'challenger'), since, 'm')
    got = analyse_stats(stats, aside, ep)
    assert want['variants']['control']['requests'] > 20 and want['variants']['challenger']['labelled'] > 20
    assert want['set_aside'] and {k: v for k, v in got.items() if k != 'created'} == {
        k: v for k, v in want.items() if k != 'created'
    }
    none, aside = arm_stats_in_log(f'sqlite:///{tmp_path}/none.db', 'Yes')  # no log yet: empty arms
    assert aside == {} and none['control']['requests'] == 0 and not (tmp_path / 'none.db').exists()


def test_an_arm_without_labelled_outcomes_reports_no_figures_of_the_prior_as_evidence(tmp_path):
    "An arm with no feedback yet: its posterior is the prior's, so no P(best), loss or relative difference is quoted."
    from lifecycle.core.params import ExperimentParams
    from lifecycle.deliver.experiment import analyse_stats
    from lifecycle.deliver.rollout import arm_stats_in_log
    from tail_logs import irregular_ab_log

    empty, _ = arm_stats_in_log(f'sqlite:///{tmp_path}/none.db', 'Yes')
    a = analyse_stats(empty, {}, ExperimentParams())
    for arm in ('control', 'challenger'):
        b = a['bayes']['arms'][arm]
        assert b['prior_only'] and b['rel_diff_mean'] is None and b['rel_diff_ci'] is None and b['prob_best'] is None
    said = ' '.join(a['decision']['reasons'])
    assert 'No P(best) or expected loss: control and challenger have no labelled outcome yet' in said
    assert 'P(best) =' not in said and a['decision']['decision'] == 'continue'
    url = f'sqlite:///{tmp_path}/p.db'
    irregular_ab_log(url)
    stats, _ = arm_stats_in_log(url, 'Yes', ('control', 'challenger'), None, 'm')
    half = analyse_stats({'control': stats['control'], 'challenger': empty['challenger']}, {}, ExperimentParams())
    c, t = half['bayes']['arms']['control'], half['bayes']['arms']['challenger']
    assert not c['prior_only'] and t['prior_only'] and c['prob_best'] is None and c['rel_diff_mean'] is None
    reasons = ' '.join(half['decision']['reasons'])  # (the control's P(best) would be against the prior: not quoted)
    assert 'P(best) = ' not in reasons and 'No P(best) or expected loss: challenger has no labelled outcome' in reasons
    from lifecycle.deliver.experiment import plot_analysis

    assert len(plot_analysis(half).axes) == 3
    both = analyse_stats(stats, {}, ExperimentParams())['bayes']['arms']['challenger']
    assert not both['prior_only'] and isinstance(both['rel_diff_mean'], float) and len(both['rel_diff_ci']) == 2


@pytest.mark.parametrize('since, until', [(None, None), (1_100.0, None), (1_100.0, 1_500.0), (None, 1_300.0)])
def test_the_guards_arm_figures_from_the_database_are_those_of_every_row_of_the_step(tmp_path, since, until):
    """The guard judges a step on what the database counts of the rows logged since it began (and, blue-green, of
    the control's before the switch), every version's: what `arm_stats` finds in `read_log`'s frame of them."""
    from lifecycle.deliver.rollout import arm_stats, arm_stats_in_log
    from tail_logs import irregular_ab_log
    from lifecycle.serve.predlog import read_log

    url = f'sqlite:///{tmp_path}/p.db'
    irregular_ab_log(url)
    frame = read_log(url, since=since, shadow=False, model='m')
    want = arm_stats(frame if until is None else frame[frame.ts < until], 'Yes')
    got, aside = arm_stats_in_log(url, 'Yes', ('control', 'challenger'), since, 'm', until=until, latest=False)
    assert json.dumps(got, sort_keys=True) == json.dumps(want, sort_keys=True) and aside == {}  # (NaN as NaN)
    assert want['control']['requests'] > 20 and ',' in want['challenger']['versions']  # (every version's)


def test_an_ab_report_from_the_database_is_of_one_moment_while_the_server_logs_on(tmp_path, monkeypatch):
    "A version served while the report's queries run is the next report's: never pooled with the one before it."
    from tail_logs import ab_rows_logged_meanwhile
    from lifecycle.deliver.rollout import arm_stats_in_log

    url = f'sqlite:///{tmp_path}/p.db'
    before = ab_rows_logged_meanwhile(url, monkeypatch)
    stats, aside = arm_stats_in_log(url, 'Yes', model='m')
    assert (stats['control']['versions'], stats['control']['requests'], aside) == before


@pytest.mark.parametrize('why', ['refused', 'held'])
def test_a_completion_not_allowed_yet_leaves_the_step_judged_and_a_regression_rolled_back(ws, monkeypatch, why):
    """In staging and production the last canary step completes only with the new control's approval. Refused (by
    the release policy, as a standalone guard finds it) or held (the retraining loop, which asks first), the guard
    stopped there, and the step's share served on with no one judging it (found by review). Now the look says why it
    waits, and the next look judges the step again: a regression is still rolled back."""
    from lifecycle.core.workspace import Workspace
    from lifecycle.deliver import rollout as ro
    from lifecycle.serve import flags as fl
    from lifecycle.serve.predlog import default_url

    r, _ = cli_json(ws, 'rollout', 'start', '--challenger', '2', '--steps', '50,100')
    assert r.returncode == 0, r.stderr
    rng = np.random.default_rng(7)
    log_traffic(ws, {'control': ('1', 0.83), 'challenger': ('2', 0.85)}, rng)  # a healthy step: it would complete
    missing = "control: arrests-release version 2 may not be exposed as 'production': a production approval is missing"
    real = fl.change_flags

    def refusing(s, changes, *a, **kw):
        if changes.get('control') == '2':
            raise fl.FlagError(missing)
        return real(s, changes, *a, **kw)

    monkeypatch.setattr(fl, 'change_flags', refusing)
    s = Workspace.open(ws)
    g, positive, url = s.params['rollout'].guard, s.params['features'].positive_class, default_url(s)
    hold = missing if why == 'held' else None
    d = ro.look(s, g, positive, url, hold=hold)
    assert d.action == 'wait' and d.reasons[0] == f'ready to complete, but {missing}; the step stays judged', d
    st = ro.load_state(s)
    assert st['status'] == 'running' and st['percentage'] == 50 and st['last_look']['reasons'] == d.reasons
    assert fl.load_spec(s)[0].control == '1'
    log_traffic(ws, {'challenger': ('2', 0.05)}, rng, n=1200)  # then the challenger goes bad
    d = ro.look(s, g, positive, url, hold=hold)
    assert d.action == 'rollback' and ro.load_state(s)['status'] == 'rolled_back', d
    assert fl.load_spec(s)[0].challenger is None


def test_a_kill_never_waits_on_the_guards_reading_of_the_log(ws, monkeypatch):
    """Found by review: the guard read the prediction log under the rollout lock, so a kill switch (and the server
    asking for it) waited for as long as the log's queries took."""
    import threading
    from lifecycle.core.workspace import Workspace
    from lifecycle.deliver import rollout as ro
    from lifecycle.serve import flags as fl
    from lifecycle.serve.predlog import default_url

    r, _ = cli_json(ws, 'rollout', 'start', '--challenger', '2', '--steps', '10,100')
    assert r.returncode == 0, r.stderr
    s = Workspace.open(ws)
    reading, real = threading.Event(), ro._arms

    def slow(*a, **k):  # a large log: its queries take seconds
        reading.set()
        time.sleep(3)
        return real(*a, **k)

    monkeypatch.setattr(ro, '_arms', slow)
    monkeypatch.setattr(ro, 'judge', lambda *a, **k: ro.Decision('advance', ['figures read before the kill']))
    looked = []
    guard = threading.Thread(target=lambda: looked.append(ro.look(s, s.params['rollout'].guard, 'Yes', default_url(s))))
    guard.start()
    assert reading.wait(10)
    t0 = time.monotonic()
    assert fl.kill(s, actor='carol', reason='incident').spec.kill
    waited = time.monotonic() - t0
    guard.join()
    assert waited < 2, f'the kill waited {waited:.1f} s on the guard'
    assert looked[0].action == 'wait' and 'the kill switch is on' in looked[0].reasons[0]  # (found by the review of
    st = ro.load_state(s)  # this mend: figures read before the kill advanced the killed challenger to control)
    assert st['status'] == 'running' and st['percentage'] == 10 and fl.load_spec(s)[0].control == '1'


def test_a_canary_of_one_step_to_100_is_refused(ws):
    "Found by review: `rollout start --steps 100` completed the rollout at once, no guard ever looking."
    r = cli(ws, 'rollout', 'start', '--challenger', '2', '--steps', '100')
    assert r.returncode == 2 and 'a canary needs a step below 100 before 100' in r.stderr, r.stderr
    assert 'Traceback' not in r.stderr and cli_json(ws, 'flags', 'show')[1]['flags']['control'] == '1'


def test_a_rollout_of_another_version_is_refused_while_a_challenger_is_deployed(ws):
    """Review AX: `rollout start` replaced, unsaid, the challenger a retraining had put in the shadow (the loop then
    reverted, the rollout ran on with its shadow and without the flags' cohorts). Refused, naming the deployed one and
    how to undeploy it; a rollout of that very version starts (the loop's canary after its shadow)."""
    r = cli(ws, 'flags', 'set', 'challenger=2', 'shadow=true')
    assert r.returncode == 0, r.stderr
    r, out = cli_json(ws, 'rollout', 'start', '--challenger', '3')
    assert r.returncode == 2 and out['error'].startswith(
        'version 2 is deployed as the challenger (0% of traffic, in the shadow), by a flags change or a retraining'
    ), out
    assert '`lifecycle flags set challenger=null`' in out['error'] and not (ws / '.lifecycle' / 'rollout.json').exists()
    r, out = cli_json(ws, 'rollout', 'start', '--challenger', '2', '--steps', '5,100')
    assert r.returncode == 0 and out['rollout']['percentage'] == 5, r.stdout + r.stderr


def test_an_ab_report_the_audit_log_cannot_record_leaves_no_report_behind(tmp_path):
    """Review AX: with the audit log unwritable, `experiment report` said its entry was not recorded (exit 3) but left
    `analysis.json`, a report no approval may rest on, beside those that are evidence."""
    from types import SimpleNamespace
    from lifecycle.core.audit import AuditError
    from lifecycle.deliver.experiment import write_report

    def refused(*args, **kwargs):
        raise AuditError("the audit log cannot be written: its 'experiment.report' entry was not recorded")

    def interrupted():  # (Ctrl-C while the checkpoint goes to the tracking server, the entry written: review BA)
        raise KeyboardInterrupt

    ws = SimpleNamespace(reports_dir=tmp_path, params={'register': SimpleNamespace(model_name='m')},
                         audit_only=refused, mirror_checkpoint=lambda: None)  # fmt: skip
    with pytest.raises(AuditError):
        write_report(ws, {'created': 1_800_000_000.0, 'control': 'control', 'treatment': 'challenger'})
    assert list((tmp_path / 'experiments').iterdir()) == []
    ws.audit_only, ws.mirror_checkpoint = (lambda *args, **kwargs: None), interrupted
    with pytest.raises(KeyboardInterrupt):
        write_report(ws, {'created': 1_800_000_000.0})
    kept = list((tmp_path / 'experiments').glob('*/analysis.json'))
    assert len(kept) == 1  # on record: it stays, as the evidence its entry names


def test_an_ab_report_interrupted_before_its_entry_is_recorded_is_removed_and_after_it_kept(tmp_path):
    """Review BB: Ctrl-C while `experiment report` waited for the audit log's lock left a report no entry names; one
    interrupted after its entry was appended is evidence and stays."""
    from types import SimpleNamespace
    from lifecycle.core import audit
    from lifecycle.deliver.experiment import write_report

    def waiting(*args, **kwargs):  # (the lock awaited: nothing appended)
        raise KeyboardInterrupt

    def appended(action, subject='', reason='', **details):  # (the entry appended, then Ctrl-C)
        audit.append(ws.audit_path, action, subject, reason, actor='tester', **details)
        raise KeyboardInterrupt

    log = tmp_path / 'state' / 'audit.jsonl'
    log.parent.mkdir()
    audit.append(log, 'experiment.report', 'm', 'another report', actor='tester', sha256='0' * 64, report='x')
    ws = SimpleNamespace(reports_dir=tmp_path, params={'register': SimpleNamespace(model_name='m')},
                         audit_path=log, audit_only=waiting, mirror_checkpoint=lambda: None)  # fmt: skip
    with pytest.raises(KeyboardInterrupt):
        write_report(ws, {'created': 1_800_000_000.0, 'control': 'control', 'treatment': 'challenger'})
    assert list((tmp_path / 'experiments').iterdir()) == []
    ws.audit_only = appended
    with pytest.raises(KeyboardInterrupt):
        write_report(ws, {'created': 1_800_000_000.0, 'control': 'control', 'treatment': 'challenger'})
    kept = list((tmp_path / 'experiments').glob('*/analysis.json'))
    assert len(kept) == 1 and [e['action'] for e in audit.read(log)] == ['experiment.report'] * 2


def test_steps_for_a_blue_green_rollout_are_refused_as_such_not_as_a_canarys(workspace):
    """`--strategy blue_green --steps 100` was refused as a canary's one step, advising "strategy blue_green", which it
    was (with params/rollout.yaml's blue_green too)."""
    r, out = cli_json(workspace, 'rollout', 'start', '--challenger', '2', '--strategy', 'blue_green', '--steps', '100')
    assert r.returncode == 2 and out['error'] == (
        "--steps '100': a blue-green rollout (--strategy blue_green) takes no steps, it switches all traffic at once; "
        "leave --steps out, or give --strategy canary"
    ), out
    set_yaml(workspace / 'params/rollout.yaml', steps=[100], strategy='blue_green')
    r = cli(workspace, 'rollout', 'start', '--challenger', '2', '--steps', '5,100')
    assert r.returncode == 2 and "rollout.yaml's strategy blue_green) takes no steps" in r.stderr, r.stderr


def test_the_params_blue_green_step_under_strategy_canary_is_refused_in_one_line_naming_the_file(workspace):
    "The params' blue-green `[100]` under `--strategy canary` came out as pydantic's own error, said of --steps."
    set_yaml(workspace / 'params/rollout.yaml', steps=[100], strategy='blue_green')
    r = cli(workspace, 'rollout', 'start', '--challenger', '2', '--strategy', 'canary')
    assert r.returncode == 2 and r.stderr.count('\n') == 1 and 'validation error' not in r.stderr, r.stderr
    assert 'a canary needs a step below 100 before 100, found [100.0]' in r.stderr, r.stderr
    assert "rollout.yaml's steps, for a canary rollout" in r.stderr, r.stderr


def test_a_rollout_state_damaged_in_its_status_keeps_the_flags_held_as_it_says(ws):
    """`rollout status` says of a state whose status is no rollout's ("on") that the flags stay held while it is
    damaged; the hold took that status for an end, and `flags set percentage=7` went through under the rollout."""
    r = cli(ws, 'rollout', 'start', '--challenger', '2', '--steps', '5,50,100')
    assert r.returncode == 0, r.stderr
    p = ws / '.lifecycle' / 'rollout.json'
    p.write_text(p.read_text().replace('"status": "running"', '"status": "on"'))
    r = cli(ws, 'rollout', 'status')
    assert r.returncode == 4 and 'the flags stay held' in r.stderr, r.stderr
    r = cli(ws, 'flags', 'set', 'percentage=7')
    assert r.returncode == 2 and 'percentage: held by rollout' in r.stderr, r.stderr
    assert cli_json(ws, 'flags', 'show')[1]['flags']['percentage'] == 5
    assert cli(ws, 'flags', 'kill').returncode == 0  # (the kill switch is never held)


def test_a_pause_of_a_paused_rollout_is_refused_not_answered_as_taken(ws):
    "A second pause answered exit 0 as if taken, its --reason recorded nowhere (a resume of a running one is refused)."
    assert cli(ws, 'rollout', 'start', '--challenger', '2', '--steps', '5,50,100').returncode == 0
    assert cli(ws, 'rollout', 'pause', '--reason', 'pager\x1b[2J').returncode == 0  # (an escape pasted in: DG)
    before = len(audit_entries(ws))
    r, out = cli_json(ws, 'rollout', 'pause', '--reason', 'incident 42')
    assert r.returncode == 2 and out['error'].startswith('rollout ') and 'is paused already (by ' in out['error'], out
    assert ': pager\\x1b[2J): nothing changed' in out['error'] and 'incident 42' not in out['error'], out
    r = cli(ws, 'rollout', 'status')  # (review DI: the status line and advance's refusal showed it raw too)
    assert 'pager\\x1b[2J' in r.stdout and '\x1b' not in r.stdout, r.stdout
    r, out = cli_json(ws, 'rollout', 'advance')
    assert r.returncode != 0 and 'is paused (pager\\x1b[2J)' in out['error'], out
    assert len(audit_entries(ws)) == before and cli_json(ws, 'rollout', 'status')[1]['rollout']['status'] == 'paused'
    assert cli_json(ws, 'rollout', 'resume')[1]['rollout']['status'] == 'running'


def test_an_ab_report_is_written_as_strict_json(tmp_path):
    """A control arm with no correct outcome under a small prior (`experiment.prior: [0.001, 0.001]`, as allowed) has
    posterior draws of 0: the relative difference was NaN and Infinity, written so into `analysis.json`, the A/B
    evidence scripts and approvals read, which is then no JSON (`jq`, JavaScript refuse it). Non-finite numbers are
    written as null."""
    from types import SimpleNamespace
    from lifecycle.core.params import ExperimentParams
    from lifecycle.deliver.experiment import analyse_stats, write_report
    from lifecycle.deliver.rollout import arm_figures

    arms = (('control', 0, '1'), ('challenger', 3, '2'))  # (right of 500 labelled, version)
    stats = {arm: arm_figures(500, 0, 500, right, [1.0], {v}) for arm, right, v in arms}
    a = analyse_stats(stats, {}, ExperimentParams(prior=(0.001, 0.001)), draws=2000)
    ws = SimpleNamespace(reports_dir=tmp_path, params={'register': SimpleNamespace(model_name='m')},
                         audit_only=lambda *args, **kwargs: None, mirror_checkpoint=lambda: None)  # fmt: skip

    def strict(word):
        raise AssertionError(f"{word} in analysis.json: not JSON")

    saved = json.loads(write_report(ws, a).read_text(), parse_constant=strict)
    assert saved['bayes']['arms']['challenger']['rel_diff_mean'] is None  # (0 of 500 against 3 of 500: no ratio)
    assert saved['variants']['challenger']['correct'] == 3 and saved['decision'] == a['decision']


@pytest.mark.parametrize('right', [0, 500])
def test_an_ab_report_plots_under_a_small_prior(right):
    """`experiment report` failed rendering its notebook under `experiment.prior: [0.001, 0.001]` (allowed): a posterior
    Beta(500, 0.001) has its mean below its central 95% interval, a negative error bar matplotlib refuses ('yerr' must
    not contain negative values); a Beta(0.001, 500) has an infinite density at 0, on which scipy's pdf raised
    OverflowError. The analysis was saved, its report not."""
    import matplotlib

    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    from lifecycle.core.cli_support import dumps
    from lifecycle.core.params import ExperimentParams
    from lifecycle.deliver.experiment import analyse_stats, plot_analysis
    from lifecycle.deliver.rollout import arm_figures

    arms = (('control', right, '1'), ('challenger', 3, '2'))  # (right of 500 labelled, version)
    stats = {arm: arm_figures(500, 0, 500, n, [1.0], {v}) for arm, n, v in arms}
    a = json.loads(dumps(analyse_stats(stats, {}, ExperimentParams(prior=(0.001, 0.001)), draws=2000)))
    plt.close(plot_analysis(a, (0.001, 0.001)))


def test_one_large_request_does_not_decide_a_step_on_its_own(tmp_path):
    """The guard weighed each labelled record as a sample, so one request of 10,000 records, labelled one outcome
    each, was 10,000 outcomes: alone it met `min_feedback` and rolled the challenger back (or, all right, counted as
    healthy evidence). Each request now weighs one sample, its share of right records: the step waits for more."""
    from lifecycle.deliver.rollout import arm_stats_in_log
    from lifecycle.serve.predlog import PredictionLog, add_feedback

    url, big = f'sqlite:///{tmp_path}/p.db', 10_000
    log = PredictionLog(url)
    row = dict(route='predict', model='m', model_version='1', status=200, latency_ms=1.0)
    rows = [
        dict(row, request_id=f'c{i}', ts=1_000.0 + i, variant='control', inputs={'age': [1.0]}, decision=[1])
        for i in range(150)
    ] + [
        dict(row, request_id='big', ts=2_000.0, variant='challenger', model_version='2', inputs={'age': [1.0] * big},
             decision=[1] * big)  # fmt: skip
    ]
    for p in log.log_many(rows):
        p.wait()
    for i in range(150):
        add_feedback(log, f'c{i}', 'Yes' if i % 10 else 'No')  # the control: 90% right
    add_feedback(log, 'big', ['No'] * big)  # one request, every record wrong
    log.close()
    stats, _ = arm_stats_in_log(url, 'Yes', ('control', 'challenger'), None, 'm', latest=False)
    assert stats['challenger']['feedback'] == big and stats['challenger']['accuracy'] == 0  # (the records, as shown)
    d = judge(stats, {}, GuardParams(min_requests=100, min_feedback=100), n_steps=3, waited_s=0)
    assert d.action == 'wait' and 'challenger: 1 labelled requests of 100 needed' in d.reasons, d
    assert (stats['challenger']['feedback_requests'], stats['challenger']['correct_requests']) == (1, 0)
