"""A rollout's completion cut short: it writes the flags (the challenger their control), then moves the environment's
alias, then saves the rollout as completed. Killed in between, the rollout stayed running at its last step while the
challenger served everyone, and `rollout rollback` undeployed a challenger that was gone, leaving the rolled-back
version the control (found by review). Now a rollback puts the rollout's control back, and an advance finishes the
completion without writing again what was written."""

from __future__ import annotations
from pathlib import Path
import pytest


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
    assert fl.load_hold(s) is None


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
