"""A workspace whose MLflow tracking store was reset (the database and artifacts deleted to start over) or swapped (a
new, empty tracking server) while its own store stays: the new registry numbers its versions from 1 again, and
the old version 1's signature record under that number must neither block nor vouch for the new version 1."""

from __future__ import annotations
import json
import shutil
import pytest
from conftest import TRAINER, cli, cli_json

MODEL = 'arrests-release'


@pytest.mark.slow
def test_a_workspace_whose_tracking_store_was_reset_registers_signs_and_releases_again(trained):
    """Review: after the tracking database was deleted, every `lifecycle run` stopped at register ("models:/...1: its
    artifact files changed since they were signed ... register a new version from a trusted run"), and running it
    again only repeated that. Now the old version 1's records are set aside (audited) and the new one is signed,
    verified, bundled, governed and, after a key rotation and revocation, registered again."""
    from lifecycle.core.audit import read
    from lifecycle.core.workspace import Workspace
    from lifecycle.model.signing import verified_path

    state = trained / '.lifecycle'
    old = json.loads((state / 'store' / 'records' / 'signatures' / f'{MODEL}-1.json').read_text())
    for p in state.glob('mlflow.db*'):
        p.unlink()
    shutil.rmtree(state / 'mlartifacts')
    r, out = cli_json(trained, 'run', '--no-site', env=TRAINER)
    assert r.returncode == 0 and 'Traceback' not in r.stderr, r.stderr
    stages = {s['name']: s['outputs'] for s in out['stages']}
    assert stages['register']['model_version'] == '1' and stages['register']['aliases'] == ['dev']
    new_run = stages['train']['mlflow_run_id']
    ws = Workspace.open(trained)
    signed = ws.store.get_record('signatures', f'{MODEL}-1')
    assert signed['manifest']['registered']['run_id'] == new_run != old['manifest']['registered']['run_id']
    aside = state / 'store' / 'set-aside' / f"{MODEL}-1@run-{old['manifest']['registered']['run_id']}"
    assert json.loads((aside / 'signatures' / f'{MODEL}-1.json').read_text()) == old
    (entry,) = [e for e in read(state / 'audit.log') if e['action'] == 'model.records_set_aside']
    assert entry['subject'] == f'{MODEL}/1'
    assert entry['details']['folder'] == aside.relative_to(state / 'store').as_posix()  # (no home folder's name)
    trained_by = state / 'store' / 'records' / 'attestations' / f'{MODEL}-1-trained.json'
    if trained_by.is_file():  # (the trainer holds a key: the new version's statement names its own run)
        assert json.loads(trained_by.read_text())['statement']['run_id'] == new_run
    verified_path(ws.mlflow, ws.store, MODEL, '1', ws.key_dir)

    bundle = state / 'releases' / f'{MODEL}-1'  # (dev's, written by the registration: the new version's)
    assert json.loads((bundle / 'signature.json').read_text()) == signed
    assert cli(trained, 'bundle', MODEL, '1', '--force').returncode == 0
    r = cli(trained, 'govern', 'check', MODEL, '1')
    assert r.returncode in (0, 1) and 'Traceback' not in r.stderr  # (judged, its signature verified: no error)
    r, rotated = cli_json(trained, 'keys', 'rotate', '--reason', 'after the reset')
    assert r.returncode == 0, r.stderr
    assert cli(trained, 'keys', 'revoke', rotated['retired'], '--reason', 'after the reset').returncode == 0
    r, again = cli_json(trained, 'keys', 'reregister', MODEL, '1', '--reason', 'after the reset')
    assert r.returncode == 0, r.stderr
    assert again['model_version'] == '2' and again['signing_key'] == rotated['key_id']


def test_a_running_server_judges_the_key_it_verified_a_version_with_not_a_later_record_under_its_number(
    tiny_template, tmp_path
):
    """A server checks at each look whether the keys of the versions it serves were revoked since. It judged the record
    under the version's number as it stands then: once the tracking store was reset and that number registered and
    signed again, another registry's version's key. It judges the key the loaded version was verified with."""
    from conftest import copy_workspace
    from lifecycle.core.workspace import Workspace
    from lifecycle.serve.server import Server

    ws = Workspace.open(copy_workspace(tiny_template, tmp_path / 'ws'))
    srv = Server(ws)
    try:
        srv.gate.stop()  # (its thread would race this test's own look)
        assert '1' in srv.gate.live.models and srv._distrusted('1') == ''
        rec = ws.store.record_path('signatures', f'{MODEL}-1')  # now another registry's version 1's, by another key
        rec.chmod(0o644)
        rec.write_text(json.dumps({**json.loads(rec.read_text()), 'key_id': '0123456789abcdef'}))
        assert srv._distrusted('1') == ''
        fresh = Server(ws)  # (a new load judges the record it verifies: refused)
        try:
            assert '1' not in fresh.gate.live.models and 'does not trust' in fresh.not_ready(), fresh.not_ready()
        finally:
            fresh.close()
    finally:
        srv.close()
