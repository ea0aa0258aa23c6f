"""A rollout's completion cut short: it writes the flags (the challenger their control), then moves the environment's
alias, then saves the rollout as completed. Killed in between, the rollout stayed running at its last step while the
challenger served everyone; `rollout status` and the guard did not notice (the guard waited for challenger requests
that never came), and `rollout rollback` undeployed a challenger that was gone, leaving the rolled-back version the
control (found by review). Now the status and the guard say so, a rollback puts the rollout's control back, and an
advance finishes the completion without writing again what was written."""

from __future__ import annotations
import subprocess
import sys
from pathlib import Path
import pytest
from conftest import clean_env, cli, cli_json


class Killed(BaseException):
    "What a kill -9 leaves in process: nothing after the point it struck ran."


@pytest.fixture
def ws(two_versions) -> Path:
    "A copy of the two-version workspace (v1 control and dev's alias, v2 registered beside it), flags initialised."
    return two_versions


def cut_short(ws: Path, monkeypatch, after_alias: bool):
    """Start a canary of v2 at 50% and complete it, the completion killed before (or just after) its alias move."""
    from lifecycle.core.workspace import Workspace
    from lifecycle.deliver import rollout as ro

    s = Workspace.open(ws)
    ro.start(s, '2', s.params['rollout'], steps=[50, 100], actor='carol', reason='canary')
    real = ro._promote_on_completion

    def killed(*a, **k):
        if after_alias:
            real(*a, **k)
        raise Killed

    monkeypatch.setattr(ro, '_promote_on_completion', killed)
    with pytest.raises(Killed):
        ro.advance(s, actor='carol', reason='to 100%')
    monkeypatch.undo()
    return s


def _completed_then_rollback_killed(ws: Path, patch: str) -> None:
    """Start a canary of v2 at 50% and complete it by the CLI, then run `rollout rollback --reason undo` in a process
    that `patch` (Python run first, `os` and `signal` imported) makes kill itself with SIGKILL."""
    for args in (('start', '--challenger', '2', '--steps', '50,100'), ('advance',)):
        r, _ = cli_json(ws, 'rollout', *args)
        assert r.returncode == 0, r.stderr
    code = (
        f'import os, signal, sys; {patch}; '
        "sys.argv = ['lifecycle', 'rollout', 'rollback', '--reason', 'undo']; "
        'from lifecycle.app.cli import main; main()'
    )
    r = subprocess.run([sys.executable, '-c', code], cwd=ws, env=clean_env(), capture_output=True, text=True)
    assert r.returncode == -9, r.stdout + r.stderr


def entries(s, action: str) -> list[dict]:
    from lifecycle.core import audit

    return [e for e in audit.read(s.audit_path) if e['action'] == action]


@pytest.mark.parametrize('after_alias', [False, True])
def test_a_rollback_after_a_completion_cut_short_puts_the_rollouts_control_back(ws, monkeypatch, after_alias):
    from lifecycle.deliver import rollout as ro
    from lifecycle.model.registry import alias_version
    from lifecycle.serve import flags as fl

    s = cut_short(ws, monkeypatch, after_alias)
    name = s.params['register'].model_name
    st = ro.load_state(s)
    assert (st['status'], st['percentage'], fl.load_spec(s)[0].control) == ('running', 50, '2')
    assert alias_version(s.client, name, 'dev') == ('2' if after_alias else '1')
    st = ro.rollback(s, actor='erin', reason='crash recovery')
    spec = fl.load_spec(s)[0]
    assert st['status'] == 'rolled_back' and (spec.control, spec.challenger, spec.percentage) == ('1', None, 0)
    assert alias_version(s.client, name, 'dev') == '1'  # (moved back when the completion had moved it)
    assert st['history'][-1]['control_restored'] == '1'
    e = entries(s, 'rollout.rollback')[-1]
    assert e['actor'] == 'erin' and e['reason'] == 'crash recovery' and e['details']['control_restored'] == '1', e
    assert ro.flags_disagree(ro.load_state(s), spec) is None and fl.load_hold(s) is None


def test_a_kill_after_a_completion_cut_short_leaves_no_unkill_to_bring_the_challenger_back(ws, monkeypatch):
    "The kill switch sends everyone to the safe version; its release went to the flags' control: the challenger."
    from lifecycle.deliver import rollout as ro
    from lifecycle.serve import flags as fl

    s = cut_short(ws, monkeypatch, after_alias=False)
    st = ro.kill(s, actor='erin', reason='pager went off')
    assert st['status'] == 'killed' and st['history'][-1]['control_restored'] == '1'
    spec = fl.change_flags(s, {'kill': False}, actor='erin', reason='incident over')
    assert (spec.control, spec.challenger, spec.kill) == ('1', None, False)


@pytest.mark.parametrize('after_alias', [False, True])
def test_an_advance_finishes_a_completion_cut_short_writing_nothing_twice(ws, monkeypatch, after_alias):
    from lifecycle.deliver import rollout as ro
    from lifecycle.model.registry import alias_version
    from lifecycle.serve import flags as fl

    s = cut_short(ws, monkeypatch, after_alias)
    name = s.params['register'].model_name
    flag_writes, promotions = len(entries(s, 'flags.change')), len(entries(s, 'model.promote'))
    st = ro.advance(s, actor='carol', reason='finish it')
    assert st['status'] == 'completed' and st['history'][-1]['finished_cut_short'] is True
    assert fl.load_spec(s)[0].control == '2' and alias_version(s.client, name, 'dev') == '2'
    assert len(entries(s, 'flags.change')) == flag_writes  # the flags were written already
    assert len(entries(s, 'model.promote')) == promotions + (0 if after_alias else 1)  # the alias, once
    assert entries(s, 'rollout.complete')[-1]['details']['finished_cut_short'] is True
    assert fl.load_hold(s) is None


def test_the_guard_pauses_a_rollout_whose_completion_was_cut_short_and_an_advance_still_finishes_it(ws, monkeypatch):
    "It waited for challenger requests for ever: the flags send the challenger none, it is their control."
    from lifecycle.deliver import rollout as ro
    from lifecycle.serve.predlog import default_url

    s = cut_short(ws, monkeypatch, after_alias=False)
    d = ro.look(s, s.params['rollout'].guard, 'Yes', default_url(s))
    assert d.action == 'pause' and 'its completion was cut short' in d.reasons[0], d
    st = ro.load_state(s)
    assert st['status'] == 'paused' and st['history'][-1]['actor'] == 'guard'
    assert ro.advance(s, actor='carol', reason='finish it')['status'] == 'completed'  # (paused: nothing moves up)


def test_other_flags_a_rollout_action_left_behind_are_said_and_paused_on(ws):
    "A step cut short between its flags write and its state's save: the share in the flags is not the state's."
    from lifecycle.core.workspace import Workspace
    from lifecycle.deliver import rollout as ro
    from lifecycle.serve import flags as fl
    from lifecycle.serve.predlog import default_url

    r, _ = cli_json(ws, 'rollout', 'start', '--challenger', '2', '--steps', '10,50,100')
    assert r.returncode == 0, r.stderr
    s = Workspace.open(ws)
    fl.change_flags(s, {'percentage': 50}, actor='carol', reason='step 2/3', source='rollout')
    _, out = cli_json(ws, 'rollout', 'status')
    said = 'expected control v1, challenger v2 at 10%, found control v1, challenger v2 at 50%'
    assert said in out['flags_disagree'] and 'an action on it was cut short' in out['flags_disagree'], out
    d = ro.look(s, s.params['rollout'].guard, 'Yes', default_url(s))
    assert d.action == 'pause' and said in d.reasons[0], d
    assert ro.rollback(s, actor='carol', reason='start again')['status'] == 'rolled_back'
    assert fl.load_spec(s)[0].challenger is None


@pytest.mark.slow  # a `lifecycle` process killed with SIGKILL
def test_a_completion_killed_is_said_by_status_and_guard_and_rolled_back_to_the_rollouts_control(ws):
    "The reviewer's case, with a real kill -9 as the completion starts its alias move."
    r, _ = cli_json(ws, 'rollout', 'start', '--challenger', '2', '--steps', '50,100')
    assert r.returncode == 0, r.stderr
    code = (
        'import os, signal, sys; from lifecycle.deliver import rollout as ro; '
        'ro._promote_on_completion = lambda *a, **k: os.kill(os.getpid(), signal.SIGKILL); '
        "sys.argv = ['lifecycle', 'rollout', 'advance', '--reason', 'x']; "
        'from lifecycle.app.cli import main; main()'
    )
    r = subprocess.run([sys.executable, '-c', code], cwd=ws, env=clean_env(), capture_output=True, text=True)
    assert r.returncode == -9, r.stdout + r.stderr
    _, out = cli_json(ws, 'rollout', 'status')
    assert out['rollout']['status'] == 'running' and out['rollout']['percentage'] == 50
    assert 'found control v2, challenger none at 0%; its completion was cut short' in out['flags_disagree'], out
    r = cli(ws, 'rollout', 'guard', '--once')
    assert r.returncode == 0 and r.stdout.startswith('pause: the flags no longer match'), r.stdout + r.stderr
    _, out = cli_json(ws, 'rollout', 'rollback', '--reason', 'crash recovery')
    assert out['rollout']['status'] == 'rolled_back' and out['rollout']['history'][-1]['control_restored'] == '1'
    flags = cli_json(ws, 'flags', 'show')[1]['flags']
    assert (flags['control'], flags['challenger'], flags['percentage']) == ('1', None, 0)
    assert 'flags_disagree' not in cli_json(ws, 'rollout', 'status')[1]


def rollback_cut_short(ws: Path, monkeypatch, where: str):
    """Complete a canary of v2 (dev's alias to v2), then roll it back, killed `where`: at its flags write ('flags'),
    at its alias move ('promote'), after it ('after_alias'); 'unmarked': at its alias move, in a state an older
    lifecycle wrote (no mark of the rollback begun)."""
    from lifecycle.core.workspace import Workspace
    from lifecycle.deliver import rollout as ro
    from lifecycle.release import governance as gov
    from lifecycle.serve import flags as fl

    s = Workspace.open(ws)
    ro.start(s, '2', s.params['rollout'], steps=[50, 100], actor='carol', reason='canary')
    assert ro.advance(s, actor='carol', reason='to 100%')['status'] == 'completed'
    real = ro._alias_back

    def killed(*a, **k):
        if where == 'after_alias':
            real(*a, **k)
        raise Killed

    at = {'flags': (fl, 'change_flags'), 'after_alias': (ro, '_alias_back')}.get(where, (gov, 'promote'))
    monkeypatch.setattr(*at, killed)
    with pytest.raises(Killed):
        ro.rollback(s, actor='erin', reason='undo')
    monkeypatch.undo()
    if where == 'unmarked':
        st = ro.load_state(s)
        st.pop('rolling_back', None)  # (none before this fix)
        ro._save(s, st)
    return s


@pytest.mark.parametrize('where', ['flags', 'promote', 'after_alias', 'unmarked'])
def test_a_rollback_of_a_completed_rollout_cut_short_is_said_and_finished_by_a_rerun(ws, monkeypatch, where):
    """Review: killed once its flags were written, the rollback left the state completed and the alias on v2, unsaid;
    `rollout rollback` again was refused (v1 the control: 'the flags moved on'). Now status says it, a new rollout
    waits for it, and the rerun finishes it: the alias back, the rollback recorded, the flags not written again."""
    from lifecycle.deliver import rollout as ro
    from lifecycle.model.registry import alias_version
    from lifecycle.serve import flags as fl

    s = rollback_cut_short(ws, monkeypatch, where)
    name = s.params['register'].model_name
    st, spec = ro.load_state(s), fl.load_spec(s)[0]
    cut = where != 'flags'  # (killed before the flags write: nothing of the rollback is done)
    assert (st['status'], spec.control) == ('completed', '1' if cut else '2')
    assert alias_version(s.client, name, 'dev') == ('1' if where == 'after_alias' else '2')
    said = ro.flags_disagree(st, spec)
    if where in ('promote', 'after_alias'):
        assert said.startswith(f"rollout {st['id']} completed, and its rollback was cut short: the flags have v1 back")
        assert '`lifecycle rollout rollback` finishes it (the alias back to v1' in said, said
    elif where == 'unmarked':  # (no mark: said as what the state shows, flags changed after the completion)
        assert 'completed, and the flags were changed after it completed: v1, its old control' in said, said
        assert 'cut short' not in said and '`lifecycle rollout rollback` records the change as its rollback' in said
    else:
        assert said is None
    if cut:
        said = 'its rollback was cut short: `lifecycle rollout rollback` finishes'
        if where == 'unmarked':
            said = 'the flags were changed after it completed: .* `lifecycle rollout rollback` records the change'
        with pytest.raises(ro.RolloutError, match=said):
            ro.start(s, '2', s.params['rollout'], steps=[50, 100], actor='carol')
    flag_writes, promotions = len(entries(s, 'flags.change')), len(entries(s, 'model.promote'))
    st = ro.rollback(s, actor='erin', reason='undo, again')
    assert st['status'] == 'rolled_back' and alias_version(s.client, name, 'dev') == '1'
    assert fl.load_spec(s)[0].control == '1' and 'rolling_back' not in st
    assert len(entries(s, 'flags.change')) == flag_writes + (0 if cut else 1)  # the flags, once
    assert len(entries(s, 'model.promote')) == promotions + (0 if where == 'after_alias' else 1)  # the alias, once
    assert st['history'][-1]['control_restored'] == '1'
    assert st['history'][-1].get('finished_cut_short') is (where in ('promote', 'after_alias') or None)
    assert st['history'][-1].get('flags_changed_after_completion') is (where == 'unmarked' or None)
    assert [e['reason'] for e in entries(s, 'rollout.rollback')] == ['undo, again']
    assert ro.flags_disagree(ro.load_state(s), fl.load_spec(s)[0]) is None


def test_a_rollback_of_a_completed_rollout_refused_leaves_it_completed_unmarked(ws, monkeypatch):
    "A flags write refused changes nothing: the rollout is not shown as a rollback cut short, and can be rolled back."
    from lifecycle.core.workspace import Workspace
    from lifecycle.deliver import rollout as ro
    from lifecycle.serve import flags as fl

    s = Workspace.open(ws)
    ro.start(s, '2', s.params['rollout'], steps=[50, 100], actor='carol', reason='canary')
    ro.advance(s, actor='carol', reason='to 100%')

    def refused(*a, **k):
        raise fl.FlagError('refused')

    monkeypatch.setattr(fl, 'change_flags', refused)
    with pytest.raises(fl.FlagError):
        ro.rollback(s, actor='erin', reason='undo')
    monkeypatch.undo()
    assert 'rolling_back' not in ro.load_state(s) and ro.load_state(s)['status'] == 'completed'
    assert ro.rollback(s, actor='erin', reason='undo')['status'] == 'rolled_back'


@pytest.mark.slow  # a `lifecycle` process killed with SIGKILL
def test_a_rollback_of_a_completed_rollout_killed_at_its_alias_move_is_said_by_status_and_finished(ws):
    "The reviewer's case in dev, with a real kill -9 at the first call of `governance.promote` in `rollout rollback`."
    from lifecycle.core.workspace import Workspace
    from lifecycle.model.registry import alias_version

    _completed_then_rollback_killed(
        ws,
        'from lifecycle.release import governance; '
        'governance.promote = lambda *a, **k: os.kill(os.getpid(), signal.SIGKILL)',
    )
    r = cli(ws, 'rollout', 'status')
    assert r.returncode == 0 and 'its rollback was cut short' in r.stdout, r.stdout + r.stderr
    assert '`lifecycle rollout rollback` finishes it' in r.stdout, r.stdout
    _, out = cli_json(ws, 'rollout', 'rollback', '--reason', 'undo')
    assert out['rollout']['status'] == 'rolled_back' and out['rollout']['history'][-1]['finished_cut_short'], out
    s = Workspace.open(ws)
    assert alias_version(s.client, s.params['register'].model_name, 'dev') == '1'
    assert 'flags_disagree' not in cli_json(ws, 'rollout', 'status')[1]


def test_a_rollback_after_a_completion_cut_short_killed_at_its_alias_move_is_finished_by_a_rerun(ws, monkeypatch):
    "The same kill in the rollback of a rollout still running: the flags disagree with its state, and a rerun finishes."
    from lifecycle.deliver import rollout as ro
    from lifecycle.model.registry import alias_version
    from lifecycle.release import governance as gov
    from lifecycle.serve import flags as fl

    s = cut_short(ws, monkeypatch, after_alias=True)
    name = s.params['register'].model_name

    def killed(*a, **k):
        raise Killed

    monkeypatch.setattr(gov, 'promote', killed)
    with pytest.raises(Killed):
        ro.rollback(s, actor='erin', reason='undo')
    monkeypatch.undo()
    st, spec = ro.load_state(s), fl.load_spec(s)[0]
    assert (st['status'], spec.control, alias_version(s.client, name, 'dev')) == ('running', '1', '2')
    assert 'an action on it was cut short: `lifecycle rollout rollback`' in ro.flags_disagree(st, spec)
    st = ro.rollback(s, actor='erin', reason='undo, again')
    assert st['status'] == 'rolled_back' and alias_version(s.client, name, 'dev') == '1'
    assert fl.load_spec(s)[0].control == '1'
    assert [e['reason'] for e in entries(s, 'rollout.rollback')] == ['undo, again']


def killed_at_save(ws: Path, monkeypatch, what: str):
    """A canary of v2 at 50% whose `what` is killed between its audit entry and its state's save: 'rollback' of the
    completed rollout ('rollback_unmarked': in a state an older lifecycle wrote, with no mark of the rollback begun),
    'rollback_running' of the rollout at 50%, 'complete' (the completion) or 'kill'."""
    from lifecycle.core.workspace import Workspace
    from lifecycle.deliver import rollout as ro

    s = Workspace.open(ws)
    ro.start(s, '2', s.params['rollout'], steps=[50, 100], actor='carol', reason='canary')
    if what in ('rollback', 'rollback_unmarked'):
        assert ro.advance(s, actor='carol', reason='to 100%')['status'] == 'completed'
    status = {'complete': 'completed', 'kill': 'killed'}.get(what, 'rolled_back')
    real = ro._save

    def save(s_, st):
        if st['status'] == status:  # (the save after the entry: killed before it is on file)
            raise Killed
        return real(s_, st)

    monkeypatch.setattr(ro, '_save', save)
    act = {'complete': ro.advance, 'kill': ro.kill}.get(what, ro.rollback)
    with pytest.raises(Killed):
        act(s, actor='erin', reason='first try')
    monkeypatch.undo()
    if what == 'rollback_unmarked':
        st = ro.load_state(s)
        st.pop('rolling_back')
        ro._save(s, st)
    return s, act


@pytest.mark.parametrize('what', ['rollback', 'rollback_unmarked', 'rollback_running', 'complete', 'kill'])
def test_an_action_killed_between_its_audit_entry_and_its_save_is_recorded_once_by_its_rerun(ws, monkeypatch, what):
    """Review: killed once its `rollout.rollback` entry was written and before the state was saved, the rerun of the
    rollback finished it and wrote a second entry: two rollbacks in the audit log for one. The rerun finds its earlier
    entry (this rollout's, by its id), saves the state as that entry says and writes nothing again; so does the rerun
    of a completion or a kill cut short there."""
    from lifecycle.deliver import rollout as ro
    from lifecycle.model.registry import alias_version
    from lifecycle.serve import flags as fl

    s, act = killed_at_save(ws, monkeypatch, what)
    action = {'complete': 'complete', 'kill': 'kill'}.get(what, 'rollback')
    rid = ro.load_state(s)['id']
    assert [e['reason'] for e in entries(s, f'rollout.{action}')] == ['first try']
    flag_writes, promotions = len(entries(s, 'flags.change')), len(entries(s, 'model.promote'))
    st = act(s, actor='frank', reason='again')
    assert st['status'] == {'complete': 'completed', 'kill': 'killed'}.get(what, 'rolled_back'), st
    done = entries(s, f'rollout.{action}')
    assert [(e['reason'], e['details']['rollout_id']) for e in done] == [('first try', rid)], done  # once
    assert (len(entries(s, 'flags.change')), len(entries(s, 'model.promote'))) == (flag_writes, promotions)
    last = st['history'][-1]
    assert (last['action'], last['actor'], last['reason'], last['audit_seq']) == (action, 'erin', 'first try',
                                                                                  done[0]['seq'])  # fmt: skip
    name = s.params['register'].model_name
    assert alias_version(s.client, name, 'dev') == ('2' if what == 'complete' else '1')
    assert ro.flags_disagree(ro.load_state(s), fl.load_spec(s)[0]) is None and fl.load_hold(s) is None


@pytest.mark.slow  # a `lifecycle` process killed with SIGKILL
def test_a_rollback_killed_after_its_audit_entry_is_recorded_once_when_rerun(ws):
    "The reviewer's case: kill -9 as `rollout rollback` saves the state, its `rollout.rollback` entry written."
    from lifecycle.core.workspace import Workspace

    _completed_then_rollback_killed(
        ws,
        'from lifecycle.deliver import rollout as ro; real = ro._save; '
        "ro._save = lambda s, st: os.kill(os.getpid(), signal.SIGKILL) if st['status'] == 'rolled_back' "
        'else real(s, st)',
    )
    s = Workspace.open(ws)
    assert len(entries(s, 'rollout.rollback')) == 1
    r, out = cli_json(ws, 'rollout', 'rollback', '--reason', 'undo, again')
    assert r.returncode == 0 and out['rollout']['status'] == 'rolled_back', r.stdout + r.stderr
    assert [e['reason'] for e in entries(s, 'rollout.rollback')] == ['undo']


def test_flags_changed_by_hand_after_a_completion_are_said_as_such_by_status_start_and_rollback(ws):
    """Review: a completed rollout whose flags a person set back to its old control (no rollback begun, so no mark;
    a state an older lifecycle wrote has none either) was called 'a rollback cut short' by `rollout start`, and
    `rollout status` said nothing. Both now say the flags were changed after it completed, and what a rollback does."""
    from lifecycle.core.workspace import Workspace
    from lifecycle.deliver import rollout as ro
    from lifecycle.model.registry import alias_version
    from lifecycle.serve import flags as fl

    s = Workspace.open(ws)
    ro.start(s, '2', s.params['rollout'], steps=[50, 100], actor='carol', reason='canary')
    rid = ro.advance(s, actor='carol', reason='to 100%')['id']
    fl.change_flags(s, {'control': '1'}, actor='dave', reason='v1 back, by hand')
    _, out = cli_json(ws, 'rollout', 'status')
    said = out.get('flags_disagree') or ''
    assert said.startswith(f"rollout {rid} of version 2 completed, and the flags were changed after it completed"), out
    assert 'cut short' not in said and 'if the dev alias still names v2, `lifecycle rollout rollback` records' in said
    r = cli(ws, 'rollout', 'status')
    assert r.returncode == 0 and 'the flags were changed after it completed' in r.stdout, r.stdout + r.stderr
    with pytest.raises(ro.RolloutError) as e:
        ro.start(s, '2', s.params['rollout'], steps=[50, 100], actor='carol')
    assert 'cut short' not in str(e.value) and 'the flags were changed after it completed' in str(e.value), e.value
    assert 'while the dev alias still names v2' in str(e.value) and 'moves the alias back to v1' in str(e.value)
    st = ro.rollback(s, actor='dave', reason='record it')
    last = st['history'][-1]
    assert st['status'] == 'rolled_back' and alias_version(s.client, s.params['register'].model_name, 'dev') == '1'
    assert last['flags_changed_after_completion'] is True and 'finished_cut_short' not in last, last
    assert entries(s, 'rollout.rollback')[-1]['details']['flags_changed_after_completion'] is True


def busy_registry(monkeypatch) -> None:
    "The model registry (MLflow) answers nothing from here on: busy, as a locked database or a restarting server."
    from mlflow.exceptions import MlflowException
    from mlflow.protos.databricks_pb2 import TEMPORARILY_UNAVAILABLE
    from mlflow.tracking.client import MlflowClient
    from lifecycle.model import signing

    def busy(*a, **k):
        raise MlflowException('the registry is busy', error_code=TEMPORARILY_UNAVAILABLE)

    for m in ('get_model_version', 'get_model_version_by_alias', 'set_registered_model_alias', 'get_registered_model'):
        monkeypatch.setattr(MlflowClient, m, busy)
    monkeypatch.setattr(signing, '_download', busy)


def test_the_kill_of_a_completion_cut_short_is_on_at_once_with_the_registry_busy_and_its_rerun_ends_it(ws, monkeypatch):
    """Review: the kill of a completion cut short put the old control back in the same flags write as the kill switch,
    and that control is judged by the release policy, which asks the registry: busy, the whole kill was refused and the
    challenger went on serving everyone. The kill switch now goes on first, on its own (no registry asked); the control
    waits for the registry, said, and `rollout kill` again finishes it."""
    from lifecycle.deliver import rollout as ro
    from lifecycle.serve import flags as fl

    s = cut_short(ws, monkeypatch, after_alias=True)
    busy_registry(monkeypatch)
    with pytest.raises(fl.FlagError) as e:
        ro.kill(s, actor='erin', reason='pager went off')
    said = str(e.value)
    assert e.value.status == 503 and said.startswith('the kill switch is on (everyone is on the safe version v1)')
    assert 'v1 could not be put back as the control yet' in said, said
    assert '`lifecycle rollout kill` again puts it back' in said and 'would serve v2 to everyone' in said
    spec = fl.load_spec(s)[0]
    assert (spec.kill, spec.safe, spec.control) == (True, '1', '2') and ro.load_state(s)['status'] == 'running'
    with pytest.raises(fl.FlagError, match=r'nothing is rolled back yet: `lifecycle rollout kill` sends everyone to'):
        ro.rollback(s, actor='erin', reason='undo')  # (the control put back asks the registry: said, with the way out)
    monkeypatch.undo()
    st = ro.kill(s, actor='erin', reason='pager went off')
    spec = fl.load_spec(s)[0]
    assert st['status'] == 'killed' and (spec.kill, spec.control) == (True, '1') and fl.load_hold(s) is None
    assert [e['reason'] for e in entries(s, 'rollout.kill')] == ['pager went off']


@pytest.mark.parametrize('completed', [True, False])
def test_a_rollback_whose_alias_the_busy_registry_cannot_move_says_try_again_and_its_rerun_moves_it(
    ws, monkeypatch, completed
):
    """Review: a rollback whose flags were written while the registry could not answer was saved as rolled back with
    the alias on the version rolled back (its note said 'vNone'), and no command was left to move it back. The flags
    are rolled back first, as before; the alias is 'try again', the rollout left for `rollout rollback` to finish
    (a completed one's rollback cut short, a running one's action cut short), which moves it and records it once."""
    from lifecycle.core.workspace import Workspace
    from lifecycle.deliver import rollout as ro
    from lifecycle.model.registry import alias_version
    from lifecycle.release.exposure import RegistryUnavailable
    from lifecycle.serve import flags as fl

    if completed:
        s = Workspace.open(ws)
        ro.start(s, '2', s.params['rollout'], steps=[50, 100], actor='carol', reason='canary')
        assert ro.advance(s, actor='carol', reason='to 100%')['status'] == 'completed'
    else:
        s = cut_short(ws, monkeypatch, after_alias=True)
    name, real = s.params['register'].model_name, fl.change_flags

    def then_busy(*a, **k):  # (the registry answers the flags' policy check, then goes away)
        out = real(*a, **k)
        busy_registry(monkeypatch)
        return out

    monkeypatch.setattr(fl, 'change_flags', then_busy)
    with pytest.raises(RegistryUnavailable) as e:
        ro.rollback(s, actor='erin', reason='undo')
    monkeypatch.undo()
    said = str(e.value)
    assert 'the flags are rolled back (v1 serves everyone again), but the dev alias could not be moved back' in said
    assert 'try again: `lifecycle rollout rollback` moves it back and records the rollback' in said, said
    st, spec = ro.load_state(s), fl.load_spec(s)[0]
    assert (spec.control, spec.challenger, alias_version(s.client, name, 'dev')) == ('1', None, '2')
    assert st['status'] == ('completed' if completed else 'running') and not entries(s, 'rollout.rollback')
    cut = 'its rollback was cut short' if completed else 'an action on it was cut short'
    assert cut in ro.flags_disagree(st, spec)
    flag_writes = len(entries(s, 'flags.change'))
    st = ro.rollback(s, actor='erin', reason='undo, again')
    assert st['status'] == 'rolled_back' and alias_version(s.client, name, 'dev') == '1'
    assert st['history'][-1]['alias']['moved'] is True and len(entries(s, 'flags.change')) == flag_writes
    assert [e['reason'] for e in entries(s, 'rollout.rollback')] == ['undo, again']
    assert not entries(s, 'promotion.refused') and fl.load_hold(s) is None


def files_fetches(monkeypatch) -> list[tuple[str, bool]]:
    "Each fetch of a version's files (`exposure._fetched_problem`) from here on: the version, and the flags lock held."
    from lifecycle.core.locks import holds
    from lifecycle.release import exposure

    real, fetched = exposure._fetched_problem, []

    def fetch(ws, name, version):
        fetched.append((str(version), holds(ws.state_dir, 'flags')))
        return real(ws, name, version)

    monkeypatch.setattr(exposure, '_fetched_problem', fetch)
    return fetched


@pytest.mark.parametrize('how', ['look', 'guard'])
def test_a_guard_completing_the_rollout_fetches_the_challengers_files_before_the_lock(ws, monkeypatch, how):
    """Review CE (D1): the guard (`rollout guard`, `--once` or watching, and the retraining loop's look) completed the
    rollout through `advance` inside the look's lock, so the challenger's files were fetched under it, by the flags
    write and again by the promotion, while a kill switch waited. The completion is taken once the look lets go of
    the lock, the files fetched once before it is taken again."""
    from lifecycle.core.workspace import Workspace
    from lifecycle.deliver import rollout as ro
    from lifecycle.model.registry import alias_version
    from lifecycle.serve.predlog import default_url

    s = Workspace.open(ws)
    ro.start(s, '2', s.params['rollout'], steps=[50, 100], actor='carol', reason='canary')
    monkeypatch.setattr(ro, 'judge', lambda *a, **k: ro.Decision('advance', ['healthy']))
    fetched = files_fetches(monkeypatch)
    g = s.params['rollout'].guard
    if how == 'look':
        assert ro.look(s, g, 'Yes', default_url(s)).action == 'advance'
    else:
        ro.guard(s, g, 'Yes', default_url(s), max_seconds=30)
    name = s.params['register'].model_name
    assert ro.load_state(s)['status'] == 'completed' and alias_version(s.client, name, 'dev') == '2'
    assert fetched == [('2', False)], fetched


@pytest.mark.parametrize('what', ['kill', 'rollback_running'])
def test_an_end_killed_after_its_entry_is_finished_as_that_entry_says_by_the_other_end(ws, monkeypatch, what):
    """Review CE (D3): a `rollout kill` killed between its audit entry and its state's save was said by status (and the
    guard) as 'an action cut short: `lifecycle rollout rollback`', and that rollback, which looked only for a rollback
    entry, recorded a second end. Status names `rollout kill` for the kill's flags; a rollback finishes a recorded kill
    and a kill a recorded rollback (its kill switch on all the same), one end recorded."""
    from lifecycle.deliver import rollout as ro
    from lifecycle.serve import flags as fl

    s, _ = killed_at_save(ws, monkeypatch, what)
    said = ro.flags_disagree(ro.load_state(s), fl.load_spec(s)[0])
    if what == 'kill':
        assert '`lifecycle rollout kill` finishes it' in said and 'rollout rollback' not in said, said
    other, ended, status = (ro.rollback, 'kill', 'killed') if what == 'kill' else (ro.kill, 'rollback', 'rolled_back')
    st = other(s, actor='frank', reason='as status says')
    assert st['status'] == status and st['history'][-1]['reason'] == 'first try', st['history'][-1]
    ends = entries(s, 'rollout.kill') + entries(s, 'rollout.rollback')
    assert [(e['action'], e['reason']) for e in ends] == [(f'rollout.{ended}', 'first try')], ends
    spec = fl.load_spec(s)[0]
    assert spec.kill and (spec.control, spec.challenger) == ('1', None) and fl.load_hold(s) is None
    assert ro.flags_disagree(ro.load_state(s), spec) is None


@pytest.mark.parametrize('by_hand', ['challenger_back', 'safe_then_control'])
def test_flags_changed_by_hand_after_a_completion_are_rolled_back_in_full(ws, by_hand):
    """Review CE (D4): the rollback of a completed rollout whose old control a person put back by hand (no rollback
    begun) recorded that and wrote nothing, so what else a rollback takes away stayed: v2 as challenger at 20% beside
    v1, or v2 as the safe version (a kill then sent everyone to the version rolled back). Now it writes what the
    flags lack of a rollback, then records it."""
    from lifecycle.core.workspace import Workspace
    from lifecycle.deliver import rollout as ro
    from lifecycle.serve import flags as fl

    s = Workspace.open(ws)
    ro.start(s, '2', s.params['rollout'], steps=[50, 100], actor='carol', reason='canary')
    assert ro.advance(s, actor='carol', reason='to 100%')['status'] == 'completed'
    if by_hand == 'challenger_back':
        fl.change_flags(s, {'control': '1', 'challenger': '2', 'percentage': 20}, actor='dave', reason='by hand')
    else:
        fl.change_flags(s, {'safe': '2'}, actor='dave', reason='v2 is the safe version now')
        fl.change_flags(s, {'control': '1'}, actor='dave', reason='v1 back, by hand')
    said = ro.flags_disagree(ro.load_state(s), fl.load_spec(s)[0])
    assert 'writing what else a rollback writes that the flags lack' in said, said
    writes = len(entries(s, 'flags.change'))
    st = ro.rollback(s, actor='dave', reason='record it')
    spec = fl.load_spec(s)[0]
    assert st['status'] == 'rolled_back' and st['history'][-1]['flags_changed_after_completion'] is True
    assert (spec.control, spec.challenger, spec.percentage, spec.shadow, spec.safe) == ('1', None, 0, False, '1')
    assert len(entries(s, 'flags.change')) == writes + 1 and [e['reason'] for e in entries(s, 'rollout.rollback')] == [
        'record it'
    ]


def test_the_kill_of_a_completion_cut_short_refused_its_control_says_so_not_try_again(ws, monkeypatch):
    """Review CE (P1): the kill of a completion cut short whose control the release policy refused (a 422: an approval
    that no longer verifies) said '`lifecycle rollout kill` again puts it back', which a rerun refused the same way.
    Only a registry that could not answer (503) is 'again'; a refusal is named as one."""
    from lifecycle.deliver import rollout as ro
    from lifecycle.serve import flags as fl

    s = cut_short(ws, monkeypatch, after_alias=True)
    real, why = fl.policy_refusals, 'control: version 1 may not be exposed: its approval does not verify (key revoked)'

    def refuse(ws_, name, spec, before=None, *a, **k):
        if before is not None and (spec.control, before.control) == ('1', '2'):
            return [why]
        return real(ws_, name, spec, before, *a, **k)

    monkeypatch.setattr(fl, 'policy_refusals', refuse)
    for reason in ('pager went off', 'pager, again'):
        with pytest.raises(fl.FlagError) as e:
            ro.kill(s, actor='erin', reason=reason)
        said = str(e.value)
        assert e.value.status != 503 and 'again puts it back' not in said, said
        assert said.startswith('the kill switch is on (everyone is on the safe version v1), but v1 is refused as the')
        assert why in said and '`lifecycle rollout kill` again is refused the same way' in said, said
    assert fl.load_spec(s)[0].kill and ro.load_state(s)['status'] == 'running'


def test_status_after_a_kill_that_could_not_put_the_control_back_names_the_kill_that_finishes_it(ws, monkeypatch):
    """Review CE (P2): after the kill of a completion cut short put the kill switch on and the busy registry kept its
    control from being put back, status said '`lifecycle rollout advance` finishes it', which the kill switch refuses.
    It names `rollout kill`, which does."""
    from lifecycle.deliver import rollout as ro
    from lifecycle.serve import flags as fl

    s = cut_short(ws, monkeypatch, after_alias=True)
    busy_registry(monkeypatch)
    with pytest.raises(fl.FlagError):
        ro.kill(s, actor='erin', reason='pager went off')
    monkeypatch.undo()
    said = ro.flags_disagree(ro.load_state(s), fl.load_spec(s)[0])
    assert 'rollout advance' not in said and '`lifecycle rollout kill` finishes it (v1 back as the control' in said
    r = cli(ws, 'rollout', 'status')  # (and no word of releasing the kill switch, which would serve v2 to everyone)
    assert r.returncode == 0 and said in r.stdout and 'flags unkill' not in r.stdout, r.stdout + r.stderr
    with pytest.raises(ro.RolloutError, match='the kill switch is on'):
        ro.advance(s, actor='carol', reason='finish it')
    st, spec = ro.kill(s, actor='erin', reason='as status says'), fl.load_spec(s)[0]
    assert st['status'] == 'killed' and (spec.kill, spec.control) == (True, '1')


def test_the_rerun_of_a_rollback_stopped_at_its_alias_move_records_the_control_it_put_back(ws, monkeypatch):
    """Review CE (P3): the rollback of a completion cut short put the control back, then the busy registry stopped its
    alias move; its rerun worked its changes out again from flags that had the control back already, and recorded the
    rollback without `control_restored`. The first run's changes are kept in the state for the rerun's record."""
    from lifecycle.deliver import rollout as ro
    from lifecycle.release.exposure import RegistryUnavailable
    from lifecycle.serve import flags as fl

    s = cut_short(ws, monkeypatch, after_alias=True)
    real = fl.change_flags

    def then_busy(*a, **k):
        out = real(*a, **k)
        busy_registry(monkeypatch)
        return out

    monkeypatch.setattr(fl, 'change_flags', then_busy)
    with pytest.raises(RegistryUnavailable):
        ro.rollback(s, actor='erin', reason='undo')
    monkeypatch.undo()
    st = ro.rollback(s, actor='erin', reason='undo, again')
    assert st['status'] == 'rolled_back' and st['history'][-1]['control_restored'] == '1' and 'rolling_back' not in st
    assert [e['details'].get('control_restored') for e in entries(s, 'rollout.rollback')] == ['1']


@pytest.mark.parametrize('before', [None, '2'])
def test_a_hand_made_rollback_with_no_alias_to_go_back_to_is_recorded_as_status_says(ws, before):
    """Review CE (P4): a completed rollout whose environment's alias named no version before it (or its challenger
    already) had its old control put back by hand: status promised a rollback that 'moves the alias back to none',
    and `rollout rollback` refused ('nothing of it to roll back'). Status says the alias stays, and the rollback
    records the change, leaving the alias on the challenger as any rollback of such a rollout does."""
    from lifecycle.core.workspace import Workspace
    from lifecycle.deliver import rollout as ro
    from lifecycle.model.registry import alias_version
    from lifecycle.serve import flags as fl

    s = Workspace.open(ws)
    ro.start(s, '2', s.params['rollout'], steps=[50, 100], actor='carol', reason='canary')
    st = ro.advance(s, actor='carol', reason='to 100%')
    st['alias_before'] = before  # (as a rollout started where the alias named none, or v2, has it)
    ro._save(s, st)
    fl.change_flags(s, {'control': '1'}, actor='dave', reason='v1 back, by hand')
    said = ro.flags_disagree(ro.load_state(s), fl.load_spec(s)[0])
    assert 'moves the alias back' not in said and 'and leaves the alias on v2 (it named ' in said, said
    st = ro.rollback(s, actor='dave', reason='record it')
    assert st['status'] == 'rolled_back' and st['history'][-1]['flags_changed_after_completion'] is True
    assert alias_version(s.client, s.params['register'].model_name, 'dev') == '2'
    assert ro.flags_disagree(st, fl.load_spec(s)[0]) is None


def test_an_action_refused_before_any_file_check_fetches_no_files(ws, monkeypatch):
    """Review CE (P5): `start` and `advance` fetched the files of the version they would expose before their lock,
    even where they were then refused for what needs no file: a rollout under way, the kill switch on, a paused
    rollout. They fetch none there."""
    from lifecycle.core.workspace import Workspace
    from lifecycle.deliver import rollout as ro
    from lifecycle.serve import flags as fl

    s = Workspace.open(ws)
    ro.start(s, '2', s.params['rollout'], steps=[50, 100], actor='carol', reason='canary')
    fetched = files_fetches(monkeypatch)
    with pytest.raises(ro.RolloutError, match='finish or roll it back first'):
        ro.start(s, '2', s.params['rollout'], steps=[50, 100], actor='carol')
    ro.pause(s, actor='carol', reason='a look first')
    with pytest.raises(ro.RolloutError, match='is paused'):
        ro.advance(s, actor='carol', reason='to 100%')
    ro.resume(s, actor='carol', reason='looked')
    fl.kill(s, actor='erin', reason='incident')
    with pytest.raises(ro.RolloutError, match='the kill switch is on'):
        ro.advance(s, actor='carol', reason='to 100%')
    assert ro.complete_if_unchanged(s, ro.load_state(s), 'healthy') is None
    ro.rollback(s, actor='erin', reason='incident')
    with pytest.raises(ro.RolloutError, match='the kill switch is on'):
        ro.start(s, '2', s.params['rollout'], steps=[50, 100], actor='carol')
    assert fetched == [], fetched
    fl.change_flags(s, {'kill': False}, actor='erin', reason='incident over')
    ro.start(s, '2', s.params['rollout'], steps=[50, 100], actor='carol')  # (and one that goes ahead fetches them)
    ro.advance(s, actor='carol', reason='to 100%')
    assert fetched == [('2', False), ('2', False)], fetched


def test_a_rollback_of_flags_changed_after_completion_killed_before_its_entry_is_finished_by_its_rerun(ws, monkeypatch):
    """Review CG: the rollback of a completed rollout whose old control was put back by hand writes flags now, but it
    made no mark first: killed before its entry, with the alias moved back, its rerun was refused ('nothing of it to
    roll back') and no command recorded it. It is marked first, as every rollback that writes flags is."""
    from lifecycle.core.workspace import Workspace
    from lifecycle.deliver import rollout as ro
    from lifecycle.model.registry import alias_version
    from lifecycle.serve import flags as fl

    s = Workspace.open(ws)
    ro.start(s, '2', s.params['rollout'], steps=[50, 100], actor='carol', reason='canary')
    assert ro.advance(s, actor='carol', reason='to 100%')['status'] == 'completed'
    fl.change_flags(s, {'control': '1', 'challenger': '2', 'percentage': 20}, actor='dave', reason='by hand')
    real = ro._event

    def killed_at_its_entry(s_, st, action, *a, **k):
        if action == 'rollback':
            raise Killed()
        return real(s_, st, action, *a, **k)

    monkeypatch.setattr(ro, '_event', killed_at_its_entry)
    with pytest.raises(Killed):
        ro.rollback(s, actor='dave', reason='first')
    monkeypatch.undo()
    assert alias_version(s.client, s.params['register'].model_name, 'dev') == '1'  # (moved back before the kill)
    st = ro.rollback(s, actor='dave', reason='again')
    spec = fl.load_spec(s)[0]
    assert st['status'] == 'rolled_back' and (spec.control, spec.challenger, spec.percentage) == ('1', None, 0)
    assert st['history'][-1]['flags_changed_after_completion'] and len(entries(s, 'rollout.rollback')) == 1


def test_a_completion_ends_a_rollbacks_mark_so_a_later_rollback_writes_what_the_flags_lack(ws, monkeypatch):
    """Review CG: a rollback of a running rollout stopped after its mark (killed before its flags write) left the mark
    in the state when `advance` completed the rollout; a later hand change of the flags was then taken for that
    rollback cut short, and `rollback` recorded it writing nothing (v2 went on at 20%)."""
    from lifecycle.deliver import rollout as ro
    from lifecycle.serve import flags as fl

    s = cut_short(ws, monkeypatch, after_alias=True)
    monkeypatch.setattr(fl, 'change_flags', lambda *a, **k: (_ for _ in ()).throw(Killed()))
    monkeypatch.setattr(ro, '_unmark_if_unchanged', lambda *a, **k: None)  # (a kill -9 runs no handler)
    with pytest.raises(Killed):
        ro.rollback(s, actor='erin', reason='undo')
    monkeypatch.undo()
    assert ro.load_state(s).get('rolling_back')  # (marked before its flags write)
    st = ro.advance(s, actor='carol', reason='finish it')
    assert st['status'] == 'completed' and 'rolling_back' not in ro.load_state(s)
    fl.change_flags(s, {'control': '1', 'challenger': '2', 'percentage': 20}, actor='dave', reason='by hand')
    said = ro.flags_disagree(ro.load_state(s), fl.load_spec(s)[0])
    assert 'rollback was cut short' not in said and 'changed after it completed' in said, said
    st = ro.rollback(s, actor='dave', reason='record it')
    spec = fl.load_spec(s)[0]
    assert st['status'] == 'rolled_back' and (spec.control, spec.challenger, spec.percentage) == ('1', None, 0)


def test_a_rollback_cut_short_with_no_alias_to_go_back_to_is_not_said_to_move_it_back_to_none(ws, monkeypatch):
    "Review CG: status promised 'the alias back to none through the verified promotion', which the rerun never does."
    from lifecycle.deliver import rollout as ro
    from lifecycle.serve import flags as fl

    st = dict(
        id='r1', model_name='m', challenger='2', control='1', alias='dev', alias_before=None, status='completed',
        rolling_back={'changes': {'control': '1'}},
    )  # fmt: skip
    spec = fl.FlagsParams(control='1', safe='1')
    said = ro.flags_disagree(st, spec)
    assert 'back to none' not in said and 'the alias left on v2 (it named no version before the rollout)' in said
    said = ro.flags_disagree({**st, 'alias_before': '0'}, spec)
    assert 'the alias back to v0 through the verified promotion' in said, said


def test_a_completion_the_kill_switch_stopped_while_it_was_prepared_is_said_as_such(ws, monkeypatch):
    """Review CG: the guard said 'the rollout changed while its completion was prepared' where the kill switch had been
    pulled (and, review CH, a damaged spec is no kill switch)."""
    from lifecycle.core.workspace import Workspace
    from lifecycle.deliver import rollout as ro
    from lifecycle.serve import flags as fl

    s = Workspace.open(ws)
    st = ro.start(s, '2', s.params['rollout'], steps=[50, 100], actor='carol', reason='canary')
    fl.change_flags(s, {'kill': True}, actor='oncall', reason='incident')  # (pulled after the look decided)
    d = ro._completed_by_look(s, ro.Decision('complete', ['the guard passed'], state=ro.load_state(s)))
    assert d.action == 'wait' and d.reasons[0].startswith('the completion was not taken (the kill switch is on)'), d
    assert ro.load_state(s)['id'] == st['id'] and ro.load_state(s)['status'] in ro.ACTIVE


def _rollback_killed_then_flags_changed(ws, monkeypatch, at: str):
    """A completed canary of v2 whose rollback was killed where `at` says (`entry`: at its audit entry, the alias moved
    back; `alias`: before its alias move), then v2 given 20% again by hand: the workspace."""
    from lifecycle.core.workspace import Workspace
    from lifecycle.deliver import rollout as ro
    from lifecycle.serve import flags as fl

    s = Workspace.open(ws)
    ro.start(s, '2', s.params['rollout'], steps=[50, 100], actor='carol', reason='canary')
    assert ro.advance(s, actor='carol', reason='to 100%')['status'] == 'completed'
    real = ro._event
    if at == 'entry':
        monkeypatch.setattr(ro, '_event', lambda s_, st, a, *x, **k: (_ for _ in ()).throw(Killed()) if a == 'rollback'
                            else real(s_, st, a, *x, **k))  # fmt: skip
    else:
        monkeypatch.setattr(ro, '_alias_back', lambda *a, **k: (_ for _ in ()).throw(Killed()))
    with pytest.raises(Killed):
        ro.rollback(s, actor='dave', reason='first')
    monkeypatch.undo()
    assert ro.load_state(s).get('rolling_back')  # (marked before its flags write)
    fl.change_flags(s, {'challenger': '2', 'percentage': 20}, actor='ops', reason='by hand')
    return s


def test_a_rerun_that_fails_keeps_the_mark_of_the_rollback_it_finishes(ws, monkeypatch):
    """Review CH: a rollback's rerun whose own flags write failed dropped the mark the killed run had made; the rollback
    was then taken for none begun and refused ('nothing of it to roll back'), v2 serving 20%, nothing recorded."""
    from lifecycle.deliver import rollout as ro
    from lifecycle.serve import flags as fl

    s = _rollback_killed_then_flags_changed(ws, monkeypatch, 'entry')
    monkeypatch.setattr(fl, 'change_flags', lambda *a, **k: (_ for _ in ()).throw(fl.FlagError('busy', status=503)))
    with pytest.raises(fl.FlagError):
        ro.rollback(s, actor='dave', reason='while the registry is busy')
    monkeypatch.undo()
    assert ro.load_state(s).get('rolling_back')
    st = ro.rollback(s, actor='dave', reason='again')
    spec = fl.load_spec(s)[0]
    assert st['status'] == 'rolled_back' and (spec.control, spec.challenger, spec.percentage) == ('1', None, 0)
    assert len(entries(s, 'rollout.rollback')) == 1


def test_a_completed_rollouts_rollback_the_audit_log_cannot_record_is_not_ended_before_its_alias_moves(ws, monkeypatch):
    """Review CH: a completed rollout's rollback whose flags write stayed live unrecorded (the audit log refused) was
    saved as rolled back without its alias moved back, and no command moved it after. It stays completed and marked,
    and its rerun records it and moves the alias."""
    from lifecycle.core.audit import AuditError
    from lifecycle.deliver import rollout as ro
    from lifecycle.model.registry import alias_version
    from lifecycle.serve import flags as fl

    s = _rollback_killed_then_flags_changed(ws, monkeypatch, 'alias')
    name, real = s.params['register'].model_name, fl.change_flags

    def unaudited(*a, **k):  # (the change live, its entry refused)
        real(*a, **k)
        raise AuditError('the audit log cannot be written')

    monkeypatch.setattr(fl, 'change_flags', unaudited)
    said = r'alias may still name v2: `lifecycle rollout rollback` records .*\(the alias back to v1'
    with pytest.raises(AuditError, match=said):
        ro.rollback(s, actor='dave', reason='the log full')
    monkeypatch.undo()
    assert ro.load_state(s)['status'] == 'completed' and alias_version(s.client, name, 'dev') == '2'
    assert ro.rollback(s, actor='dave', reason='again')['status'] == 'rolled_back'
    assert alias_version(s.client, name, 'dev') == '1'


def test_a_rerun_that_fails_clears_a_mark_whose_run_wrote_nothing(ws, monkeypatch):
    """Review CI: a rerun kept any earlier mark when its own write failed, also one whose run was killed before writing
    anything; a later hand change of the flags was then taken for that rollback cut short. Only a mark whose flags are
    written is kept."""
    from lifecycle.core.workspace import Workspace
    from lifecycle.deliver import rollout as ro
    from lifecycle.serve import flags as fl

    s = Workspace.open(ws)
    ro.start(s, '2', s.params['rollout'], steps=[50, 100], actor='carol', reason='canary')
    assert ro.advance(s, actor='carol', reason='to 100%')['status'] == 'completed'
    monkeypatch.setattr(fl, 'change_flags', lambda *a, **k: (_ for _ in ()).throw(Killed()))
    monkeypatch.setattr(ro, '_unmark_if_unchanged', lambda *a, **k: None)  # (a kill -9 runs no handler)
    with pytest.raises(Killed):
        ro.rollback(s, actor='dave', reason='first')
    monkeypatch.undo()
    assert ro.load_state(s).get('rolling_back')  # (marked, nothing written)
    monkeypatch.setattr(fl, 'change_flags', lambda *a, **k: (_ for _ in ()).throw(fl.FlagError('busy', status=503)))
    with pytest.raises(fl.FlagError):
        ro.rollback(s, actor='dave', reason='while the registry is busy')
    monkeypatch.undo()
    assert 'rolling_back' not in ro.load_state(s) and ro.load_state(s)['status'] == 'completed'


def test_an_advance_finishing_a_completion_cut_short_never_takes_an_alias_moved_by_hand_for_its_promotion(
    ws, monkeypatch
):
    """A completion cut short before its alias move (the flags written), then the environment's alias moved to the
    challenger by hand (MLflow's client): `rollout advance` took the alias naming the challenger for the completion's
    own promotion and completed the rollout with no promotion run, its approvals and files never verified and no
    `model.promote` entry. The alias moved by hand is now promoted through the verified, audited promotion."""
    from lifecycle.deliver import rollout as ro
    from lifecycle.model.registry import alias_mismatches

    s = cut_short(ws, monkeypatch, after_alias=False)
    name = s.params['register'].model_name
    s.client.set_registered_model_alias(name, 'dev', '2')  # (by hand: no audit entry)
    promotions = len(entries(s, 'model.promote'))
    assert ro.advance(s, actor='carol', reason='finish it')['status'] == 'completed'
    assert len(entries(s, 'model.promote')) == promotions + 1  # (the completion's own promotion, verified)
    assert entries(s, 'model.promote')[-1]['subject'] == f'{name}/2'
    assert alias_mismatches(s.client, s.audit_path, name) == []


def test_an_advance_finishing_a_completion_cut_short_is_judged_by_the_policy_of_the_versions_params_folder(
    ws, monkeypatch
):
    """Review HJ: finishing a completion cut short writes no flags (they are written), so no exposure check asked whose
    policy judged v2: `rollout advance --params` naming a copy of params/ with another policy moved the environment's
    alias by that policy. It is refused as `promote` refuses it, the alias left where it was."""
    import shutil
    from lifecycle.deliver import rollout as ro
    from lifecycle.model.registry import alias_version
    from lifecycle.release.review import ContextError

    s = cut_short(ws, monkeypatch, after_alias=False)
    shutil.copytree(ws / 'params', ws / 'params-lax')
    pol = ws / 'params-lax' / 'policy.yaml'
    pol.write_text(pol.read_text().replace('ab_evidence: true', 'ab_evidence: false'))
    name = s.params['register'].model_name
    with pytest.raises(ContextError, match='registered by a run with the params folder'):
        ro.advance(s.with_params(ws / 'params-lax'), actor='carol', reason='finish it')
    assert alias_version(s.client, name, 'dev') == '1'
    assert ro.advance(s, actor='carol', reason='finish it')['status'] == 'completed'  # its own folder finishes it
