"""A revoked model-signing key and the versions it signed: the validate stage refuses a champion it signed, naming the
way out, and `lifecycle keys reregister` registers such a version again from its run, so a workspace releases again."""

from __future__ import annotations
from conftest import TRAINER, cli, cli_json

MODEL = 'arrests-release'


def test_a_champion_signed_with_a_revoked_key_is_named_and_registered_again_from_its_run(trained):
    """Review: after `keys rotate` and `keys revoke OLD`, every run failed at validate (the champion, v1, signed with
    OLD, could not be loaded), and the README's 're-register them from their runs' had no command behind it."""
    r, rotated = cli_json(trained, 'keys', 'rotate', '--reason', 'leaked')
    assert r.returncode == 0, r.stderr
    old = rotated['retired']
    assert cli(trained, 'keys', 'revoke', old, '--reason', 'leaked').returncode == 0
    r = cli(trained, 'run', '--force', '--no-site', env=TRAINER)
    assert r.returncode == 1 and 'Traceback' not in r.stderr
    said = ' '.join(r.stderr.split())
    assert 'the champion, the version the dev alias names, is not loaded' in said
    assert f'models:/{MODEL}/1 was signed with key {old}, which was revoked' in said
    assert f'`lifecycle keys reregister {MODEL} 1 --reason ...`' in said and '--to dev`' in said

    r = cli(trained, 'keys', 'reregister', MODEL, '1', '--reason', 'x', '--json')  # (refused: 2 is no such version)
    r2 = cli(trained, 'keys', 'reregister', 'other-model', '1', '--reason', 'x')
    assert r2.returncode == 2 and "register 'arrests-release', not 'other-model'" in r2.stderr
    assert r.returncode == 0, r.stderr
    import json

    out = json.loads(r.stdout)
    assert out['model_version'] == '2' and out['signing_key'] == rotated['key_id']
    assert out['registered_again_from'] == '1' and out['aliases'] == []
    again = cli(trained, 'keys', 'reregister', MODEL, '2', '--reason', 'x')  # (its key is not revoked)
    assert again.returncode == 2 and 'which is not revoked' in again.stderr and 'Traceback' not in again.stderr
    from lifecycle.core.audit import read

    regs = [e for e in read(trained / '.lifecycle' / 'audit.log') if e['action'] == 'model.register']
    assert f'signed with revoked key {old}' in regs[-1]['reason'] and regs[-1]['subject'] == f'{MODEL}/2'
    assert cli(trained, 'promote', MODEL, '2', '--to', 'dev', '--reason', 'replaces v1').returncode == 0
    r = cli(trained, 'run', '--force', '--no-site', env=TRAINER)
    assert r.returncode == 0, r.stderr  # (a new version judged against v2, the champion again)


def test_a_running_server_stops_serving_a_version_whose_key_is_revoked(tiny_template, tmp_path):
    """Review: a running `lifecycle serve` kept serving the versions a revoked key signed until they were loaded
    afresh. At its next look at the flags it drops them, as a start refuses them: not ready, /ready saying why."""
    import subprocess
    import httpx
    from conftest import clean_env, copy_workspace, wait_until
    from lifecycle.serve.local import LocalServer

    ws = copy_workspace(tiny_template, tmp_path / 'ws')
    body = {'records': [{'age': 30, 'checks': 2, 'employed': 'Yes', 'citizen': 'No'}]}
    srv = LocalServer(ws, env=clean_env(), log=subprocess.PIPE, timeout=240).start()  # (a free port)
    try:
        http = httpx.Client(base_url=srv.url, timeout=10)
        assert http.post('/predict', json=body).status_code == 200
        r, rotated = cli_json(ws, 'keys', 'rotate', '--reason', 'leaked')
        assert r.returncode == 0, r.stderr
        http.get('/ready')  # (a rotation alone keeps the old key trusted: still ready)
        assert http.post('/predict', json=body).status_code == 200
        old = rotated['retired']
        assert cli(ws, 'keys', 'revoke', old, '--reason', 'leaked').returncode == 0
        ready = wait_until(lambda: (lambda d: d if d.get('not_ready') else None)(http.get('/ready').json()), 10)
        assert f'was signed with key {old}, which was revoked' in ready['not_ready'], ready
        assert http.post('/predict', json=body).status_code == 503
    finally:
        srv.stop()


def test_reregistering_a_version_no_longer_in_the_registry_is_refused_naming_it(tiny_template, tmp_path):
    """`keys reregister` of a version the revoked key signed that has since left the registry (deleted, say in MLflow's
    UI) ended in MLflow's traceback ('Model Version ... not found'): it is refused, naming the version and what the
    registry holds, exit 2, nothing registered."""
    from conftest import copy_workspace
    from lifecycle.core.workspace import Workspace

    ws = copy_workspace(tiny_template, tmp_path / 'ws')
    r, rotated = cli_json(ws, 'keys', 'rotate', '--reason', 'leaked')
    assert r.returncode == 0 and cli(ws, 'keys', 'revoke', rotated['retired'], '--reason', 'leaked').returncode == 0
    s = Workspace.open(ws)
    s.client.delete_model_version(MODEL, '2')
    r = cli(ws, 'keys', 'reregister', MODEL, '2', '--reason', 'leaked')
    assert r.returncode == 2 and 'Traceback' not in r.stderr, r.stderr
    said = ' '.join(r.stderr.split())
    assert f"model '{MODEL}' has no version 2 in the registry (its versions: 1)" in said, said
    assert [str(v.version) for v in s.client.search_model_versions(f"name = '{MODEL}'")] == ['1']  # (none made)
    r = cli(ws, 'keys', 'reregister', MODEL, '9', '--reason', 'a typo')  # (review HI: never registered: was exit 1)
    said = ' '.join(r.stderr.split())
    assert r.returncode == 2 and f"model '{MODEL}' has no version 9 in the registry (its versions: 1)" in said, said
    assert 'nothing to register again' in said and 'it left the registry' not in said
