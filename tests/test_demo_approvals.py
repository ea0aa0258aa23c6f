"""Where the workspace's environment demands approvals, `lifecycle simulate` gives them as demo identities (signed
through `lifecycle approve`'s path, the audit log marking the approver as a demo identity) and walks the normal
release path; where it cannot, it stops naming the `lifecycle approve` commands a human runs."""

from __future__ import annotations

import pytest

from conftest import cli_json
from lifecycle.core import audit
from lifecycle.core.cli_support import EXIT_INPUT

STAGING = {'LIFECYCLE_ENVIRONMENT': 'staging'}
SIM = ('simulate', '--window', '100', '--rows', '400', '--max-windows', '20', '--no-report')


def _open(ws):
    from lifecycle.core.workspace import Workspace

    return Workspace.open(ws)


def _bind_champion_to_the_demo_trainer(ws) -> None:
    """The template's v1 was trained by alice, who holds no key, so nobody can approve it (who trained it is unknown).
    Here it is as if the demo trainer had trained it (as `rollout demo` trains): its `trained` statement signed with the
    demo trainer's registered key."""
    from lifecycle.deliver.demo import DEMO_TRAINER, acting_as, demo_people
    from lifecycle.model import signing
    from lifecycle.release import trust

    w = _open(ws)
    trust.demo_identities(w, demo_people(w.params['policy']))
    name = w.params['register'].model_name
    if w.store.record_path('attestations', f'{name}-1-trained').is_file():
        # alice held a key when the session's template was trained (another test made one in the session's keys
        # folder first): v1 is bound to her key already; registering her makes its trainer known, as binding would
        trust.demo_identities(w, {'alice': 'data_scientist'})
        return
    rec = w.store.get_record('signatures', f'{name}-1')
    run_id = w.client.get_model_version(name, '1').run_id
    with acting_as(DEMO_TRAINER):
        assert signing.attest_training(w, name, '1', run_id, rec['manifest']['manifest_hash']) is not None


@pytest.mark.slow
def test_simulate_in_staging_gives_its_approvals_as_demo_identities_and_reaches_a_decision(trained):
    _bind_champion_to_the_demo_trainer(trained)
    r, out = cli_json(trained, *SIM, env=STAGING)
    assert r.returncode == 0, r.stderr + r.stdout
    it = out['iteration']
    assert out['outcome'] in ('promoted', 'reverted') and it['status'] == out['outcome'], out['timeline'][-1]
    given = {(a['version'], a['step'], a['approver']) for a in out['approvals']}
    # the dev champion walked up to staging, and the retrained challenger approved for its shadow in staging
    assert given == {('1', 'staging', 'demo-approver'), (it['challenger'], 'staging', 'demo-approver')}
    log = audit.read(_open(trained).audit_path)
    granted = [e for e in log if e['action'] == 'approval.granted']
    assert len(granted) == 2 and all(e['details']['demo_identity'] for e in granted), granted
    assert {e['actor'] for e in granted} == {'demo-approver'} and all(e['details'].get('key_id') for e in granted)
    assert any(e['action'] == 'model.trained_by' and e['actor'] == 'demo-trainer' for e in log)
    assert not [e for e in log if e['action'] in ('approval.refused', 'promotion.refused')]


def _nothing_written(ws) -> None:
    """A refusal (exit 2) left no trust behind: no demo identity became the workspace's first administrator, so a
    real one can still run `lifecycle trust init` (review: demo-admin stayed its administrator for good)."""
    from lifecycle.release import trust

    w = _open(ws)
    assert trust.roster(w) is None, sorted(trust.roster(w))
    assert not [e for e in audit.read(w.audit_path) if e['action'].startswith(('trust.', 'approval.'))]


def test_simulate_in_staging_stops_naming_the_approval_when_the_champion_cannot_be_approved(trained):
    # v1 has no trainer bound by a key: no one, demo identity or not, may approve it; nothing is labelled exempt
    r, out = cli_json(trained, *SIM, env=STAGING)
    assert r.returncode == EXIT_INPUT and 'Traceback' not in r.stderr, r.stderr
    err = out['error']
    assert 'staging has no champion' in err and 'who trained' in err, err
    assert '`lifecycle approve arrests-release 1 --to staging --as NAME' in err and '`lifecycle promote' in err
    _nothing_written(trained)


def test_simulate_in_staging_refuses_a_source_with_no_cut_before_it_walks_the_champion_up(trained):
    """Its own refusals (no cut, a retraining or rollout under way, no rows) came after the dev champion was approved
    and promoted to staging as the demo identities: exit 2 then left a staging champion and an approval behind."""
    from conftest import set_yaml
    from lifecycle.model.registry import alias_version

    _bind_champion_to_the_demo_trainer(trained)
    set_yaml(trained / 'params/ingest.yaml', split_column=None, train_until=None)
    r = cli_json(trained, *SIM, env=STAGING)[0]
    assert r.returncode == EXIT_INPUT and 'sets no split_column' in ' '.join(r.stdout.split()), r.stdout + r.stderr
    w = _open(trained)
    assert alias_version(w.client, w.params['register'].model_name, 'staging') is None
    assert not w.store.record_path('approvals', 'arrests-release-1-staging').exists()


def test_a_walk_up_refused_whoever_approves_is_decided_before_the_demo_identities_are_registered(trained):
    """v1 bound to the demo trainer's key (not registered yet: no trust in this workspace), walked up to staging where
    the policy fails it, then where staging is approved on A/B evidence it has none: refused each time naming why, and
    no trust was initialised for it (review: demo-admin stayed the workspace's first administrator)."""
    from dataclasses import replace
    from conftest import set_yaml
    from lifecycle.deliver.demo import DEMO_TRAINER, DemoNeedsApproval, acting_as, demo_champion
    from lifecycle.model import signing
    from lifecycle.release import trust

    w = _open(trained)
    name = w.params['register'].model_name
    if not signing.person_key_path(w.keys_dir, DEMO_TRAINER).is_file():
        signing.new_person_key(w.keys_dir, DEMO_TRAINER)
    w.store.record_path('attestations', f'{name}-1-trained').unlink(missing_ok=True)  # (alice's, if she held a key)
    manifest = w.store.get_record('signatures', f'{name}-1')['manifest']['manifest_hash']
    with acting_as(DEMO_TRAINER):
        signing.attest_training(w, name, '1', w.client.get_model_version(name, '1').run_id, manifest)
    policy = trained / 'params/policy.yaml'
    for change, words in (
        (dict(required_card_fields=['owners', 'sign_off']), 'policy failed: card.sign_off'),
        (dict(required_card_fields=['owners'], promotion__staging__ab_evidence=True), 'no experiment report about'),
    ):
        set_yaml(policy, **change)
        with pytest.raises(DemoNeedsApproval) as e:
            demo_champion(replace(_open(trained), environment='staging'), 'a test', say=print)
        msg = str(e.value)
        assert 'staging has no champion' in msg and words in msg and 'who trained' not in msg, msg
        assert trust.roster(w) is None


def test_demo_approvals_are_refused_where_real_people_run_the_trust_naming_the_commands(trained):
    from lifecycle.deliver.demo import DemoNeedsApproval, demo_approve
    from lifecycle.model.signing import new_person_key
    from lifecycle.release import trust

    w = _open(trained)
    new_person_key(w.keys_dir, 'root')
    trust.trust_init(w, 'root')  # a real administrator: demo identities may not register themselves here
    with pytest.raises(DemoNeedsApproval) as e:
        demo_approve(w, '1', 'canary', 'a demonstration', say=lambda _: None)
    msg = str(e.value)
    assert "may not be exposed as 'canary'" in msg and 'lifecycle trust add' in msg, msg
    assert '`lifecycle approve arrests-release 1 --to staging --as NAME --reason WHY`' in msg, msg
    assert not w.store.record_path('approvals', 'arrests-release-1-staging').exists()


@pytest.mark.slow
def test_rollout_demo_in_production_gives_each_approval_as_a_demo_identity_the_last_over_the_ab_evidence(trained):
    """`rollout demo` of a sound challenger where the policy asks for approvals: the candidate gets its staging approval
    before its canary and its production approval just before completion, signed over the experiment report of the
    traffic it served; it reaches 100% under the guard, and completion moves the production alias through the verified
    promotion. (The degraded challenger's rollback is played in dev: tests/test_rollout.py.)"""
    from dataclasses import replace
    from conftest import write_ab_report
    from lifecycle.deliver.demo import demo_promote
    from lifecycle.model.registry import alias_version
    from lifecycle.release import exposure, trust
    from test_rollout import quick_guard

    _bind_champion_to_the_demo_trainer(trained)
    quick_guard(trained)
    prod = replace(_open(trained), environment='production')
    write_ab_report(prod, '1')  # v1's own A/B evidence (as if it had been a challenger once)
    demo_promote(prod, '1', 'production', 'the production champion', say=print)
    r, out = cli_json(
        trained,
        *('rollout', 'demo', '--challenger-kind', 'sound', '--steps', '10,100', '--max-seconds', '240'),
        env={'LIFECYCLE_ENVIRONMENT': 'production'},
    )
    assert r.returncode == 0, r.stderr + r.stdout
    assert out['status'] == 'completed' and out['challenger'] == '2', out['history']
    assert [h['action'] for h in out['history']] == ['start', 'advance', 'complete'] and out['history'][-1][
        'actor'
    ] == 'guard'
    _, flags = cli_json(trained, 'flags', 'show', env={'LIFECYCLE_ENVIRONMENT': 'production'})
    assert flags['flags']['control'] == '2' and flags['flags']['challenger'] is None
    given = {(a['version'], a['step'], a['approver']) for a in out['approvals']}
    assert given == {('2', 'staging', 'demo-approver'), ('2', 'production', 'demo-production-approver')}, given
    w = replace(_open(trained), environment='production')
    name = w.params['register'].model_name
    assert alias_version(w.client, name, 'production') == '2'
    assert exposure.check(w, '2', 'production').ok  # the signed approval verifies over the current A/B evidence
    evidence = trust.experiment_evidence(w, '2')
    log = audit.read(w.audit_path)
    granted = [e for e in log if e['action'] == 'approval.granted' and e['subject'].endswith('/2')]
    assert len(granted) == 2 and all(e['details']['demo_identity'] for e in granted), granted
    assert granted[-1]['details']['experiment_report_sha256'] == evidence['sha256']  # the report of its own traffic
    moved = [e for e in log if e['action'] == 'model.promote'][-1]
    assert moved['subject'] == f'{name}/2' and 'rollout completed' in moved['reason'], moved
    assert not [e for e in log if e['action'] in ('approval.refused', 'promotion.refused')]


def test_rollout_demo_in_staging_stops_naming_the_commands_when_the_champion_cannot_be_approved(trained):
    # v1's trainer is not bound by a registered key: no approval can be given for it, and the demo says what to run
    r, out = cli_json(trained, 'rollout', 'demo', env=STAGING)
    assert r.returncode == EXIT_INPUT and 'Traceback' not in r.stderr, r.stderr
    err = out['error']
    assert 'staging has no champion' in err and 'who trained' in err, err
    assert '`lifecycle approve arrests-release 1 --to staging --as NAME' in err and '`lifecycle promote' in err
    assert not list((trained / 'reports' / 'runs').glob('candidate-*'))  # it stopped before training anything
    _nothing_written(trained)


def test_a_dev_completion_needs_no_approval_and_writes_no_ab_report(trained):
    from lifecycle.deliver.demo import demo_completion

    w = _open(trained)
    assert demo_completion(w, {'challenger': '1', 'started': 0.0}, 'test', say=print) == []
    assert not (w.reports_dir / 'experiments').exists()  # evidence is only written where an approval needs it


def test_an_approval_refused_for_its_trainer_says_why_the_trained_statement_is_not_trusted(trained):
    """A version whose trained statement was edited was told it had never been signed, and how to train one that
    could be: the edit went unsaid (found by review). A statement there that fails is named as it fails; a version
    with none is told how to train one that can be approved."""
    import json

    from lifecycle.release import trust
    from lifecycle.release.commands import approve_version

    _bind_champion_to_the_demo_trainer(trained)
    w = _open(trained)
    trust.demo_identities(w, {'carol': 'ml_engineer'})
    name = w.params['register'].model_name
    p = w.store.record_path('attestations', f'{name}-1-trained')
    rec = json.loads(p.read_text())
    p.chmod(0o644)
    p.write_text(json.dumps({**rec, 'statement': {**rec['statement'], 'trainer': 'carol'}}))
    with pytest.raises(Exception) as e:
        approve_version(w, name, '1', 'carol', 'read the reports', 'staging')
    said = ' '.join(str(e.value).split())
    assert 'who trained' in said and "no trainer's key signed it" not in said, said
    report = (w.reports_dir / 'governance' / f'{name}-1.md').read_text()  # (an edited statement names no trainer)
    assert "Trained by `carol`" not in report and "(the run's tag: no verified trained statement)" in report
    p.unlink()
    with pytest.raises(Exception) as e:
        approve_version(_open(trained), name, '1', 'carol', 'read the reports', 'staging')
    assert "no trainer's key signed it at registration" in ' '.join(str(e.value).split()), str(e.value)


@pytest.mark.slow
def test_a_production_approval_is_refused_over_a_staging_record_no_one_signed(trained):
    "`lifecycle approve --to production` checked only that a staging record existed (found by review)."
    import json

    from lifecycle.release import trust
    from lifecycle.release.commands import approve_version

    _bind_champion_to_the_demo_trainer(trained)
    w = _open(trained)
    trust.demo_identities(w, {'dave': 'compliance_officer'})
    name = w.params['register'].model_name
    p = w.store.record_path('approvals', f'{name}-1-staging')
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(json.dumps(dict(model_name=name, model_version='1', step='staging', approver='nobody', reason='x')))
    with pytest.raises(Exception) as e:
        approve_version(w, name, '1', 'dave', 'read the reports', 'production')
    said = ' '.join(str(e.value).split())
    assert 'a staging approval' in said and 'does not verify' in said and 'not signed' in said, said
    refused = [x for x in audit.read(w.audit_path) if x['action'] == 'approval.refused']
    assert 'not signed' in refused[-1]['reason']
    report = (w.reports_dir / 'governance').rglob('*.md')
    said = ' '.join(p.read_text() for p in report)
    assert 'nobody (unsigned)' in said and 'staging: awaits approval' in said, said


@pytest.mark.parametrize('command', [SIM, ('rollout', 'demo')])
def test_with_no_champion_anywhere_simulate_and_rollout_demo_in_staging_refuse_before_any_demo_identity(
    workspace, command
):
    """Review BG: in a workspace with nothing trained, in staging, both registered the demo identities (demo-admin
    became the workspace's first administrator for good) and only then stopped: simulate on 'no champion', rollout
    demo with a traceback (in dev too). Both refuse first now, naming how to get one, and write no trust."""
    r, out = cli_json(workspace, *command, env=STAGING)
    assert r.returncode == EXIT_INPUT and 'Traceback' not in r.stderr, r.stdout + r.stderr
    assert 'champion' in out['error'] and 'lifecycle run' in out['error'], out['error']
    _nothing_written(workspace)
