"""Flags without a server: compilation refuses what flagd would accept and then fail on, every change is audited with
its old and new value, and another OpenFeature provider can be swapped in by configuration."""

from __future__ import annotations
import json
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from lifecycle.params import FlagsParams
from lifecycle import flags as fl


def make_in_memory(**_):
    "An OpenFeature provider that is not flagd: the SDK's in-memory provider (stands in for LaunchDarkly & co)."
    from openfeature.provider.in_memory_provider import InMemoryProvider, InMemoryFlag

    return InMemoryProvider(
        {
            fl.MODEL_FLAG: InMemoryFlag('challenger', {'control': '1', 'challenger': '7'}),
            fl.THRESHOLD_FLAG: InMemoryFlag('default', {'default': 0.42}),
            fl.SHADOW_FLAG: InMemoryFlag('on', {'on': True, 'off': False}),
        }
    )


def test_another_openfeature_provider_by_configuration(tmp_path):
    spec = FlagsParams(provider='test_flags:make_in_memory', control='1', safe='1')
    client = fl.FlagClient(fl.make_provider(spec, tmp_path / 'unused.json'), domain='swap-test')
    ctx = client.context('k')
    assert client.route(ctx) == ('challenger', '7') and client.threshold(ctx) == 0.42 and client.shadow(ctx) is True


def test_the_file_providers_watcher_stops_when_shut_down_not_at_its_next_poll_and_looks_no_more(tmp_path):
    """flagd's file watcher slept `poll_ms` between looks and looked once more after shutdown, so `FlagClient.close`
    (which waits for that look, before a server's gate removes the file) took up to `poll_ms`: every server stopping
    waited for it. Shut down, it now ends without sleeping out its poll, and never looks at the file again."""
    import threading

    path = tmp_path / 'flags.json'
    spec = FlagsParams(control='1', safe='1')
    path.write_text(json.dumps(fl.compile_flags(spec)))
    provider = fl.make_provider(spec, path)
    watcher = provider.resolver.connector
    watcher.deadline_seconds = 3600  # (a poll of an hour, set before the watcher starts: its first sleep is that long)
    client = fl.FlagClient(provider, domain=f'prompt-stop-{tmp_path.name}')
    looks = []
    watcher.safe_load_data = lambda: looks.append(1)  # (each look the watcher takes from now on)
    assert watcher.thread.is_alive()
    done = threading.Thread(target=client.close, kwargs={'timeout': 3600}, daemon=True)
    done.start()
    done.join(timeout=30)  # (the watcher asleep for its hour would hold close for that hour)
    assert not done.is_alive() and not watcher.thread.is_alive()
    path.unlink()
    assert looks == []  # no look after shutdown: none at a file a server's gate removes once its watcher is done


def test_unknown_provider_is_refused_by_name(tmp_path):
    with pytest.raises(fl.FlagError, match="provider: cannot import 'nowhere.at_all:make'"):
        fl.make_provider(FlagsParams(provider='nowhere.at_all:make'), tmp_path / 'x.json')
    with pytest.raises(fl.FlagError, match="expected flagd-file, flagd or module:factory"):
        fl.make_provider(FlagsParams(provider='launchdarkly'), tmp_path / 'x.json')


@pytest.mark.parametrize(
    'mutate, words',
    [
        (lambda d: d['flags'].pop('shadow'), "flag 'shadow': missing"),
        (
            lambda d: d['flags']['model-version']['variants'].update(control='latest'),
            'expected registered version numbers',
        ),
        (
            lambda d: d['flags']['decision-threshold']['variants'].update(default=1.5),
            'expected numbers between 0 and 1',
        ),
        (
            lambda d: d['flags']['model-version']['targeting']['if'].__setitem__(1, 'purple'),
            "returns variant(s) ['purple']",
        ),
        (lambda d: d.pop('flags'), "expected a JSON object with a 'flags' object"),
    ],
)
def test_invalid_flag_documents_are_named(mutate, words):
    doc = fl.compile_flags(FlagsParams(control='1', safe='1', challenger='2', percentage=30))
    assert fl.check_document(doc) == []
    mutate(doc)
    assert any(words in p for p in fl.check_document(doc)), fl.check_document(doc)


def registered_workspace(tmp_path, name: str, versions: int):
    "A workspace whose registry holds `versions` signed versions of a tiny model, each with a passing validation."
    import shutil
    import warnings
    from pathlib import Path
    import pandas as pd
    from sklearn.linear_model import LogisticRegression
    from lifecycle.core.workspace import Workspace
    from lifecycle.model.registry import record_validation
    from lifecycle.model.signing import ensure_signing_key, sign_model_version

    (tmp_path / 'settings.ini').write_text(f"[workspace]\nkeys_dir = {tmp_path / 'keys'}\n")
    shutil.copytree(Path(__file__).resolve().parents[1] / 'params', tmp_path / 'params')
    s = Workspace.open(tmp_path)
    with warnings.catch_warnings(), s.mlflow.start_run(experiment_id=s.experiment('toy')) as run:
        warnings.simplefilter('ignore')
        uri = s.mlflow.sklearn.log_model(
            LogisticRegression().fit(pd.DataFrame({'a': [0.0, 1.0]}), [0, 1]),
            name='model',
            pip_requirements=['scikit-learn'],
        ).model_uri
    gate = dict(gate='accuracy', value=0.8, limit='>= 0.7', verdict='pass')
    vid = record_validation(s.store, dict(model_uri=uri, mlflow_run_id=run.info.run_id, gates=[gate], passed=True))
    ensure_signing_key(s)
    for v in range(1, versions + 1):
        s.mlflow.register_model(uri, name, tags={'validation_id': vid})
        sign_model_version(s.mlflow, s.store, name, v, s.key_dir)
    return s


@pytest.mark.slow  # trains and signs a tiny model version
def test_changes_are_validated_written_atomically_and_audited(tmp_path):
    from lifecycle import audit

    s = registered_workspace(tmp_path, 'm', versions=2)  # deployable: signed, and their validation gates passed
    fl.init_flags(s, FlagsParams(control='dev', safe='dev'), 'm', lambda alias: '1', actor='carol')
    spec = fl.change_flags(
        s, {'challenger': '2', 'percentage': 25, 'threshold.default': 'default'}, actor='carol', reason='canary'
    )
    assert (
        spec.percentage == 25
        and fl.read_document(fl.flagd_path(s))['flags']['model-version']['variants']['challenger'] == '2'
    )
    with pytest.raises(fl.FlagError, match='percentage'):
        fl.change_flags(s, {'percentage': 250}, actor='carol')
    with pytest.raises(fl.FlagError, match='threshold.default=NAME'):  # not pydantic's "a valid dictionary"
        fl.change_flags(s, {'threshold': 'strict'}, actor='carol')
    with pytest.raises(
        fl.FlagError, match=r"challenger: model 'm' has no version 9 in the registry \(its versions: 1, 2\)"
    ):
        fl.change_flags(s, {'challenger': '9'}, actor='carol')
    assert fl.load_spec(s)[0].percentage == 25  # refused changes leave the flags as they were
    last = audit.read(s.audit_path)[-1]
    assert last['action'] == 'flags.change' and last['actor'] == 'carol' and last['reason'] == 'canary'
    assert (
        last['details']['changes']['percentage'] == {'old': 0.0, 'new': 25.0}
        and 'challenger' in last['details']['changes']
    )


def test_params_flags_yaml_is_read_as_yaml_1_2_as_flags_set_is(tmp_path):
    """A cohort typed in params/flags.yaml meant another thing than the same typed in `flags set` (review): PyYAML read
    `010` as 8 there and `NO` (Norway) as false. An unquoted yes/no/on/off, which meant a boolean before and is text
    now, is refused where it would change a meaning silently (a cohort's value, a provider option at any depth: read
    as text, `tls: no` would turn TLS on), saying how to write either; the flags' own booleans still take them."""
    from lifecycle.core.params import ParamsError, load_file

    (tmp_path / 'flags.yaml').write_text(
        "control: '1'\nsafe: '1'\nkill: no\nshadow: off\nchallenger: '2'\nprovider_options: {tls: {enabled: false}}\n"
        "cohorts:\n  - {attribute: country, equals: 'NO', variant: challenger}\n"
        "  - {attribute: zip, in: [010, 0x2, 2024-01-05], variant: challenger}\n"
        "  - {attribute: beta, equals: true, variant: challenger}\n"
    )
    p = load_file(tmp_path / 'flags.yaml', FlagsParams)
    assert (p.kill, p.shadow, p.provider_options) == (False, False, {'tls': {'enabled': False}})
    assert [c.equals for c in p.cohorts] == ['NO', None, True] and p.cohorts[1].in_ == ['010', '0x2', '2024-01-05']
    doc = fl.compile_flags(p)
    assert {'===': [{'var': 'country'}, 'NO']} in doc['flags'][fl.MODEL_FLAG]['targeting']['if']
    for text, key in (
        ("cohorts:\n  - {attribute: country, equals: NO, variant: control}\n", 'cohorts.0.equals'),
        ("cohorts:\n  - {attribute: beta, in: [yes], variant: control}\n", 'cohorts.0.in'),
        ("provider: flagd\nprovider_options: {host: flagd.local, tls: {enabled: no}}\n", 'provider_options'),
    ):
        (tmp_path / 'flags.yaml').write_text(text)
        with pytest.raises(ParamsError, match=rf"key '{key}': found \w+ unquoted: .*write true or false .*or quote it"):
            load_file(tmp_path / 'flags.yaml', FlagsParams)


def test_a_spec_edited_by_hand_is_never_made_live_by_the_next_change_and_a_damaged_one_is_named(tmp_path):
    """Editing spec.json outside lifecycle and then changing any flag made the edit live with an audit entry naming
    only the change: the change is refused until `flags init --force` rewrites the spec (the kill switch builds on the
    last spec lifecycle wrote: `test_the_kill_switch_and_a_rollback_build_on_the_last_spec_lifecycle_wrote`). A flag
    file edited by hand is what a change rewrites from the spec."""
    import json

    s = registered_workspace(tmp_path, 'm', versions=2)
    fl.init_flags(s, FlagsParams(control='dev', safe='dev'), 'm', lambda alias: '1', actor='carol')
    spec = json.loads(fl.spec_path(s).read_text())
    fl.spec_path(s).write_text(json.dumps({**spec, 'safe': '2'}))  # the kill switch's target, edited
    for changes in ({'control': '2'}, {'challenger': '2', 'percentage': 5}):
        with pytest.raises(fl.FlagsTampered, match='spec.json: edited outside lifecycle') as e:
            fl.change_flags(s, changes, actor='carol')
        assert e.value.status == 409
    (fl.flags_dir(s) / 'written').rename(tmp_path / 'copies')  # flags of a lifecycle that kept no copy: refused too
    with pytest.raises(fl.FlagsTampered, match='spec.json: edited outside lifecycle'):
        fl.kill(s, actor='carol')
    assert fl.deployed_versions(fl.read_document(fl.flagd_path(s)))['safe'] == '1'  # the live flags as they were
    state = tmp_path / 'rollout.json'  # a rollout under way holds the arms: it cannot act on the edited spec either
    state.write_text(json.dumps({'id': 'r1', 'status': 'running'}))
    fl.set_hold(s, 'rollout', 'r1', '2', state)
    fl.init_flags(s, FlagsParams(control='dev', safe='dev'), 'm', lambda alias: '1', actor='carol', reason='repair')
    with pytest.raises(fl.FlagError, match='held by rollout r1'):  # the spec repaired: the hold holds again
        fl.init_flags(s, FlagsParams(control='dev', safe='dev'), 'm', lambda alias: '1', actor='carol')
    state.unlink()
    assert fl.kill(s, actor='carol').spec.kill and fl.load_spec(s)[0].safe == '1'
    doc = json.loads(fl.flagd_path(s).read_text())
    doc['flags']['shadow']['defaultVariant'] = 'on'  # the flag file edited by hand: its stamp no longer fits it
    fl.flagd_path(s).write_text(json.dumps(doc))
    fl.change_flags(s, {'kill': False}, actor='carol', reason='rewrites the flag file from the spec')
    assert fl.check_live(s, fl.read_document(fl.flagd_path(s)))
    live = fl.flagd_path(s).read_bytes()
    fl.change_flags(s, {'kill': True}, actor='carol', reason='the spec, then its flag file')
    fl.flagd_path(s).write_bytes(live)  # as if the write stopped between the spec and its flag file (a full disk)
    assert fl.read_document(fl.flagd_path(s))['flags']['model-version']['defaultVariant'] == 'control'  # not live
    fl.change_flags(s, {'shadow': False}, actor='carol', reason='lifecycle wrote that spec: the change goes on')
    assert fl.check_live(s, fl.read_document(fl.flagd_path(s))) and fl.load_spec(s)[0].kill
    fl.spec_path(s).write_text(json.dumps({**spec, 'percentage': 'abc', 'cohorts': [{'attribute': 'email',
        'equals': 'ann@example.org', 'variant': 'challenger'}]}))  # fmt: skip
    with pytest.raises(fl.FlagError) as e:  # one line naming the file and key, quoting no value
        fl.load_spec(s)
    assert "key 'percentage'" in str(e.value) and 'flags init --force' in str(e.value) and '\n' not in str(e.value)
    assert 'abc' not in str(e.value) and 'ann@' not in str(e.value)


def test_the_kill_switch_and_a_rollback_build_on_the_last_spec_lifecycle_wrote(tmp_path, capsys, monkeypatch):
    """With spec.json edited by hand (safe pointed at the challenger) or damaged, the kill switch was refused until
    someone repaired the spec: in an emergency. A change that only takes exposure away now builds on the last spec
    lifecycle wrote (its copy under flags/written/), sets the edited one aside, and says so in the audit log, the CLI
    and `flags show`; a change giving exposure is still refused."""
    from lifecycle.app.cli import app
    from lifecycle.core import audit
    from typer.testing import CliRunner

    s = registered_workspace(tmp_path, 'm', versions=2)
    fl.init_flags(s, FlagsParams(control='1', challenger='2', safe='1', percentage=10), 'm', lambda a: a)
    written = fl.read_document(fl.flagd_path(s))['metadata']['revision']
    on_file = json.loads(fl.spec_path(s).read_text())
    fl.spec_path(s).write_text(json.dumps(on_file | {'safe': '2'}))  # the kill switch would send everyone to v2
    with pytest.raises(fl.FlagsTampered, match='edited outside lifecycle'):
        fl.change_flags(s, {'percentage': 50}, actor='carol')  # more exposure: still refused
    spec = fl.kill(s, actor='carol', reason='incident').spec
    assert (spec.kill, spec.safe, spec.percentage, spec.challenger) == (True, '1', 10, '2')
    doc = fl.read_document(fl.flagd_path(s))
    assert fl.check_live(s, doc) and fl.routed_versions(doc) == {'safe': '1'}
    (kept,) = fl.kept_edits(s)
    assert json.loads(kept.read_text())['safe'] == '2'  # the edit set aside, not lost
    last = audit.read(s.audit_path)[-1]
    assert last['action'] == 'flags.change' and last['details']['built_on'] == written
    assert last['details']['edited_kept'] == kept.name
    assert last['details']['changes'] == {'kill': {'old': False, 'new': True}}

    monkeypatch.chdir(s.root)
    fl.spec_path(s).write_text('{"model_name": "m", "safe": ')  # damaged: the flag file's stamp names the last copy
    out = CliRunner().invoke(app, ['flags', 'set', 'challenger=null', 'percentage=0', '--reason', 'rollback'])
    assert out.exit_code == 0, out.output
    assert 'challenger' not in out.output.split(';')[0] and 'kept: ' in out.output and out.output.count('kept: ') == 2
    spec = fl.load_spec(s)[0]
    assert (spec.kill, spec.challenger, spec.percentage, spec.safe) == (True, None, 0, '1')
    shown = CliRunner().invoke(app, ['flags', 'show', '--json'])
    assert shown.exit_code == 0 and len(json.loads(shown.output)['edited_kept']) == 2
    fl.spec_path(s).write_text('{"model_name": "m", "safe": ')
    refused = CliRunner().invoke(app, ['flags', 'set', 'challenger=2', 'percentage=5'])
    assert refused.exit_code != 0 and 'flags init --force' in refused.output and 'Traceback' not in refused.output


def test_a_kill_built_on_the_last_spec_written_holds_in_the_reviews_corners(tmp_path, monkeypatch):
    """Review of the change above: a spec restored from an older copy and then cut was judged against that older
    spec (more share than live went through); a spec this user cannot read was recorded as set aside, then the kill
    failed with a traceback; a deleted spec still blocked the kill; and the kill waited on the tracking server's copy
    of the audit checkpoint before it went live."""
    import pathlib
    from lifecycle.core import audit
    from lifecycle.core.workspace import Workspace

    s = registered_workspace(tmp_path, 'm', versions=2)
    fl.init_flags(s, FlagsParams(control='1', challenger='2', safe='1', percentage=10), 'm', lambda a: a)
    fl.change_flags(s, {'percentage': 50}, actor='carol')
    older = fl.spec_path(s).read_text()  # (a backup of the flags at 50%)
    fl.change_flags(s, {'percentage': 10}, actor='carol')
    fl.spec_path(s).write_text(older.replace('"percentage": 50.0', '"percentage": 30.0'))  # restored, then tweaked
    with pytest.raises(fl.FlagsTampered, match='edited outside lifecycle'):
        fl.change_flags(s, {'percentage': 30}, actor='carol')  # 30% is more than the 10% the server serves
    assert fl.load_spec(s)[0].percentage == 30 and fl.read_document(fl.flagd_path(s)) == fl.compile_flags(
        FlagsParams(control='1', challenger='2', safe='1', percentage=10))  # fmt: skip

    real = pathlib.Path.read_bytes, pathlib.Path.read_text

    def unreadable(which):
        def read(self, *a, **k):
            if self == fl.spec_path(s):
                raise PermissionError(13, 'Permission denied', str(self))
            return (real[0] if which == 'bytes' else real[1])(self, *a, **k)

        return read

    monkeypatch.setattr(pathlib.Path, 'read_bytes', unreadable('bytes'))
    monkeypatch.setattr(pathlib.Path, 'read_text', unreadable('text'))
    assert fl.kill(s, actor='carol', reason='incident').spec.kill  # (a spec rewritten under another user's umask)
    monkeypatch.undo()
    last = audit.read(s.audit_path)[-1]
    assert last['details']['edited_kept'] is None and fl.kept_edits(s) == []  # nothing read, nothing said set aside
    assert fl.check_live(s, fl.read_document(fl.flagd_path(s))) and fl.load_spec(s)[0].percentage == 10

    fl.spec_path(s).unlink()  # deleted while its flag file serves: `flags init` would start again from params
    assert fl.change_flags(s, {'challenger': None, 'percentage': 0}, actor='carol').challenger is None
    assert fl.load_spec(s)[0].kill and fl.check_live(s, fl.read_document(fl.flagd_path(s)))

    seen = []
    monkeypatch.setattr(
        Workspace, 'mirror_checkpoint', lambda self: seen.append(fl.read_document(fl.flagd_path(s))['flags'])
    )
    fl.change_flags(s, {'kill': False}, actor='carol')  # (a change the tracking server's copy must not hold back)
    assert len(seen) == 1 and seen[0][fl.MODEL_FLAG]['defaultVariant'] == 'control'  # live before the copy
    monkeypatch.undo()
    assert fl.served_spec(s)[0] == fl.load_spec(s)[0]  # (what the server serves, as the files show)
    old = fl.flagd_path(s).read_bytes()
    fl.change_flags(s, {'kill': True}, actor='carol')
    fl.flagd_path(s).write_bytes(old)  # an older flag file put back: its gate refuses it, so what it serves is unknown
    assert fl.served_spec(s) is None
    fl.change_flags(s, {'shadow': False}, actor='carol')  # (the files agree again)
    served, spec = fl.served_spec(s), fl.spec_path(s).read_text()
    for damaged in ('{"model_na', spec.replace('"percentage": 0.0', '"percentage": "x"'), None):
        if damaged is None:
            fl.spec_path(s).unlink()
        else:
            fl.spec_path(s).write_text(damaged)
        assert fl.served_spec(s) == served  # damaged, its stamp kept, or gone: the flag file serves on, unchanged
        live = fl.flagd_path(s).read_bytes()
        fl.flagd_path(s).write_bytes(old)  # ... but not an older flag file put back meanwhile (review: its copy is
        assert fl.served_spec(s) is None  # still kept, and the gate refuses it with no spec to check it against)
        fl.flagd_path(s).write_bytes(live)
    fl.spec_path(s).write_text(spec)
    fl.flagd_path(s).write_text('[' * 20_000 + ']' * 20_000)  # (nested past Python's depth: damaged, no traceback)
    assert fl.served_spec(s) is None and fl._last_written(s)[0].kill


@pytest.mark.slow  # trains and signs two tiny versions
def test_the_kill_switch_and_a_rollback_are_never_refused_by_the_release_policy(tmp_path):
    s = registered_workspace(tmp_path, 'm', versions=2)
    fl.init_flags(s, FlagsParams(control='1', challenger='2', safe='1', percentage=10), 'm', lambda a: a)
    for p in (s.state_dir / 'store' / 'records').rglob('*'):  # the deployed versions no longer meet the policy
        if p.is_file() and 'validation' in str(p.parent.name):
            p.unlink()
    assert fl.kill(s, actor='carol', reason='incident').spec.kill is True  # less exposure: applied at once
    assert fl.change_flags(s, {'percentage': 0, 'challenger': None}, actor='carol').challenger is None
    with pytest.raises(fl.FlagError, match='control'):  # more exposure for a version is still checked
        fl.change_flags(s, {'control': '2'}, actor='carol')


@pytest.mark.slow  # trains and signs a tiny model version
def test_a_server_routes_flags_written_before_release_check_verdicts_were_gates_but_a_change_is_refused(tmp_path):
    """The release check's verdict (`model.withheld`, or a check with none) joined the gates every exposure asks, and
    the server asked them of every arm it routes: flags written by an older lifecycle naming a version whose check had
    failed (v1, the safe version here) left the server, at its next start, with no flags at all (not ready, the
    control refused with it). A server routes what it was given, as it does under a floor raised since; a change that
    gives the version exposure is refused, and `govern check` (`serving_check`) names it."""
    from lifecycle.release import exposure

    s = registered_workspace(tmp_path, 'm', versions=2)
    spec = FlagsParams(control='2', safe='1')
    fl.init_flags(s, spec, 'm', lambda a: a)
    s.audit('model.withheld', 'm/1', 'ReleaseCheckFailed: m v1 does not reproduce', alias='dev', holds=False)
    assert fl.policy_refusals(s, 'm', spec, None, routed=True) == []  # (the server's start: `Server._vet`)
    assert fl.policy_refusals(s, 'm', spec.model_copy(update=dict(kill=True)), spec, routed=True) == []  # (a kill)
    refused = fl.policy_refusals(s, 'm', FlagsParams(control='2', challenger='1', safe='2', percentage=10), spec)
    assert len(refused) == 1 and refused[0].startswith('challenger: ') and 'release check: m/1 failed' in refused[0]
    rows = {r['arm']: r for r in exposure.serving_check(s)}
    assert not rows['safe']['ok'] and 'release check: m/1 failed' in rows['safe']['missing'][0]


@pytest.mark.slow  # trains and signs a tiny model version
def test_a_rollback_to_a_champion_whose_check_failed_again_since_is_not_refused_by_that_verdict(tmp_path):
    """A completed rollout's rollback puts its old control back (`change_flags(..., floors=())`, judged by no floor and
    no file check): since the release check's verdict joined the gates, a champion whose check failed when run again
    while it served (`model.withheld`, holds) refused the rollback, and the version rolled back went on serving
    everyone. The verdict is judged where the files are: a person's change is refused."""
    s = registered_workspace(tmp_path, 'm', versions=2)
    fl.init_flags(s, FlagsParams(control='2', safe='1'), 'm', lambda a: a)  # (v2's rollout completed)
    s.audit('model.withheld', 'm/1', 'ReleaseCheckFailed: m v1 does not reproduce', alias='dev', holds=True)
    with pytest.raises(fl.FlagError, match='control: .*release check: m/1 failed'):
        fl.change_flags(s, {'control': '1'}, actor='carol')
    assert fl.change_flags(s, {'control': '1'}, 'carol', 'rollout rolled back', 'rollout', floors=()).control == '1'


def test_a_change_the_audit_log_cannot_record_is_undone_but_the_kill_switch_stays_pulled(tmp_path, monkeypatch):
    "Audit log unwritable (read-only, immutable, full): a change is not left live unrecorded; the kill switch is."
    from conftest import make_audit_unwritable
    from lifecycle.core import audit
    from lifecycle.core.store import read_state
    from lifecycle.serve import tokens

    s = registered_workspace(tmp_path, 'm', versions=2)
    fl.init_flags(s, FlagsParams(control='1', challenger='2', safe='1', percentage=10), 'm', lambda a: a)
    entries = len(audit.read(s.audit_path))
    make_audit_unwritable(monkeypatch)
    with pytest.raises(audit.AuditError, match=r"nothing changed: the audit log .* cannot be written \(Operation not"):
        fl.change_flags(s, {'percentage': 50}, actor='carol')
    live = fl.read_document(fl.flagd_path(s))['metadata']['revision']  # (the flag file the server reads, too)
    assert fl.load_spec(s)[0].percentage == 10 and fl.compile_flags(fl.load_spec(s)[0])['metadata']['revision'] == live
    with pytest.raises(audit.AuditError, match='the kill switch is ON, unrecorded, the rest not made'):
        fl.change_flags(s, {'kill': True, 'percentage': 100}, actor='carol')  # (no more share rides along with it)
    assert (fl.load_spec(s)[0].kill, fl.load_spec(s)[0].percentage) == (True, 10)
    with pytest.raises(audit.AuditError, match='nothing changed'):
        fl.change_flags(s, {'kill': False}, actor='carol')  # (releasing it gives exposure back: undone)
    with pytest.raises(audit.AuditError, match=r'the change is live, unrecorded \(challenger, percentage\)'):
        fl.change_flags(s, {'challenger': None, 'percentage': 0}, actor='carol')  # a rollback only takes exposure away
    spec = fl.load_spec(s)[0]
    assert (spec.kill, spec.challenger, spec.percentage) == (True, None, 0)  # (an emergency is not undone for a record)
    files = {p: p.read_bytes() for p in (fl.spec_path(s), fl.flagd_path(s))}
    with pytest.raises(audit.AuditError, match='nothing changed'):  # starting the flags again would release the kill
        fl.init_flags(s, FlagsParams(control='1', safe='1'), 'm', lambda a: a)
    assert {p: p.read_bytes() for p in files} == files
    with pytest.raises(audit.AuditError, match='no token issued'):
        tokens.issue_token(s, 'carol', Ed25519PrivateKey.generate())
    assert read_state(tokens.tokens_path(s), {}, dict) == {}
    monkeypatch.undo()
    assert len(audit.read(s.audit_path)) == entries


def test_a_flags_change_cut_short_after_its_entry_is_recorded_and_never_live_without_one(tmp_path, monkeypatch):
    """A change was written, then audited: a process killed between the two left it live with no entry (review). The
    entry now comes first and names the revision the change compiles to, so one cut short shows as an entry whose
    revision never went live; a write that fails (a full disk) is put back and says so in the log."""
    from lifecycle.core import audit

    s = registered_workspace(tmp_path, 'm', versions=2)
    fl.init_flags(s, FlagsParams(control='1', challenger='2', safe='1', percentage=10), 'm', lambda a: a)
    live = fl.read_document(fl.flagd_path(s))['metadata']['revision']
    assert audit.read(s.audit_path)[-1]['details']['revision'] == live  # (flags init names its revision too)
    wanted = fl.compile_flags(fl.load_spec(s)[0].model_copy(update={'percentage': 50.0}))['metadata']['revision']

    def killed(*_):
        raise KeyboardInterrupt  # (a stand-in for kill -9 between the entry and the write: nothing after it runs)

    monkeypatch.setattr(fl, '_write', killed)
    with pytest.raises(KeyboardInterrupt):
        fl.change_flags(s, {'percentage': 50}, actor='carol')
    last = audit.read(s.audit_path)[-1]
    assert last['action'] == 'flags.change' and last['details']['revision'] == wanted != live
    assert fl.read_document(fl.flagd_path(s))['metadata']['revision'] == live and fl.load_spec(s)[0].percentage == 10
    monkeypatch.setattr(fl, '_write', lambda *a: (_ for _ in ()).throw(OSError(28, 'No space left on device')))
    with pytest.raises(OSError, match='No space left'):
        fl.change_flags(s, {'percentage': 50}, actor='carol')
    entries = audit.read(s.audit_path)[-2:]
    assert [e['action'] for e in entries] == ['flags.change', 'flags.change.failed']
    assert entries[1]['details']['revision'] == wanted and 'OSError' in entries[1]['reason']
    monkeypatch.undo()
    assert fl.check_live(s, fl.read_document(fl.flagd_path(s))) == live and audit.verify(s.audit_path).ok
    before = fl.flagd_path(s).read_bytes()  # cut short between the spec's write and the flag file's (a review: it
    fl.change_flags(s, {'percentage': 50}, actor='carol')  # was said to be a flag file changed outside lifecycle)
    fl.flagd_path(s).write_bytes(before)
    with pytest.raises(
        fl.FlagsTampered,
        match=f'holds revision {live}, which lifecycle wrote, .* revision {wanted}, '
        'which it wrote after that: a flags change was cut short between its two writes',
    ):
        fl.check_live(s, fl.read_document(fl.flagd_path(s)))
    doc = json.loads(before)
    doc['flags'][fl.MODEL_FLAG]['defaultVariant'] = 'challenger'  # edited by hand: what it says as before
    with pytest.raises(fl.FlagsTampered, match='so it was changed outside lifecycle'):
        fl.check_live(s, doc)


def test_with_the_audit_key_in_another_keys_folder_the_kill_switch_still_pulls_and_nothing_else_changes(
    tmp_path, monkeypatch
):
    """Run as another user (another XDG_DATA_HOME or LIFECYCLE_KEYS_DIR), no new key is made for a log with entries:
    a change is refused (exit 2), but the kill switch, which only takes exposure away, is not held back by the store's
    seal: it goes live and says it is unrecorded."""
    from lifecycle.core import audit
    from lifecycle.core.workspace import Workspace

    s = registered_workspace(tmp_path, 'm', versions=2)
    fl.init_flags(s, FlagsParams(control='1', challenger='2', safe='1', percentage=10), 'm', lambda a: a)
    entries = len(audit.read(s.audit_path))
    monkeypatch.setenv('LIFECYCLE_KEYS_DIR', str(tmp_path / 'other-keys'))
    other = Workspace.open(s.root)
    with pytest.raises(audit.AuditKeyMissing, match=r"^nothing changed: .* holds entries, but this workspace's audit"):
        fl.change_flags(other, {'percentage': 50}, actor='carol')
    assert fl.load_spec(s)[0].percentage == 10
    with pytest.raises(audit.AuditError, match=r'^the change is live, unrecorded \(kill\): .* Run with the keys_dir'):
        fl.kill(other, actor='carol', reason='incident')
    assert fl.load_spec(s)[0].kill and not (tmp_path / 'other-keys').exists()
    monkeypatch.undo()
    assert len(audit.read(s.audit_path)) == entries and audit.verify(s.audit_path).ok
    spec = json.loads(fl.spec_path(s).read_text())  # an unstamped spec (an earlier version's) naming an unsigned safe:
    fl.spec_path(s).write_text(json.dumps({k: v for k, v in spec.items() if k != 'revision'} | {'safe': '7'}))
    with pytest.raises(fl.FlagError, match="safe: .*no version 7"):  # every arm is checked, changed or not
        fl.change_flags(s, {'shadow': False}, actor='carol')


def test_a_check_of_keys_together_is_said_without_a_key_of_its_own():
    """`flags set percentage=50` and `flags shadow on` with no challenger read "key '(top level)': ..." (review AX): the
    validator's message, which names the keys, is said alone, to the CLI and to the admin API (`unnamed`)."""
    old = FlagsParams(control='1', safe='1')
    for change, said in (
        (
            {'percentage': 50},
            'percentage: 50.0 of traffic to the challenger, but no challenger is deployed; expected 0 without one (to '
            'undeploy the challenger, set challenger to null and percentage to 0 together)',
        ),
        (
            {'shadow': True},
            'shadow: on, but no challenger is deployed to score in the shadow; expected off without one (to undeploy '
            'the challenger, set challenger to null and shadow off together)',
        ),
    ):  # (what is expected, too: `flags set challenger=null` alone, in a shadow, was refused with no way out said)
        with pytest.raises(fl.FlagError) as e:
            fl._changed(old, change)
        assert str(e.value) == e.value.unnamed == said, e.value
    with pytest.raises(fl.FlagError, match=r"^key 'percentage': Input should be less than or equal to 100"):
        fl._changed(old, {'percentage': 250})  # (a real key: still named)


def test_values_are_taken_as_typed_and_a_yaml_date_as_its_text():
    """Validated strictly as JSON ("true" is no boolean, "5" no share); `flags set` reads a date or time as the text
    typed (a cohort compares text), and a value JSON has no type for is refused naming its type."""
    import datetime
    from lifecycle.serve.commands import _value

    old = FlagsParams(control='1', challenger='2', safe='1', percentage=10)
    cohorts = _value('[{attribute: signup, equals: 2024-01-01T10:00:00Z, variant: challenger}]')
    assert fl._changed(old, {'cohorts': cohorts}).cohorts[0].equals == '2024-01-01T10:00:00Z'
    assert _value('2024-01-01') == '2024-01-01' and _value('5') == 5 and _value('true') is True
    with pytest.raises(ValueError, match="key 'strict' is given twice"):  # (was taken as text, then refused as such)
        _value('{strict: 0.7, strict: 0.8}')
    with pytest.raises(ValueError, match='a tag on a value it does not fit') as e:  # (it quoted the value: a review)
        _value('[{attribute: email, equals: !!float ann@example.org, variant: challenger}]')
    assert 'ann@' not in str(e.value)
    with pytest.raises(fl.FlagError, match='a value of type date: expected text, a number'):
        fl._changed(old, {'cohorts': [{'attribute': 'x', 'equals': datetime.date(2024, 1, 1), 'variant': 'safe'}]})
    for changes, key in (({'kill': 'true'}, 'kill'), ({'percentage': '5'}, 'percentage')):
        with pytest.raises(fl.FlagError, match=f"key '{key}': Input should be a valid"):
            fl._changed(old, changes)


@pytest.mark.parametrize('text, found', [('{bad', 'damaged JSON'), ('[]', 'a JSON list')])
def test_a_damaged_token_file_is_named_not_a_traceback(tmp_path, text, found):
    from lifecycle.core.store import StateError
    from lifecycle.serve import tokens

    s = registered_workspace(tmp_path, 'm', versions=1)
    tokens.tokens_path(s).parent.mkdir(parents=True, exist_ok=True)
    tokens.tokens_path(s).write_text(text)
    key = Ed25519PrivateKey.generate()
    for call in (lambda: tokens.issue_token(s, 'carol', key), lambda: tokens.token_record(s, 'lc_x')):
        with pytest.raises(StateError, match=rf"tokens.json: expected an object of state, found {found}"):
            call()
    assert tokens.tokens_path(s).read_text() == text  # (nothing issued over it)


@pytest.mark.slow  # trains and signs a tiny model version
def test_with_the_digest_salt_cut_short_the_kill_switch_pulls_and_a_cohort_change_is_refused_before_it_is_live(
    tmp_path,
):
    """A cohort's values reach the audit log only as digests under the workspace's salt: with the salt emptied (a
    crash as it was written), a change naming one is refused, naming the file, before anything is written; the kill
    switch, which digests nothing, pulls and is recorded."""
    from lifecycle.core import audit
    from lifecycle.core.store import StateError

    s = registered_workspace(tmp_path, 'm', versions=2)
    fl.init_flags(s, FlagsParams(control='1', challenger='2', safe='1', percentage=10), 'm', lambda a: a)
    s.digest_salt_path.parent.mkdir(parents=True, exist_ok=True)
    s.digest_salt_path.write_bytes(b'')  # as a crash could leave it (made 600, as `create_once` makes it)
    s.digest_salt_path.chmod(0o600)
    before, entries = fl.spec_path(s).read_bytes(), len(audit.read(s.audit_path))
    cohort = [{'attribute': 'email', 'equals': 'jane.roe@example.com', 'variant': 'challenger'}]
    with pytest.raises(StateError, match=r"digest.salt: expected the workspace's digest salt .* found 0 byte"):
        fl.change_flags(s, {'cohorts': cohort}, actor='carol')
    assert fl.spec_path(s).read_bytes() == before and len(audit.read(s.audit_path)) == entries
    assert fl.kill(s, actor='carol', reason='incident').spec.kill
    last = audit.read(s.audit_path)[-1]
    assert last['action'] == 'flags.change' and last['details']['changes']['kill'] == {'old': False, 'new': True}
    assert 'jane.roe' not in s.audit_path.read_text()


def test_a_cohort_of_false_or_zero_takes_no_request_without_the_attribute_and_flags_set_reads_yaml_1_2(tmp_path):
    """Found by review: json-logic's loose `==` matched a request without the attribute (null) to a cohort's `false` or
    `0`, so such a cohort took all of them (and review Z: flagd's Python `===` and `in` took `1` for `true`); and
    `flags set` read Norway's `NO` as false, `0x2` as 2 and `010` as 8."""
    import time
    from lifecycle.serve.commands import _value

    spec = FlagsParams(
        control='1',
        safe='1',
        challenger='2',
        percentage=0,
        cohorts=[
            {'attribute': 'internal', 'equals': False, 'variant': 'challenger'},
            {'attribute': 'tier', 'equals': 0, 'variant': 'challenger'},
            {'attribute': 'staff', 'equals': True, 'variant': 'challenger'},
            {'attribute': 'level', 'in': [0, 1], 'variant': 'challenger'},
        ],
    )
    path = tmp_path / 'flags.flagd.json'
    path.write_text(json.dumps(fl.compile_flags(spec)))
    client = fl.FlagClient(fl.make_provider(FlagsParams(control='1', safe='1'), path), domain='cohort-test')
    try:
        end = time.monotonic() + 5
        while client.route(client.context('k'))[0] == 'error':  # (the file provider's first read)
            assert time.monotonic() < end
            time.sleep(0.05)
        for attrs, variant in (
            ({}, 'control'),
            ({'other': 1}, 'control'),
            ({'internal': False}, 'challenger'),
            ({'tier': 0}, 'challenger'),
            ({'internal': True, 'tier': 1}, 'control'),
            ({'staff': True}, 'challenger'),  # review Z: Python's True == 1 let a 1 into a cohort of true, and
            ({'staff': 1}, 'control'),  # true into one of [0, 1]; flagd's other evaluators compare strictly
            ({'internal': 0, 'tier': False, 'level': True}, 'control'),
            ({'level': 1.0}, 'challenger'),
            ({'level': '1'}, 'control'),
        ):
            ctx = client.context('k', attrs)
            assert client.route(ctx, plain=True)[0] == variant, attrs  # the fast path
            assert client.client.get_string_details(fl.MODEL_FLAG, '', ctx).variant == variant, attrs  # OpenFeature's
    finally:
        client.close()
    assert not any(fl._strict_in(None, n, h) for n, h in (([True], [[1]]), ([1], [[1]]), ({'a': 1}, [{'a': 1}])))
    # (review AF: JavaScript's indexOf compares a list or an object by reference: in no list)
    assert [_value(x) for x in ('NO', 'yes', 'off', 'true', 'False', '0x2', '010', '2', '-3')] == [
        'NO',
        'yes',
        'off',
        True,
        False,
        '0x2',
        '010',
        2,
        -3,
    ]


def test_a_cohort_or_threshold_of_nan_or_infinity_is_refused():
    "Found by review: NaN was written into the flag files as JSON no flagd service can read, and shown as null."
    from pydantic import ValidationError

    for bad in (
        dict(cohorts=[{'attribute': 'a', 'equals': float('nan'), 'variant': 'control'}]),
        dict(cohorts=[{'attribute': 'a', 'in': [1, float('inf')], 'variant': 'control'}]),
        dict(threshold={'variants': {'default': float('nan')}}),
    ):
        with pytest.raises(ValidationError):
            FlagsParams(control='1', safe='1', challenger='2', **bad)


def test_flags_written_before_cohorts_compared_strictly_still_verify_and_take_the_kill_switch(tmp_path, monkeypatch):
    """Found by review: a spec and flag file written by the lifecycle before stop 59 (cohorts compiled with `==`) read
    as edited by hand once cohorts compiled with `===`: the kill switch, rollbacks and the gate refused them."""
    s = registered_workspace(tmp_path, 'm', versions=2)
    real = fl._rule
    monkeypatch.setattr(fl, '_rule', lambda c, equality='===': real(c, '=='))  # the code before
    cohort = [{'attribute': 'internal', 'equals': True, 'variant': 'challenger'}]
    fl.init_flags(
        s, FlagsParams(control='1', challenger='2', safe='1', percentage=10, cohorts=cohort), 'm', lambda a: a
    )
    old = json.loads(fl.flagd_path(s).read_text())
    assert '==' in json.dumps(old) and '===' not in json.dumps(old)
    monkeypatch.setattr(fl, '_rule', real)  # upgraded
    assert fl.check_live(s, old) == old['metadata']['revision']
    assert fl.kill(s, actor='carol', reason='incident').spec.kill
    fl.change_flags(s, {'kill': False}, actor='carol', reason='over')
    assert '===' in fl.flagd_path(s).read_text()  # (rewritten by the changes: strict from here)


def test_a_part_of_the_threshold_changes_that_part_and_keeps_the_rest(tmp_path):
    """`flags set 'threshold={default: strict}'` replaced the whole threshold with its defaults but for `default`, and
    was refused naming ['default'] as its only variants (review K). A part given changes that part."""
    s = registered_workspace(tmp_path, 'm', versions=2)
    spec = FlagsParams(control='1', safe='1', threshold={'variants': {'default': 0.5, 'strict': 0.8}})
    fl.init_flags(s, spec, 'm', lambda a: a)
    new = fl.change_flags(s, {'threshold': {'default': 'strict'}}, actor='carol', reason='stricter')
    assert new.threshold.default == 'strict' and new.threshold.variants == {'default': 0.5, 'strict': 0.8}
    with pytest.raises(fl.FlagError, match=r"not one of the threshold variants \['default', 'strict'\]"):
        fl.change_flags(s, {'threshold': {'default': 'lenient'}}, actor='carol', reason='x')


def test_a_cohort_value_that_does_not_fit_is_never_quoted_in_the_refusal(tmp_path):
    "What a cohort compares with may be a person's (an e-mail address): refused, its kind is said, never its value."
    from lifecycle.core.params import ParamsError, load_file

    bad = {'attribute': 'email', 'in': 'bob@example.org', 'variant': 'challenger'}
    for changes in ({'cohorts': [bad]}, {'threshold.cohorts': [{**bad, 'variant': 'strict'}]}):
        with pytest.raises(fl.FlagError) as e:
            fl._changed(FlagsParams(threshold={'variants': {'default': 0.5, 'strict': 0.7}}), changes)
        assert "cohorts.0.in': Input should be a valid array; found a str" in str(e.value)
        assert 'bob@example.org' not in str(e.value) and 'bob@example.org' not in (e.value.unnamed or '')
    (tmp_path / 'flags.yaml').write_text("cohorts: [{attribute: email, in: bob@example.org, variant: challenger}]\n")
    with pytest.raises(ParamsError, match=r"key 'cohorts.0.in': .* found a str") as e:
        load_file(tmp_path / 'flags.yaml', FlagsParams)
    assert 'bob@example.org' not in str(e.value)
    with pytest.raises(fl.FlagError, match="key 'percentage'.*found 250"):  # (a share is no one's: still said)
        fl._changed(FlagsParams(), {'percentage': 250})


def test_a_holders_state_with_a_status_it_cannot_read_holds_as_a_damaged_one_does(tmp_path):
    """A rollout's state whose status was edited to a word no rollout has (`"status": "on"`) is damaged to the rollout
    (`rollout status`: "while it is damaged the flags stay held"), but the hold read it as ended: `flags set
    percentage=7` went through. With the holder's end statuses on record, any other status holds; an end ends it."""
    from types import SimpleNamespace

    s = SimpleNamespace(state_dir=tmp_path / '.lifecycle')  # (what a hold reads of the workspace)
    state = tmp_path / 'rollout.json'
    fl.set_hold(s, 'rollout', 'r1', '2', state, ended=('completed', 'rolled_back', 'killed'))
    for st, holds in (
        ({'id': 'r1', 'status': 'running'}, True),
        ({'id': 'r1', 'status': 'on'}, True),  # damaged
        ({'id': 'r1', 'status': ['running']}, True),
        ({'id': 5, 'status': 'running'}, True),  # damaged: whose state it is cannot be read
        ({'id': 'r1'}, True),
        ({'id': 'r1', 'status': 'killed'}, False),  # ended
        ({'id': 'r2', 'status': 'running'}, True),  # its id edited (review DG: released the hold), nothing ended
        ({'id': None, 'status': 'running'}, True),  # (review DI: released by the mend of DG)
        ({'status': 'running'}, True),
        ({'id': 'r2', 'status': 'completed'}, False),  # another rollout's state, ended
    ):
        state.write_text(json.dumps(st))
        assert (fl.load_hold(s) is not None) == holds, st
    state.write_text(json.dumps({'id': 'r1', 'status': 'on'}))
    fl.set_hold(s, 'rollout', 'r1', '2', state)  # (a hold of an older lifecycle: no end statuses on record, as before)
    assert fl.load_hold(s) is None


@pytest.mark.parametrize('given, meant', [('02', '2'), ('\uff12', '2'), ('\u00b2', None), ('007', '7')])
def test_a_version_in_other_digits_than_the_registrys_is_refused_as_such_not_as_unsigned(given, meant):
    """`challenger=02` (or a fullwidth `２`) passed as a version number: the registry found its v2, whose signature is
    kept under `2`, so the change was refused as "version 02 is not signed", and `02` was not the control `2`."""
    old = FlagsParams(control='1', safe='1')
    with pytest.raises(fl.FlagError) as e:
        fl._check_arms(old, old.model_copy(update={'challenger': given}), None, 'cli')
    said = f"challenger: expected a version number (ASCII digits, no leading zero), found {given!r}"
    assert str(e.value) == said + (f"; did you mean {meant}?" if meant else ''), str(e.value)
    for fine in ('2', '0', '10'):
        fl._check_arms(old, old.model_copy(update={'challenger': fine}), None, 'cli')


@pytest.mark.slow  # trains and signs a tiny model version
def test_a_folder_where_a_flags_file_belongs_is_named_when_a_change_cannot_write_it(tmp_path):
    """A folder in the flag file's place failed every change (the kill switch, a rollout's start) with the rename's own
    error, `[Errno 21] Is a directory: '.../.flags.flagd.json.x.tmp' -> ...`, exit 1; now the file is named, and what
    was found there, as a damaged state file (exit 4)."""
    from lifecycle.core.store import StateError

    s = registered_workspace(tmp_path, 'm', versions=1)
    fl.init_flags(s, FlagsParams(control='dev', safe='dev'), 'm', lambda alias: '1', actor='carol')
    for path in (fl.flagd_path(s), fl.spec_path(s)):
        was = path.read_bytes()
        path.unlink()
        path.mkdir()
        with pytest.raises(fl.FlagsDamaged) as e:
            fl.change_flags(s, {'kill': True}, actor='carol')
        assert isinstance(e.value, StateError) and str(e.value).startswith(f"{path}: expected the flags file, found a")
        assert '.tmp' not in str(e.value) and 'Errno' not in str(e.value)
        path.rmdir()
        path.write_bytes(was)
    assert not fl.load_spec(s)[0].kill


@pytest.mark.parametrize('given,taken', [('02', '2'), (' 7', '7'), ('dev', 'dev')])
def test_flags_set_reads_an_arms_version_as_the_clis_other_commands_do(workspace, monkeypatch, given, taken):
    """Review DG: `rollout start --challenger 02` and `promote ... 007` read the version as the registry writes it,
    `flags set challenger=02` was refused (no leading zero): one reading on the command line now; an alias as given.
    params/flags.yaml and the admin API still refuse `02` (a spec says the version as it is signed)."""
    from conftest import cli
    from lifecycle.serve import commands

    taken_by = {}
    monkeypatch.setattr(commands, '_change', lambda changes, reason: taken_by.update(changes) or 0)
    cli(workspace, 'flags', 'set', f'challenger={given}')
    assert taken_by == {'challenger': taken}
    for odd in ('２', '+3'):  # (+3: a number to YAML, no version to the other commands, review DI)
        r = cli(workspace, 'flags', 'set', f'challenger={odd}')
        assert r.returncode == 2 and 'challenger: expected a version number in the digits 0-9' in r.stderr + r.stdout


def test_a_cohort_predict_would_refuse_to_match_is_refused_in_flags_yaml(tmp_path):
    """review EI: /predict refuses a context attribute named in more than 64 characters or a text over 200 (27a4d1aa),
    yet flags.yaml took a cohort on such a name or value, which then matched no request: every request carrying it was
    answered 422 and the cohort never reached its variant, said nowhere. The cohort is refused as /predict would."""
    from lifecycle.core.params import ParamsError, load_file
    from lifecycle.serve.scoring import _CONTEXT_LIMITS

    names, texts = _CONTEXT_LIMITS[1:]
    head = "control: '1'\nsafe: '1'\nchallenger: '2'\ncohorts:\n"
    ok = f"  - {{attribute: {'a' * names}, in: ['{'x' * texts}'], variant: challenger}}\n"
    (tmp_path / 'flags.yaml').write_text(head + ok)
    assert load_file(tmp_path / 'flags.yaml', FlagsParams).cohorts[0].attribute == 'a' * names
    for cohort in (
        f"{{attribute: {'a' * (names + 1)}, equals: x, variant: challenger}}",
        f"{{attribute: plan, equals: '{'x' * (texts + 1)}', variant: challenger}}",
        f"{{attribute: plan, in: [a, '{'x' * (texts + 1)}'], variant: challenger}}",
    ):
        (tmp_path / 'flags.yaml').write_text(head + f"  - {cohort}\n")
        with pytest.raises(ParamsError) as e:
            load_file(tmp_path / 'flags.yaml', FlagsParams)
        assert 'cohorts.0' in str(e.value) and 'characters' in str(e.value) and 'x' * 20 not in str(e.value)
    from lifecycle.core.params import _COHORT_CHARS  # (the layer below serving keeps its own copy: the same)

    assert _COHORT_CHARS == (names, texts)


def test_a_spec_edited_by_hand_is_refused_alike_by_flags_show_govern_check_and_score(tiny_template, tmp_path):
    """`flags show` and the server refuse a spec.json edited by hand (it no longer compiles to the flag file lifecycle
    wrote), but `govern check` checked the edited arms as what serves and `score` scored with the version the edit
    named. All three read the flags through one verified reader now: the same message naming the spec, the same exit
    code, and nothing scored."""
    from conftest import cli, copy_workspace
    from sklego.datasets import load_arrests

    ws = copy_workspace(tiny_template, tmp_path / 'ws')
    load_arrests(as_frame=True).head(5).to_csv(tmp_path / 'in.csv', index=False)
    spec = ws / '.lifecycle' / 'flags' / 'spec.json'
    spec.write_text(json.dumps({**json.loads(spec.read_text()), 'control': '2'}))  # the edit: everyone to v2
    said = []
    for args in (
        ['flags', 'show'],
        ['govern', 'check'],
        ['score', '--input', str(tmp_path / 'in.csv'), '--output', str(tmp_path / 'out.csv')],
    ):
        r = cli(ws, *args)
        assert r.returncode == 2 and 'Traceback' not in r.stderr, (args, r.returncode, r.stdout, r.stderr)
        said.append(r.stderr)
    assert len(set(said)) == 1 and f'{spec}: edited outside lifecycle' in said[0], said
    assert 'flags init --force' in said[0] and not (tmp_path / 'out.csv').exists()


@pytest.mark.slow  # trains and signs a tiny model version
def test_a_change_made_again_after_a_running_server_refused_it_makes_that_server_look_again(tmp_path):
    """A running server refuses flags its environment's policy does not allow (a production server, `flags set` run
    in dev); the way out is to give what it asks for (the approval), then make the change again, which rewrote the flag
    file, and the server looked again. A change to what the flags already say is not written (review: a no-op is no
    audited change), so the server that refused them never looked again: it served the last good flags on, and `flags
    set` said 'no change'. It is still no change, neither written nor audited, but the servers look again."""
    from lifecycle import audit
    from lifecycle.serve.gate import FlagGate

    s = registered_workspace(tmp_path, 'm', versions=2)
    fl.init_flags(s, FlagsParams(control='dev', safe='dev'), 'm', lambda alias: '1', actor='carol')
    refusals = []  # (what the server's environment asks and is not given: its policy, as `Server._vet` says it)
    gate = FlagGate(s, lambda v: v, lambda *a: None, vet=lambda spec, name, last: list(refusals))
    try:
        assert gate.check() and gate.valid
        refusals.append('variant control: version 2 needs a verified production approval')
        fl.change_flags(s, {'control': '2'}, actor='carol', reason='to v2')
        assert not gate.check() and not gate.valid and 'production approval' in gate.problem  # the last good flags
        refusals.clear()  # (the approval given)
        since = len(audit.read(s.audit_path))
        spec, changed = fl.change(s, {'control': '2'}, actor='carol', reason='to v2, approved now')
        assert not changed and spec.control == '2' and len(audit.read(s.audit_path)) == since  # (no change: none)
        assert gate.check() and gate.valid and gate.live.versions['control'] == '2'  # (it looked again)
    finally:
        gate.active.unlink(missing_ok=True)
