"""Review DU: the register stage gave a version the dev alias before it loaded that version back and checked it, so a
version whose check failed served in dev; now it is registered, signed, checked and only then given the alias."""

from __future__ import annotations
import re
import shutil
from pathlib import Path
import pandas as pd
import pytest
from conftest import killed_before_register_entry, toy_validation
from lifecycle.core import audit
from lifecycle.core.workspace import Workspace
from lifecycle.model.registry import alias_mismatches, audited_aliases, record_validation


def toy(tmp_path, monkeypatch) -> tuple[Workspace, str, str]:
    "A workspace with one passing validation of a small model, and the known inputs of its training stored."
    (tmp_path / 'settings.ini').write_text('[workspace]\n')
    shutil.copytree(Path(__file__).parents[1] / 'params', tmp_path / 'params')  # (the policy: dev comes first)
    monkeypatch.setenv('LIFECYCLE_KEYS_DIR', str(tmp_path / 'keys'))
    ws = Workspace.open(tmp_path)
    return ws, toy_validation(ws), ws.store.put_frame(pd.DataFrame({'a': [0.0, 1.0, 2.0, 3.0]}))


def _killed_in_check(ws, vid) -> None:
    "Register validation `vid` as toy with the dev alias, killed inside its release check (never loaded back)."
    from lifecycle.model.registry import register_version

    def killed(version):
        raise KeyboardInterrupt  # (the process stopped while loading the version back)

    with pytest.raises(KeyboardInterrupt):
        register_version(ws, vid, 'toy', alias='dev', tags={}, reason='test', check=killed)


def iteration_at_validated(ws: Workspace, vid: str, known: str) -> dict:
    "A retraining record at `validated` whose training stored `known` inputs and whose known outputs none reproduce."
    rec = ws.store.get_record('validations', vid)
    return dict(
        id='20261206T000000-abcdef',
        status='validated',
        train=dict(mlflow_run_id=rec['mlflow_run_id'], known_inputs=known, known_outputs=[0.0] * 4),
        validation=dict(validation_id=vid),
        champion=dict(version='7'),
    )


def test_a_version_failing_its_load_back_check_is_registered_and_signed_but_not_given_dev(tmp_path, monkeypatch):
    from lifecycle.model import signing, stages

    ws, vid, known = toy(tmp_path, monkeypatch)
    rp, fp = ws.params['register'].model_copy(update=dict(model_name='toy')), ws.params['features']
    with pytest.raises(stages.ReleaseCheckFailed, match='does not reproduce'):
        stages.register(ws, rp, fp, vid, known_inputs=known, known_outputs=[0.0] * 4)
    assert not ws.client.get_registered_model('toy').aliases  # (it had dev: a failed check served in dev)
    assert signing.is_signed(ws.store, 'toy', '1')
    log = audit.read(ws.audit_path)
    withheld = [e for e in log if e['action'] == 'model.withheld']
    assert [(e['subject'], e['details']['alias']) for e in withheld] == [('toy/1', 'dev')]
    assert 'does not reproduce' in withheld[0]['reason']
    assert audited_aliases(ws.audit_path, 'toy') == {} and alias_mismatches(ws.client, ws.audit_path, 'toy') == []
    X = ws.store.get_frame(known)
    model = signing.verified_sklearn(ws.mlflow, ws.store, 'toy', '1', ws.key_dir)
    right = list(stages.predict_scores(model, X, fp.task))
    reg = stages.register(ws, rp, fp, vid, known_inputs=known, known_outputs=right)  # the check passes: dev given
    assert (reg.model_version, reg.aliases, reg.champion_version) == ('1', ['dev'], '1')
    assert audited_aliases(ws.audit_path, 'toy') == {'dev': '1'}
    assert alias_mismatches(ws.client, ws.audit_path, 'toy') == []
    log = audit.read(ws.audit_path)
    assert [e['action'] for e in log].count('model.register') == 1
    assert [e['action'] for e in log if e['subject'] == 'toy/1'][-1] == 'model.promote'


def test_a_busy_registry_never_reads_as_a_free_alias(tmp_path, monkeypatch):
    """A registry that could not say which version has dev (busy) read as no version having it: the next registration
    moved dev from the champion to itself, audited as if dev had been free."""
    from mlflow.exceptions import MlflowException
    from lifecycle.model.registry import RegistryUnavailable, register_version

    ws, vid, _ = toy(tmp_path, monkeypatch)
    kw = dict(alias='dev', tags={}, reason='test')
    assert register_version(ws, vid, 'toy', **kw)['aliases'] == ['dev']
    rec = ws.store.get_record('validations', vid)
    vid2 = record_validation(ws.store, dict(rec, n=2))
    client, real = ws.client, type(ws.client).get_model_version_by_alias

    def busy(self, name, alias):
        raise MlflowException('database is locked', error_code='TEMPORARILY_UNAVAILABLE')

    monkeypatch.setattr(type(client), 'get_model_version_by_alias', busy)
    with pytest.raises(RegistryUnavailable, match='try again'):
        register_version(ws, vid2, 'toy', **kw, check=str)
    monkeypatch.setattr(type(client), 'get_model_version_by_alias', real)
    assert {k: str(v) for k, v in client.get_registered_model('toy').aliases.items()} == {'dev': '1'}
    assert audited_aliases(ws.audit_path, 'toy') == {'dev': '1'}
    again = register_version(ws, vid2, 'toy', **kw, check=str)  # (the registry answers again: dev is taken)
    assert (again['model_version'], again['aliases'], again['champion_version']) == ('2', [], '1')


def test_the_retrain_loop_never_adopts_a_version_that_failed_its_load_back_check(tmp_path, monkeypatch):
    """The register step of a retraining that failed its load-back check left the version signed (and the step marked
    `registering`): the loop's next pass adopted that signed version as registered, its check never passed."""
    from lifecycle.loop.iteration import step_register
    from lifecycle.model import signing, stages

    ws, vid, known = toy(tmp_path, monkeypatch)
    it = iteration_at_validated(ws, vid, known)
    for attempt in range(2):  # (the first pass, and the next one)
        with pytest.raises(stages.ReleaseCheckFailed, match='does not reproduce'):
            step_register(ws, it, None)
        assert it.get('registering') and 'registration' not in it, attempt
    assert signing.is_signed(ws.store, ws.params['register'].model_name, '1')  # (signed: what the pass adopted)


def test_a_busy_registry_never_makes_a_second_version_of_one_validation(tmp_path, monkeypatch):
    """A registration killed before its alias is finished by the next, which looks for the version it made: a registry
    too busy to answer that look-up read as no version made, and the next registered a second version of one model."""
    from mlflow.exceptions import MlflowException
    from lifecycle.model.registry import RegistryUnavailable, register_version

    ws, vid, _ = toy(tmp_path, monkeypatch)
    kw = dict(alias='dev', tags={}, reason='test')

    def killed(version):
        raise KeyboardInterrupt  # (the run killed while loading its version back)

    with pytest.raises(KeyboardInterrupt):
        register_version(ws, vid, 'toy', **kw, check=killed)
    client, real = ws.client, type(ws.client).search_model_versions

    def busy(self, *a, **k):
        raise MlflowException('database is locked', error_code='TEMPORARILY_UNAVAILABLE')

    monkeypatch.setattr(type(client), 'search_model_versions', busy)
    with pytest.raises(RegistryUnavailable, match='try again'):
        register_version(ws, vid, 'toy', **kw, check=str)
    monkeypatch.setattr(type(client), 'search_model_versions', real)
    assert [int(v.version) for v in client.search_model_versions("name='toy'")] == [1]
    again = register_version(ws, vid, 'toy', **kw, check=str)
    assert (again['model_version'], again['aliases']) == ('1', ['dev'])


def test_a_withheld_version_s_audit_entry_never_keeps_a_library_s_message(tmp_path, monkeypatch):
    "The audit log keeps no raw personal value: a library's message, which may quote a data cell, is not its reason."
    from lifecycle.model.registry import register_version

    ws, vid, _ = toy(tmp_path, monkeypatch)

    def fails(version):
        raise ValueError("could not convert string to float: 'Jane Doe'")

    with pytest.raises(ValueError):
        register_version(ws, vid, 'toy', alias='dev', tags={}, reason='test', check=fails)
    e = audit.read(ws.audit_path)[-1]
    assert (e['action'], e['subject'], e['reason']) == ('model.withheld', 'toy/1', 'ValueError')


def test_a_withheld_version_is_refused_by_promote_until_its_check_passes(tmp_path, monkeypatch):
    """The dev alias needs no sign-off: `lifecycle promote V dev` (and a rollout's move) put a version whose load-back
    check had failed, withheld from dev by the register stage, into dev all the same."""
    from lifecycle.model.registry import alias_version, register_version
    from lifecycle.release import governance as gov

    ws, vid, _ = toy(tmp_path, monkeypatch)
    kw = dict(alias='dev', tags={}, reason='test')

    def fails(version):
        raise gov.GovernanceError(f'v{version} does not reproduce the outputs recorded at training')

    with pytest.raises(gov.GovernanceError):
        register_version(ws, vid, 'toy', **kw, check=fails)
    policy = ws.params['policy']
    with pytest.raises(gov.PromotionRefused, match='failed its release check.*does not reproduce.*withheld from dev'):
        gov.promote(ws.mlflow, ws, ws.store, 'toy', '1', 'dev', policy=policy)
    assert alias_version(ws.client, 'toy', 'dev') is None
    assert register_version(ws, vid, 'toy', **kw, check=str)['aliases'] == ['dev']  # checked again: it passes now
    last = [e['action'] for e in audit.read(ws.audit_path)][-3:]
    assert last == ['promotion.refused', 'model.checked', 'model.promote']
    assert gov.promote(ws.mlflow, ws, ws.store, 'toy', '1', 'dev', policy=policy)['alias'] == 'dev'


def test_a_version_the_retrain_loop_adopts_once_its_check_passes_is_no_longer_withheld(tmp_path, monkeypatch):
    """Review DY: a register step whose check failed after signing (its attestation refused by a full disk) left the
    version withheld; the loop's next pass loaded it back, adopted it and went on towards champion, but wrote nothing
    lifting the withholding, so the rollout's completion (`governance.promote`) refused the version it had canaried."""
    import mlflow
    from lifecycle.loop import iteration
    from lifecycle.model import signing, stages
    from lifecycle.model.registry import _withheld
    from lifecycle.release import governance as gov

    ws, vid, known = toy(tmp_path, monkeypatch)
    rec, fp = ws.store.get_record('validations', vid), ws.params['features']
    right = list(stages.predict_scores(mlflow.sklearn.load_model(rec['model_uri']), ws.store.get_frame(known), fp.task))
    it = dict(
        id='20261206T000000-abcdef',
        status='validated',
        train=dict(mlflow_run_id=rec['mlflow_run_id'], known_inputs=known, known_outputs=right),
        validation=dict(validation_id=vid),
        champion=dict(version='7'),
    )
    real, calls = signing.attest_training, []

    def full_disk_once(*a, **k):
        calls.append(1)
        if len(calls) == 1:
            raise OSError(28, 'No space left on device')
        return real(*a, **k)

    monkeypatch.setattr(signing, 'attest_training', full_disk_once)
    monkeypatch.setattr(iteration, '_card', lambda ws, it: None)
    with pytest.raises(OSError):
        iteration.step_register(ws, it, None)
    name = ws.params['register'].model_name
    assert _withheld(ws.audit_path, name, '1')
    assert iteration.step_register(ws, it, None) == 'registered' and it['registration']['adopted']
    assert _withheld(ws.audit_path, name, '1') is None
    assert [e['action'] for e in audit.read(ws.audit_path)][-1] == 'model.checked'
    policy = ws.params['policy']
    assert gov.promote(ws.mlflow, ws, ws.store, name, '1', 'dev', policy=policy)['alias'] == 'dev'


def test_a_refused_dev_move_keeps_the_alias_as_the_audit_log_had_it(tmp_path, monkeypatch):
    """Review DY: the register stage's dev move took a refused move back as `restored_version=None` whatever the log
    held, where `governance.promote` restores the log's version (review AJ): a dev move killed between its entry and
    the alias, then a refused one, read as dev at no version, and the mismatch `status` showed was gone."""
    from mlflow.exceptions import MlflowException
    from lifecycle.model.registry import register_version

    ws, vid, _ = toy(tmp_path, monkeypatch)
    kw = dict(alias='dev', tags={}, reason='test', check=str)
    client, real = ws.client, type(ws.client).set_registered_model_alias

    def killed(self, *a, **k):
        raise KeyboardInterrupt  # (between the model.promote entry and the move)

    monkeypatch.setattr(type(client), 'set_registered_model_alias', killed)
    with pytest.raises(KeyboardInterrupt):
        register_version(ws, vid, 'toy', **kw)
    expected = [dict(model='toy', alias='dev', registry_version=None, audited_version='1')]
    assert alias_mismatches(client, ws.audit_path, 'toy') == expected  # (a true mismatch: status names it)

    def refused(self, *a, **k):
        raise MlflowException('database is locked', error_code='TEMPORARILY_UNAVAILABLE')

    vid2 = record_validation(ws.store, dict(ws.store.get_record('validations', vid), n=2))
    monkeypatch.setattr(type(client), 'set_registered_model_alias', refused)
    with pytest.raises(MlflowException):
        register_version(ws, vid2, 'toy', **kw)
    assert audit.read(ws.audit_path)[-1]['action'] == 'model.promote.failed'
    assert alias_mismatches(client, ws.audit_path, 'toy') == expected  # (still: nothing finished the first move)
    monkeypatch.setattr(type(client), 'set_registered_model_alias', real)
    assert register_version(ws, vid, 'toy', **kw)['aliases'] == ['dev']  # the first's rerun finishes it
    assert alias_mismatches(client, ws.audit_path, 'toy') == []


def test_a_version_the_retrain_loop_finds_failing_its_check_after_a_kill_is_withheld(tmp_path, monkeypatch):
    """Review DY: a register step killed while loading its signed version back left no verdict; the loop's next pass
    found the version failing its load-back check on adoption but recorded nothing, so `lifecycle promote V dev` (dev
    needs no sign-off) put the version that does not reproduce its training outputs into service."""
    from lifecycle.loop import iteration
    from lifecycle.model import stages
    from lifecycle.release import governance as gov

    ws, vid, known = toy(tmp_path, monkeypatch)
    it = iteration_at_validated(ws, vid, known)
    real, calls = stages.loaded_back, []

    def killed_once(*a, **k):
        calls.append(1)
        if len(calls) == 1:
            raise KeyboardInterrupt  # (the loop's process stopped while loading the version back)
        return real(*a, **k)

    monkeypatch.setattr(stages, 'loaded_back', killed_once)
    with pytest.raises(KeyboardInterrupt):
        iteration.step_register(ws, it, None)
    for attempt in range(2):  # (the next pass, and the one after: one verdict on record)
        with pytest.raises(stages.ReleaseCheckFailed, match='does not reproduce'):
            iteration.step_register(ws, it, None)
    name = ws.params['register'].model_name
    assert [e['action'] for e in audit.read(ws.audit_path)].count('model.withheld') == 1
    with pytest.raises(gov.PromotionRefused, match='failed its release check.*does not reproduce'):
        gov.promote(ws.mlflow, ws, ws.store, name, '1', 'dev', policy=ws.params['policy'])


def test_a_version_in_dev_failing_its_check_again_is_not_said_withheld_from_dev(tmp_path, monkeypatch):
    """Review DY: the register stage run again on a version that already had dev (a validation registered again), its
    check failing this time, audited `model.withheld` from dev and promote refused it as 'withheld from dev' while the
    version served in dev: the entry says it holds dev."""
    from lifecycle.model.registry import alias_version, register_version
    from lifecycle.release import governance as gov

    ws, vid, _ = toy(tmp_path, monkeypatch)
    kw = dict(alias='dev', tags={}, reason='test')
    assert register_version(ws, vid, 'toy', **kw, check=str)['aliases'] == ['dev']

    def fails(version):
        raise gov.GovernanceError(f'v{version} does not reproduce the outputs recorded at training')

    with pytest.raises(gov.GovernanceError):
        register_version(ws, vid, 'toy', **kw, check=fails)
    e = audit.read(ws.audit_path)[-1]
    assert (e['action'], e['details']) == ('model.withheld', dict(alias='dev', holds=True))
    assert alias_version(ws.client, 'toy', 'dev') == '1'
    with pytest.raises(gov.PromotionRefused, match='does not reproduce.*though it holds dev') as refused:
        gov.promote(ws.mlflow, ws, ws.store, 'toy', '1', 'dev', policy=ws.params['policy'])
    assert 'withheld from' not in str(refused.value)


def test_a_version_killed_inside_its_check_is_refused_by_promote_until_a_check_passes(tmp_path, monkeypatch):
    """A registration killed inside its release check (signed, never loaded back: neither `model.checked` nor
    `model.withheld` on record) left a version `lifecycle promote V --to dev` put into service, its check never run.
    A version registered before the check was recorded (its register entry asks for none) is promoted as before."""
    from lifecycle.model.registry import alias_version, register_version
    from lifecycle.release import governance as gov

    ws, vid, _ = toy(tmp_path, monkeypatch)
    kw, policy = dict(alias='dev', tags={}, reason='test'), ws.params['policy']

    def killed(version):
        raise KeyboardInterrupt  # (the process stopped while loading the version back)

    with pytest.raises(KeyboardInterrupt):
        register_version(ws, vid, 'toy', **kw, check=killed)
    with pytest.raises(gov.PromotionRefused, match=r'toy/1 was registered.*no verdict on record.*`lifecycle run`'):
        gov.promote(ws.mlflow, ws, ws.store, 'toy', '1', 'dev', policy=policy)
    assert alias_version(ws.client, 'toy', 'dev') is None
    assert register_version(ws, vid, 'toy', **kw, check=str)['aliases'] == ['dev']  # the check run again: passes
    assert [e['action'] for e in audit.read(ws.audit_path)][-2:] == ['model.checked', 'model.promote']
    old = record_validation(ws.store, dict(ws.store.get_record('validations', vid), n=2))
    assert register_version(ws, old, 'toy', **kw)['model_version'] == '2'  # (as an older lifecycle registered it)
    assert gov.promote(ws.mlflow, ws, ws.store, 'toy', '2', 'dev', policy=policy)['previous_version'] == '1'


def test_a_busy_registry_never_audits_a_promotion_as_replacing_no_version(tmp_path, monkeypatch):
    """`governance.promote` read the alias's version before the move leniently: a registry too busy to answer read as
    no version, so the `model.promote` entry said `previous_version: null` and the record of what it replaced was lost.
    It refuses now (RegistryUnavailable, try again), with nothing audited and the alias where it was."""
    from mlflow.exceptions import MlflowException
    from lifecycle.model.registry import RegistryUnavailable, alias_version, register_version
    from lifecycle.release import governance as gov

    ws, vid, _ = toy(tmp_path, monkeypatch)
    kw, policy = dict(alias='dev', tags={}, reason='test', check=str), ws.params['policy']
    register_version(ws, vid, 'toy', **kw)
    vid2 = record_validation(ws.store, dict(ws.store.get_record('validations', vid), n=2))
    assert register_version(ws, vid2, 'toy', **kw)['aliases'] == []
    client, real = ws.client, type(ws.client).get_model_version_by_alias

    def busy(self, name, alias):
        raise MlflowException('database is locked', error_code='TEMPORARILY_UNAVAILABLE')

    monkeypatch.setattr(type(client), 'get_model_version_by_alias', busy)
    before = len(audit.read(ws.audit_path))
    with pytest.raises(RegistryUnavailable, match='dev alias.*try again'):
        gov.promote(ws.mlflow, ws, ws.store, 'toy', '2', 'dev', policy=policy)
    monkeypatch.setattr(type(client), 'get_model_version_by_alias', real)
    assert len(audit.read(ws.audit_path)) == before and alias_version(client, 'toy', 'dev') == '1'
    assert gov.promote(ws.mlflow, ws, ws.store, 'toy', '2', 'dev', policy=policy)['previous_version'] == '1'


def test_a_version_without_a_passing_release_check_is_not_exposed_through_the_flags(tmp_path, monkeypatch):
    """`governance.promote` refused a version whose load-back check failed (or never ended), but the one release path
    for the flags (`exposure.check`: a flags change, a bundle, `govern check`) asked its gates alone, so `lifecycle
    flags set --challenger V` in dev served the version its check had withheld."""
    from lifecycle.model import signing
    from lifecycle.model.registry import register_version
    from lifecycle.model.stages import ReleaseCheckFailed
    from lifecycle.release import exposure

    ws, vid, _ = toy(tmp_path, monkeypatch)
    signing.ensure_signing_key(ws)
    kw = dict(alias='dev', tags={}, reason='test')

    def sign(version):
        return signing.sign_model_version(ws.mlflow, ws.store, 'toy', version, ws.key_dir, audit_path=ws.audit_path)

    def fails(version):
        sign(version)
        raise ReleaseCheckFailed(f'toy v{version} does not reproduce the outputs recorded at training')

    with pytest.raises(ReleaseCheckFailed):
        register_version(ws, vid, 'toy', **kw, check=fails)
    d = exposure.check(ws, '1', 'dev', name='toy', files=True)
    assert not d.ok and 'release check: toy/1 failed its release check' in d.message()
    register_version(ws, vid, 'toy', **kw, check=sign)  # (checked again: it passes)
    assert exposure.check(ws, '1', 'dev', name='toy', files=True).ok


def test_a_trained_statement_whose_audit_entry_a_kill_cut_off_is_audited_when_taken_up(tmp_path, monkeypatch):
    """A registration killed between storing the version's `trained` statement and auditing it was taken up again
    with the stored statement and no `model.trained_by` entry ever written: the log lost who trained the version, and
    once the trainer's key was revoked the statement could no longer be shown to predate it (unapprovable)."""
    from lifecycle.model import signing

    ws, _, _ = toy(tmp_path, monkeypatch)
    signing.new_person_key(ws.keys_dir, 'alice')
    monkeypatch.setenv('LIFECYCLE_ACTOR', 'alice')
    real = ws.audit

    def killed(action, *a, **k):
        if action == 'model.trained_by':
            raise KeyboardInterrupt  # (the process stopped between the statement and its entry)
        return real(action, *a, **k)

    monkeypatch.setattr(ws, 'audit', killed)
    with pytest.raises(KeyboardInterrupt):
        signing.attest_training(ws, 'toy', '1', 'run-1', 'm' * 64)
    monkeypatch.setattr(ws, 'audit', real)
    signed = signing.attest_training(ws, 'toy', '1', 'run-1', 'm' * 64)  # (the registration taken up again)
    signing.attest_training(ws, 'toy', '1', 'run-1', 'm' * 64)  # (and once more: audited once)
    entries = [e for e in audit.read(ws.audit_path) if e['action'] == 'model.trained_by']
    got = [(e['subject'], e['actor'], e['details']['key_id']) for e in entries]
    assert got == [('toy/1', 'alice', signed['key_id'])]


def test_erasing_the_register_entry_of_a_version_killed_inside_its_check_does_not_lift_the_refusal(
    tmp_path, monkeypatch
):
    """The mark that a registration asked for a release check (`release_check` in its `model.register` entry) was in
    the details an erasure drops: `lifecycle audit erase SEQ` of the entry (its actor named a person) made a version
    killed inside its check, with no verdict on record, promotable and exposable again. The mark names no one: kept."""
    from lifecycle.release import exposure, governance as gov

    ws, vid, _ = toy(tmp_path, monkeypatch)

    _killed_in_check(ws, vid)
    seq = next(e['seq'] for e in audit.read(ws.audit_path) if e['action'] == 'model.register')
    audit.erase(ws.audit_path, seq, 'the registering person asked to be forgotten')
    with pytest.raises(gov.PromotionRefused, match=r'toy/1 was registered.*no verdict on record'):
        gov.promote(ws.mlflow, ws, ws.store, 'toy', '1', 'dev', policy=ws.params['policy'])
    assert 'release check: toy/1 was registered' in exposure.check(ws, '1', 'dev', name='toy').message()


def _payload_deleted(ws: Workspace, action: str, subject: str) -> int:
    "Delete (no erasure: an edit of the file) the payload line of the audit entry `action` of `subject`; its seq."
    import json

    seq = next(e['seq'] for e in audit.read(ws.audit_path) if (e['action'], e['subject']) == (action, subject))
    pp = audit.payloads_path(ws.audit_path)
    kept = [ln for ln in pp.read_text().splitlines(keepends=True) if json.loads(ln).get('seq') != seq]
    pp.write_text(''.join(kept))
    return seq


def test_deleting_the_register_entry_s_payload_of_a_version_killed_inside_its_check_does_not_lift_the_refusal(
    tmp_path, monkeypatch
):
    """Erasing a register entry keeps its release-check mark; deleting its payload line (an edit `audit verify` names,
    which promotion does not run) read as an entry asking no check, so a version killed inside its check, with no
    verdict, was promotable again. An unreadable register entry is read as those before it: here, asking one. A
    version registered before the mark existed (an unmarked register entry before it) is promoted as before."""
    from lifecycle.release import governance as gov

    ws, vid, _ = toy(tmp_path, monkeypatch)

    _killed_in_check(ws, vid)
    seq = _payload_deleted(ws, 'model.register', 'toy/1')
    with pytest.raises(gov.PromotionRefused, match=rf'toy/1 was registered, but its register entry \(seq {seq}\)'):
        gov.promote(ws.mlflow, ws, ws.store, 'toy', '1', 'dev', policy=ws.params['policy'])


def test_a_version_registered_before_the_release_check_mark_is_promoted_though_its_register_payload_is_gone(
    tmp_path, monkeypatch
):
    "A register entry before it asks no check (lifecycle recorded none then): an unreadable one is read so too."
    from lifecycle.model.registry import register_version
    from lifecycle.release import governance as gov

    ws, vid, _ = toy(tmp_path, monkeypatch)
    register_version(ws, vid, 'toy', alias='dev', tags={}, reason='before the mark')  # (no check: no mark)
    vid2 = record_validation(ws.store, dict(ws.store.get_record('validations', vid), n=2))
    register_version(ws, vid2, 'toy', alias='dev', tags={}, reason='before the mark')
    _payload_deleted(ws, 'model.register', 'toy/2')
    promoted = gov.promote(ws.mlflow, ws, ws.store, 'toy', '2', 'dev', policy=ws.params['policy'])
    assert promoted['previous_version'] == '1'


def test_a_withheld_version_s_refusal_names_the_command_that_checks_it_again(tmp_path, monkeypatch):
    """`lifecycle promote` of a version whose release check failed said 'register it again once it loads back' and
    named no command that does, where the refusal of one with no verdict names `lifecycle run`."""
    from lifecycle.model.registry import register_version
    from lifecycle.model.stages import ReleaseCheckFailed
    from lifecycle.release import governance as gov

    ws, vid, _ = toy(tmp_path, monkeypatch)

    def fails(version):
        raise ReleaseCheckFailed(f'toy v{version} does not reproduce the outputs recorded at training')

    with pytest.raises(ReleaseCheckFailed):
        register_version(ws, vid, 'toy', alias='dev', tags={}, reason='test', check=fails)
    with pytest.raises(gov.PromotionRefused, match=r'failed its release check.*`lifecycle run`.*`lifecycle retrain'):
        gov.promote(ws.mlflow, ws, ws.store, 'toy', '1', 'dev', policy=ws.params['policy'])


def _busy_alias_reads(monkeypatch, client) -> None:
    "The registry answers no alias look-up (busy): `get_model_version_by_alias` raises as MLflow does then."
    from mlflow.exceptions import MlflowException

    def busy(self, name, alias):
        raise MlflowException('database is locked', error_code='TEMPORARILY_UNAVAILABLE')

    monkeypatch.setattr(type(client), 'get_model_version_by_alias', busy)


def test_a_busy_registry_never_records_a_version_in_service_as_withheld_from_its_alias(tmp_path, monkeypatch):
    """A check failing again on the version holding dev, while the registry could not say who holds dev, wrote
    `model.withheld` 'withheld from dev' (holds: false) of the version serving in dev; now: try again, nothing
    written."""
    from lifecycle.model.registry import RegistryUnavailable, register_version, withhold

    ws, vid, _ = toy(tmp_path, monkeypatch)
    assert register_version(ws, vid, 'toy', alias='dev', tags={}, reason='test')['aliases'] == ['dev']
    entries = len(audit.read(ws.audit_path))
    _busy_alias_reads(monkeypatch, ws.client)
    with pytest.raises(RegistryUnavailable, match='which version the dev alias names .*try again'):
        withhold(ws, 'toy', '1', 'dev', ValueError('failed again'))
    assert len(audit.read(ws.audit_path)) == entries


def test_a_busy_registry_never_resumes_a_registration_as_one_without_its_alias(tmp_path, monkeypatch):
    """A registration killed after MLflow registered its version and before its audit entry, with dev on that version
    (set by no audited move: lifecycle moves an alias only after the register entry): while the registry could not
    say who holds dev, the entry written said `aliases: []` of the version holding dev, and once it could, the rerun's
    entry said `aliases: ['dev']`, vouching for a move no entry explains. The entry now never gives an alias it did not
    move: a busy registry is `RegistryUnavailable` (try again), and the registry answering, the alias is refused."""
    from lifecycle.model.registry import RegistryUnavailable, UnauditedAlias, register_version

    ws, vid, _ = toy(tmp_path, monkeypatch)
    rec = ws.store.get_record('validations', vid)
    mv = ws.mlflow.register_model(rec['model_uri'], 'toy', tags={'validation_id': vid})  # (killed: no entry yet)
    ws.client.set_registered_model_alias('toy', 'dev', mv.version)
    client, real = ws.client, type(ws.client).get_model_version_by_alias
    _busy_alias_reads(monkeypatch, client)
    with pytest.raises(RegistryUnavailable, match='try again'):
        register_version(ws, vid, 'toy', alias='dev', tags={}, reason='test')
    monkeypatch.setattr(type(client), 'get_model_version_by_alias', real)
    with pytest.raises(UnauditedAlias, match="alias 'dev' of toy points to version 1"):
        register_version(ws, vid, 'toy', alias='dev', tags={}, reason='test')
    assert [e['details']['aliases'] for e in audit.read(ws.audit_path) if e['action'] == 'model.register'] == [[]]
    assert audited_aliases(ws.audit_path, 'toy') == {}


def test_a_busy_registry_is_no_completed_canary_whose_alias_names_no_version(tmp_path, monkeypatch):
    """The loop's promotion after its canary completed read the alias leniently: a busy registry read as 'the alias
    names no version' (a RetrainError a person is told to mend by promoting); now RegistryUnavailable, try again."""
    from lifecycle.loop.iteration import RetrainError, _promote
    from lifecycle.model.registry import RegistryUnavailable

    ws, _, _ = toy(tmp_path, monkeypatch)
    _busy_alias_reads(monkeypatch, ws.client)
    it = dict(id='20261206T000000-abcdef', registration=dict(model_version='2'), champion=dict(version='1'))
    with pytest.raises(RegistryUnavailable, match='try again') as e:
        _promote(ws, it)
    assert not isinstance(e.value, RetrainError) and 'decision' not in it and audit.read(ws.audit_path) == []


def test_a_busy_registry_is_no_champion_to_validate_or_retrain_beside(tmp_path, monkeypatch):
    """Validation read the champion leniently: a registry too busy to say which version serves read as no champion, so
    the gates against the champion were skipped and the challenger's validation recorded as passed; the retraining
    loop said 'no champion to retrain beside' (a RetrainError that ends `retrain run --every`). Now: try again."""
    from lifecycle.loop.iteration import champion_info, in_the_way
    from lifecycle.model.registry import RegistryUnavailable
    from lifecycle.model.stages import champion_scores

    ws, _, _ = toy(tmp_path, monkeypatch)
    _busy_alias_reads(monkeypatch, ws.client)
    p = ws.params
    with pytest.raises(RegistryUnavailable, match='try again'):
        champion_scores(ws, p['register'], p['features'], p['validate'], pd.DataFrame())
    with pytest.raises(RegistryUnavailable, match='try again') as e:
        champion_info(ws)
    assert in_the_way(e.value)


def test_a_busy_registry_is_no_missing_alias_to_load_walk_up_to_or_train_beside(tmp_path, monkeypatch):
    """Where a registry too busy to answer read as an alias naming no version: `load_by_alias` said the model 'has no
    alias'; the demonstrations said there is no champion to train beside (`lifecycle run` registers one), or, in an
    environment above dev, walked the version below up over the champion serving there. Now: try again."""
    from lifecycle.deliver.demo import _champion_here, demo_champion
    from lifecycle.model.registry import RegistryUnavailable, load_by_alias

    (tmp_path / 'settings.ini').write_text('[workspace]\nenvironment = staging\n')
    shutil.copytree(Path(__file__).parents[1] / 'params', tmp_path / 'params')
    monkeypatch.setenv('LIFECYCLE_KEYS_DIR', str(tmp_path / 'keys'))
    ws = Workspace.open(tmp_path)
    assert ws.environment == 'staging'
    _busy_alias_reads(monkeypatch, ws.client)
    for call in (lambda: load_by_alias(ws, 'toy', 'dev'), lambda: demo_champion(ws, 't'), lambda: _champion_here(ws)):
        with pytest.raises(RegistryUnavailable, match='try again'):
            call()
    assert audit.read(ws.audit_path) == []


def test_a_busy_registry_is_no_alias_naming_no_version_to_the_flags_commands(tmp_path, monkeypatch):
    """`lifecycle flags init`, `flags set` and `score` resolved an alias leniently: a registry too busy to answer was
    'alias names no registered version (register one, promote one to it...)', an input error with the wrong way out."""
    from lifecycle.model.registry import RegistryUnavailable
    from lifecycle.serve import flags as fl
    from lifecycle.serve.commands import _alias_lookup

    ws, _, _ = toy(tmp_path, monkeypatch)
    _busy_alias_reads(monkeypatch, ws.client)
    with pytest.raises(RegistryUnavailable, match='which version the dev alias names .*try again'):
        fl.resolve_spec(ws.params['flags'], _alias_lookup(ws, 'toy'), ws.environment)


def test_a_busy_registry_at_a_servers_first_start_is_said_as_such_not_as_an_alias_naming_no_version(
    tmp_path, monkeypatch
):
    """A server started with no flags deploys those of the params, resolving the environment's alias leniently: a
    registry too busy to answer left it not ready saying the alias 'names no registered version (register one...)'."""
    from types import SimpleNamespace
    from lifecycle.serve import flags as fl
    from lifecycle.serve.server import Server

    ws, _, _ = toy(tmp_path, monkeypatch)
    _busy_alias_reads(monkeypatch, ws.client)
    srv = SimpleNamespace(s=ws, model_name='toy', environment='dev')
    why = Server._first_flags(srv, ws.params['flags'])
    assert 'could not say which version the dev alias names' in why and 'try again' in why, why
    assert not fl.spec_path(ws).exists()


def test_a_busy_registry_is_no_missing_champion_to_a_simulation(tmp_path, monkeypatch):
    """`lifecycle simulate` read the champion leniently: a registry too busy to answer was 'no champion to train a
    candidate beside; run the pipeline first', or flags refused as 'alias names no registered version'."""
    from lifecycle.deliver.simulate import train_candidate
    from lifecycle.loop.simulation import _ensure_flags
    from lifecycle.model.registry import RegistryUnavailable
    from lifecycle.serve import flags as fl

    ws, _, _ = toy(tmp_path, monkeypatch)
    _busy_alias_reads(monkeypatch, ws.client)
    for call in (lambda: train_candidate(ws), lambda: _ensure_flags(ws)):
        with pytest.raises(RegistryUnavailable, match='try again'):
            call()
    assert not fl.spec_path(ws).exists() and audit.read(ws.audit_path) == []


def test_a_first_deploy_the_registry_was_too_busy_for_is_tried_again_until_it_answers(tmp_path, monkeypatch):
    """A server whose first flags the registry was too busy to resolve stayed not ready until restarted: it tries
    again until the registry answers (the gate then takes the flags), and stops at a refusal that is not the
    registry's."""
    import threading
    from types import SimpleNamespace
    from mlflow.exceptions import MlflowException
    from lifecycle.model.registry import register_version
    from lifecycle.serve import flags as fl
    from lifecycle.serve.server import Server

    ws, vid, _ = toy(tmp_path, monkeypatch)
    register_version(ws, vid, 'toy', alias='dev', tags={}, reason='test')
    real, busy = type(ws.client).get_model_version_by_alias, [2]

    def sometimes_busy(self, name, alias):
        if busy[0]:
            busy[0] -= 1
            raise MlflowException('database is locked', error_code='TEMPORARILY_UNAVAILABLE')
        return real(self, name, alias)

    monkeypatch.setattr(type(ws.client), 'get_model_version_by_alias', sometimes_busy)
    srv = SimpleNamespace(s=ws, model_name='toy', environment='dev', _closed=threading.Event())
    srv._first_flags = lambda declared: Server._first_flags(srv, declared)
    srv.unready = srv._first_flags(ws.params['flags'])
    assert 'try again' in srv.unready and srv._busy_at_start and not fl.spec_path(ws).exists()
    Server._first_flags_again(srv, ws.params['flags'], every_s=0.001)
    assert busy == [0] and not srv._busy_at_start  # (it ended once the registry answered: here, a real refusal)
    assert 'try again' not in srv.unready and 'not signed' in srv.unready, srv.unready  # (the toy is unsigned)


def test_a_busy_registry_never_reads_as_a_schedule_overdue_since_1970(tmp_path, monkeypatch):
    """With no retraining started yet, the schedule trigger counts from the champion's registration, read through the
    environment's alias; a registry too busy to answer read as 'no champion', the last retraining at time 0, so the
    schedule fired ('last retraining 1765... s ago') and a retraining started that none had asked for. It is in the
    way now (RegistryUnavailable: the watcher misses the pass), never a verdict; no champion still counts from 0."""
    from lifecycle.loop import triggers
    from lifecycle.model.registry import RegistryUnavailable, register_version

    ws, vid, _ = toy(tmp_path, monkeypatch)
    assert triggers.facts(ws, {})['last_retrain'] == 0.0  # (no champion yet: due, as before)
    register_version(ws, vid, ws.params['register'].model_name, alias='dev', tags={}, reason='test')
    assert triggers.facts(ws, {})['last_retrain'] > 0
    _busy_alias_reads(monkeypatch, ws.client)
    with pytest.raises(RegistryUnavailable, match='which version the dev alias names .*try again'):
        triggers.facts(ws, {})


def _busy_for(monkeypatch, client, method: str, busy_when) -> None:
    "The registry busy for `method`'s calls whose arguments `busy_when(*args)` picks; the others answered."
    from mlflow.exceptions import MlflowException

    real = getattr(type(client), method)

    def maybe(self, *args):
        if busy_when(*args):
            raise MlflowException('database is locked', error_code='TEMPORARILY_UNAVAILABLE')
        return real(self, *args)

    monkeypatch.setattr(type(client), method, maybe)


def test_a_busy_registry_is_no_champion_in_a_registrations_answer(tmp_path, monkeypatch):
    """A registration's last read, which version serves the workspace's environment, was lenient: a registry too busy
    to answer was `champion_version: None` in the register stage's result (no champion beside the new version)."""
    from lifecycle.model.registry import RegistryUnavailable, register_version

    ws, vid, _ = toy(tmp_path, monkeypatch)
    kw = dict(alias='dev', tags={}, reason='test', serving_alias='staging')
    ws.client.create_registered_model('toy')
    _busy_for(monkeypatch, ws.client, 'get_model_version_by_alias', lambda name, alias: alias == 'staging')
    with pytest.raises(RegistryUnavailable, match='which version the staging alias names .*try again'):
        register_version(ws, vid, 'toy', **kw)
    monkeypatch.undo()
    monkeypatch.setenv('LIFECYCLE_KEYS_DIR', str(tmp_path / 'keys'))
    again = register_version(ws, vid, 'toy', **kw)  # (the registry answers: the same version, its answer whole)
    assert (again['model_version'], again['champion_version']) == ('1', None)
    assert again['aliases'] == ['dev']  # (the first attempt gave it: the answer said [] while the version held dev)
    assert [int(v.version) for v in ws.client.search_model_versions("name='toy'")] == [1]


def test_a_busy_registry_never_finishes_a_cut_short_completion_by_promoting_again(tmp_path, monkeypatch):
    """Finishing a completion cut short read the alias leniently: a registry too busy to say the alias names the
    challenger already read as 'it does not', and the promotion was walked again (refused, and audited as refused,
    here: a floor raised since, or an unsigned version). Now: RegistryUnavailable, try again, nothing recorded."""
    from lifecycle.deliver.rollout import _promote_on_completion
    from lifecycle.model.registry import RegistryUnavailable, register_version

    ws, vid, _ = toy(tmp_path, monkeypatch)
    register_version(ws, vid, 'toy', alias='dev', tags={}, reason='test')
    before = audit.read(ws.audit_path)
    _busy_alias_reads(monkeypatch, ws.client)
    with pytest.raises(RegistryUnavailable, match='try again'):
        _promote_on_completion(ws, dict(model_name='toy', challenger='1'), 'tester', cut_short=True)
    assert audit.read(ws.audit_path) == before


def test_a_busy_registry_never_dates_the_champion_to_1970(tmp_path, monkeypatch):
    """The schedule trigger's second read, when the champion was registered, caught every error as 'registered at 0':
    a registry that named the champion and then was too busy to date it made the schedule overdue since 1970."""
    from lifecycle.loop import triggers
    from lifecycle.model.registry import RegistryUnavailable, register_version

    ws, vid, _ = toy(tmp_path, monkeypatch)
    register_version(ws, vid, ws.params['register'].model_name, alias='dev', tags={}, reason='test')
    _busy_for(monkeypatch, ws.client, 'get_model_version', lambda name, version: True)
    with pytest.raises(RegistryUnavailable, match='when .* was registered .*try again'):
        triggers.facts(ws, {})


def test_a_busy_registry_never_passes_a_servers_check_for_an_alias_moved_outside_lifecycle(tmp_path, monkeypatch):
    """Before loading a version a server checks that no alias naming it was moved outside lifecycle; the registry's
    aliases were read leniently, so a registry too busy to list them read as a model with none and the check passed
    (the load then went on when the registry answered again). Now RegistryUnavailable: the server's gate retries."""
    from lifecycle.model.registry import RegistryUnavailable, UnauditedAlias, check_version_aliases, register_version

    ws, vid, _ = toy(tmp_path, monkeypatch)
    register_version(ws, vid, 'toy', alias='dev', tags={}, reason='test')
    ws.client.set_registered_model_alias('toy', 'production', '1')  # (by hand: no audited promotion)
    with pytest.raises(UnauditedAlias, match="alias 'production' of toy points to version 1"):
        check_version_aliases(ws.client, ws.audit_path, 'toy', '1')
    _busy_for(monkeypatch, ws.client, 'get_registered_model', lambda name: True)
    with pytest.raises(RegistryUnavailable, match="could not list the aliases of 'toy' .*try again"):
        check_version_aliases(ws.client, ws.audit_path, 'toy', '1')


def test_a_busy_registry_is_no_alias_gone_in_the_workspace_status(tmp_path, monkeypatch):
    """`lifecycle status` read each model's aliases leniently: a registry busy between listing the models and reading
    their aliases read as a model with none, and every audited alias was reported UNAUDITED, 'gone from the
    registry'. Now: RegistryUnavailable naming the model (the CLI's try again, exit non-zero), no false alarm."""
    from lifecycle.app.status import workspace_status
    from lifecycle.model.registry import RegistryUnavailable, register_version

    ws, vid, _ = toy(tmp_path, monkeypatch)
    register_version(ws, vid, 'toy', alias='dev', tags={}, reason='test')
    assert workspace_status(ws)['alias_mismatches'] == []
    _busy_for(monkeypatch, ws.client, 'get_registered_model', lambda name: True)
    with pytest.raises(RegistryUnavailable, match="could not list the aliases of 'toy' .*try again"):
        workspace_status(ws)


@pytest.mark.parametrize('where', ['end', 'middle'])
def test_deleting_the_register_entry_of_a_version_killed_inside_its_check_does_not_lift_the_refusal(
    tmp_path, monkeypatch, where
):
    """Deleting the register entry's chain line (not its payload) left the version with no register entry at all,
    read as one registered outside lifecycle, asking no check: a version killed inside its check was promoted to dev.
    In a log missing entries (a sequence gap, or its end short of the checkpoint) it is refused, naming the damage."""
    import json
    from lifecycle.release import governance as gov

    ws, vid, _ = toy(tmp_path, monkeypatch)

    _killed_in_check(ws, vid)
    if where == 'middle':
        ws.audit('note', 'x', 'an entry after it')
    lines = Path(ws.audit_path).read_text().splitlines(keepends=True)
    Path(ws.audit_path).write_text(''.join(ln for ln in lines if json.loads(ln)['action'] != 'model.register'))
    with pytest.raises(gov.PromotionRefused, match=r'toy/1 has no register entry in the audit log, which is damaged'):
        gov.promote(ws.mlflow, ws, ws.store, 'toy', '1', 'dev', policy=ws.params['policy'])


@pytest.mark.parametrize('checkpoint', ['deleted', 'altered'])
def test_deleting_the_last_register_entry_with_the_checkpoint_does_not_lift_the_refusal(
    tmp_path, monkeypatch, checkpoint
):
    """A version with no register entry was refused only where the log's end fell short of its checkpoint: deleting
    the killed version's register line (the log's last) and the checkpoint with it (or writing over it), which `audit
    verify` fails, left a log read as whole, and `promote` put the version, its check never ended, into dev."""
    import json
    from lifecycle.release import governance as gov

    ws, vid, _ = toy(tmp_path, monkeypatch)
    ws.audit('note', 'x', 'an entry before it')

    _killed_in_check(ws, vid)
    lines = Path(ws.audit_path).read_text().splitlines(keepends=True)
    Path(ws.audit_path).write_text(''.join(ln for ln in lines if json.loads(ln)['action'] != 'model.register'))
    cp = audit.checkpoint_path(audit.keys_folder(ws.audit_path, create=False), Path(ws.audit_path).resolve())
    cp.unlink() if checkpoint == 'deleted' else cp.write_text('{}')
    assert not audit.verify(ws.audit_path).ok
    with pytest.raises(gov.PromotionRefused, match=r'toy/1 has no register entry in the audit log, which is damaged'):
        gov.promote(ws.mlflow, ws, ws.store, 'toy', '1', 'dev', policy=ws.params['policy'])


def test_moving_a_killed_version_s_register_line_above_an_older_verdict_does_not_lift_the_refusal(
    tmp_path, monkeypatch
):
    """The release-check verdicts were read in the order of the log's lines: a model deleted and made again numbers
    its versions afresh, and moving the new toy/1's register line (killed inside its check) above the old toy/1's
    `model.checked` line, each line's MAC intact, made that verdict read as the new version's: promoted into dev."""
    import json
    from lifecycle.model.registry import register_version
    from lifecycle.release import governance as gov

    ws, vid, _ = toy(tmp_path, monkeypatch)
    register_version(ws, vid, 'toy', alias='dev', tags={}, reason='test', check=str)  # (toy/1, checked)
    ws.client.delete_registered_model('toy')
    again = record_validation(ws.store, dict(ws.store.get_record('validations', vid), n=2))

    def killed(version):
        raise KeyboardInterrupt  # (the process stopped while loading the version back)

    with pytest.raises(KeyboardInterrupt):
        register_version(ws, again, 'toy', alias='dev', tags={}, reason='test', check=killed)  # (toy/1 again)
    lines = Path(ws.audit_path).read_text().splitlines(keepends=True)
    actions = [json.loads(ln)['action'] for ln in lines]
    assert actions == ['model.register', 'model.checked', 'model.promote', 'model.register']
    Path(ws.audit_path).write_text(''.join([lines[0], lines[3], *lines[1:3]]))
    with pytest.raises(gov.PromotionRefused, match=r'toy/1 was registered.*no verdict on record'):
        gov.promote(ws.mlflow, ws, ws.store, 'toy', '1', 'dev', policy=ws.params['policy'])


@pytest.mark.parametrize('method', ['search_registered_models', 'search_model_versions'])
def test_a_registry_busy_listing_its_models_is_a_try_again_in_the_workspace_status(tmp_path, monkeypatch, method):
    """`lifecycle status` listed the registry's models and their versions unguarded: a registry too busy to answer
    (SQLite locked) ended the command in MLflow's traceback, `--json` with no JSON. Now: try again, exit 1."""
    import json
    from conftest import cli
    from lifecycle.model.registry import register_version

    ws, vid, _ = toy(tmp_path, monkeypatch)
    register_version(ws, vid, 'toy', alias='dev', tags={}, reason='test')
    _busy_for(monkeypatch, ws.client, method, lambda *args: True)
    r = cli(tmp_path, 'status', '--json', env={'LIFECYCLE_KEYS_DIR': str(tmp_path / 'keys')})
    assert r.returncode == 1 and 'Traceback' not in r.stderr, r.stderr
    out = json.loads(r.stdout)  # (strict JSON: one object)
    assert out['ok'] is False
    assert re.search(r'could not list (its models|the versions of .toy.) \(\w+\): try again', out['error']), out


def test_erasing_a_register_entry_whose_payload_was_deleted_does_not_lift_the_refusal(tmp_path, monkeypatch):
    """An erasure keeps a register entry's release-check mark, read from its payload; one whose payload line was
    deleted by hand first (refused then: unreadable) kept nothing, and the erased entry read as a registration asking
    no check: `lifecycle audit erase SEQ` made a version killed inside its check promotable. Its tombstone now says the
    payload was unread, and the entry is read as an unreadable one. An erasure that read the payload: as before."""
    from lifecycle.model.registry import register_version
    from lifecycle.release import governance as gov

    ws, vid, _ = toy(tmp_path, monkeypatch)

    _killed_in_check(ws, vid)
    seq = _payload_deleted(ws, 'model.register', 'toy/1')
    tomb = audit.erase(ws.audit_path, seq, 'the registering person asked to be forgotten')
    with pytest.raises(gov.PromotionRefused, match=rf'entry \(seq {seq}\) cannot be read .*when it was erased'):
        gov.promote(ws.mlflow, ws, ws.store, 'toy', '1', 'dev', policy=ws.params['policy'])
    assert tomb['details'] == {'erased_seq': seq, 'unread': True}
    again = record_validation(ws.store, dict(ws.store.get_record('validations', vid), n=2))
    register_version(ws, again, 'toy', alias='dev', tags={}, reason='before the mark')  # (toy/2: asks no check)
    seq = next(e['seq'] for e in audit.read(ws.audit_path) if e['action'] == 'model.register' and e['seq'] > seq)
    assert 'unread' not in audit.erase(ws.audit_path, seq, 'forgotten')['details']
    assert gov.promote(ws.mlflow, ws, ws.store, 'toy', '2', 'dev', policy=ws.params['policy'])['model_version'] == '2'


def test_an_alias_set_by_hand_after_a_registration_killed_before_its_entry_is_not_audited_as_its_own(
    tmp_path, monkeypatch
):
    """A registration killed between MLflow's `register_model` and its audit entry, then `dev` set on the new version
    with MLflow's own client: the rerun found the version holding dev and wrote its register entry with
    `aliases=['dev']`, so the audit log vouched for a move lifecycle never made and `status` saw no mismatch. Now the
    entry gives it no alias, the rerun refuses naming the alias, and `lifecycle promote` gives it dev, audited."""
    from lifecycle.model.registry import UnauditedAlias, register_version
    from lifecycle.release import governance as gov

    ws, vid, _ = toy(tmp_path, monkeypatch)
    kw = dict(alias='dev', tags={}, reason='test')
    killed_before_register_entry(monkeypatch, lambda: register_version(ws, vid, 'toy', **kw, check=str))
    ws.client.set_registered_model_alias('toy', 'dev', '1')  # (by hand: no audit entry)
    for attempt in range(2):  # (the rerun, and one after it)
        with pytest.raises(UnauditedAlias, match=r"alias 'dev' of toy points to version 1 .*lifecycle promote toy 1"):
            register_version(ws, vid, 'toy', **kw, check=str)
        assert audited_aliases(ws.audit_path, 'toy') == {}, attempt
        assert [m['alias'] for m in alias_mismatches(ws.client, ws.audit_path, 'toy')] == ['dev'], attempt
    regs = [e for e in audit.read(ws.audit_path) if e['action'] == 'model.register']
    assert [(e['subject'], e['details']['aliases']) for e in regs] == [('toy/1', [])]
    assert [int(v.version) for v in ws.client.search_model_versions("name='toy'")] == [1]  # (no second version)
    assert gov.promote(ws.mlflow, ws, ws.store, 'toy', '1', 'dev', policy=ws.params['policy'])['alias'] == 'dev'
    assert alias_mismatches(ws.client, ws.audit_path, 'toy') == []
    assert register_version(ws, vid, 'toy', **kw, check=str)['aliases'] == ['dev']  # (audited now: it holds it)


def test_a_rerun_of_a_registration_whose_dev_move_entry_was_erased_is_not_refused(tmp_path, monkeypatch):
    """The rerun of a registration refuses an alias on its version that no audit entry explains; an alias move whose
    entry was erased (`audit erase`, a deletion request) explains it as it does to `status`: not refused."""
    from lifecycle.model.registry import register_version

    ws, vid, _ = toy(tmp_path, monkeypatch)
    kw = dict(alias='dev', tags={}, reason='test')
    assert register_version(ws, vid, 'toy', **kw, check=str)['aliases'] == ['dev']
    seq = next(e['seq'] for e in audit.read(ws.audit_path) if e['action'] == 'model.promote')
    audit.erase(ws.audit_path, seq, 'the person who registered it asked to be forgotten')
    assert alias_mismatches(ws.client, ws.audit_path, 'toy') == []  # (status: nothing unaudited)
    assert register_version(ws, vid, 'toy', **kw, check=str)['aliases'] == ['dev']
