"""Rolling back moves the environment's alias back: a completed rollout moved the production alias to its challenger
through the audited promotion; rolling it back (by hand, or the guard's automatic rollback) serves the old control
again and moves the alias back to the version it named before, through the same verified, audited promotion, and the
audit log says who and why."""

from __future__ import annotations
from dataclasses import replace
import pandas as pd
from test_trust import NAME, approve_as, base, promote, ws  # noqa: F401 (fixtures)


def production_rollout(t):
    "Version 1 approved and promoted to production and serving; version 3 approved too and rolled out at 50%."
    from lifecycle.core.params import FlagsParams
    from lifecycle.deliver import rollout
    from lifecycle.model.registry import alias_version
    from lifecycle.serve import flags as fl

    prod = replace(t['ws'], environment='production')
    for v in ('1', '3'):
        approve_as(t, 'carol', 'staging', version=v)
        approve_as(t, 'dave', 'production', version=v)
    promote(t, '1', 'staging')
    promote(t, '1', 'production')
    fl.write_spec(prod, FlagsParams(control='1', safe='1'), NAME)
    st = rollout.start(prod, '3', prod.params['rollout'], steps=[50, 100], actor='ops')
    assert st['alias_before'] == '1' and st['percentage'] == 50
    assert alias_version(prod.client, NAME, 'production') == '1'
    return prod


def last_promotion(w) -> dict:
    from lifecycle.core.audit import read

    return [e for e in read(w.audit_path) if e['action'] == 'model.promote'][-1]


def test_rolling_back_a_completed_rollout_moves_the_production_alias_back(ws):  # noqa: F811
    from lifecycle.deliver import rollout
    from lifecycle.model.registry import alias_mismatches, alias_version
    from lifecycle.serve import flags as fl

    prod = production_rollout(ws)
    assert rollout.advance(prod, actor='ops', reason='guard passed')['status'] == 'completed'
    assert alias_version(prod.client, NAME, 'production') == '3' and fl.load_spec(prod)[0].control == '3'
    st = rollout.rollback(prod, actor='erin', reason='complaints from the field')
    assert st['status'] == 'rolled_back' and fl.load_spec(prod)[0].control == '1'
    assert alias_version(prod.client, NAME, 'production') == '1'
    e = last_promotion(prod)
    assert e['subject'] == f'{NAME}/1' and e['actor'] == 'erin', e
    assert 'rolled back: complaints from the field' in e['reason'] and e['details']['previous_version'] == '3'
    assert e['details']['approver'] == 'dave' and e['details']['approval_key_id']  # the same verified promotion
    assert st['history'][-1]['alias'] == dict(alias='production', version='1', moved=True, previous_version='3')
    assert alias_mismatches(prod.client, prod.audit_path, NAME) == []  # the registry is where the audit log says


def test_the_guards_automatic_rollback_moves_the_alias_back_too(ws, monkeypatch):  # noqa: F811
    "Someone promoted the challenger to production mid-rollout; the guard finds a regression and rolls back."
    from lifecycle.deliver import rollout
    from lifecycle.model.registry import alias_version
    from lifecycle.serve import flags as fl

    prod = production_rollout(ws)
    promote(ws, '3', 'staging')
    promote(ws, '3', 'production')
    assert alias_version(prod.client, NAME, 'production') == '3'
    why = 'live accuracy down: challenger 0.61 vs control 0.78'
    monkeypatch.setattr('lifecycle.serve.predlog.read_log', lambda *a, **k: pd.DataFrame())
    monkeypatch.setattr(rollout, 'arm_stats', lambda *a, **k: {})
    monkeypatch.setattr(rollout, 'judge', lambda *a, **k: rollout.Decision('rollback', [why], {}))
    d = rollout.look(prod, prod.params['rollout'].guard, 'Yes', 'sqlite:///unused.db')
    assert d.action == 'rollback' and rollout.load_state(prod)['status'] == 'rolled_back'
    assert fl.load_spec(prod)[0].challenger is None and alias_version(prod.client, NAME, 'production') == '1'
    e = last_promotion(prod)
    assert e['subject'] == f'{NAME}/1' and e['actor'] == 'guard' and why in e['reason'], e
    assert e['details']['previous_version'] == '3'


def test_a_rollback_leaves_an_alias_the_rollout_never_moved(ws):  # noqa: F811
    from lifecycle.core.audit import read
    from lifecycle.deliver import rollout
    from lifecycle.model.registry import alias_version

    prod = production_rollout(ws)
    before = len([e for e in read(prod.audit_path) if e['action'] == 'model.promote'])
    st = rollout.rollback(prod, actor='ops', reason='not now')
    assert alias_version(prod.client, NAME, 'production') == '1'
    assert len([e for e in read(prod.audit_path) if e['action'] == 'model.promote']) == before  # nothing to move
    assert st['history'][-1]['alias'] == dict(alias='production', version='1', moved=False)


def test_a_rollback_whose_alias_cannot_move_still_rolls_back_and_says_why(ws, monkeypatch):  # noqa: F811
    """The alias move fails after the flags were rolled back (the trust chain broke in between: TrustError, not a
    governance refusal): the rollout state is saved as rolled back anyway, and its history says why the alias stayed."""
    from lifecycle.deliver import rollout
    from lifecycle.model.registry import alias_version
    from lifecycle.release.trust import TrustError
    from lifecycle.serve import flags as fl

    prod = production_rollout(ws)
    assert rollout.advance(prod, actor='ops', reason='guard passed')['status'] == 'completed'

    def broken(*a, **k):
        raise TrustError('the trust chain does not verify: statement 3 was edited')

    monkeypatch.setattr(rollout, '_move_alias', broken)
    st = rollout.rollback(prod, actor='erin', reason='complaints from the field')
    assert st['status'] == 'rolled_back' and rollout.load_state(prod)['status'] == 'rolled_back'
    assert fl.load_spec(prod)[0].control == '1' and alias_version(prod.client, NAME, 'production') == '3'
    h = st['history'][-1]['alias']
    assert h['moved'] is False and h['note'].startswith('the alias stays at v3') and 'statement 3' in h['note'], h
