"""Issue #13, item 3: with MLflow as the tracking store, the audit checkpoint is also logged there (count, head MAC,
its MAC), and `audit verify` compares the log with it, naming a mismatch even when the checkpoint kept outside the
workspace was rewritten along with the log."""

from __future__ import annotations
from conftest import cli
from lifecycle.core.audit import checkpoint_path, keys_folder
from lifecycle.core.tracking import tracked_audit_checkpoint
from lifecycle.core.workspace import Workspace


def test_audit_verify_compares_the_log_with_the_checkpoint_on_the_tracking_server(tmp_path):
    (tmp_path / 'settings.ini').write_text('[workspace]\n')
    ws = Workspace.open(tmp_path)
    ws.mlflow  # the local SQLite tracking store exists from here on
    assert ws.has_tracking
    for i in range(3):
        ws.audit('test.step', f's{i}', 'a step')
    cp = tracked_audit_checkpoint(ws.mlflow, ws.state_dir)
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
    (run,) = client.search_runs([exp.experiment_id])
    client.set_tag(run.info.run_id, 'audit.checkpoint', 'entries=99')  # edited by hand in the MLflow UI: not JSON
    r = cli(tmp_path, 'audit', 'verify')
    assert r.returncode == 3 and 'Traceback' not in r.stderr, r.stderr
    assert 'the checkpoint kept at the tracking server does not carry a valid MAC' in ' '.join(r.stderr.split())

    def unreachable(*a, **k):
        raise ConnectionError('tracking server down')

    monkeypatch.setattr('lifecycle.core.tracking.tracked_audit_checkpoint', unreachable)
    r = cli(tmp_path, 'audit', 'verify', '--json')
    assert r.returncode == 0 and 'Traceback' not in r.stderr, r.stderr
    assert "the tracking server's copy of the checkpoint could not be read (ConnectionError)" in r.stdout


def test_each_entrys_checkpoint_goes_to_the_run_audit_verify_reads(tmp_path):
    """The checkpoint is written to the audit experiment's first run, looked up at each entry as `audit verify` reads
    it: a run deleted (in MLflow's UI, say) is followed by a new one, and a run that is earlier again (two first writers
    made one each, or a deleted run was restored) gets the next entry's checkpoint, not the run written before it."""
    (tmp_path / 'settings.ini').write_text('[workspace]\n')
    ws = Workspace.open(tmp_path)
    client = ws.mlflow.MlflowClient()
    ws.audit('test.step', 's0', 'a step')
    ws.audit('test.step', 's1', 'a step')
    exp = client.get_experiment_by_name('lifecycle-audit-checkpoint').experiment_id
    (first,) = client.search_runs([exp])
    assert first.data.tags['audit.entries'] == '2'
    client.delete_run(first.info.run_id)
    ws.audit('test.step', 's2', 'a step')
    (second,) = client.search_runs([exp])
    assert second.info.run_id != first.info.run_id and tracked_audit_checkpoint(ws.mlflow, ws.state_dir)['entries'] == 3
    earlier = client.create_run(exp, start_time=first.info.start_time - 1000, run_name='audit-checkpoint')
    ws.audit('test.step', 's3', 'a step')
    assert tracked_audit_checkpoint(ws.mlflow, ws.state_dir)['entries'] == 4
    assert client.get_run(earlier.info.run_id).data.tags['audit.entries'] == '4'
    assert cli(tmp_path, 'audit', 'verify').returncode == 0
