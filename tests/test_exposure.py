"""One release path: `exposure.check` decides whether a version may be exposed (dev, shadow, canary, production) from
its validation gates and the signed approvals policy.yaml asks for, and the flags (behind `flags`, `rollout` and the
admin API) ask it for every arm: an ungated or unapproved version is refused naming the missing gate or approval."""

from __future__ import annotations
import re
from dataclasses import replace
import pytest
from test_trust import NAME, approve_as, base, ws  # noqa: F401 (fixtures)


def test_dev_needs_the_gates_only(ws):  # noqa: F811
    from lifecycle.release import exposure

    assert exposure.check(ws['ws'], '1', 'dev').ok
    d = exposure.check(ws['ws'], '2', 'dev')  # its validation record failed the accuracy gate
    assert not d.ok and 'validation gates' in d.message() and 'accuracy' in d.message()
    with pytest.raises(exposure.ExposureRefused) as e:
        d.require()
    assert e.value.missing == d.missing


def test_canary_and_production_need_their_signed_approvals(ws):  # noqa: F811
    from lifecycle.release import exposure

    w = ws['ws']
    d = exposure.check(w, '1', 'canary')
    assert not d.ok and d.missing == [
        f"a staging approval (by the role 'ml_engineer') is missing: "
        f"`lifecycle approve {NAME} 1 --to staging --as NAME`"
    ]
    approve_as(ws, 'carol', 'staging')
    assert exposure.check(w, '1', 'canary').ok and exposure.check(w, '1', 'shadow').ok
    d = exposure.check(w, '1', 'production')
    assert not d.ok and "a production approval (by the role 'compliance_officer') is missing" in d.message()
    approve_as(ws, 'dave', 'production')
    assert exposure.check(w, '1', 'production').ok


def test_a_forged_approval_does_not_open_an_exposure(ws):  # noqa: F811
    from lifecycle.release import exposure

    approve_as(ws, 'carol', 'staging', key_of='mallory')
    d = exposure.check(ws['ws'], '1', 'canary')
    assert not d.ok and 'does not verify' in d.message() and 'not with the expected key' in d.message()


def test_the_flags_refuse_an_arm_whose_exposure_is_not_met(ws):  # noqa: F811
    "Every flags write (flags init/set, rollout start and steps, the admin API) is checked as write_spec checks."
    from lifecycle.core.params import FlagsParams
    from lifecycle.serve import flags as fl

    dev = ws['ws']
    fl.write_spec(dev, FlagsParams(control='1', safe='1'), NAME)  # a local server: gates suffice
    with pytest.raises(fl.FlagError, match=r"challenger: .*validation gates.*accuracy"):
        fl.write_spec(dev, FlagsParams(control='1', safe='1', challenger='2', percentage=10), NAME)
    prod = replace(dev, environment='production')
    with pytest.raises(fl.FlagError, match=r"control: .*'production'.*production approval .* is missing"):
        fl.write_spec(prod, FlagsParams(control='1', safe='1'), NAME)
    approve_as(ws, 'carol', 'staging')
    approve_as(ws, 'dave', 'production')
    fl.write_spec(prod, FlagsParams(control='1', safe='1'), NAME)
    with pytest.raises(fl.FlagError, match=r"challenger: .*'canary'"):  # the canary of a version that failed its gates
        fl.change_flags(prod, {'challenger': '2', 'percentage': 5}, actor='ops', reason='canary')
    assert fl.load_spec(prod)[0].challenger is None  # nothing was written


def test_a_production_rollout_needs_staging_then_production_approval_and_moves_the_alias(ws):  # noqa: F811
    from lifecycle.core.audit import read
    from lifecycle.core.params import FlagsParams
    from lifecycle.deliver import rollout
    from lifecycle.model.registry import alias_version
    from lifecycle.release.governance import PromotionRefused
    from lifecycle.serve import flags as fl

    prod = replace(ws['ws'], environment='production')
    approve_as(ws, 'carol', 'staging')
    approve_as(ws, 'dave', 'production')
    fl.write_spec(prod, FlagsParams(control='1', safe='1'), NAME)
    rp = prod.params['rollout']
    with pytest.raises(fl.FlagError, match=r"challenger: .*version 3 .*'shadow'.*staging approval .* is missing"):
        rollout.start(prod, '3', rp, steps=[50, 100], actor='ops')
    approve_as(ws, 'carol', 'staging', version='3')
    st = rollout.start(prod, '3', rp, steps=[50, 100], actor='ops')
    assert st['percentage'] == 50
    with pytest.raises(fl.FlagError, match=r"control: .*version 3 .*'production'.*production approval .* is missing"):
        rollout.advance(prod, actor='ops')  # 100%: version 3 would be the production control
    assert fl.load_spec(prod)[0].control == '1'
    approve_as(ws, 'dave', 'production', version='3')
    out = rollout.advance(prod, actor='ops', reason='guard passed')
    assert out['status'] == 'completed' and fl.load_spec(prod)[0].control == '3'
    assert alias_version(prod.client, NAME, 'production') == '3'
    moved = [e for e in read(prod.audit_path) if e['action'] == 'model.promote'][-1]
    assert moved['subject'] == f'{NAME}/3' and moved['actor'] == 'ops' and moved['details']['approver'] == 'dave'
    assert 'rollout completed' in moved['reason'] and moved['details']['approval_key_id']
    with pytest.raises(PromotionRefused):  # and the alias cannot be moved to an unapproved version by hand
        from lifecycle.release import governance as gov, trust
        from lifecycle.release.commands import approval_check

        pol = prod.params['policy']
        gov.promote(
            prod.mlflow,
            prod,
            prod.store,
            NAME,
            '2',
            'production',
            'ops',
            policy=pol,
            verify=approval_check(prod, trust.roster(prod), pol),
        )


def test_govern_check_lists_what_serves_and_no_longer_meets_a_tightened_policy(ws):  # noqa: F811
    import json
    from lifecycle.core.cli_support import invoke
    from lifecycle.core.params import FlagsParams
    from lifecycle.core.workspace import Workspace
    from lifecycle.serve.commands import govern_check
    from lifecycle.serve import flags as fl
    from conftest import set_yaml

    w = ws['ws']
    fl.write_spec(w, FlagsParams(control='1', safe='1'), NAME)
    env = {'LIFECYCLE_WORKSPACE': str(w.root)}
    r = invoke(govern_check, ['--json'], env=env)
    assert r.exit_code == 0 and [a['ok'] for a in json.loads(r.stdout)['arms']] == [True, True]
    set_yaml(w.params_dir / 'policy.yaml', exposure__dev=['gates', 'staging'])  # the policy tightens
    from lifecycle.release.exposure import serving_check

    rows = serving_check(Workspace.open(w.root))
    assert [(r['arm'], r['ok']) for r in rows] == [('control', False), ('safe', False)]
    assert "a staging approval (by the role 'ml_engineer') is missing" in rows[0]['missing'][0]
    r = invoke(govern_check, [], env=env)
    assert r.exit_code == 1 and 'control: version 1, exposed as dev in dev: DOES NOT MEET THE POLICY NOW' in r.stdout
    out = json.loads(invoke(govern_check, ['--json'], env=env).stdout)  # (why, in `error`, as a refusal: review AX)
    assert out['error'].startswith('deployed arm(s) not meeting the policy now (dev): control: version 1 as dev: a')


def test_govern_check_notes_the_environments_alias_naming_a_version_the_flags_no_longer_serve(ws):  # noqa: F811
    """Review CA: with the flags' control set back by hand after a completed rollout, the production alias named
    version 3, which no arm served, and `govern check` said ok. It says so (text and --json), as a note: the arms
    still meet the policy, so it exits 0; during the canary the alias names the control, and there is no note."""
    import json
    from lifecycle.core.cli_support import invoke
    from lifecycle.deliver import rollout
    from lifecycle.model.registry import alias_version
    from lifecycle.serve.commands import govern_check
    from lifecycle.serve import flags as fl

    prod, _ = _rollout_of_3_in_production(ws)
    env = {'LIFECYCLE_WORKSPACE': str(prod.root), 'LIFECYCLE_ENVIRONMENT': 'production'}

    def check() -> tuple[object, dict]:
        return invoke(govern_check, [], env=env), json.loads(invoke(govern_check, ['--json'], env=env).stdout)

    r, out = check()  # the canary: the alias names the control (1), which serves
    assert r.exit_code == 0 and 'note:' not in r.stdout and out['alias_unserved'] is None, r.stdout
    assert rollout.advance(prod, actor='ops', reason='guard passed')['status'] == 'completed'
    assert alias_version(prod.client, NAME, 'production') == '3' and fl.load_spec(prod)[0].control == '3'
    r, out = check()
    assert r.exit_code == 0 and 'note:' not in r.stdout and out['alias_unserved'] is None, r.stdout
    fl.change_flags(prod, {'control': '1'}, actor='ops', reason='set back by hand')  # (the alias left on 3)
    r, out = check()
    assert r.exit_code == 0 and out['ok'] and all(a['ok'] for a in out['arms']), r.stdout
    serves = {'control': '1', 'safe': '1'}
    assert out['alias_unserved'] == dict(
        alias='production', model=NAME, version='3', everyone='1', serves=serves, rollout=False
    )
    said = ' '.join(r.stdout.split())
    note = f"note: the registry alias 'production' names {NAME} version 3, but the flags answer everyone with version 1"
    assert f"{note} (control 1, safe 1)" in said and '`lifecycle flags set control=3`' in said, said
    assert f'`lifecycle promote {NAME} 1 --to production`' in said, said
    fl.change_flags(prod, {'control': '3'}, actor='ops', reason='back')
    prod.client.set_registered_model_alias(NAME, 'production', '1')  # (the alias moved back to the safe version: CC)
    r, out = check()
    assert out['alias_unserved'] == dict(
        alias='production', model=NAME, version='1', everyone='3', serves={'control': '3', 'safe': '1'}, rollout=False
    ), r.stdout
    fl.change_flags(prod, {'challenger': '1', 'percentage': 5}, actor='ops', reason='v1 as a canary')
    said = ' '.join(check()[0].stdout.split())  # (the control cannot be v1 while the challenger is: review CE)
    assert '`lifecycle flags set control=1 challenger=null percentage=0`' in said, said
    fl.change_flags(prod, {'control': '1', 'challenger': None, 'percentage': 0}, actor='ops', reason='as it says')
    assert check()[1]['alias_unserved'] is None


def test_govern_check_reads_the_spec_by_the_flags_schema_and_refuses_one_edited_out_of_it(ws):  # noqa: F811
    """The release check read spec.json by hand (only the percentage was checked): a value the flags refuse was taken
    as something (a percentage of 150 as a canary), and a cohort's value could reach the message. Both read it now by
    one schema: the same refusal, the key named, the value not quoted, and exit 4: the flags' own reader's (a damaged
    state file), as `flags show` says it (exit 2 until `govern check` read the flags as the server does)."""
    import json
    from lifecycle.core.cli_support import invoke
    from lifecycle.core.params import FlagsParams
    from lifecycle.serve.commands import flags_show, govern_check
    from lifecycle.serve import flags as fl

    w = ws['ws']
    fl.write_spec(w, FlagsParams(control='1', safe='1'), NAME)
    path, env = fl.spec_path(w), {'LIFECYCLE_WORKSPACE': str(w.root)}
    good = json.loads(path.read_text())
    secret = 'alice@example.com'
    for edit, key in (
        ({'challenger': '1', 'percentage': 150}, "key 'percentage': Input should be less than or equal to 100"),
        (  # a person's address where a list belongs: named by its key, never quoted
            {'cohorts': [{'attribute': 'email', 'in': secret, 'variant': 'control'}]},
            "key 'cohorts.0.in': Input should be a valid list",
        ),
        ({'model_name': None}, "key 'model_name': expected the registered model's name"),
    ):
        path.write_text(json.dumps({**good, **edit}))
        r, shown = invoke(govern_check, ['--json'], env=env), invoke(flags_show, ['--json'], env=env)
        out = json.loads(r.stdout)
        assert r.exit_code == 4 and not out['ok'] and key in out['error'] and str(path) in out['error'], r.stdout
        assert (shown.exit_code, json.loads(shown.stdout)) == (r.exit_code, out)
        assert secret not in r.stdout + r.stderr
        with pytest.raises(fl.FlagError) as e:
            fl.load_spec(w)
        assert key in str(e.value) and secret not in str(e.value)


def test_a_registry_that_cannot_answer_is_no_verdict_and_every_flags_writer_says_so(ws, monkeypatch):  # noqa: F811
    "Busy or unreachable is not 'no such version': check raises RegistryUnavailable, the flags refuse for now."
    from mlflow.exceptions import MlflowException
    from mlflow.tracking import MlflowClient
    from lifecycle.core.params import FlagsParams
    from lifecycle.release import exposure
    from lifecycle.serve import flags as fl

    def busy(self, name, version):
        raise MlflowException('database is locked', error_code='TEMPORARILY_UNAVAILABLE')

    monkeypatch.setattr(MlflowClient, 'get_model_version', busy)
    with pytest.raises(exposure.RegistryUnavailable, match='could not answer about .* v1 .*try again'):
        exposure.check(ws['ws'], '1', 'dev')
    with pytest.raises(fl.FlagError, match=r'control: the release policy could not be checked') as refused:
        fl.write_spec(ws['ws'], FlagsParams(control='1', safe='1'), NAME)
    assert refused.value.status == 503  # the admin API's answer: try again, not "refused"
    monkeypatch.undo()
    assert exposure.check(ws['ws'], '1', 'dev').ok  # answered again: the verdict is the gates'


def test_the_guard_does_not_complete_a_rollout_that_changed_while_its_completion_was_prepared(tmp_path):
    import json
    from lifecycle.core.workspace import Workspace
    from lifecycle.deliver import rollout

    (tmp_path / 'settings.ini').write_text('[workspace]\n')
    w = Workspace.open(tmp_path)
    judged = dict(id='r1', status='running', step=0, percentage=50.0, step_started=100.0, strategy='canary')
    judged.update(model_name='m', challenger='2', control='1', steps=[50, 100], started=90.0, history=[])
    rollout.state_path(w).parent.mkdir(parents=True, exist_ok=True)
    for now in ({**judged, 'step_started': 160.0}, {**judged, 'status': 'paused'}, {**judged, 'percentage': 0.0}):
        rollout.state_path(w).write_text(json.dumps(now))  # resumed since, paused, switched back
        assert rollout.complete_if_unchanged(w, judged, 'healthy') is None
        assert json.loads(rollout.state_path(w).read_text()) == now  # nothing was advanced


def _rollout_of_3_in_production(ws):  # noqa: F811 (the fixture's value, passed on)
    "Versions 1 and 3 approved for staging and production, 1 served in production, a rollout of 3 started."
    from lifecycle.core.params import FlagsParams
    from lifecycle.deliver import rollout
    from lifecycle.serve import flags as fl

    for v in ('1', '3'):
        approve_as(ws, 'carol', 'staging', version=v)
        approve_as(ws, 'dave', 'production', version=v)
    prod = replace(ws['ws'], environment='production')
    fl.write_spec(prod, FlagsParams(control='1', safe='1'), NAME)
    return prod, rollout.start(prod, '3', prod.params['rollout'], steps=[50, 100], actor='ops')


def _floor_raised(w):
    "The workspace `w` reopened once the policy's ROC AUC floor is raised above every version's (the gates too)."
    from conftest import set_yaml

    set_yaml(w.params_dir / 'policy.yaml', thresholds__roc_auc={'min': 0.99})
    set_yaml(w.params_dir / 'validate.yaml', gates__roc_auc={'min': 0.99})  # (the policy no looser than the gates)
    return replace(type(w).open(w.root), environment=w.environment)


def test_a_floor_raised_since_the_approval_refuses_the_next_exposure_not_what_serves(ws):  # noqa: F811
    """Review AK: with the policy's ROC AUC floor raised above a version's after its staging approval, `lifecycle
    promote` refused the version, but a flags change still put it in the shadow or a canary. A change now checks the
    floor as promote does, and `govern check` lists a served arm under it; a server routing the spec it was given, and
    a kill switch, do not (raising a floor must not stop what serves)."""
    from lifecycle.core.params import FlagsParams
    from lifecycle.release import exposure
    from lifecycle.serve import flags as fl

    approve_as(ws, 'carol', 'staging')
    approve_as(ws, 'dave', 'production')
    approve_as(ws, 'carol', 'staging', version='3')
    prod = replace(ws['ws'], environment='production')
    fl.write_spec(prod, FlagsParams(control='1', safe='1'), NAME)  # served before the floor is raised
    prod = _floor_raised(prod)
    floor = r'the release policy now: metric\.roc_auc: roc_auc 0\.\d+ is below the minimum 0\.99'

    assert exposure.check(prod, '3', 'canary').ok  # its approval verifies: without floors, as a server routes it
    d = exposure.check(prod, '3', 'canary', floors=True)
    assert not d.ok and len(d.missing) == 1 and re.fullmatch(floor, d.missing[0])
    assert exposure.check(prod, '3', 'dev', floors=True).ok  # the first environment needs no approval: no floor
    with pytest.raises(fl.FlagError, match=f"challenger: .*'canary'.*{floor}"):
        fl.change_flags(prod, {'challenger': '3', 'percentage': 5}, actor='ops', reason='canary')
    with pytest.raises(fl.FlagError, match=f"challenger: .*'shadow'.*{floor}"):
        fl.change_flags(prod, {'challenger': '3', 'shadow': True}, actor='ops', reason='shadow')
    assert fl.load_spec(prod)[0].challenger is None  # nothing was written

    served = FlagsParams(control='1', safe='1')
    assert fl.policy_refusals(prod, NAME, served, routed=True) == []  # a server starting with what it was given
    rows = exposure.serving_check(prod)  # `govern check`: what serves and no longer meets the policy
    assert {r['arm'] for r in rows} == {'control', 'safe'} and not any(r['ok'] for r in rows)
    assert all(re.fullmatch(floor, r['missing'][0]) for r in rows)


def test_a_floor_raised_since_holds_back_neither_a_rollback_nor_the_environments_own_versions(ws):  # noqa: F811
    """Review AP: with the floor raised, rolling back a completed rollout was refused (its old control counted as
    gaining exposure), and so were the first `lifecycle serve` and `flags init --force` of the version the environment's
    alias names, which promotion judged: a new production server stayed unready. A challenger declared in the params
    is still judged; so is a threshold switch for a regression, refused through the library as through the CLI."""
    from conftest import set_yaml
    from lifecycle.core.params import FlagsParams
    from lifecycle.deliver import rollout
    from lifecycle.serve import flags as fl

    prod, st = _rollout_of_3_in_production(ws)
    assert rollout.advance(prod, actor='ops', reason='guard passed')['status'] == 'completed'
    assert fl.load_spec(prod)[0].control == '3' and st['control'] == '1'
    fl.change_flags(prod, {'safe': '3'}, actor='ops', reason='v3 serves all: the safe version too')
    prod = _floor_raised(prod)
    assert rollout.rollback(prod, actor='ops', reason='incident')['status'] == 'rolled_back'
    assert (fl.load_spec(prod)[0].control, fl.load_spec(prod)[0].safe) == ('1', '1')

    fl.spec_path(prod).unlink()  # a first serve, or `flags init --force` repairing a damaged spec
    fl.init_flags(prod, FlagsParams(control='1', safe='1'), NAME, lambda alias: '1')
    assert fl.load_spec(prod)[0].control == '1'
    fl.spec_path(prod).unlink()
    with pytest.raises(fl.FlagError, match=r"challenger: .*'canary'.*the release policy now: metric\.roc_auc"):
        fl.init_flags(prod, FlagsParams(control='1', safe='1', challenger='3', percentage=10), NAME, lambda a: '1')
    with pytest.raises(fl.FlagError, match=r"control: .*'production'.*the release policy now: metric\.roc_auc"):
        fl.init_flags(prod, FlagsParams(control='3', safe='1'), NAME, lambda a: '1')  # (pinned, not the alias's: AT)

    fl.init_flags(prod, FlagsParams(control='1', safe='1'), NAME, lambda alias: '1')
    set_yaml(prod.params_dir / 'features.yaml', task='regression')
    with pytest.raises(fl.FlagError, match=f"threshold.default: {NAME} is a regression"):
        fl.change_flags(prod, {'threshold.default': 'default'}, actor='ops', source='api')
    with pytest.raises(fl.FlagError) as e:  # (review AT: a key the caller sent is not quoted back)
        fl.change_flags(prod, {'threshold.default': 'x', 'jane.doe@example.org': 1}, actor='ops', source='api')
    assert 'jane' not in str(e.value) and 'jane' not in e.value.unnamed and 'is a regression' in e.value.unnamed


def test_a_kill_after_a_completion_cut_short_is_not_held_by_a_floor_raised_since(ws):  # noqa: F811
    """Review AT: a kill after a completion cut short puts the rollout's control back; judged by a floor raised since
    that control's promotion, the kill was refused and the challenger went on serving everyone."""
    from lifecycle.deliver import rollout
    from lifecycle.serve import flags as fl

    prod, _ = _rollout_of_3_in_production(ws)
    fl.change_flags(prod, {'control': '3', 'challenger': None, 'percentage': 0, 'safe': '3'}, actor='ops',
                    source='rollout', reason='a completion cut short, the safe version moved by hand')  # fmt: skip
    prod = _floor_raised(prod)
    assert rollout.kill(prod, actor='ops', reason='incident')['status'] == 'killed'
    spec = fl.load_spec(prod)[0]
    assert spec.kill and spec.control == '1' and spec.challenger is None


def test_a_version_whose_metrics_cannot_be_read_for_good_is_refused_and_a_busy_registry_is_try_again(
    ws, monkeypatch  # noqa: F811
):
    "Review AP: every MLflow error reading a version's metrics was 'try again' (503), a run gone for good too."
    from mlflow.exceptions import MlflowException
    from mlflow.protos.databricks_pb2 import RESOURCE_DOES_NOT_EXIST, TEMPORARILY_UNAVAILABLE
    from lifecycle.release import exposure, governance as gov
    from lifecycle.release.commands import promotion_check

    approve_as(ws, 'carol', 'staging')
    for code, gone in ((RESOURCE_DOES_NOT_EXIST, True), (TEMPORARILY_UNAVAILABLE, False)):

        def unreadable(*a, **kw):
            raise MlflowException('the run', error_code=code)

        monkeypatch.setattr(gov, 'gather_facts', unreadable)
        if gone:
            d = exposure.check(ws['ws'], '1', 'canary', floors=True)
            assert d.floors == [f"the release policy now: {NAME} v1's holdout metrics cannot be read "
                                "(RESOURCE_DOES_NOT_EXIST)"] and not d.ok  # fmt: skip
        else:
            with pytest.raises(exposure.RegistryUnavailable, match='TEMPORARILY_UNAVAILABLE'):
                exposure.check(ws['ws'], '1', 'canary', floors=True)
        # `lifecycle promote` past the first environment and a rollout's completion ask the same (it raised MLflow's
        # own exception, a defect's report, where the flags said 'try again')
        w = ws['ws']
        check = promotion_check(w, w.params['policy'])
        if gone:
            assert check(NAME, '1').endswith("v1's holdout metrics cannot be read (RESOURCE_DOES_NOT_EXIST)")
        else:
            with pytest.raises(exposure.RegistryUnavailable, match='TEMPORARILY_UNAVAILABLE'):
                check(NAME, '1')


def test_a_challengers_share_raised_by_a_flags_change_is_judged_as_its_exposure_is_a_rollouts_steps_are_not(
    ws,  # noqa: F811
):
    """Review BF: in staging, a canary at 5% and at 100% are both 'canary', so `flags set percentage=100` gave the
    whole traffic to a challenger under a floor raised since (or whose approval no longer verified) unjudged. A share
    that grows (a higher percentage, a cohort more) is judged now, floors included; a rollout's own steps are not (its
    start and its completion are), nor a share that shrinks."""
    from lifecycle.core.params import FlagsParams
    from lifecycle.serve import flags as fl

    approve_as(ws, 'carol', 'staging')
    approve_as(ws, 'carol', 'staging', version='3')
    staging = replace(ws['ws'], environment='staging')
    fl.write_spec(staging, FlagsParams(control='1', safe='1', challenger='3', percentage=5), NAME)
    staging = _floor_raised(staging)
    floor = r'the release policy now: metric\.roc_auc: roc_auc 0\.\d+ is below the minimum 0\.99'
    with pytest.raises(fl.FlagError, match=f"challenger: .*'canary'.*{floor}"):
        fl.change_flags(staging, {'percentage': 100}, actor='ops', reason='switch')
    internal = {'attribute': 'internal', 'equals': True, 'in': None, 'variant': 'challenger'}
    with pytest.raises(fl.FlagError, match=f"challenger: .*'canary'.*{floor}"):
        fl.change_flags(staging, {'cohorts': [internal]}, actor='ops', reason='staff too')
    assert fl.load_spec(staging)[0].percentage == 5  # nothing was written
    assert fl.change_flags(staging, {'percentage': 2}, actor='ops', reason='less').percentage == 2  # (less: not judged)
    assert fl.change_flags(staging, {'percentage': 25}, actor='guard', source='rollout').percentage == 25


def test_govern_check_and_a_flags_change_ask_whether_a_versions_files_match_its_signature(ws, monkeypatch):  # noqa: F811
    """Review BF: `govern check` said ok, and a flags change deployed, a version whose files had been edited after
    signing (or signed by a key revoked since); the server then refused to start. Both ask what promotion asks."""
    from lifecycle.core.params import FlagsParams
    from lifecycle.release import exposure
    from lifecycle.serve import flags as fl

    w = ws['ws']
    fl.write_spec(w, FlagsParams(control='1', safe='1'), NAME)
    edited = "its files do not match its signature: requirements.txt changed"
    monkeypatch.setattr(exposure, 'files_problem', lambda ws_, n, v: edited if v == '3' else '')
    assert all(r['ok'] for r in exposure.serving_check(w))
    with pytest.raises(fl.FlagError, match=f"challenger: .*{edited}"):
        fl.change_flags(w, {'challenger': '3', 'percentage': 5}, actor='ops', reason='canary')
    spec = fl.load_spec(w)[0]
    assert spec.challenger is None
    served = {**spec.model_dump(mode='json', by_alias=True), 'control': '3', 'model_name': NAME}
    rows = exposure.serving_check(w, served)
    assert [r['missing'] for r in rows if r['arm'] == 'control'] == [[edited]]


class Killed(BaseException):
    "What a kill -9 leaves in process: nothing after the point it struck ran."


@pytest.mark.parametrize('env', ['staging', 'production'])
def test_a_rollback_of_a_completed_rollout_killed_at_its_alias_move_is_said_and_finished_by_a_rerun(
    ws, monkeypatch, env  # noqa: F811
):
    """Review: `rollout rollback` of a completed production rollout, killed as it moved the alias back, left the flags
    on the old control and the alias on the version rolled back, the state completed: `rollout status` said nothing,
    a new rollout would have taken that alias as its own to go back to, and a second rollback was refused (the flags
    had moved on). Now the status says so and names the command; the rerun moves the alias back, verified, and records
    the rollback."""
    from lifecycle.core.audit import read
    from lifecycle.core.params import FlagsParams
    from lifecycle.deliver import rollout
    from lifecycle.model.registry import alias_version
    from lifecycle.release import governance as gov
    from lifecycle.serve import flags as fl

    for v in ('1', '3'):
        approve_as(ws, 'carol', 'staging', version=v)
        if env == 'production':
            approve_as(ws, 'dave', 'production', version=v)
    w = replace(ws['ws'], environment=env)
    fl.write_spec(w, FlagsParams(control='1', safe='1'), NAME)
    rollout._move_alias(w, NAME, '1', 'ops', 'v1 serves')
    rollout.start(w, '3', w.params['rollout'], steps=[50, 100], actor='ops')
    assert rollout.advance(w, actor='ops', reason='guard passed')['status'] == 'completed'
    assert alias_version(w.client, NAME, env) == '3'

    def killed(*a, **k):
        raise Killed

    monkeypatch.setattr(gov, 'promote', killed)
    with pytest.raises(Killed):
        rollout.rollback(w, actor='ops', reason='undo')
    monkeypatch.undo()
    st, spec = rollout.load_state(w), fl.load_spec(w)[0]
    assert (st['status'], spec.control, alias_version(w.client, NAME, env)) == ('completed', '1', '3')
    said = rollout.flags_disagree(st, spec)
    assert 'its rollback was cut short' in said and '`lifecycle rollout rollback` finishes it' in said, said
    with pytest.raises(rollout.RolloutError, match='its rollback was cut short: `lifecycle rollout rollback`'):
        rollout.start(w, '3', w.params['rollout'], steps=[50, 100], actor='ops')

    st = rollout.rollback(w, actor='ops', reason='undo, again')
    assert st['status'] == 'rolled_back' and alias_version(w.client, NAME, env) == '1'
    assert st['history'][-1]['finished_cut_short'] and st['history'][-1]['alias']['moved']
    assert st['history'][-1]['control_restored'] == '1' and 'rolling_back' not in st
    moved = [e for e in read(w.audit_path) if e['action'] == 'model.promote'][-1]
    assert moved['subject'] == f'{NAME}/1' and 'rolled back: undo, again' in moved['reason']
    assert [e['reason'] for e in read(w.audit_path) if e['action'] == 'rollout.rollback'] == ['undo, again']
    assert rollout.flags_disagree(rollout.load_state(w), fl.load_spec(w)[0]) is None


def _staging_approvals_v3_unaudited(ws, monkeypatch):  # noqa: F811 (the fixture's value, passed on)
    "Version 1 approved for staging, and version 3 by a command killed after its record, before its audit entry."
    from lifecycle.core import audit

    approve_as(ws, 'carol', 'staging')  # (v1, the control)
    real = audit.append

    def killed(path, action, *a, **k):
        if action == 'approval.granted':
            raise KeyboardInterrupt  # (the command killed after its record was created)
        return real(path, action, *a, **k)

    monkeypatch.setattr(audit, 'append', killed)
    with pytest.raises(KeyboardInterrupt):
        approve_as(ws, 'carol', 'staging', version='3')
    monkeypatch.setattr(audit, 'append', real)


def test_an_approval_whose_command_was_killed_before_auditing_it_is_audited_by_the_flags_change_it_exposes(
    ws, monkeypatch  # noqa: F811
):
    """Review BF: `approve` killed between its record and its audit entry left an approval that a flags change then
    used to put the version in a canary, and that never reached the audit log (only `promote` audited it late). The
    flags change audits it first, naming who used it, once."""
    from lifecycle.core import audit
    from lifecycle.core.params import FlagsParams
    from lifecycle.serve import flags as fl

    _staging_approvals_v3_unaudited(ws, monkeypatch)
    staging = replace(ws['ws'], environment='staging')
    fl.write_spec(staging, FlagsParams(control='1', safe='1'), NAME)

    def granted():
        return [e for e in audit.read(staging.audit_path) if e['action'] == 'approval.granted']

    assert not [e for e in granted() if e['subject'] == f'{NAME}/3']
    fl.change_flags(staging, {'challenger': '3', 'percentage': 5}, actor='ops', reason='canary')
    (late,) = [e for e in granted() if e['subject'] == f'{NAME}/3']
    assert (late['actor'], late['details']['approver']) == ('ops', 'carol')
    assert 'killed' in late['details']['audited_late']
    fl.change_flags(staging, {'percentage': 10}, actor='ops', reason='more')
    assert len([e for e in granted() if e['subject'] == f'{NAME}/3']) == 1


def test_flags_init_audits_an_approval_whose_command_was_killed_before_auditing_it(ws, monkeypatch):  # noqa: F811
    "Review BJ: as a flags change does, `flags init` audits an approval it stands on that no entry names yet."
    from lifecycle.core import audit
    from lifecycle.core.params import FlagsParams
    from lifecycle.serve import flags as fl

    _staging_approvals_v3_unaudited(ws, monkeypatch)
    staging = replace(ws['ws'], environment='staging')
    fl.init_flags(staging, FlagsParams(control='1', safe='1', challenger='3', percentage=5), NAME, lambda a: None,
                  actor='ops')  # fmt: skip
    late = [e for e in audit.read(staging.audit_path) if e['action'] == 'approval.granted']
    assert [e['actor'] for e in late if e['subject'] == f'{NAME}/3'] == ['ops']


@pytest.mark.parametrize('what', ['rollback', 'kill'])
def test_a_kill_or_rollback_putting_the_old_control_back_is_never_held_back_by_its_files(ws, monkeypatch, what):  # noqa: F811
    """Review BJ: the file check a flags change runs refused a completed rollout's rollback, and the kill of a
    completion cut short (`kill` included), where the control put back failed its signature (a key revoked since):
    the suspect version kept serving everyone. Neither gains exposure by a floor, and neither checks files."""
    from lifecycle.deliver import rollout
    from lifecycle.release import exposure
    from lifecycle.serve import flags as fl

    prod, _ = _rollout_of_3_in_production(ws)
    if what == 'rollback':
        rollout._move_alias(prod, NAME, '1', 'ops', 'v1 serves')
        while rollout.load_state(prod)['status'] != 'completed':
            rollout.advance(prod, actor='ops', reason='healthy')
    else:  # (a completion cut short: the flags name v3 the control, the rollout still running)
        fl.change_flags(prod, {'control': '3', 'challenger': None, 'percentage': 0}, actor='ops', source='rollout',
                        reason='completion cut short')  # fmt: skip
    bad = "its signature does not verify: it was signed with a key revoked since"
    monkeypatch.setattr(exposure, 'files_problem', lambda ws_, n, v: bad if v == '1' else '')
    getattr(rollout, what)(prod, actor='oncall', reason='incident')
    spec = fl.load_spec(prod)[0]
    assert spec.control == '1' and spec.challenger is None and spec.kill == (what == 'kill')


def test_a_registry_busy_while_a_versions_files_are_fetched_is_try_again_not_a_traceback(ws, monkeypatch):  # noqa: F811
    """Review BJ: the file check of a flags change and of `govern check` let MLflow's own exception through (a
    traceback, a 500 from the admin API) where the gate and floor checks say 'try again' (503)."""
    from mlflow.exceptions import MlflowException
    from mlflow.protos.databricks_pb2 import TEMPORARILY_UNAVAILABLE
    from lifecycle.core.params import FlagsParams
    from lifecycle.model import signing
    from lifecycle.release import exposure
    from lifecycle.serve import flags as fl

    w = ws['ws']
    fl.write_spec(w, FlagsParams(control='1', safe='1'), NAME)

    def busy(*a, **k):
        raise MlflowException('the artifact store', error_code=TEMPORARILY_UNAVAILABLE)

    monkeypatch.setattr(signing, '_download', busy)
    with pytest.raises(fl.FlagError, match="could not give toy v3's files .*try again") as e:
        fl.change_flags(w, {'challenger': '3', 'percentage': 5}, actor='ops', reason='canary')
    assert e.value.status == 503
    with pytest.raises(exposure.RegistryUnavailable, match='try again'):
        exposure.serving_check(w)


def test_a_kill_switch_pulled_while_a_flags_change_fetches_files_does_not_wait_for_the_fetch(ws, monkeypatch):  # noqa: F811
    """Review BJ: a flags change fetched the files of the version it exposed under the flags lock, so a kill switch
    pulled meanwhile waited out the fetch (1.5 s in a fresh process; however long a slow registry took). The files
    are fetched before the lock now, once; the change still lands, on top of the kill, judged by that verdict."""
    import threading
    from lifecycle.core.params import FlagsParams
    from lifecycle.model import signing
    from lifecycle.serve import flags as fl

    w = ws['ws']
    fl.write_spec(w, FlagsParams(control='1', safe='1'), NAME)
    fetching, release, fetched, real = threading.Event(), threading.Event(), [], signing.verified_path

    def slow(mlflow, store, name, version, *a, **k):  # a registry that takes its time to give v3's files
        fetched.append(str(version))
        fetching.set()
        release.wait(20)
        return real(mlflow, store, name, version, *a, **k)

    monkeypatch.setattr(signing, 'verified_path', slow)
    done = {}
    canary_change = {'challenger': '3', 'percentage': 5}
    canary = threading.Thread(target=lambda: done.update(canary=fl.change_flags(w, canary_change, reason='canary')))
    kill = threading.Thread(target=lambda: done.update(kill=fl.change_flags(w, {'kill': True}, reason='incident')))
    canary.start()
    assert fetching.wait(20)
    kill.start()
    kill.join(8)  # (the fetch is held until `release`: a kill waiting on the flags lock would still be waiting)
    alive = kill.is_alive()
    release.set()
    canary.join(30), kill.join(30)
    assert not alive and done['kill'].kill
    assert done['canary'].kill and done['canary'].challenger == '3'  # (built on the kill: it stays pulled)
    assert fetched == ['3']  # (fetched once, before the lock: not again under it)
    assert fl.load_spec(w)[0] == done['canary']


def test_a_release_bundle_is_judged_by_the_floors_of_today_unless_it_carries_what_serves(ws, tmp_path):  # noqa: F811
    """A release bundle serves its version to everyone in its environment: a new one is an exposure, judged by the
    policy's metric thresholds as they stand now, as promotion is (it was judged by the approvals alone). One of the
    version the environment's alias names already (an image rebuilt) is judged by the policy of its day."""
    from lifecycle.release.container import BundleError, release_bundle

    from test_trust import promote

    approve_as(ws, 'carol', 'staging')
    approve_as(ws, 'carol', 'staging', version='3')
    promote(ws, '3')  # (what staging serves: promoted before the raise)
    staging = _floor_raised(replace(ws['ws'], environment='staging'))
    floor = r'the release policy now: metric\.roc_auc: roc_auc 0\.\d+ is below the minimum 0\.99'
    with pytest.raises(BundleError, match=f"no release bundle: .*{floor}.*'staging'"):
        release_bundle(staging, NAME, '1', tmp_path / 'staging')
    assert not (tmp_path / 'staging').exists()
    staging.client.set_registered_model_alias(NAME, 'staging', '1')  # (set by hand: no promotion, review CC)
    with pytest.raises(BundleError, match=f"no release bundle: .*{floor}"):
        release_bundle(staging, NAME, '1', tmp_path / 'staging')
    staging.client.set_registered_model_alias(NAME, 'staging', '3')
    with pytest.raises(BundleError, match="'scikit-learn' is not pinned"):  # (past the policy: this toy model's own
        release_bundle(staging, NAME, '3', tmp_path / 'staging')  # requirements are what stop it now)
    assert not (tmp_path / 'staging').exists() and not list(tmp_path.glob('.staging*'))  # (nothing half written)


def test_a_key_revoked_while_a_flags_change_waits_for_the_lock_still_refuses_what_it_signed(ws, monkeypatch):  # noqa: F811
    """Review CC: the files verdict a flags change fetched before taking the flags lock was trusted under it however
    long it waited there, so a version whose signing key was revoked meanwhile went into the flags. The verdict is
    used only while the version's signature record and the keys trusted and revoked are as they were."""
    import threading
    from contextlib import contextmanager
    from lifecycle.core.locks import held
    from lifecycle.core.params import FlagsParams
    from lifecycle.model.signing import revoke_signing_key, rotate_signing_key
    from lifecycle.release import exposure
    from lifecycle.serve import flags as fl

    w = ws['ws']
    fl.write_spec(w, FlagsParams(control='1', safe='1'), NAME)
    retired = rotate_signing_key(w, 'routine')['retired']  # (the key that signed every version)
    holding, go, fetched, out = threading.Event(), threading.Event(), threading.Event(), {}
    real = exposure.files_fetched

    @contextmanager
    def told(*a, **k):  # (says when the change has fetched v3's files, before it takes the lock)
        with real(*a, **k) as got:
            out['fetched'] = dict(got)
            fetched.set()
            yield got

    monkeypatch.setattr(exposure, 'files_fetched', told)

    def rollout_action():  # another writer holds the flags lock meanwhile
        with held(w.state_dir, 'flags'):
            holding.set()
            go.wait(30)

    def canary():
        try:
            out['spec'] = fl.change_flags(w, {'challenger': '3', 'percentage': 50}, reason='canary')
        except fl.FlagError as e:
            out['refused'] = str(e)

    holder, change = threading.Thread(target=rollout_action), threading.Thread(target=canary)
    holder.start()
    assert holding.wait(20)
    change.start()
    assert fetched.wait(30) and out['fetched'] == {(NAME, '3'): ''}  # (its files passed, the key trusted then)
    revoke_signing_key(w, retired, 'laptop stolen')
    go.set()
    holder.join(30), change.join(60)
    assert 'spec' not in out and re.search(r"challenger: .*its signature does not verify: .*revoked", out['refused'])


def test_a_flags_change_refused_before_any_file_check_fetches_no_files(ws, monkeypatch):  # noqa: F811
    """Review CC: the files a flags change is about to expose were fetched before the lock even where the change was
    then refused for what needs no file (an arm naming the control's version, a version not signed); a kill switch,
    its release and a share cut fetch none."""
    from lifecycle.core.params import FlagsParams
    from lifecycle.model import signing
    from lifecycle.serve import flags as fl

    w = ws['ws']
    fl.write_spec(w, FlagsParams(control='1', safe='1', challenger='3', percentage=50), NAME)
    real, fetched = signing.verified_path, []

    def counted(mlflow, store, name, version, *a, **k):
        fetched.append(str(version))
        return real(mlflow, store, name, version, *a, **k)

    monkeypatch.setattr(signing, 'verified_path', counted)
    for change in ({'percentage': 10}, {'kill': True}, {'kill': False}):
        fl.change_flags(w, change, reason='no exposure gained')
    with pytest.raises(fl.FlagError, match='challenger: .*control'):
        fl.change_flags(w, {'challenger': '1'}, reason='the control as its own challenger')
    with pytest.raises(fl.FlagError, match='challenger: .*not in the registry|challenger: .*no version 9'):
        fl.change_flags(w, {'challenger': '9'}, reason='a version never registered')
    assert fetched == []
    fl.change_flags(w, {'percentage': 60}, reason='more')  # (a share that grows: v3's files, fetched once)
    assert fetched == ['3']


def test_a_kill_switch_pulled_while_a_rollout_starts_does_not_wait_for_its_file_fetch(ws, monkeypatch):  # noqa: F811
    """Review CC: `rollout start` fetched the challenger's files under the flags lock, twice (at 0%, then at its first
    step), so a kill switch pulled meanwhile waited out both fetches. It fetches once, before the lock."""
    import threading
    from lifecycle.deliver import rollout
    from lifecycle.serve import flags as fl

    prod, fetched, fetching, release = _slow_files_in_production(ws, monkeypatch)
    start = threading.Thread(target=lambda: rollout.start(prod, '3', prod.params['rollout'], steps=[50, 100]))
    start.start()
    assert fetching.wait(20)
    kill = threading.Thread(target=lambda: fl.change_flags(prod, {'kill': True}, reason='incident'))
    kill.start()
    kill.join(8)  # (the fetch is held until `release`: a kill waiting on the flags lock would still be waiting)
    alive = kill.is_alive()
    release.set()
    start.join(60), kill.join(30)
    assert not alive and fetched == ['3'] and fl.load_spec(prod)[0].kill


def test_a_rollouts_completion_fetches_the_challengers_files_once_before_the_lock(ws, monkeypatch):  # noqa: F811
    """Review CC: a completing `rollout advance` fetched the challenger's files twice under the flags lock (its flags
    write and its promotion each asked), where a kill switch waits. Once now, before the lock, for both."""
    from lifecycle.deliver import rollout
    from lifecycle.serve import flags as fl

    prod, fetched, _, release = _slow_files_in_production(ws, monkeypatch)
    release.set()
    rollout.start(prod, '3', prod.params['rollout'], steps=[50, 100])
    fetched.clear()
    assert rollout.advance(prod)['status'] == 'completed' and fl.load_spec(prod)[0].control == '3'
    assert fetched == ['3']


def _slow_files_in_production(ws, monkeypatch):  # noqa: F811
    """A production workspace whose flags serve v1, v1 and v3 approved there, and a registry that gives a version's
    files only once `release` is set: the workspace, the versions fetched, an event set at each fetch, `release`."""
    import threading
    from lifecycle.core.params import FlagsParams
    from lifecycle.model import signing
    from lifecycle.serve import flags as fl

    for v in ('1', '3'):
        approve_as(ws, 'carol', 'staging', version=v)
        approve_as(ws, 'dave', 'production', version=v)
    prod = replace(ws['ws'], environment='production')
    fl.write_spec(prod, FlagsParams(control='1', safe='1'), NAME)
    real, fetched, fetching, release = signing.verified_path, [], threading.Event(), threading.Event()

    def slow(mlflow, store, name, version, *a, **k):
        fetched.append(str(version))
        fetching.set()
        release.wait(20)
        return real(mlflow, store, name, version, *a, **k)

    monkeypatch.setattr(signing, 'verified_path', slow)
    return prod, fetched, fetching, release


def test_a_rollout_started_while_the_registry_cannot_say_what_its_alias_names_is_not_started(ws, monkeypatch):  # noqa: F811
    """Helper CB: `rollout start` read the environment's alias with a busy registry taken for no alias at all, so its
    rollback later left the alias on the challenger ('it named no version before this rollout'). Refused now, try
    again, before anything is written."""
    from mlflow.exceptions import MlflowException
    from mlflow.protos.databricks_pb2 import TEMPORARILY_UNAVAILABLE
    from lifecycle.deliver import rollout
    from lifecycle.release import exposure
    from lifecycle.serve import flags as fl

    prod, _, _, release = _slow_files_in_production(ws, monkeypatch)
    release.set()

    def busy(*a, **k):
        raise MlflowException('the registry', error_code=TEMPORARILY_UNAVAILABLE)

    monkeypatch.setattr(type(prod.client), 'get_model_version_by_alias', busy)
    with pytest.raises(exposure.RegistryUnavailable, match='which version the production alias names .*try again'):
        rollout.start(prod, '3', prod.params['rollout'], steps=[50, 100])
    assert rollout.load_state(prod) is None and fl.load_spec(prod)[0].challenger is None


def test_a_promotion_the_registry_cannot_answer_about_is_try_again_not_a_refusal_on_record(ws, monkeypatch):  # noqa: F811
    """Helper CB: `lifecycle promote` with a registry that could not answer whether the version exists was refused
    and the refusal audited (`promotion.refused`: "no version 1 that the registry could return now"), as for a
    version that is not there. It says try again, and nothing is audited."""
    from mlflow.exceptions import MlflowException
    from mlflow.protos.databricks_pb2 import TEMPORARILY_UNAVAILABLE
    from lifecycle.core.audit import read
    from lifecycle.release import exposure
    from test_trust import promote

    approve_as(ws, 'carol', 'staging')
    w, real = ws['ws'], type(ws['ws'].client).get_model_version
    before = len(read(w.audit_path))

    def busy(self, name, version):
        raise MlflowException('the registry', error_code=TEMPORARILY_UNAVAILABLE)

    monkeypatch.setattr(type(w.client), 'get_model_version', busy)
    with pytest.raises(exposure.RegistryUnavailable, match=f"could not answer about {NAME}/1 .*try again"):
        promote(ws)
    assert len(read(w.audit_path)) == before  # (no refusal on record)
    monkeypatch.setattr(type(w.client), 'get_model_version', real)
    assert promote(ws)['model_version'] == '1'
