"""The workspace handle and its state format: a new workspace is stamped with the current format; state written
before formats were recorded (what today's main leaves) is refused by every command except `lifecycle migrate`,
migrated, then accepted; a newer format is refused, naming it; light commands never import MLflow."""

from __future__ import annotations
import json
import os
import shutil
import re
import subprocess
import sys
from pathlib import Path
import pytest
from conftest import cli, cli_json, clean_env, make_workspace


def datasets(ws: Path) -> list[str]:
    d = ws / '.lifecycle/store/records/datasets'
    return sorted(p.name for p in d.glob('*.json')) if d.is_dir() else []


@pytest.fixture
def old_ws(tmp_path, arrests) -> Path:
    "A workspace whose state an older lifecycle wrote: a stored batch, its audit entries, no FORMAT file."
    ws = make_workspace(tmp_path / 'ws')
    arrests.head(200).to_csv(ws / 'batch.csv', index=False)
    r = cli(ws, 'ingest', 'batch.csv', '--dataset', 'arrests', '--no-report')
    assert r.returncode == 0, r.stderr
    state = ws / '.lifecycle'
    for name in ('FORMAT', 'workspace.id', 'audit.log', 'audit.payloads.jsonl'):
        (state / name).unlink(missing_ok=True)
    for rec in (state / 'store' / 'records').rglob('*.json'):  # (an older lifecycle sealed no record)
        rec.chmod(0o644)
        rec.write_text(json.dumps({k: v for k, v in json.loads(rec.read_text()).items() if k != '_seal'}))
    from lifecycle.core.store import canonical_json, sha256_bytes  # the audit log as the older lifecycle wrote it

    entry = dict(
        seq=1,
        time='2026-11-01T00:00:00+00:00',
        actor='ada',
        action='dataset.snapshot',
        subject='arrests',
        reason='a batch stored by the older version',
        details={},
        prev_hash='0' * 64,
    )
    entry['hash'] = sha256_bytes(canonical_json(entry).encode())
    (state / 'audit.log').write_text(canonical_json(entry) + '\n')
    return ws


def test_a_new_workspace_is_stamped_with_the_current_format(workspace):
    from lifecycle.core.workspace import latest_format

    assert not (workspace / '.lifecycle').exists()
    r, st = cli_json(workspace, 'status')
    assert r.returncode == 0 and st['models'] == []
    assert (workspace / '.lifecycle/FORMAT').read_text() == f'{latest_format()}\n'


def test_a_state_folder_holding_only_keys_counts_as_new(workspace):
    from lifecycle.core.workspace import Workspace, latest_format

    (workspace / '.lifecycle/keys').mkdir(parents=True)  # a key put in place before the first run
    ws = Workspace.open(workspace)
    assert (ws.state_dir / 'FORMAT').read_text() == f'{latest_format()}\n'


@pytest.mark.slow  # eight CLI processes, two of them ingesting
def test_an_older_workspace_is_refused_then_migrated_then_accepted(old_ws):
    before = datasets(old_ws)
    for args in (
        ('status',),
        ('audit', 'verify'),
        ('ingest', 'batch.csv', '--dataset', 'arrests'),
        ('run', '--no-site'),
        ('flags', 'show'),
        ('rollout', 'status'),
    ):
        r = cli(old_ws, *args)
        msg = ' '.join(r.stderr.split())
        assert r.returncode == 2 and 'run `lifecycle migrate`' in msg and 'workspace format 0' in msg, (args, r.stderr)
        assert 'Traceback' not in r.stderr
    assert datasets(old_ws) == before and not (old_ws / 'reports/runs').exists()  # nothing ran
    r, out = cli_json(old_ws, 'migrate')
    assert r.returncode == 0 and out['ok'], r.stderr
    from lifecycle.core.workspace import latest_format

    latest = latest_format()  # every step from format 1 on, in order
    assert (out['from_format'], out['to_format']) == (0, latest)
    assert [s['format'] for s in out['steps']] == list(range(1, latest + 1))
    assert (old_ws / '.lifecycle/FORMAT').read_text() == f'{latest}\n'
    r, st = cli_json(old_ws, 'status')
    assert r.returncode == 0 and len(st['datasets']) == 1  # the old state reads as before
    from lifecycle.core.audit import read

    log = read(old_ws / '.lifecycle/audit.log')
    mig = [e for e in log if e['action'] == 'workspace.migrate']
    assert len(mig) == latest and mig[0]['details']['from_format'] == 0 and mig[-1]['details']['to_format'] == latest
    assert cli(old_ws, 'audit', 'verify').returncode == 0
    r, again = cli_json(old_ws, 'migrate')
    assert r.returncode == 0 and again['steps'] == [] and again['from_format'] == again['to_format'] == latest
    assert 'nothing to migrate' in cli(old_ws, 'migrate').stdout


def test_a_newer_or_unreadable_format_is_refused_naming_it(workspace):
    assert cli(workspace, 'status').returncode == 0
    fmt = workspace / '.lifecycle/FORMAT'
    fmt.write_text('7\n')
    for args in (('status',), ('migrate',)):
        r = cli(workspace, *args)
        assert r.returncode == 2 and 'workspace format 7 is newer' in ' '.join(r.stderr.split()), (args, r.stderr)
    fmt.write_text('seven\n')
    r = cli(workspace, 'status')
    assert (
        r.returncode == 4  # (a damaged state file; review AH: it was 2)
        and str(fmt) in ' '.join(r.stderr.split())
        and 'expected the workspace format version' in r.stderr
    )


def test_a_state_folder_that_cannot_be_made_is_refused_cleanly(workspace):
    "A file where the state folder should go is said to be one (it was \"cannot create ... (File exists)\": review AX)."
    (workspace / 'taken').write_text('a file, where the state folder should go')
    r = cli(workspace, 'status', env={'LIFECYCLE_STATE_DIR': 'taken'})
    msg = ' '.join(r.stderr.split())
    said = f"{workspace / 'taken'}: cannot hold the workspace's state: {workspace / 'taken'} is a file, not a folder"
    assert r.returncode == 2 and said in msg and 'check state_dir in settings.ini' in msg and 'Traceback' not in msg


def test_light_commands_never_import_mlflow(workspace):
    "`--help`, `status` on a workspace without tracking, and `audit verify` answer without importing MLflow."
    code = (
        "import sys; from typer.testing import CliRunner; from lifecycle.app.cli import app\n"
        "for args in (['--help'], ['status'], ['audit', 'verify']):\n"
        "    r = CliRunner().invoke(app, args); assert r.exit_code == 0, (args, r.output)\n"
        "print('mlflow' in sys.modules)"
    )
    r = subprocess.run(
        [sys.executable, '-c', code], cwd=workspace, env=clean_env(), capture_output=True, text=True, timeout=120
    )
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip().splitlines()[-1] == 'False'


def test_a_workspace_being_stamped_by_another_process_is_not_old_state(tmp_path):
    from lifecycle.core.workspace import stored_format

    state = tmp_path / '.lifecycle'
    (state / 'locks').mkdir(parents=True)
    (state / '.FORMAT.k2j4.tmp').write_text('1\n')  # what a concurrent first open leaves for an instant
    assert stored_format(state) is None
    (state / 'store').mkdir()
    assert stored_format(state) == 0  # real state without a format is still old state


def test_a_copied_workspace_reads_its_own_remembered_params(tmp_path):
    import shutil
    from lifecycle.core.workspace import Workspace, remember_params

    a = tmp_path / 'a'
    (a / 'params-b').mkdir(parents=True)
    (a / 'settings.ini').write_text('[workspace]\n')
    remember_params(Workspace.open(a, params_dir=a / 'params-b'))  # what `lifecycle run --params params-b` does
    assert (a / '.lifecycle' / 'params_dir').read_text().strip() == 'params-b'  # relative to the workspace
    shutil.copytree(a, tmp_path / 'copy')
    assert Workspace.open(tmp_path / 'copy').params_dir == (tmp_path / 'copy' / 'params-b').resolve()


def test_a_format_4_workspace_moves_to_one_alias_family(trained):
    """Before format 5 the first registration made version 1 `champion` (and `challenger`) with no approval, and the
    params named those aliases. `lifecycle migrate` gives the champion's version the first environment's alias (dev),
    removes the old aliases from the registry (audited, so the audit log and the registry still agree) and from the
    params; a server then serves dev's alias."""
    import yaml
    from lifecycle.core import audit
    from lifecycle.core.params import ParamsError
    from lifecycle.core.workspace import Workspace, WorkspaceFormatError, write_format
    from lifecycle.model.registry import alias_mismatches, audited_aliases
    from lifecycle.serve import flags as fl

    name = 'arrests-release'
    w = Workspace.open(trained)
    assert {k: str(v) for k, v in w.client.get_registered_model(name).aliases.items()} == {'dev': '1'}
    # what format 4 left: champion and challenger on version 1 (audited), no dev; params naming them
    w.client.delete_registered_model_alias(name, 'dev')
    for a in ('champion', 'challenger'):
        w.client.set_registered_model_alias(name, a, '1')
    w.audit('model.promote', f'{name}/1', 'the old family', alias='champion')
    w.audit('model.promote', f'{name}/1', 'the old family', alias='challenger')
    log = audit.read(w.audit_path)
    assert audited_aliases(None, name, entries=log)['dev'] == '1'  # (registered, checked, then given dev: review DU)
    reg, flags = trained / 'params/register.yaml', trained / 'params/flags.yaml'
    reg.write_text(reg.read_text() + 'challenger_alias: challenger\nchampion_alias: champion\n')
    old_flags = flags.read_text()
    flags.write_text(old_flags.replace('control: null', 'control: champion').replace('safe: null', 'safe: champion'))
    write_format(w.state_dir, 4)

    with pytest.raises(WorkspaceFormatError, match='lifecycle migrate'):
        Workspace.open(trained)
    with pytest.raises(ParamsError, match=r"register.yaml.*champion_alias.*lifecycle migrate"):
        Workspace.open(trained, migrating=True).params  # the old keys are named, with the way out
    r, out = cli_json(trained, 'migrate')
    assert r.returncode == 0 and [s['step'] for s in out['steps']] == ['one_alias_family'], r.stderr
    did = out['steps'][0]['did']
    assert 'challenger (v1), champion (v1) removed, dev -> v1' in did and 'register.yaml, flags.yaml' in did, did

    w = Workspace.open(trained)
    assert {k: str(v) for k, v in w.client.get_registered_model(name).aliases.items()} == {'dev': '1'}
    assert audited_aliases(w.audit_path, name) == {'dev': '1'} and alias_mismatches(w.client, w.audit_path, name) == []
    moved = [e for e in audit.read(w.audit_path) if e['action'] == 'model.alias_migrate']
    assert len(moved) == 1 and moved[0]['details']['removed'] == ['challenger', 'champion']
    assert yaml.safe_load(reg.read_text()) == {'model_name': name} and flags.read_text() == old_flags
    assert w.params['register'].model_name == name  # the params load again
    spec = fl.resolve_spec(
        w.params['flags'], lambda a: str(w.client.get_model_version_by_alias(name, a).version), 'dev'
    )
    assert (spec.control, spec.safe) == ('1', '1')  # a dev server serves dev's alias
    assert cli(trained, 'audit', 'verify').returncode == 0
    assert migrate_again(trained) == []


def migrate_again(ws: Path) -> list:
    r, out = cli_json(ws, 'migrate')
    assert r.returncode == 0, r.stderr
    return out['steps']


def test_a_migration_killed_before_its_registry_move_is_finished_by_the_next(trained, monkeypatch):
    """The alias move is audited before the registry moves: a crash between setting dev and removing champion leaves
    an alias the audit log already knows, and migrating again finishes the step."""
    from mlflow.tracking import MlflowClient
    from lifecycle.core.workspace import Workspace, migrate, write_format
    from lifecycle.model.registry import alias_mismatches

    name = 'arrests-release'
    w = Workspace.open(trained)
    w.client.delete_registered_model_alias(name, 'dev')
    w.client.set_registered_model_alias(name, 'champion', '1')
    w.audit('model.promote', f'{name}/1', 'the old family', alias='champion')
    reg = trained / 'params/register.yaml'
    reg.write_text(reg.read_text() + 'champion_alias: champion\n')
    write_format(w.state_dir, 4)
    real = MlflowClient.delete_registered_model_alias

    def killed(self, *a, **k):
        raise KeyboardInterrupt  # the process dies after dev was set, before champion is removed

    monkeypatch.setattr(MlflowClient, 'delete_registered_model_alias', killed)
    with pytest.raises(KeyboardInterrupt):
        migrate(Workspace.open(trained, migrating=True))
    assert str(Workspace.open(trained, migrating=True).client.get_model_version_by_alias(name, 'dev').version) == '1'
    monkeypatch.setattr(MlflowClient, 'delete_registered_model_alias', real)
    r, out = cli_json(trained, 'migrate')
    assert r.returncode == 0 and [s['step'] for s in out['steps']] == ['one_alias_family'], r.stderr
    w = Workspace.open(trained)
    assert {k: str(v) for k, v in w.client.get_registered_model(name).aliases.items()} == {'dev': '1'}
    assert alias_mismatches(w.client, w.audit_path, name) == []


def test_a_second_migration_waits_for_the_first_and_runs_no_step_again(workspace, monkeypatch):
    """Two `lifecycle migrate` at once: the second waits for the first (told who holds it), then finds the workspace at
    the latest format. Both ran every step (each audited twice), and the slower one wrote an older FORMAT back."""
    import threading
    from lifecycle.core import workspace as wsmod
    from lifecycle.core.audit import read

    (workspace / '.lifecycle/store').mkdir(parents=True)  # state an older lifecycle wrote: no FORMAT file
    inside, settled, out, waited = threading.Event(), threading.Event(), {}, []
    real = wsmod.MIGRATIONS[2]

    def slow_step(ws):  # the first migration stops in its second step until the second one waits (or is done)
        if not inside.is_set():
            inside.set()
            assert settled.wait(30)
        return real(ws)

    monkeypatch.setitem(wsmod.MIGRATIONS, 2, slow_step)

    def run(name, **kw):
        try:
            out[name] = wsmod.migrate(wsmod.Workspace.open(workspace, migrating=True), **kw)
        finally:
            settled.set()

    first = threading.Thread(target=run, args=('first',))
    first.start()
    assert inside.wait(30)
    told = dict(on_wait=lambda h: (waited.append(h), settled.set()))
    second = threading.Thread(target=run, args=('second',), kwargs=told)
    second.start()
    first.join(30)
    second.join(30)
    latest = wsmod.latest_format()
    assert out['first']['to_format'] == latest and len(out['first']['steps']) == latest
    assert waited and waited[0]['pid'] == os.getpid()  # (told who holds the migration)
    assert out['second'] == dict(from_format=latest, to_format=latest, steps=[])
    assert (workspace / '.lifecycle/FORMAT').read_text() == f'{latest}\n'
    log = read(workspace / '.lifecycle/audit.log')
    assert [e['details']['to_format'] for e in log if e['action'] == 'workspace.migrate'] == list(range(1, latest + 1))


def test_a_migration_killed_in_its_first_step_leaves_the_workspace_old_not_new(workspace, monkeypatch):
    """The first step makes workspace.id, which marks state this version wrote: killed before FORMAT 1 was written,
    the workspace was taken for a new one and stamped the latest format, every later step skipped for good."""
    from lifecycle.core import workspace as wsmod

    (workspace / '.lifecycle/store').mkdir(parents=True)  # state an older lifecycle wrote: no FORMAT file
    real = wsmod.write_format

    def killed(state_dir, version):  # the process dies once its first step is done and audited
        if version:
            raise KeyboardInterrupt
        return real(state_dir, version)

    monkeypatch.setattr(wsmod, 'write_format', killed)
    with pytest.raises(KeyboardInterrupt):
        wsmod.migrate(wsmod.Workspace.open(workspace, migrating=True))
    monkeypatch.setattr(wsmod, 'write_format', real)
    assert (workspace / '.lifecycle/workspace.id').is_file()
    with pytest.raises(wsmod.WorkspaceFormatError, match='workspace format 0'):
        wsmod.Workspace.open(workspace)  # still old: every other command refuses it
    out = wsmod.migrate(wsmod.Workspace.open(workspace, migrating=True))
    latest = wsmod.latest_format()
    assert out['from_format'] == 0 and [st['format'] for st in out['steps']] == list(range(1, latest + 1))


def test_a_migration_stopped_by_damaged_state_exits_as_any_command_would(workspace):
    """A damaged record exits 4 and an old audit log whose chain is broken 3, as README's exit codes say of every
    command: `migrate` said 1, a failed stage, of both."""
    records = workspace / '.lifecycle/store/records/datasets'
    records.mkdir(parents=True)  # state an older lifecycle wrote: no FORMAT file
    (records / 'x.json').write_text('{"version": "x", dam')
    r, out = cli_json(workspace, 'migrate')
    assert r.returncode == 4 and 'migration stopped' in out['error'] and str(records / 'x.json') in out['error']
    shutil.rmtree(workspace / '.lifecycle')  # (another older workspace: its audit log alone)
    (workspace / '.lifecycle').mkdir()
    old = dict(seq=1, time='2026-11-01T00:00:00+00:00', actor='ada', action='x', subject='', reason='', details={})
    (workspace / '.lifecycle/audit.log').write_text(json.dumps(dict(old, prev_hash='0' * 64, hash='f' * 64)) + '\n')
    r, out = cli_json(workspace, 'migrate')
    assert r.returncode == 3 and 'the old chain is broken' in out['error'], out


def test_a_file_that_cannot_be_written_is_named_not_its_temporary_file(tmp_path, monkeypatch):
    "An error making the temporary file (no permission, a folder that takes no files) names the file being written."
    import tempfile
    from lifecycle.core.store import atomic_write, create_once

    def refused(**kw):
        raise PermissionError(13, 'Permission denied', str(Path(kw['dir']) / f"{kw['prefix']}abc{kw['suffix']}"))

    monkeypatch.setattr(tempfile, 'mkstemp', refused)
    for write in (atomic_write, create_once):
        with pytest.raises(PermissionError) as e:
            write(tmp_path / 'rules.yml', 'x')
        assert str(e.value) == f"[Errno 13] Permission denied: '{tmp_path / 'rules.yml'}'"
    assert list(tmp_path.iterdir()) == []


def test_a_misspelt_settings_section_is_refused_naming_it_not_read_as_defaults(tmp_path):
    "A misspelt [workspace] made every setting silently its default (state elsewhere, another tracking store)."
    from lifecycle.core.settings import SettingsError, load_settings

    (tmp_path / 'settings.ini').write_text('[workspce]\nstate_dir = state\n\n[trust]\n')
    with pytest.raises(SettingsError, match=r"unknown section\(s\) \[workspce\] \(did you mean \[workspace\]\?\)"):
        load_settings(tmp_path)
    (tmp_path / 'settings.ini').write_text('[DEFAULT]\nstate_dir = elsewhere\n\n[workspace]\n')
    with pytest.raises(SettingsError, match=r"keys \['state_dir'\] under \[DEFAULT\], which lifecycle does not read"):
        load_settings(tmp_path)
    (tmp_path / 'settings.ini').write_text('[workspace]\nstate_dir = state\n\n[roles]\n\n[trust]\n')
    assert load_settings(tmp_path).state_dir == tmp_path / 'state'


def test_a_malformed_trusted_key_in_settings_is_refused_naming_the_setting(tmp_path):
    "Found by review: `trusted key 'ed25519:AAAA': expected ...` named neither settings.ini nor its [trust] key."
    from lifecycle.core.settings import SettingsError, read_trust

    good = 'ed25519:9AFtQH5oA9kF0+gE1wsrEpnx3PuuvYvqsnIEXK2AK/U='
    (tmp_path / 'settings.ini').write_text(
        f'[workspace]\n[trust]\nmodel_signing = {good}, ed25519:AAAA\nrevoked = ab12\n'
    )
    with pytest.raises(
        SettingsError, match=r"settings.ini: \[trust\] model_signing: key 2 is not a public key .* 12 char"
    ):
        read_trust(tmp_path)
    (tmp_path / 'settings.ini').write_text(f'[workspace]\n[trust]\nmodel_signing = {good}\nrevoked = {"ab12" * 4}\n')
    assert read_trust(tmp_path) == {'model_signing': [good], 'revoked': ['ab12' * 4]}  # (revoked: key ids, not keys)


def test_a_full_disk_names_the_file_being_written_and_a_file_in_a_folders_way_is_named(tmp_path, monkeypatch):
    """Review AB: on a full disk every command said `[Errno 28] No space left on device`, naming no file (its lock's
    record, or a state file, being written); a reports folder under a file failed `lifecycle run` after its work,
    and `init --out` under a file said `[Errno 17] File exists`."""
    import errno
    import os
    from lifecycle.core import locks
    from lifecycle.core.store import atomic_write

    def full(*a, **kw):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    with monkeypatch.context() as m:
        m.setattr(os, 'fsync', full)
        with pytest.raises(OSError) as e:
            atomic_write(tmp_path / 'state.json', '{}')
        assert str(e.value) == f"[Errno 28] No space left on device: '{tmp_path / 'state.json'}'"
        assert list(tmp_path.iterdir()) == []
    with monkeypatch.context() as m:
        m.setattr(os, 'pwrite', full)
        with pytest.raises(OSError) as e:
            with locks.hold(tmp_path, 'mlflow-db'):
                pass
        assert str(e.value).endswith(f"No space left on device: '{locks.lock_path(tmp_path, 'mlflow-db')}'")
    ws = make_workspace(tmp_path / 'ws')
    r = cli(ws, 'status', '--json', env={'LIFECYCLE_REPORTS_DIR': 'settings.ini/reports'})
    assert r.returncode == 2 and f"{ws / 'settings.ini'} is a file, not a folder; check reports_dir" in r.stdout
    (ws / 'data.csv').write_text('a,b\n' + ''.join(f'{i % 37},{i % 2}\n' for i in range(200)))
    r = cli(ws, 'init', '--from', 'data.csv', '--target', 'b', '--out', 'data.csv/p', '--json')
    assert r.returncode == 2 and f"{ws / 'data.csv'} is a file, not a folder" in r.stdout, r.stdout


def test_a_remembered_params_folder_that_is_gone_is_said_to_be_gone_not_read_as_params(tmp_path):
    """Review CK: with the last run's folder moved away, commands read params/ (another dataset's, say) without a word.
    Its params are refused naming it and the record; commands that read no params still open the workspace."""
    from lifecycle.core.params import ParamsError
    from lifecycle.core.workspace import Workspace, remember_params

    a = tmp_path / 'a'
    (a / 'params-b').mkdir(parents=True)
    (a / 'params').mkdir()
    (a / 'settings.ini').write_text('[workspace]\n')
    remember_params(Workspace.open(a, params_dir=a / 'params-b'))
    (a / 'params-b').rename(tmp_path / 'moved')
    ws = Workspace.open(a)  # (`audit verify`, `keys` read no params)
    assert ws.params_dir == (a / 'params-b').resolve()
    said = r"params-b: params folder not found; it is the params folder the last run used \(.*params_dir names it\)"
    with pytest.raises(ParamsError, match=said + ": put it back, pass --params, or remove that file to read params/"):
        ws.params
    from lifecycle.core.params import load_file
    from lifecycle.operate.schema import MonitorParams

    with pytest.raises(ParamsError, match=r'params-b: params folder not found \(looked for its monitor.yaml\)$'):
        load_file(ws.params_dir / 'monitor.yaml', MonitorParams)  # (what reads one file of it: monitor, retrain, flags)
    from typer.testing import CliRunner
    from lifecycle.app.cli import app

    r = CliRunner().invoke(app, ['status'], env={'LIFECYCLE_WORKSPACE': str(a)})
    assert r.exit_code == 0 and 'params-b  (no folder there: commands reading params refuse; --params)' in r.stdout
    r = CliRunner().invoke(app, ['status', '--json'], env={'LIFECYCLE_WORKSPACE': str(a)})
    assert json.loads(r.stdout)['params_dir_found'] is False
    assert Workspace.open(a, params_dir=a / 'params').params_dir == (a / 'params').resolve()  # --params still works
    assert Workspace.open(a, remembered=False).params_dir == (a / 'params').resolve()  # and `lifecycle run` reads it
    (a / 'params-b').write_text('')
    with pytest.raises(ParamsError, match='params-b: expected a params folder, found a file; it is the params folder'):
        Workspace.open(a).params


def test_a_percent_escaped_password_in_settings_is_read_as_written_not_a_crash(tmp_path, monkeypatch):
    "Found by review (DW): a URL whose password is written `%40` (as url_problem advises) crashed every command."
    from lifecycle.core.settings import load_settings

    for k in ('LIFECYCLE_PREDICTION_LOG_URL', 'LIFECYCLE_TRACKING_URI'):
        monkeypatch.delenv(k, raising=False)
    url = 'postgresql+psycopg://alice:s3cr%40t@db.example/preds'
    (tmp_path / 'settings.ini').write_text(f'[workspace]\nprediction_log_url = {url}\ntracking_uri = {url}\n')
    s = load_settings(tmp_path)
    assert (s.prediction_log_url, s.tracking_uri) == (url, url)  # (as LIFECYCLE_PREDICTION_LOG_URL would give it)


@pytest.mark.parametrize('key', ['keep_alive_s', 'header_timeout_s'])
@pytest.mark.parametrize('value', ['nan', 'inf', '-inf'])
def test_a_timeout_that_is_not_a_finite_number_is_refused_naming_the_key(tmp_path, monkeypatch, key, value):
    "Found by review (DW): `keep_alive_s = nan` (or inf) passed the `<= 0` check and went to uvicorn's timers."
    from lifecycle.core.settings import SettingsError, load_settings

    monkeypatch.delenv(f'LIFECYCLE_{key.upper()}', raising=False)
    (tmp_path / 'settings.ini').write_text(f'[workspace]\n{key} = {value}\n')
    with pytest.raises(SettingsError, match=rf"settings.ini: key '{key}': expected a number of seconds above 0, found"):
        load_settings(tmp_path)


def test_a_malformed_override_is_named_by_its_variable_not_blamed_on_settings_ini(tmp_path, monkeypatch):
    "Found by review (DW): LIFECYCLE_PORT=abc was refused as `settings.ini: key 'port'`, a file that says 8000."
    from lifecycle.core.settings import SettingsError, load_settings

    monkeypatch.delenv('LIFECYCLE_KEEP_ALIVE_S', raising=False)
    (tmp_path / 'settings.ini').write_text('[workspace]\nport = 8000\nkeep_alive_s = -1\n')
    monkeypatch.setenv('LIFECYCLE_PORT', 'abc')
    with pytest.raises(SettingsError, match=r"^\$LIFECYCLE_PORT \(overriding key 'port' of .*settings.ini\): expec"):
        load_settings(tmp_path)
    monkeypatch.setenv('LIFECYCLE_PORT', '8000')  # (a key's own bad value is still the file's)
    with pytest.raises(SettingsError, match=r"settings.ini: key 'keep_alive_s': expected a number of seconds above 0"):
        load_settings(tmp_path)


def test_a_percent_that_escapes_nothing_in_a_database_url_is_refused_not_a_wrong_password(tmp_path, monkeypatch):
    "Found by review (DZ): `%%40`, the escape settings.ini needed before it was read as written, was a password `%@`."
    from lifecycle.core.settings import SettingsError, load_settings
    from lifecycle.serve.predlog import log_errors

    monkeypatch.delenv('LIFECYCLE_PREDICTION_LOG_URL', raising=False)
    url = 'postgresql+psycopg://alice:s3cr%%40t@db.example/preds'
    (tmp_path / 'settings.ini').write_text(f'[workspace]\nprediction_log_url = {url}\n')
    with pytest.raises(SettingsError, match=r"cannot be used: it holds '%%', settings.ini's old escape"):
        with log_errors(load_settings(tmp_path).prediction_log_url):
            pass
    with log_errors('postgresql+psycopg://alice:s3cr%40t@db.example/preds?options=-c%20x'):  # (escapes: as written)
        pass


@pytest.mark.parametrize(
    'url', ['postgresql+psycopg://alice:50%off@db.example/preds', 'postgresql+psycopg://a@db.example/p?application_name=100%']
)
def test_a_lone_percent_sqlalchemy_reads_as_itself_is_no_refusal(url):
    "Found by review (EC): review DZ's rule refused every '%' not followed by two hex digits, read as written anyway."
    from sqlalchemy.engine import make_url
    from lifecycle.core.settings import url_problem

    assert '%' in (make_url(url).password or '') + make_url(url).query.get('application_name', '')  # (as written)
    assert url_problem(url) == ''


@pytest.mark.parametrize(
    'url, said',
    [
        ('postgresql://user:p@ss@[::1]/db', "its password holds an unescaped '@'"),  # (was: not a URL ... can parse)
        ('postgresql://us@er:p@ss@[::1]:5432/db', "its password holds an unescaped '@'"),
        ('postgresql://bob@corp@db.host:54x2/db', 'not a URL SQLAlchemy can parse'),  # (no password: review GF)
        ('postgresql://a@b@[::1/db', 'not a URL SQLAlchemy can parse'),
        ('postgresql://u:pw@[::1/db?x=a@b@c', 'not a URL SQLAlchemy can parse'),  # (an '@' of the query's: none)
    ],
)
def test_an_unparsable_url_blames_its_password_only_when_the_password_holds_the_at(url, said):
    "Review GA: a password's '@' before a bracketed host was called unparsable; review GF: a user's was blamed on it."
    from lifecycle.core.settings import url_problem

    assert said in url_problem(url), url_problem(url)

def test_a_rerun_of_the_first_step_after_a_kill_says_the_killed_run_keyed_the_log(old_ws, monkeypatch):
    """Step 1 killed after rewriting the audit log into the keyed format and before its entry: the rerun said "the
    audit log was already keyed or absent", as if no migration had keyed it. It says the earlier run rewrote it."""
    from lifecycle.core import audit
    from lifecycle.core import workspace as wsmod

    real = audit.migrate_legacy

    def killed(*a, **k):  # the log rewritten, then the kill
        real(*a, **k)
        raise KeyboardInterrupt

    with monkeypatch.context() as m, pytest.raises(KeyboardInterrupt):
        m.setattr(audit, 'migrate_legacy', killed)
        wsmod.migrate(wsmod.Workspace.open(old_ws, migrating=True))
    out = wsmod.migrate(wsmod.Workspace.open(old_ws, migrating=True))
    did = out['steps'][0]['did']
    assert 'already keyed or absent' not in did, did
    assert "the audit log's 1 entries had been rewritten into the keyed format" in did and 'earlier run' in did, did


@pytest.fixture
def no_overrides(monkeypatch):
    "No LIFECYCLE_* variable of the caller's overrides the settings.ini a test writes."
    for k in [k for k in os.environ if k.startswith('LIFECYCLE_') and k != 'LIFECYCLE_KEYS_DIR']:
        monkeypatch.delenv(k)


@pytest.mark.parametrize('written', ['settings.ini', 'LIFECYCLE_TRACKING_URI'])
def test_a_relative_sqlite_tracking_uri_is_the_workspaces_whatever_folder_a_command_runs_in(
    tmp_path, monkeypatch, no_overrides, written
):
    """Found by review (EN): `tracking_uri = sqlite:///mlflow.db` was MLflow's relative path, so a command run from
    another folder (LIFECYCLE_WORKSPACE) made and used a second mlflow.db there, and `has_tracking` looked there."""
    from lifecycle.core.settings import load_settings
    from lifecycle.core.workspace import Workspace
    from lifecycle.serve.predlog import sqlite_path

    ws, elsewhere = tmp_path / 'ws', tmp_path / 'elsewhere'
    ws.mkdir(), elsewhere.mkdir()
    uri = 'sqlite:///db/mlflow.db'
    (ws / 'settings.ini').write_text('[workspace]\n' + (f'tracking_uri = {uri}\n' if written == 'settings.ini' else ''))
    if written != 'settings.ini':
        monkeypatch.setenv(written, uri)
    (ws / 'db').mkdir()
    (ws / 'db' / 'mlflow.db').touch()
    monkeypatch.chdir(elsewhere)
    s = load_settings(ws)
    assert sqlite_path(s.tracking_uri) == str(ws / 'db' / 'mlflow.db') and s.tracking_uri == f'sqlite:///{ws}/db/mlflow.db'
    assert Workspace(**vars(s)).has_tracking
    (ws / 'settings.ini').write_text('[workspace]\ntracking_uri = sqlite:///file:db/m.db?uri=true&mode=ro\n')
    monkeypatch.delenv('LIFECYCLE_TRACKING_URI', raising=False)
    assert sqlite_path(load_settings(ws).tracking_uri) == str(ws / 'db' / 'm.db')  # (a URI filename: query kept)
    for kept in ('sqlite://', 'sqlite:///:memory:', 'postgresql+psycopg://u@h/db', 'http://127.0.0.1:5000'):
        (ws / 'settings.ini').write_text(f'[workspace]\ntracking_uri = {kept}\n')
        assert load_settings(ws).tracking_uri == kept


@pytest.mark.parametrize(
    'uri', ['sqlite:///{root}/t.db', 'sqlite:///t.db', 'sqlite:///file:{root}/t.db?uri=true', 'sqlite:///./t.db']
)
def test_has_tracking_finds_the_database_of_every_sqlite_form(tmp_path, monkeypatch, no_overrides, uri):
    """Found by review (EN): `has_tracking` and the site's cache key cut the text after `sqlite:///`: a URI filename
    (`file:/p.db?uri=true`) was never found, so the site and `status` said there was no tracking store."""
    from lifecycle.app.site import _models_key
    from lifecycle.core.settings import load_settings
    from lifecycle.core.workspace import Workspace
    from lifecycle.serve.predlog import sqlite_path

    (tmp_path / 'settings.ini').write_text(f"[workspace]\ntracking_uri = {uri.format(root=tmp_path)}\n")
    ws = Workspace(**vars(load_settings(tmp_path)))
    assert not ws.has_tracking and sqlite_path(ws.tracking_uri) == str(tmp_path / 't.db')
    before = _models_key(ws)
    (tmp_path / 't.db').write_bytes(b'x')
    assert ws.has_tracking and _models_key(ws) != before  # (the site sees the database change)


@pytest.mark.parametrize('folder', ['a%41b', 'a%2Fb', 'what?now', 'spaced out é'])
def test_a_workspace_in_a_folder_whose_name_holds_a_percent_escape_opens_its_own_databases(
    tmp_path, monkeypatch, no_overrides, folder
):
    """Found by review (EN): SQLAlchemy undoes %-escapes in a URL's path (and ends it at `?`), so a workspace in a
    folder `a%41b` opened `aAb/.lifecycle/mlflow.db` and `aAb/.lifecycle/predictions.db`: other databases, made anew."""
    from sqlalchemy import create_engine
    from lifecycle.core.settings import load_settings
    from lifecycle.serve.predlog import default_url, sqlite_path

    root = tmp_path / folder
    (root / '.lifecycle' / 'logs').mkdir(parents=True)
    (root / 'settings.ini').write_text('[workspace]\n')
    s = load_settings(root)
    state = root / '.lifecycle'
    assert sqlite_path(s.tracking_uri) == str(state / 'mlflow.db')
    assert sqlite_path(default_url(s)) == str(state / 'predictions.db')
    (root / 'settings.ini').write_text('[workspace]\nprediction_log_url = sqlite:///.lifecycle/logs/p.db\n')
    s = load_settings(root)
    assert sqlite_path(default_url(s)) == str(state / 'logs' / 'p.db')
    for url in (s.tracking_uri, default_url(s)):  # (SQLite itself opens the files named)
        engine = create_engine(url)
        engine.connect().close()
        engine.dispose()
    assert {p.name for p in state.rglob('*.db')} == {'mlflow.db', 'p.db'}
    assert sorted(p.name for p in tmp_path.iterdir()) == [folder]


def test_a_settings_ini_saved_with_a_byte_order_mark_is_read_by_every_reader(tmp_path, no_overrides):
    """Found by review (EN): a settings.ini saved by a Windows editor (a UTF-8 byte order mark first) was refused by
    every command as 'File contains no section headers', naming its own `[workspace]` line; `read_trust` on a file
    not UTF-8 was a traceback (UnicodeDecodeError), not a refusal naming it."""
    from lifecycle.core.settings import SettingsError, load_settings, read_trust
    from lifecycle.release.governance import load_roles

    pin = 'ed25519:' + 'A' * 43 + '='
    ini = tmp_path / 'settings.ini'
    text = f'[workspace]\nport = 8123\n[roles]\nml_engineer = carol\n[trust]\nmodel_signing = {pin}\n'
    ini.write_bytes(text.encode('utf-8-sig'))
    assert load_settings(tmp_path).port == 8123
    assert read_trust(tmp_path) == {'model_signing': [pin]} and load_roles(tmp_path) == {'ml_engineer': {'carol'}}
    ini.write_bytes(b'[trust]\nrevoked = caf\xe9\n')
    with pytest.raises(SettingsError, match=r'settings.ini: not valid UTF-8 \(byte 0xe9 at offset 21\)'):
        read_trust(tmp_path)


@pytest.mark.parametrize('written', ['settings.ini', 'LIFECYCLE_HOST'])
def test_an_empty_host_is_the_default_loopback_address_not_every_interface(
    tmp_path, monkeypatch, no_overrides, written
):
    """Found by review (EN): `host =` (empty, as other keys are left for their default) was passed to uvicorn as '',
    which binds 0.0.0.0: `lifecycle serve` answered on every interface, where --help says the default is 127.0.0.1."""
    from lifecycle.core.settings import load_settings

    (tmp_path / 'settings.ini').write_text('[workspace]\nhost =\n' if written == 'settings.ini' else '[workspace]\n')
    if written != 'settings.ini':
        monkeypatch.setenv(written, ' ')
    assert load_settings(tmp_path).host == '127.0.0.1'


@pytest.mark.parametrize('name', ['params ', ' params', 'paramètres et données'])
def test_a_remembered_params_folder_whose_name_has_edge_spaces_or_unicode_is_that_folder(tmp_path, name):
    """Found by review (EN): the remembered params folder was read back stripped, so a run with `--params 'params '`
    left the next command reading `params/`, another folder (perhaps another dataset's), without a word."""
    from types import SimpleNamespace
    from lifecycle.core.workspace import remember_params, remembered_params

    (tmp_path / 'params').mkdir()
    (tmp_path / name).mkdir(exist_ok=True)
    state = tmp_path / '.lifecycle'
    remember_params(SimpleNamespace(state_dir=state, params_dir=tmp_path / name, root=tmp_path))
    assert remembered_params(state, tmp_path) == tmp_path.resolve() / name


def test_a_blank_override_of_an_optional_setting_means_what_empty_means(tmp_path, monkeypatch, no_overrides):
    """Found by review (EN): LIFECYCLE_PII_KEY_FILE=' ' was refused as 'expected a folder, found an empty value'
    (a key file is no folder), and LIFECYCLE_KEYS_DIR=' ' put the audit and signing keys in a folder ' ' of the
    current folder; an empty value means no file and the default keys folder, and blank now means the same."""
    from lifecycle.core.settings import default_keys_dir, load_settings

    (tmp_path / 'settings.ini').write_text('[workspace]\n')
    monkeypatch.setenv('LIFECYCLE_PII_KEY_FILE', ' ')
    monkeypatch.setenv('LIFECYCLE_KEYS_DIR', ' ')
    s = load_settings(tmp_path)
    assert s.pii_key_file is None and s.keys_dir == default_keys_dir() and s.keys_dir.name == 'keys'


def test_a_misspelt_trust_key_is_refused_naming_it_not_read_as_no_pin_or_no_revocation(tmp_path):
    """Found by review (EN): `[trust]` keys were read whatever their name, so a hand-edited `revokd = <key id>` revoked
    nothing and `model_signng = <pin>` left no pin (loads then trusted the key folder's keys), without a word."""
    from lifecycle.core.settings import SettingsError, read_trust

    pin = 'ed25519:' + 'A' * 43 + '='
    (tmp_path / 'settings.ini').write_text(f'[trust]\nmodel_signing = {pin}\nrevokd = ab12\n')
    said = r"settings.ini: unknown key\(s\) in \[trust\]: 'revokd' \(did you mean 'revoked'\?\)"
    with pytest.raises(SettingsError, match=said):
        read_trust(tmp_path)
    kid = 'ab12' * 4
    (tmp_path / 'settings.ini').write_text(f'[trust]\nmodel_signing = {pin}\nadministrator = {pin}\nrevoked = {kid}\n')
    assert set(read_trust(tmp_path)) == {'model_signing', 'administrator', 'revoked'}


@pytest.mark.parametrize('folder', ['50%', '100% sure'])
def test_a_workspace_whose_folder_holds_a_bare_percent_keeps_its_tracking_url_and_mlflow_makes_no_stray_folder(
    tmp_path, no_overrides, folder
):
    """Found by review (EP): the default tracking URL escaped every `%` (`50%25`), where SQLAlchemy reads a `%` that
    starts no escape as itself: MLflow, which makes the folder of the text after `sqlite:///`, left an empty
    `50%25/.lifecycle` beside the workspace at every command, and the URL was not the one earlier versions wrote."""
    from mlflow.store.db.utils import _make_parent_dirs_if_sqlite
    from lifecycle.core.settings import load_settings
    from lifecycle.serve.predlog import default_url, sqlite_path

    root = tmp_path / folder
    root.mkdir()
    (root / 'settings.ini').write_text('[workspace]\n')
    s = load_settings(root)
    assert s.tracking_uri == f"sqlite:///{root}/.lifecycle/mlflow.db" and s.tracking_db == root / '.lifecycle/mlflow.db'
    assert sqlite_path(default_url(s)) == str(root / '.lifecycle' / 'predictions.db')
    _make_parent_dirs_if_sqlite(s.tracking_uri)  # (what MLflow does before it opens the store)
    assert sorted(p.name for p in tmp_path.iterdir()) == [folder] and (root / '.lifecycle').is_dir()


@pytest.mark.parametrize('key', ['tracking_uri', 'prediction_log_url'])
def test_a_relative_uri_filename_keeps_its_own_escapes_when_rooted_in_the_workspace(tmp_path, no_overrides, key):
    """Found by review (EP): rooting a relative SQLite URI filename escaped its path again, so `file:a%2520b.db`, the
    file `a b.db` from the workspace's folder, became `<workspace>/a%20b.db`: another database, made anew."""
    from sqlalchemy import create_engine
    from lifecycle.core.settings import load_settings
    from lifecycle.serve.predlog import default_url, sqlite_path

    root = tmp_path / 'a%41b'
    root.mkdir()
    (root / 'settings.ini').write_text(f'[workspace]\n{key} = sqlite:///file:a%2520b.db?uri=true\n')
    s = load_settings(root)
    url = s.tracking_uri if key == 'tracking_uri' else default_url(s)
    assert sqlite_path(url) == str(root / 'a b.db')
    engine = create_engine(url)  # (SQLite itself opens the file named)
    engine.connect().close()
    engine.dispose()
    assert sorted(p.name for p in root.iterdir()) == ['a b.db', 'settings.ini']


@pytest.mark.parametrize('key', ['tracking_uri', 'prediction_log_url'])
def test_a_relative_sqlcipher_url_keeps_its_passphrase_when_rooted_in_the_workspace(tmp_path, no_overrides, key):
    """Found by review (EP): rooting a relative SQLite URL in the workspace rebuilt it from its driver and path alone,
    so `sqlite+pysqlcipher://:pw@/t.db` lost its passphrase: the encrypted database was opened without its key (a new
    one made unencrypted). Shown, the passphrase is still `***`."""
    from sqlalchemy.engine import make_url
    from lifecycle.core.settings import load_settings, shown_url
    from lifecycle.serve.predlog import default_url, sqlite_path

    (tmp_path / 'settings.ini').write_text(f'[workspace]\n{key} = sqlite+pysqlcipher://:p%40ss@/t.db?kdf_iter=64000\n')
    s = load_settings(tmp_path)
    url = s.tracking_uri if key == 'tracking_uri' else default_url(s)
    u = make_url(url)
    assert (u.password, u.query, sqlite_path(url)) == ('p@ss', {'kdf_iter': '64000'}, str(tmp_path / 't.db'))
    assert 'p@ss' not in shown_url(url) and 'p%40ss' not in shown_url(url) and '***' in shown_url(url)


@pytest.mark.parametrize(
    'text, said',
    [
        ('tracking_uri = postgresql://alice:s3cret@db/m\n[workspace]\n', 'line 1: expected a section header'),
        ('[workspace]\nhost = 127.0.0.1\npassword s3cret\n', 'line(s) 3: expected `key = value`'),
        ('[workspace]\ntracking_uri = postgresql://alice:s3cret@db/m\ntracking_uri = x\n', 'line 3: key'),
    ],
)
def test_a_malformed_settings_ini_is_refused_by_line_number_never_quoting_the_line(tmp_path, no_overrides, text, said):
    """Found by review (EP): a settings.ini configparser could not read was refused with configparser's message, which
    quotes the line (a tracking_uri's password, in every command's output and CI log) over several lines, naming the
    file '<string>'."""
    from lifecycle.core.settings import SettingsError, load_settings, read_trust

    (tmp_path / 'settings.ini').write_text(text)
    for read in (load_settings, read_trust):
        with pytest.raises(SettingsError) as e:
            read(tmp_path)
        msg = str(e.value)
        assert msg.startswith(f"{tmp_path / 'settings.ini'}: {said}") and 's3cret' not in msg and '\n' not in msg, msg


def test_a_blank_override_of_a_url_or_limit_means_what_empty_means(tmp_path, monkeypatch, no_overrides):
    """Found by review (EP): blank LIFECYCLE_TRACKING_URI, LIFECYCLE_PREDICTION_LOG_URL and LIFECYCLE_MAX_CONNECTIONS
    were refused ('found no scheme', 'not a URL SQLAlchemy can parse', 'expected a whole number'), where the same
    blank in settings.ini (read as empty) means the default, as a blank keys_dir or host already does."""
    from lifecycle.core.settings import load_settings
    from lifecycle.serve.predlog import default_url

    (tmp_path / 'settings.ini').write_text('[workspace]\n')
    expected = load_settings(tmp_path)
    for k in ('TRACKING_URI', 'PREDICTION_LOG_URL', 'MAX_CONNECTIONS'):
        monkeypatch.setenv(f'LIFECYCLE_{k}', ' \t')
    s = load_settings(tmp_path)
    assert (s.tracking_uri, default_url(s), s.max_connections) == (expected.tracking_uri, default_url(expected), None)


def test_a_format_record_saved_by_an_editor_with_a_crlf_is_still_its_number(tmp_path):
    """Found by review (EP): 7d0feebe, reading the remembered params folder as written, read the workspace's FORMAT
    record so too (only its last newline cut), so a FORMAT saved as `2\\r\\n` or `2 ` was 'damaged state' (exit 4) and
    every command refused the workspace; a number's spaces are no part of it."""
    from lifecycle.core.workspace import stored_format

    for text in ('2\r\n', ' 2 \n', '2'):
        (tmp_path / 'FORMAT').write_bytes(text.encode())
        assert stored_format(tmp_path) == 2, text


@pytest.mark.parametrize('written', ['ab12', 'AB12AB12AB12AB12', 'ed25519:' + 'A' * 43 + '=', 'ab12ab12ab12ab1'])
def test_a_revoked_value_that_is_no_key_id_is_refused_not_a_revocation_silently_not_made(tmp_path, written):
    """Found by review (EP): `[trust] revoked` values were taken whatever they were, so a key id cut short, written in
    capitals or a pin pasted in its place revoked nothing, without a word (as a misspelt `revokd` did, 61fbdecb)."""
    from lifecycle.core.settings import SettingsError, read_trust

    (tmp_path / 'settings.ini').write_text(f'[trust]\nrevoked = 0123456789abcdef, {written}\n')
    with pytest.raises(SettingsError, match=r"settings.ini: \[trust\] revoked: value 2 is not a key id") as e:
        read_trust(tmp_path)
    assert written not in str(e.value)


def test_a_blank_lifecycle_workspace_means_what_an_empty_one_means(tmp_path, monkeypatch):
    """Found by review (EP): LIFECYCLE_WORKSPACE='' is unset (the nearest settings.ini upwards), but ' ' was a folder
    ' ' of the current one: every command was refused as 'expected a folder holding settings.ini, found none there'."""
    from lifecycle.core.settings import find_workspace

    (tmp_path / 'settings.ini').write_text('[workspace]\n')
    (tmp_path / 'nbs').mkdir()
    monkeypatch.chdir(tmp_path / 'nbs')
    for blank in ('', ' ', '\t'):
        monkeypatch.setenv('LIFECYCLE_WORKSPACE', blank)
        assert find_workspace() == tmp_path.resolve(), repr(blank)


@pytest.mark.parametrize('folder', ['mode=memory', 'x?mode=memory', 'a&mode=memory&uri=true'])
def test_a_workspace_whose_folder_name_holds_mode_memory_keeps_its_databases(tmp_path, no_overrides, folder):
    """`_sqlite_db` took any URL holding the text `mode=memory` for a database in memory, a folder's name too: in a
    workspace at `.../mode=memory/` the tracking store was never found (`has_tracking` false: status and the site saw
    no models) and the prediction log had no journal folder. Only a URI filename's query asks for memory."""
    from lifecycle.core.settings import _sqlite_db, load_settings
    from lifecycle.serve.predlog import default_url, sqlite_path

    root = tmp_path / folder
    root.mkdir()
    (root / 'settings.ini').write_text('[workspace]\n')
    s = load_settings(root)
    assert s.tracking_db == root / '.lifecycle' / 'mlflow.db', s.tracking_uri
    assert sqlite_path(default_url(s)) == str(root / '.lifecycle' / 'predictions.db')
    for memory in ('sqlite:///file:m?mode=memory&uri=true', 'sqlite:///file:m%3Fmode=memory?uri=true', 'sqlite://'):
        assert _sqlite_db(memory) == '', memory
    assert _sqlite_db('sqlite:///x.db?mode=memory') == ''  # (asked for in the URL's query: as before)
    assert _sqlite_db('sqlite:////srv/x%3Fmode=memory/x.db') == '/srv/x?mode=memory/x.db'  # (a plain path's)


_NAME_PIECES = ['%', '%%', '%4', '%41', '%zz', '%25', '%3F', '?', '#', ' ', 'é', '日', 'a', '=', '&', ':', '@']
_NAME_PIECES += ['mode=memory']


def test_every_folder_name_reads_back_as_itself_from_a_workspace_url_and_mlflow_makes_its_folder_where_it_can():
    """Property over folder names made of every pair and triple of pieces that %-escapes, queries and fragments are
    made of: the default URL (`_sqlite_url`) and a relative SQLite URL rooted there (`_rooted`, plain, URI filename,
    SQLCipher passphrase) name that folder's file as SQLAlchemy and SQLite read them; and where the name holds no text
    SQLAlchemy would misread (`%41`, `?`), the URL's text after `sqlite:///` is the path, the folder MLflow makes."""
    from itertools import product
    from sqlalchemy.engine import make_url
    from lifecycle.core.settings import _quoted, _rooted, _sqlite_db, _sqlite_url

    names = {''.join(p) for n in (1, 2, 3) for p in product(_NAME_PIECES[:12] if n == 3 else _NAME_PIECES, repeat=n)}
    for name in sorted(names):
        root = Path('/w') / name
        url = _sqlite_url(root / 'm.db')
        assert make_url(url).database == _sqlite_db(url) == str(root / 'm.db'), (name, url)
        if not re.search(r'%[0-9A-Fa-f]{2}|\?', name):
            assert _quoted(root) == str(root) and url.removeprefix('sqlite:///') == str(root / 'm.db'), name
        for rel in ('t.db', 'file:t.db?uri=true', 'file:t.db?mode=ro&uri=true', 'file:a%2520b.db?uri=true'):
            want = str(root / ('a b.db' if '%25' in rel else 't.db'))
            assert _sqlite_db(_rooted(f'sqlite:///{rel}', root)) == want, (name, rel)
        cipher = make_url(_rooted('sqlite+pysqlcipher://:p%40w@/t.db', root))
        assert (cipher.database, cipher.password) == (str(root / 't.db'), 'p@w'), name


def test_a_blank_override_overrides_nothing_settings_ini_keeps_its_value(tmp_path, monkeypatch, no_overrides):
    """Found by review (ET): a variable set but blank (`LIFECYCLE_ENVIRONMENT=$UNSET` in a script) overrode
    settings.ini's `environment = production` with the default, dev: a server would have served versions production's
    policy had not approved. A blank variable now overrides nothing, and no message says it did."""
    from lifecycle.core.settings import SettingsError, load_settings

    (tmp_path / 'settings.ini').write_text('[workspace]\nenvironment = production\nport = 9000\nmax_connections = x\n')
    monkeypatch.setenv('LIFECYCLE_ENVIRONMENT', ' ')
    monkeypatch.setenv('LIFECYCLE_PORT', '')
    monkeypatch.setenv('LIFECYCLE_MAX_CONNECTIONS', '\t')
    with pytest.raises(SettingsError) as e:  # (settings.ini's own value is the one said)
        load_settings(tmp_path)
    assert "key 'max_connections'" in str(e.value) and 'LIFECYCLE_MAX_CONNECTIONS' not in str(e.value), str(e.value)
    (tmp_path / 'settings.ini').write_text('[workspace]\nenvironment = production\nport = 9000\n')
    s = load_settings(tmp_path)
    assert (s.environment, s.port) == ('production', 9000)


def _writer_stopped_before_its_rename(folder: Path, name: str, how: str) -> subprocess.Popen:
    """A process writing `folder/name` with `atomic_write`, stopped between its temporary file and the rename: killed
    there (`how='killed'`, waited for), or still there, alive (`'alive'`: it says 'ready' once its temporary file is
    whole, and waits to be killed)."""
    stop = {'killed': 'os.kill(os.getpid(), signal.SIGKILL)', 'alive': "print('ready', flush=True); time.sleep(600)"}
    code = (
        'import os, signal, sys, time\nfrom lifecycle.core import store\n'
        f'def stop(*a):\n    {stop[how]}\n'
        f'store.os.replace = stop\nstore.atomic_write(sys.argv[1], "{{}}")\n'
    )
    p = subprocess.Popen([sys.executable, '-c', code, str(folder / name)], stdout=subprocess.PIPE, text=True)
    if how == 'killed':
        p.wait(timeout=60)
    else:
        assert p.stdout.readline().strip() == 'ready'
    return p


def test_a_write_killed_before_its_rename_leaves_no_temporary_file_past_the_next_write_in_its_folder(tmp_path):
    """`atomic_write` (and `create_once`) write a temporary file beside their target and rename it: one killed between
    the two left `.NAME.XXXXXXXX.tmp` in that folder for good, anywhere in the workspace (records, the state folder,
    run folders, the site), where only `store/tmp` was swept. The temporary file is now named after its writer, and
    the first write into a folder in a process removes what dead writers left there: a live writer's stays, one of
    another host (or from before, its target there) once older than the store's sweep takes (review GW)."""
    import time
    from lifecycle.core.store import atomic_write, create_once

    folder = tmp_path / 'records'
    folder.mkdir()
    alive = _writer_stopped_before_its_rename(folder, 'b.json', 'alive')
    try:
        _writer_stopped_before_its_rename(folder, 'a.json', 'killed')  # (its own sweep kept the live writer's)
        left = sorted(p.name for p in folder.iterdir())
        assert len(left) == 2 and all(n.endswith('.tmp') for n in left), left
        old = time.time() - 3600
        (folder / 'c.json').write_text('{}')
        others = {  # name: removed? (of another host: by age alone; from before writers were named: its target there)
            '.c.json.1@elsewhere.abcd1234.tmp': True, '.c.json.2@elsewhere.efgh5678.tmp': False,
            '.c.json.abcd_123.tmp': True, '.d.json.abcd_123.tmp': False, '.c.json.ijkl9012.tmp': False,
            '.notes.tmp': False,
        }  # fmt: skip
        for n, gone in others.items():
            (folder / n).write_text('x')
            if n != '.c.json.2@elsewhere.efgh5678.tmp' and n != '.c.json.ijkl9012.tmp':
                os.utime(folder / n, (old, old))
        atomic_write(folder / 'e.json', '{}')
        now = sorted(p.name for p in folder.iterdir())
        assert not any(n.startswith('.a.json.') for n in now), now  # (its writer is dead)
        assert sum(n.startswith('.b.json.') for n in now) == 1, now  # (its writer lives: kept)
        assert {n for n, gone in others.items() if not gone} <= set(now), now
        assert not {n for n, gone in others.items() if gone} & set(now), now
    finally:
        alive.kill()
        alive.wait(timeout=60)
    second = tmp_path / 'keys'
    second.mkdir()
    _writer_stopped_before_its_rename(second, 'a.key', 'killed')
    assert create_once(second / 'b.key', 'x') and sorted(p.name for p in second.iterdir()) == ['b.key']


def test_a_temporary_file_of_a_container_of_the_same_host_name_is_not_taken_for_a_dead_writers(tmp_path):
    """Review GY: temporary files named their writer by PID and host name alone, so a process in a container of the
    same host name but its own PID namespace (sharing the workspace's folder) found a live writer's PID dead in its
    own namespace and removed its file; the write then failed. Their names carry the PIDs' origin too (boot and PID
    namespace): a file of another origin is judged by its age alone, a dead writer's of this origin removed."""
    import subprocess
    import sys
    from lifecycle.core.store import _host, pid_origin, sweep_temps

    assert pid_origin() and _host().endswith('.' + pid_origin())
    dead = subprocess.run([sys.executable, '-c', 'import os; print(os.getpid())'], capture_output=True, text=True)
    pid, host = int(dead.stdout), _host().rsplit('.', 1)[0]
    mine, theirs = f'.a.json.{pid}@{_host()}.abcd1234.tmp', f'.a.json.{pid}@{host}.0123456789ab.abcd1234.tmp'
    for n in (mine, theirs):
        (tmp_path / n).write_text('x')
    assert [p.name for p in sweep_temps(tmp_path)] == [mine] and (tmp_path / theirs).exists()


_KILLED_MID_COPY = """
import os, signal, sqlite3, sys
from pathlib import Path
from lifecycle.core import tracking

connect = sqlite3.connect

class Killed(sqlite3.Connection):
    def backup(self, target, **k):  # (one page copied, then killed: SIGKILL, as a power cut)
        super().backup(target, pages=1, progress=lambda *_: os.kill(os.getpid(), signal.SIGKILL))

sqlite3.connect = lambda *a, **k: connect(*a, factory=Killed, **k)
tracking._sqlite_copy(Path(sys.argv[1]), Path(sys.argv[2]))
"""


def test_a_sqlite_copy_killed_midway_leaves_neither_its_temporary_file_nor_its_journal_past_the_sweep(tmp_path):
    """`tracking._sqlite_copy` writes a database through a temporary name; killed while it copies, it left the
    temporary file and SQLite's journal beside it (`.tmp-journal`; `-wal` and `-shm` for a database in WAL mode), and
    the sweep removed the temporary file alone: the journal stayed for good. A dead writer's side files go with it; a
    live writer's stay."""
    import sqlite3
    from lifecycle.core.store import _host, sweep_temps

    template, folder = tmp_path / 'template.db', tmp_path / 'mlruns'
    folder.mkdir()
    with sqlite3.connect(template) as con:  # (pages enough that the copy is killed halfway)
        con.execute('CREATE TABLE t (x)')
        con.executemany('INSERT INTO t VALUES (?)', [('x' * 500,)] * 100)
    con.close()
    killed = subprocess.run([sys.executable, '-c', _KILLED_MID_COPY, str(template), str(folder / 'mlflow.db')])
    assert killed.returncode == -9
    left = sorted(p.name for p in folder.iterdir())
    assert len(left) == 2 and left[1] == left[0] + '-journal', left  # (what a kill mid-copy leaves)
    dead = re.fullmatch(r'\.mlflow\.db\.(\d+)@.*', left[0])[1]
    wal = [f'.x.db.{dead}@{_host()}.abcd1234.tmp{side}' for side in ('', '-wal', '-shm')]  # (a WAL database's)
    live = [f'.y.db.{os.getpid()}@{_host()}.efgh5678.tmp{side}' for side in ('', '-journal', '-wal', '-shm')]
    for n in wal + live + ['.z.db-journal', '.notes.tmp-journal']:  # (the last two: no temporary file's)
        (folder / n).write_text('x')
    assert sorted(p.name for p in sweep_temps(folder)) == sorted(left + wal)
    assert sorted(p.name for p in folder.iterdir()) == sorted(live + ['.z.db-journal', '.notes.tmp-journal'])
