"""Issue #13, item 3: with MLflow as the tracking store, the audit checkpoint is also logged there (count, head MAC,
its MAC), in a run of each workspace's own, never written over when the log disagrees with it, and `audit verify`
compares the log with every copy, naming a mismatch even when the checkpoint kept outside the workspace was rewritten
along with the log."""

from __future__ import annotations
import json
import pytest
from conftest import cli
from lifecycle.core.audit import checkpoint_path, keys_folder
from lifecycle.core.tracking import tracked_audit_checkpoint
from lifecycle.core.workspace import Workspace


def _runs(client, exp: str, **search) -> list:
    "The audit experiment's runs a workspace owns: not the one kept for older lifecycles to write on."
    return [r for r in client.search_runs([exp], **search) if 'audit.workspace' in r.data.tags]


def test_audit_verify_compares_the_log_with_the_checkpoint_on_the_tracking_server(tmp_path):
    (tmp_path / 'settings.ini').write_text('[workspace]\n')
    ws = Workspace.open(tmp_path)
    ws.mlflow  # the local SQLite tracking store exists from here on
    assert ws.has_tracking
    for i in range(3):
        ws.audit('test.step', f's{i}', 'a step')
    (cp,) = tracked_audit_checkpoint(ws.mlflow, ws.state_dir).copies
    assert cp['entries'] == 3 and cp['mac']
    assert cli(tmp_path, 'audit', 'verify').returncode == 0
    local = checkpoint_path(keys_folder(ws.audit_path, ws.keys_dir, create=False), ws.audit_path.resolve())
    before = local.read_text()
    ws.audit('test.step', 's3', 'a fourth step')
    # someone with the keys folder drops the last entry and restores the checkpoint that matches what is left
    lines = ws.audit_path.read_text().splitlines(keepends=True)
    ws.audit_path.write_text(''.join(lines[:3]))
    local.write_text(before)
    r = cli(tmp_path, 'audit', 'verify')
    assert r.returncode == 3, r.stdout + r.stderr
    assert 'tracking server' in r.stderr and 'ends at entry 3' in r.stderr, r.stderr


def test_an_edited_or_unreadable_copy_on_the_tracking_server_is_named_not_a_traceback(tmp_path, monkeypatch):
    (tmp_path / 'settings.ini').write_text('[workspace]\n')
    ws = Workspace.open(tmp_path)
    ws.mlflow
    ws.audit('test.step', 's0', 'a step')
    client = ws.mlflow.MlflowClient()
    exp = client.get_experiment_by_name('lifecycle-audit-checkpoint')
    (run,) = _runs(client, exp.experiment_id)
    client.set_tag(run.info.run_id, 'audit.checkpoint', 'entries=99')  # edited by hand in the MLflow UI: not JSON
    r = cli(tmp_path, 'audit', 'verify')
    assert r.returncode == 3 and 'Traceback' not in r.stderr, r.stderr
    assert 'the checkpoint kept at the tracking server does not carry a valid MAC' in ' '.join(r.stderr.split())

    def unreachable(*a, **k):
        raise ConnectionError('tracking server down')

    monkeypatch.setattr('lifecycle.core.tracking.tracked_audit_checkpoint', unreachable)
    r = cli(tmp_path, 'audit', 'verify', '--json')
    assert r.returncode == 0 and 'Traceback' not in r.stderr, r.stderr
    said = json.loads(r.stdout)
    assert "the tracking server's copy of the checkpoint could not be read (ConnectionError: tracking server down)" in (
        said['notes']
    ), said
    assert said['copies_compared'] == 0 and said['copies_complete'] is False, said
    assert said['tracking'].endswith('mlflow.db'), said
    strict = cli(tmp_path, 'audit', 'verify', '--require-copy')  # (an operator's check: no copy compared, no pass)
    unread = "no copy of this log's checkpoint on a tracking store was compared: the tracking store could not be read"
    assert strict.returncode == 3 and unread in ' '.join(strict.stderr.split()), strict.stderr


def test_each_entrys_checkpoint_goes_to_this_workspaces_newest_active_run(tmp_path):
    """The checkpoint is written to this workspace's newest active run of the audit experiment (tagged with its
    workspace id), looked up at each entry: a run deleted (in MLflow's UI, say) is followed by a new one. A run made
    earlier with no workspace tag is never written on (as the experiment's first run it was, when every workspace wrote
    on that run and overwrote the others' copies), nor is the deleted run once restored, older than the one after it.
    (`audit verify` compares every copy.)"""
    from lifecycle.core.settings import workspace_id

    (tmp_path / 'settings.ini').write_text('[workspace]\n')
    ws = Workspace.open(tmp_path)
    client = ws.mlflow.MlflowClient()
    ws.audit('test.step', 's0', 'a step')
    ws.audit('test.step', 's1', 'a step')
    exp = client.get_experiment_by_name('lifecycle-audit-checkpoint').experiment_id
    (first,) = _runs(client, exp)
    assert first.data.tags['audit.entries'] == '2'
    client.delete_run(first.info.run_id)
    ws.audit('test.step', 's2', 'a step')
    (second,) = _runs(client, exp)
    assert second.info.run_id != first.info.run_id and _most(ws) == 3
    assert second.data.tags['audit.workspace'] == workspace_id(ws.state_dir)
    earlier = client.create_run(exp, start_time=first.info.start_time - 1000, run_name='audit-checkpoint')
    client.restore_run(first.info.run_id)
    ws.audit('test.step', 's3', 'a step')
    assert _most(ws) == 4 and client.get_run(second.info.run_id).data.tags['audit.entries'] == '4'
    assert 'audit.entries' not in client.get_run(earlier.info.run_id).data.tags
    assert client.get_run(first.info.run_id).data.tags['audit.entries'] == '2'
    assert cli(tmp_path, 'audit', 'verify').returncode == 0


def _most(ws, ours=None) -> int:
    "The most entries of the copies `tracked_audit_checkpoint` gives `audit verify` to compare."
    return max(cp['entries'] for cp in tracked_audit_checkpoint(ws.mlflow, ws.state_dir, ours).copies)


def _two_entries(tmp_path):
    "A workspace at `tmp_path` with two audit entries: it, its MLflow client, and its outside checkpoint's file."
    (tmp_path / 'settings.ini').write_text('[workspace]\n')
    ws = Workspace.open(tmp_path)
    client = ws.mlflow.MlflowClient()
    for i in range(2):
        ws.audit('test.step', f's{i}', 'a step')
    return ws, client, checkpoint_path(keys_folder(ws.audit_path, ws.keys_dir, create=False), ws.audit_path.resolve())

def test_a_deleted_audit_experiment_stops_the_copy_says_how_to_restore_it_and_its_copy_is_still_compared(
    tmp_path, caplog
):
    """Deleting the audit experiment (in MLflow's UI, say) made every later entry warn with MLflow's "must be in the
    'active' state", and `audit verify` read no copy at all (its run went to the trash with it): a log cut back with
    its outside checkpoint rewritten then passed. The copy it had is still compared, verify notes the deletion with the
    command that restores it, each entry's warning says the same, and once restored the copy goes on."""
    ws, client, local = _two_entries(tmp_path)
    before = local.read_text()  # (the outside checkpoint at two entries)
    ws.audit('test.step', 's2', 'a third step')
    exp = client.get_experiment_by_name('lifecycle-audit-checkpoint').experiment_id
    client.delete_experiment(exp)
    ws.audit('test.step', 's3', 'a fourth step')
    warned = [r.getMessage() for r in caplog.records if 'audit checkpoint not logged' in r.getMessage()]
    assert len(warned) == 1 and f'restore --experiment-id {exp}' in warned[0], warned
    ok = cli(tmp_path, 'audit', 'verify', '--json')
    assert ok.returncode == 0, ok.stdout + ok.stderr
    (note,) = [n for n in json.loads(ok.stdout)['notes'] if 'tracking server' in n]
    assert 'no longer updated' in note and f'restore --experiment-id {exp}' in note, note
    lines, after = ws.audit_path.read_text().splitlines(keepends=True), local.read_text()
    _cut_back_to(ws, local, 2, before)
    cut = cli(tmp_path, 'audit', 'verify')
    assert cut.returncode == 3 and 'at the tracking server records 3 entries' in cut.stderr, cut.stderr
    ws.audit_path.write_text(''.join(lines))
    local.write_text(after)
    client.restore_experiment(exp)
    ws.audit('test.step', 's4', 'a fifth step')
    assert _most(ws) == 5
    again = cli(tmp_path, 'audit', 'verify', '--json')
    assert again.returncode == 0 and not [n for n in json.loads(again.stdout)['notes'] if 'tracking' in n], again.stdout


def _cut_back_to(ws, local, entries: int, checkpoint: str) -> None:
    "Someone with the keys folder cuts the log back to `entries` and restores the outside checkpoint of that moment."
    lines = ws.audit_path.read_text().splitlines(keepends=True)
    ws.audit_path.write_text(''.join(lines[:entries]))
    local.write_text(checkpoint)


@pytest.mark.parametrize('then', ['the experiment deleted too', 'the experiment kept', 'both restored'])
def test_the_newest_copy_is_compared_whatever_run_or_experiment_went_to_the_trash(tmp_path, then):
    """Review GF: the copy was read from the first active run, or (the experiment deleted) from the first of all runs.
    A run deleted in MLflow's UI is followed by a new one at the next entry; that deleted run was then read again, with
    its older copy, once the experiment was deleted or restored, and deleting the only run turned the comparison off.
    A log cut back from six entries to three, its outside checkpoint rewritten, passed `audit verify` each way. Every
    run's copy is read and compared: the cut is named."""
    ws, client, local = _two_entries(tmp_path)
    exp = client.get_experiment_by_name('lifecycle-audit-checkpoint').experiment_id
    (first,) = _runs(client, exp)
    client.delete_run(first.info.run_id)  # (the next entry starts a new run)
    ws.audit('test.step', 's2', 'a step')
    three = local.read_text()
    for i in range(3, 6):
        ws.audit('test.step', f's{i}', 'a step')
    (second,) = _runs(client, exp)
    if then == 'the experiment kept':
        client.delete_run(second.info.run_id)  # (no active run holds a copy now)
    else:
        client.delete_experiment(exp)
    if then == 'both restored':
        client.restore_experiment(exp)  # (as the note says: the first run comes back with it)
        assert len(_runs(client, exp)) == 2
    assert _most(ws) == 6
    _cut_back_to(ws, local, 3, three)
    r = cli(tmp_path, 'audit', 'verify', '--json')
    assert r.returncode == 3 and 'records 6 entries' in json.loads(r.stdout)['reason'], r.stdout + r.stderr

def test_a_copy_signed_with_another_key_is_no_evidence_and_every_page_of_runs_is_read(tmp_path, monkeypatch):
    """Review GG: the copy of the most entries was taken before its MAC was checked, so another workspace's (a retired
    one on the same tracking server, its run deleted) failed `audit verify` as "altered" until this log outgrew it;
    and only the first 1,000 runs were read (oldest first), so the newest copy went unread once a cleanup had deleted
    enough runs. A copy signed with another key is passed over while one signed with this log's key is there (one
    alone is still named), and every page of runs is read."""
    from lifecycle.core import tracking

    ws, client, local = _two_entries(tmp_path)
    exp = client.get_experiment_by_name('lifecycle-audit-checkpoint').experiment_id
    planted = client.create_run(exp, start_time=1, run_name='audit-checkpoint').info.run_id  # (the earliest run)
    foreign = {'entries': 99, 'head_mac': 'ab' * 32, 'log': '/elsewhere/audit.log', 'mac': 'cd' * 32}
    client.set_tag(planted, 'audit.checkpoint', json.dumps(foreign))
    client.delete_run(planted)
    ws.audit('test.step', 's2', 'a step')  # (the first active run gets it)
    ok = cli(tmp_path, 'audit', 'verify')
    assert ok.returncode == 0, ok.stdout + ok.stderr
    three = local.read_text()
    for i in range(3, 6):
        ws.audit('test.step', f's{i}', 'a step')
    monkeypatch.setattr(tracking, '_RUNS_PAGE', 1)  # (three runs: three pages)
    assert _most(ws, lambda cp: cp['entries'] < 99) == 6
    monkeypatch.undo()
    _cut_back_to(ws, local, 3, three)
    cut = cli(tmp_path, 'audit', 'verify')
    assert cut.returncode == 3 and 'at the tracking server records 6 entries' in cut.stderr, cut.stdout + cut.stderr
    for run in _runs(client, exp):
        client.set_tag(run.info.run_id, 'audit.checkpoint', json.dumps(foreign))  # (no copy of this log's key left)
    alone = cli(tmp_path, 'audit', 'verify')
    assert alone.returncode == 3 and 'does not carry a valid MAC' in alone.stderr, alone.stdout + alone.stderr

def test_an_experiment_in_mlflows_trash_is_named_with_how_to_restore_it(tmp_path):
    """A training experiment deleted in MLflow's UI failed the train stage with MLflow's "The experiment 1 must be in
    the 'active' state": now `ExperimentDeleted` (a command's exit 4) names the experiment and the restoring command."""
    from lifecycle.core.cli_support import COMMON_ERRORS, exit_code_for
    from lifecycle.core.tracking import ExperimentDeleted

    (tmp_path / 'settings.ini').write_text('[workspace]\n')
    ws = Workspace.open(tmp_path)
    eid = ws.experiment('arrests-release')
    ws.mlflow.MlflowClient().delete_experiment(eid)
    with pytest.raises(ExperimentDeleted) as e:
        ws.experiment('arrests-release')
    assert f"'arrests-release' (id {eid}) is deleted" in str(e.value), e.value
    assert f'mlflow experiments restore --experiment-id {eid}' in str(e.value)
    assert exit_code_for(e.value, COMMON_ERRORS)[0] == 4


def _snapshot(ws, local) -> dict:
    "What someone with the keys folder keeps to restore later: the log, its payloads and the outside checkpoint."
    from lifecycle.core.audit import payloads_path

    return {p: p.read_bytes() for p in (ws.audit_path, payloads_path(ws.audit_path), local)}


def _restore(snapshot: dict) -> None:
    "The log cut back to a snapshot, its payloads and outside checkpoint with it: the log alone verifies."
    for p, data in snapshot.items():
        p.write_bytes(data)


def _verified_alone(ws) -> bool:
    "Whether the log passes the checks that do not ask the tracking server (its chain, payloads, outside checkpoint)."
    from lifecycle.core.audit import verify

    return verify(ws.audit_path, keys_dir=ws.keys_dir).ok


def _audit_runs(ws) -> list:
    "Every run of the audit experiment, deleted ones too, oldest first."
    from mlflow.entities import ViewType

    client = ws.mlflow.MlflowClient()
    exp = client.get_experiment_by_name('lifecycle-audit-checkpoint').experiment_id
    return _runs(client, exp, run_view_type=ViewType.ALL, order_by=['attributes.start_time ASC'])


def _copy_of(run) -> dict:
    return json.loads(run.data.tags['audit.checkpoint'])


@pytest.mark.parametrize('appended', [1, 5])
def test_an_entry_after_a_cut_back_never_overwrites_the_tracking_servers_copy(tmp_path, caplog, appended):
    """Hole 1: the mirror wrote the local checkpoint over the tracking server's copy without comparing. A log cut back
    from five entries to two (payloads and outside checkpoint restored with it), then one entry appended through the
    workspace, had lifecycle itself replace the copy of five with one of three, and `audit verify` passed. The copy the
    log disagrees with is kept, each later checkpoint goes to a new run beside it (warned once), and verify names the
    cut, however many entries come after it (five appended: the new run's copy outgrows the old one)."""
    ws, client, local = _two_entries(tmp_path)
    two = _snapshot(ws, local)
    for i in range(2, 5):
        ws.audit('test.step', f's{i}', 'a step')
    assert cli(tmp_path, 'audit', 'verify').returncode == 0
    _restore(two)
    for i in range(appended):
        ws.audit('test.step', f'after{i}', 'an entry after the cut')
    assert _verified_alone(ws)  # (nothing in the workspace or its keys folder shows the cut)
    r = cli(tmp_path, 'audit', 'verify')
    assert r.returncode == 3, r.stdout + r.stderr
    said = ' '.join(r.stderr.split())
    cut = 'ends at entry 3 but the checkpoint kept at the tracking server records 5 entries' if appended == 1 else (
        'entry 5 is not the one the checkpoint kept at the tracking server records'
    )
    assert cut in said, said
    warned = [r.getMessage() for r in caplog.records if 'disagrees with the log' in r.getMessage()]
    assert len(warned) == 1 and 'audit verify' in warned[0] and 'records 5 entries' in warned[0], warned
    runs = _audit_runs(ws)
    assert [_copy_of(r)['entries'] for r in runs] == [5, 2 + appended], [r.data.tags for r in runs]


def _workspace(root, tracking_uri: str | None = None):
    "A workspace at `root`, on the tracking store `tracking_uri` (default: its own)."
    root.mkdir()
    (root / 'settings.ini').write_text('[workspace]\n' + (f'tracking_uri = {tracking_uri}\n' if tracking_uri else ''))
    ws = Workspace.open(root)
    ws.mlflow
    return ws


def test_two_workspaces_on_one_tracking_server_each_keep_and_verify_their_own_copy(tmp_path):
    """Hole 2: every workspace on a tracking server wrote its copy onto the audit experiment's first run, so each
    overwrote the other's: the one written on last had no copy left and `audit verify` failed it ("does not carry a
    valid MAC"). Each workspace's copy is in its own run, tagged with its workspace id, and each passes; a cut in one
    is still named, the other's verdict untouched."""
    from lifecycle.core.settings import workspace_id

    a = _workspace(tmp_path / 'a')
    b = _workspace(tmp_path / 'b', a.tracking_uri)
    local = checkpoint_path(keys_folder(a.audit_path, a.keys_dir, create=True), a.audit_path.resolve())
    for i in range(3):
        a.audit('test.step', f'a{i}', 'a step')
        b.audit('test.step', f'b{i}', 'a step')
        if i == 1:
            two_of_a = _snapshot(a, local)
    b.audit('test.step', 'b3', 'a step')
    for ws in (a, b):
        r = cli(ws.root, 'audit', 'verify')
        assert r.returncode == 0, r.stdout + r.stderr
    runs = _audit_runs(a)
    owners = {r.data.tags.get('audit.workspace'): _copy_of(r)['entries'] for r in runs}
    assert len(runs) == 2 and owners == {workspace_id(a.state_dir): 3, workspace_id(b.state_dir): 4}, owners
    assert cli(a.root, 'audit', 'verify').returncode == 0
    _restore(two_of_a)  # (review GI: a's log, payloads and outside checkpoint of two entries: seen by the copy alone)
    assert _verified_alone(a)
    cut = cli(a.root, 'audit', 'verify')
    assert cut.returncode == 3 and 'kept at the tracking server records 3 entries' in ' '.join(cut.stderr.split())
    assert cli(b.root, 'audit', 'verify').returncode == 0


def test_appends_keep_one_run_per_workspace(tmp_path):
    """The copy follows the log in one run of this workspace (tagged `audit.workspace`), not a run per entry: entries
    mirrored one by one, entries written without mirroring (`audit_only`, the flags' path) and caught up later, and a
    mirror with nothing new all write on it."""
    from lifecycle.core.settings import workspace_id

    ws, client, local = _two_entries(tmp_path)
    for i in range(2, 6):
        ws.audit('test.step', f's{i}', 'a step')
    for i in range(6, 9):
        ws.audit_only('test.step', f's{i}', 'a step')  # (the copy three entries behind: the chain is read)
    ws.mirror_checkpoint()
    ws.mirror_checkpoint()
    (run,) = _audit_runs(ws)
    assert run.data.tags.get('audit.workspace') == workspace_id(ws.state_dir), run.data.tags
    assert _copy_of(run)['entries'] == 9 and run.data.tags['audit.entries'] == '9'
    assert cli(tmp_path, 'audit', 'verify').returncode == 0


def test_a_copy_written_by_an_older_lifecycle_is_read_never_written_on(tmp_path):
    """Runs an older lifecycle wrote carry no workspace tag: none is written on any more (it was the run every
    workspace wrote on), and `audit verify` still compares its copy: a log cut back below it is named."""
    from lifecycle.core.audit import current_checkpoint

    (tmp_path / 'settings.ini').write_text('[workspace]\n')
    ws = Workspace.open(tmp_path)
    client = ws.mlflow.MlflowClient()
    local = checkpoint_path(keys_folder(ws.audit_path, ws.keys_dir, create=True), ws.audit_path.resolve())
    for i in range(2):
        ws.audit_only('test.step', f's{i}', 'a step')
    two = _snapshot(ws, local)
    for i in range(2, 5):
        ws.audit_only('test.step', f's{i}', 'a step')
    exp = ws.experiment('lifecycle-audit-checkpoint')
    legacy = client.create_run(exp, run_name='audit-checkpoint').info.run_id  # (as the older lifecycle wrote it)
    cp = current_checkpoint(ws.audit_path, ws.keys_dir)
    client.set_tag(legacy, 'audit.checkpoint', json.dumps(cp, sort_keys=True))
    client.set_tag(legacy, 'audit.entries', str(cp['entries']))
    assert cli(tmp_path, 'audit', 'verify').returncode == 0
    _restore(two)
    ws.audit('test.step', 'after', 'an entry after the cut')
    assert _verified_alone(ws)
    r = cli(tmp_path, 'audit', 'verify')
    assert r.returncode == 3 and 'the tracking server records 5 entries' in ' '.join(r.stderr.split()), r.stderr
    assert _copy_of(client.get_run(legacy))['entries'] == 5  # (not written on)


def test_an_altered_copy_in_this_workspaces_run_is_kept_and_named(tmp_path, caplog):
    """A copy in this workspace's run that does not carry this log's MAC (its tag edited on the server) is not trusted:
    it was written over by the next entry's checkpoint, so `audit verify` passed. It is left as it is, the checkpoint
    goes to a new run, and verify names it even though a good copy is there."""
    ws, client, local = _two_entries(tmp_path)
    (run,) = _audit_runs(ws)
    edited = {**_copy_of(run), 'entries': 1}
    client.set_tag(run.info.run_id, 'audit.checkpoint', json.dumps(edited, sort_keys=True))
    ws.audit('test.step', 's2', 'a step')
    r = cli(tmp_path, 'audit', 'verify')
    assert r.returncode == 3 and 'does not carry a valid MAC' in r.stderr, r.stdout + r.stderr
    assert _copy_of(client.get_run(run.info.run_id)) == edited
    warned = [r.getMessage() for r in caplog.records if 'does not carry a valid MAC' in r.getMessage()]
    assert len(warned) == 1 and 'audit verify' in warned[0], warned


def _forged_beside_real(tmp_path):
    """A workspace whose log holds six real entries, the tracking server's copy at five; and, kept aside, a forged
    history of seven (two real, five forged) with its signed checkpoint: it, its outside checkpoint's file, and the
    snapshots (`_snapshot`) of the forged log and the real one."""
    ws, client, local = _two_entries(tmp_path)
    two = _snapshot(ws, local)
    for i in range(2, 5):
        ws.audit('test.step', f's{i}', 'a step')  # (the copy at five)
    real = _snapshot(ws, local)
    _restore(two)
    for i in range(5):
        ws.audit_only('test.step', f'forged{i}', 'a forged step')
    forged = _snapshot(ws, local)
    _restore(real)
    ws.audit_only('test.step', 's5', 'a step')
    return ws, local, forged, _snapshot(ws, local)


def test_a_checkpoint_rewritten_in_the_keys_folder_is_never_copied_to_the_tracking_server(tmp_path, caplog):
    """Review GI: the mirror compared the copy with the log, never the checkpoint it wrote. Someone with the keys folder
    put the checkpoint of a longer forged log in place while the real log was still there (between an `audit_only`
    entry, the flags' path, and its mirror): the copy became the forged one, and once the forged log was swapped in,
    `audit verify` passed. A checkpoint the log does not bear out is not copied (warned), and verify names the cut."""
    ws, local, forged, six = _forged_beside_real(tmp_path)
    local.write_bytes(forged[local])
    ws.mirror_checkpoint()
    assert [_copy_of(r)['entries'] for r in _audit_runs(ws)] == [5]
    said = [r.getMessage() for r in caplog.records]
    warned = [m for m in said if 'not copied to the tracking server' in m]
    assert len(warned) == 1 and 'audit verify' in warned[0], said
    assert 'the log ends at entry 6 but the checkpoint kept outside the workspace records 7 entries' in warned[0]
    _restore(forged)
    assert _verified_alone(ws)
    r = cli(tmp_path, 'audit', 'verify')
    assert r.returncode == 3 and 'entry 5 is not the one the checkpoint kept at the tracking server' in ' '.join(
        r.stderr.split()
    ), r.stdout + r.stderr


def test_a_log_under_a_new_workspace_id_and_key_is_noted_beside_the_copies_it_cannot_be_compared_with(tmp_path):
    """Review GI: with its workspace.id deleted, the log rewritten under the new id and key lifecycle then makes, every
    copy on the server was another workspace's, passed over: `audit verify` said nothing. No key tells such a log from
    a state folder reset on purpose, so verify passes; it notes the runs written from this folder on this machine
    under another id, and how to retire them when the reset was meant."""
    from lifecycle.core.audit import payloads_path

    ws, client, local = _two_entries(tmp_path)
    for i in range(2, 5):
        ws.audit('test.step', f's{i}', 'a step')
    (ws.state_dir / 'workspace.id').unlink()
    ws.audit_path.unlink()
    payloads_path(ws.audit_path).unlink()
    again = Workspace.open(tmp_path)
    for i in range(2):
        again.audit_only('test.step', f'f{i}', 'a step')
    r = cli(tmp_path, 'audit', 'verify', '--json')
    notes = ' '.join(' '.join(json.loads(r.stdout)['notes']).split())
    assert r.returncode == 0, r.stdout + r.stderr
    assert '1 run(s) on the tracking server hold copies of the checkpoint written from a workspace folder' in notes
    assert 'by a workspace of another id' in notes and 'mlflow gc' in notes, notes


def test_a_copy_an_older_lifecycle_wrote_with_another_key_is_noted_not_taken_for_an_altered_one(tmp_path):
    """Review GI: a tracking server shared since before the copies were kept per workspace keeps the untagged run every
    workspace wrote on, holding the last one's copy; a new workspace with no copy of its own yet failed `audit verify`
    on it as "altered". It is noted, not compared: no key tells whose it is."""
    from lifecycle.core.audit import current_checkpoint

    a = _workspace(tmp_path / 'a')
    for i in range(2):
        a.audit_only('test.step', f'a{i}', 'a step')
    client = a.mlflow.MlflowClient()
    legacy = client.create_run(a.experiment('lifecycle-audit-checkpoint'), run_name='audit-checkpoint').info.run_id
    cp = current_checkpoint(a.audit_path, a.keys_dir)
    client.set_tag(legacy, 'audit.checkpoint', json.dumps(cp, sort_keys=True))
    b = _workspace(tmp_path / 'b', a.tracking_uri)
    b.audit_only('test.step', 'b0', 'a step')  # (a light command: no copy of b's yet)
    r = cli(b.root, 'audit', 'verify', '--json')
    assert r.returncode == 0, r.stdout + r.stderr
    notes = ' '.join(' '.join(json.loads(r.stdout)['notes']).split())
    assert '1 copy(ies) of the checkpoint on the tracking server, written by an older lifecycle, are not' in notes
    assert cli(a.root, 'audit', 'verify').returncode == 0  # (a's own, signed with its key: compared, and it agrees)


def test_an_older_lifecycle_sharing_the_server_writes_on_a_run_no_workspace_owns(tmp_path):
    """Review GI: a lifecycle from before the per-workspace copies writes on the audit experiment's oldest active run,
    whatever it holds; on an experiment this version made, that was a workspace's own run, whose copy it wrote over
    (that workspace's `audit verify` failing for good). The oldest active run is kept one no workspace owns."""
    ws, client, local = _two_entries(tmp_path)
    exp = client.get_experiment_by_name('lifecycle-audit-checkpoint').experiment_id
    (oldest,) = client.search_runs([exp], max_results=1, order_by=['attributes.start_time ASC'])  # (as they look it up)
    assert 'audit.workspace' not in oldest.data.tags and 'audit.checkpoint' not in oldest.data.tags, oldest.data.tags
    client.set_tag(oldest.info.run_id, 'audit.checkpoint', json.dumps({'entries': 7, 'mac': 'ab' * 32}))  # (theirs)
    ws.audit('test.step', 's2', 'a step')
    r = cli(tmp_path, 'audit', 'verify', '--json')
    assert r.returncode == 0, r.stdout + r.stderr
    notes = ' '.join(' '.join(json.loads(r.stdout)['notes']).split())
    assert '1 copy(ies) of the checkpoint on the tracking server, written by an older lifecycle, are not' in notes


def test_audit_verify_compares_the_copies_on_the_reading_of_the_log_it_verified(tmp_path, monkeypatch):
    """Review GI: `audit verify` read the log once to verify it, then again (its last entry, or its whole chain for a
    copy two entries behind) to compare the tracking server's copies: a log swapped between the two reads was compared
    unverified. The copies are read first and compared on the chain verify checked; the log is read once."""
    from lifecycle.core import audit

    ws, client, local = _two_entries(tmp_path)
    for i in range(2, 5):
        ws.audit('test.step', f's{i}', 'a step')
    ws.audit_only('test.step', 's5', 'a step')
    ws.audit_only('test.step', 's6', 'a step')  # (the copy two entries behind)

    def again(*a, **k):
        raise AssertionError('the log was read again to compare a copy')

    monkeypatch.setattr(audit, '_chain', again)
    monkeypatch.setattr(audit, '_last_entry', again)
    r = cli(tmp_path, 'audit', 'verify', '--json')
    said = json.loads(r.stdout)
    assert r.returncode == 0 and said['copies_compared'] == 1 and said['entries'] == 7, r.stdout + r.stderr


def test_a_log_swapped_while_the_mirror_reads_the_server_never_becomes_the_copy(tmp_path, monkeypatch):
    """Review GJ: the mirror checked its checkpoint on one reading of the log and the copy it wrote over on another,
    a server round trip later: with a forged log in place for the first and the real one back for the second, the
    forged checkpoint replaced the copy, and verify passed the forged log. Both are judged on one reading, after the
    copy is read: the forged checkpoint is not borne out by the log then, and nothing is written."""
    from lifecycle.core import tracking

    ws, local, forged, six = _forged_beside_real(tmp_path)
    _restore(forged)  # (in place as the mirror reads its checkpoint)
    workspace_runs = tracking._workspace_runs

    def swapped(*a, **k):  # (during the server's round trip, the real log is put back)
        _restore({**six, local: forged[local]})
        return workspace_runs(*a, **k)

    monkeypatch.setattr(tracking, '_workspace_runs', swapped)
    ws.mirror_checkpoint()
    monkeypatch.undo()
    assert [_copy_of(r)['entries'] for r in _audit_runs(ws)] == [5]
    _restore(forged)
    assert cli(tmp_path, 'audit', 'verify').returncode == 3


def test_a_re_keyed_log_is_noted_however_the_state_folder_moved_and_whenever_its_run_was_made(tmp_path):
    """Review GJ: the note of copies from this folder under another id keyed the folder by the log's path, which
    settings.ini moves with `state_dir` (a re-keyed log under a moved state folder passed with no note), and only runs
    made after the tag existed carried it (a run made before never got it). The tag is the workspace folder's, and
    each copy written adds it to a run that lacks it."""
    from lifecycle.core.audit import payloads_path

    ws, client, local = _two_entries(tmp_path)
    (run,) = _audit_runs(ws)
    client.delete_tag(run.info.run_id, 'audit.folder')  # (made before the tag)
    ws.audit('test.step', 's2', 'a step')
    (run,) = _audit_runs(ws)
    assert 'audit.folder' in run.data.tags, run.data.tags
    (ws.state_dir / 'workspace.id').unlink()  # re-keyed: a new id, its key, a log of its own, and the state elsewhere
    ws.audit_path.unlink()
    payloads_path(ws.audit_path).unlink()
    ws.state_dir.rename(tmp_path / 'moved')
    (tmp_path / 'settings.ini').write_text('[workspace]\nstate_dir = moved\n')
    again = Workspace.open(tmp_path)
    again.audit('test.step', 'f0', 'a step')
    r = cli(tmp_path, 'audit', 'verify', '--json')
    notes = ' '.join(' '.join(json.loads(r.stdout)['notes']).split())
    assert r.returncode == 0 and f"runs {run.info.run_id} of the 'lifecycle-audit-checkpoint'" in notes, notes


def test_the_run_kept_for_older_lifecycles_is_made_again_once_deleted(tmp_path):
    """Review GJ: the run kept for older lifecycles was made only with a workspace's first run: one deleted (it looks
    empty), or an experiment from before it, left a workspace's own run the oldest, where an older lifecycle writes.
    It is looked at each time a copy is written, and made again (GK: once per process left a long-running one, the
    loop's or a server's, with the deleted one's answer)."""
    from lifecycle.core import tracking

    ws, client, local = _two_entries(tmp_path)
    exp = client.get_experiment_by_name('lifecycle-audit-checkpoint').experiment_id
    (kept,) = [r for r in client.search_runs([exp]) if 'audit.workspace' not in r.data.tags]
    assert kept.info.run_name == tracking.OLDER_LIFECYCLES_RUN
    client.delete_run(kept.info.run_id)
    ws.audit('test.step', 's2', 'a step')  # (the same process: looked at each time a copy is written)
    (oldest,) = client.search_runs([exp], max_results=1, order_by=['attributes.start_time ASC'])
    assert 'audit.workspace' not in oldest.data.tags and oldest.info.run_id != kept.info.run_id, oldest.data.tags


def test_verify_reads_the_checkpoint_before_the_log_so_an_append_meanwhile_is_no_cut(tmp_path, monkeypatch):
    """Review GJ: `verify` read the log, then the checkpoint kept outside the workspace: an append between the two
    (another process's) read as "entries were deleted from its end". The checkpoint is read first, as `end_problem`
    reads it."""
    from lifecycle.core import audit

    (tmp_path / 'settings.ini').write_text('[workspace]\n')
    ws = Workspace.open(tmp_path)
    for i in range(2):
        ws.audit_only('test.step', f's{i}', 'a step')
    payload_problem = audit._payload_problem

    def meanwhile(*a, **k):  # (after the log was read)
        ws.audit_only('test.step', 'x', 'another process appends')
        return payload_problem(*a, **k)

    monkeypatch.setattr(audit, '_payload_problem', meanwhile)
    v = audit.verify(ws.audit_path, ws.keys_dir)
    assert v.ok and v.entries == 2, v


def test_require_copy_vouches_only_for_a_log_compared_with_a_copy(tmp_path):
    """`audit verify --require-copy`, the operator's check with the tracking store they trust: it passes a log compared
    with its copy, and fails one with no tracking store, or whose store holds no copy of it yet (a light command's
    entries), naming why and how to run it."""
    ws, client, local = _two_entries(tmp_path)
    ok = cli(tmp_path, 'audit', 'verify', '--require-copy', '--json')
    said = json.loads(ok.stdout)
    assert ok.returncode == 0 and said['copies_compared'] == 1 and said['copies_complete'] is True, ok.stdout
    bare = tmp_path / 'bare'
    bare.mkdir()
    (bare / 'settings.ini').write_text('[workspace]\n')
    Workspace.open(bare).audit_only('test.step', 's0', 'a step')  # (no MLflow store yet)
    plain = json.loads(cli(bare, 'audit', 'verify', '--json').stdout)
    assert plain['ok'] and plain['notes'] == [] and not plain['tracking'] and plain['copies_compared'] is None, plain
    strict = cli(bare, 'audit', 'verify', '--require-copy')
    said = ' '.join(strict.stderr.split())
    assert strict.returncode == 3 and 'the workspace has no tracking store' in said and 'LIFECYCLE_TRACKING_URI' in said
    Workspace.open(bare).mlflow  # (the store made; no copy written by a light command)
    none = cli(bare, 'audit', 'verify', '--require-copy')
    assert none.returncode == 3 and 'holds none yet' in ' '.join(none.stderr.split()), none.stderr


def test_require_copy_fails_a_log_whose_folder_has_copies_under_another_id(tmp_path):
    """Review GK: with the log and workspace.id deleted (or the log re-keyed and mirrored once), `--require-copy`
    passed: the log held no entry, or its one copy agreed, and the copies of this folder under the old id were only
    noted."""
    from lifecycle.core.audit import payloads_path

    ws, client, local = _two_entries(tmp_path)
    (ws.state_dir / 'workspace.id').unlink()
    ws.audit_path.unlink()
    payloads_path(ws.audit_path).unlink()
    gone = cli(tmp_path, 'audit', 'verify', '--require-copy')
    said = ' '.join(gone.stderr.split())
    assert gone.returncode == 3 and 'holds 1 run(s) of copies written from a workspace folder at this path' in said
    Workspace.open(tmp_path).audit('test.step', 'f0', 'a step')  # (re-keyed, and mirrored)
    again = cli(tmp_path, 'audit', 'verify', '--require-copy')
    assert again.returncode == 3 and 'under another workspace id' in ' '.join(again.stderr.split()), again.stderr


def test_a_tracking_server_failing_part_way_gives_the_copies_it_read_and_says_so(tmp_path, monkeypatch):
    """Review GK: a server failing on a later page of runs threw away the copies read before, and verify said no copy
    was compared. Those read are compared (each a lower bound), the JSON says how many and that the read was not
    complete, and `--require-copy` fails it."""
    from lifecycle.core import tracking

    ws, client, local = _two_entries(tmp_path)
    monkeypatch.setattr(tracking, '_RUNS_PAGE', 2)  # (the run kept for older lifecycles, then this workspace's)
    ws.audit('test.step', 's2', 'a step')
    exp = client.get_experiment_by_name('lifecycle-audit-checkpoint').experiment_id
    client.create_run(exp, run_name='another')  # (a third run: a second page)
    search = type(client).search_runs

    def failing(self, *a, page_token=None, **k):
        if page_token:
            raise ConnectionError('tracking server down')
        return search(self, *a, page_token=page_token, **k)

    monkeypatch.setattr(type(client), 'search_runs', failing)
    r = cli(tmp_path, 'audit', 'verify', '--json')
    said = json.loads(r.stdout)
    assert r.returncode == 0 and said['copies_compared'] == 1 and said['copies_complete'] is False, r.stdout
    assert any('failed after 2 runs (ConnectionError)' in n for n in said['notes']), said['notes']
    strict = cli(tmp_path, 'audit', 'verify', '--require-copy')
    assert strict.returncode == 3 and 'could not all be read' in ' '.join(strict.stderr.split()), strict.stderr


def test_copies_of_a_workspace_whose_key_is_gone_are_named_as_such(tmp_path):
    """Review GK: with the audit key, the outside checkpoint and the log deleted (workspace.id kept), verify named the
    tracking server's copy "altered"; it names the copies kept there and the missing key."""
    from lifecycle.core.audit import payloads_path

    ws, client, local = _two_entries(tmp_path)
    for p in (local, local.parent / 'audit.key', ws.audit_path, payloads_path(ws.audit_path)):
        p.unlink()
    r = cli(tmp_path, 'audit', 'verify')
    said = ' '.join(r.stderr.split())
    assert r.returncode == 3 and "the tracking server holds 1 copy(ies) of this workspace's checkpoint" in said, said
    assert 'audit.key is missing' in said, said
