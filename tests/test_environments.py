"""A server declares its environment and serves that environment's alias: a dev server (a newcomer's `make run` +
`lifecycle serve`) needs only the gates; a server whose environment has no version meeting the release policy starts
not ready, saying why (the missing alias, gate or approval) in /ready and its log, and answers 503; a spec written by
hand, even one consistent with its flag file, that exposes a version beyond the policy is refused by the running
server, which keeps the last good flags and raises an alert."""

from __future__ import annotations
import json
import logging
import os
import shutil
import time
from dataclasses import replace
import pytest
from starlette.testclient import TestClient
from conftest import cli, copy_workspace
from lifecycle.app.cli import app
from lifecycle.core import audit
from lifecycle.core.cli_support import invoke
from lifecycle.core.params import FlagsParams
from lifecycle.core.store import atomic_write
from lifecycle.core.workspace import Workspace
from lifecycle.serve import flags as fl
from lifecycle.serve.server import Server
from lifecycle.serve.serving import create_app

NAME = 'arrests-release'
REC = {'age': 30, 'checks': 2, 'employed': 'Yes', 'citizen': 'No'}


@pytest.fixture
def ws(tiny_template, tmp_path) -> Workspace:
    "This test's copy of the session's tiny workspace, with no flags deployed yet."
    w = Workspace.open(copy_workspace(tiny_template, tmp_path / 'ws'))
    shutil.rmtree(fl.flags_dir(w))
    return w


def alerts(w: Workspace, since: int) -> list[dict]:
    return [e for e in audit.read(w.audit_path)[since:] if e['action'] == 'alert']


def test_a_dev_server_with_no_flags_serves_the_dev_alias_with_no_approval(ws):
    assert {k: str(v) for k, v in ws.client.get_registered_model(NAME).aliases.items()} == {'dev': '1'}
    with TestClient(create_app(Server(ws))) as c:
        r = c.get('/ready')
        assert r.status_code == 200 and r.json()['environment'] == 'dev' and r.json()['not_ready'] is None, r.text
        assert r.json()['deployed'] == {'control': '1', 'safe': '1'}
        p = c.post('/predict', json={'records': [REC]})
        assert p.status_code == 200 and p.json()['model_version'] == '1', p.text
    init = [e for e in audit.read(ws.audit_path) if e['action'] == 'flags.init']
    assert 'first serve (dev)' in init[-1]['reason'] and init[-1]['details']['control'] == '1'  # the template's first


def test_a_production_server_without_an_approved_version_starts_not_ready_and_says_why(ws, caplog):
    prod = replace(ws, environment='production')
    with caplog.at_level(logging.ERROR, logger='lifecycle.serving'):
        with TestClient(create_app(Server(prod))) as c:
            r = c.get('/ready')
            body = r.json()
            assert r.status_code == 503 and not body['ready'] and body['environment'] == 'production', r.text
            assert "alias 'production' names no registered version" in body['not_ready'], body
            p = c.post('/predict', json={'records': [REC]})
            assert p.status_code == 503 and "not ready in the 'production' environment" in p.json()['error'], p.text
            assert c.post('/invocations', json={'dataframe_records': [REC]}).status_code == 503
    assert any("alias 'production' names no registered version" in x.getMessage() for x in caplog.records)
    assert not fl.spec_path(ws).exists()  # nothing was deployed

    # flags a dev server deployed (version 1 passed its gates): production wants its signed approval
    fl.init_flags(ws, ws.params['flags'], NAME, lambda a: {'dev': '1'}.get(a), reason='a dev deployment')
    since = len(audit.read(ws.audit_path))
    caplog.clear()
    with caplog.at_level(logging.ERROR, logger='lifecycle.serving'):
        with TestClient(create_app(Server(prod))) as c:
            r = c.get('/ready')
            why = r.json()['not_ready']
            assert r.status_code == 503 and r.json()['deployed'] == {}, r.text
            assert "control: arrests-release version 1 may not be exposed as 'production'" in why, why
            assert "a production approval (by the role 'compliance_officer') is missing" in why, why
            assert c.post('/predict', json={'records': [REC]}).status_code == 503
    assert any('production approval' in x.getMessage() for x in caplog.records)
    assert [e['subject'] for e in alerts(ws, since)] == ['flags_refused']
    with TestClient(create_app(Server(ws))) as c:  # the same flags in a dev server: gates suffice
        assert c.get('/ready').status_code == 200


def test_an_environment_the_policy_does_not_name_is_refused_before_serving(ws):
    from lifecycle.core.settings import SettingsError

    with pytest.raises(SettingsError, match=r"environment 'qa' \(--environment, .*\) is not an environment of policy"):
        Server(replace(ws, environment='qa'))
    r = cli(ws.root, 'serve', '--environment', 'qa', '--port', '1')
    assert r.returncode == 2 and "environment 'qa'" in r.stderr and 'Traceback' not in r.stderr, r.stderr
    r = cli(ws.root, 'serve', '--environment', 'stagin', '--port', '1')  # (a misspelling: as `promote --to` says)
    assert r.returncode == 2 and "did you mean 'staging'?" in ' '.join(r.stderr.split()), r.stderr
    flags_yaml = ws.params_dir / 'flags.yaml'  # review Z: it said `serving ...`, then that it cannot import it
    flags_yaml.write_text(flags_yaml.read_text().replace('provider: flagd-file', "provider: 'nosuch.module:factory'"))
    r = cli(ws.root, 'serve', '--port', '1')
    assert r.returncode == 2 and r.stderr.startswith("error: provider: cannot import 'nosuch.module:factory'"), r.stderr
    (ws.root / 'x.csv').write_text('age\n30\n')
    for args in (['govern', 'check', '--json'], ['flags', 'init', '--json'], ['score', '--input', 'x.csv',
                 '--output', 'y.csv', '--json']):  # (review AB: each took it; govern check passed it)  # fmt: skip
        r = cli(ws.root, *args, env={'LIFECYCLE_ENVIRONMENT': 'prod'})
        out = json.loads(r.stdout)
        assert r.returncode == 2 and out['error'].startswith("environment 'prod' (--environment"), (args, out)
    r = cli(ws.root, 'score', '--input', 'x.csv', '--output', 'y.csv', env={'LIFECYCLE_ENVIRONMENT': 'stagin'})
    assert r.returncode == 2 and "did you mean 'staging'?" in ' '.join(r.stderr.split()), r.stderr


def test_a_hand_written_consistent_spec_exposing_an_ungated_version_is_refused_and_alerted(ws):
    "Only `flags`/the admin API checked the policy on a write; the server checks what it is about to activate."
    ws.client.set_model_version_tag(NAME, '2', 'validation_id', 'val-0000000000000000')  # as if never validated
    with TestClient(create_app(Server(ws))) as c:
        srv = c.app.state.server
        assert c.get('/ready').status_code == 200
        since = len(audit.read(ws.audit_path))
        spec = FlagsParams(control='1', safe='1', challenger='2', percentage=50)
        body = {'model_name': NAME, **spec.model_dump(mode='json', by_alias=True)}
        atomic_write(fl.spec_path(ws), json.dumps(body).encode())  # spec and flag file agree: only the policy objects
        atomic_write(fl.flagd_path(ws), json.dumps(fl.compile_flags(spec)).encode())
        end = time.monotonic() + 10
        while srv.status()['flags_valid']:
            assert time.monotonic() < end, srv.status()
            time.sleep(0.05)
        st = c.get('/ready').json()
        assert st['ready'] and st['deployed'] == {'control': '1', 'safe': '1'}, st  # the last good flags serve
        problem = st['flags_problem']
        assert "challenger: arrests-release version 2 may not be exposed as 'dev'" in problem, problem
        assert 'validation gates' in problem and 'val-0000000000000000' in problem, problem
        assert c.post('/predict', json={'records': [REC], 'context': {'targetingKey': 'k'}}).status_code == 200
        got = [e for e in alerts(ws, since)]
        assert [e['subject'] for e in got] == ['flags_refused'] and 'may not be exposed' in got[0]['reason']
        metrics = c.get('/metrics').text
        assert 'lifecycle_alerts_total{kind="flags_refused"} 1.0' in metrics
        # `flags show` shows the file's flags, and says that this server serves others, and why
        r = invoke(app, ['flags', 'show', '--json'], env={'LIFECYCLE_WORKSPACE': str(ws.root)})
        (elsewhere,) = json.loads(r.stdout)['servers_elsewhere']
        assert elsewhere['pid'] == os.getpid() and 'may not be exposed' in elsewhere['refused'], elsewhere
        assert (
            elsewhere['revision'] == st['flags_revision'] != fl.read_document(fl.flagd_path(ws))['metadata']['revision']
        )
        r = invoke(app, ['flags', 'show'], env={'LIFECYCLE_WORKSPACE': str(ws.root)})
        assert f"server PID {os.getpid()} serves other flags (revision {st['flags_revision']}) than these: " in r.stdout
        assert 'it refused them: ' in r.stdout and 'may not be exposed' in r.stdout, r.stdout
        _spec_live(ws, FlagsParams(control='1', safe='1'))  # flags it takes: no server serves others
        _until(srv, True)
        r = invoke(app, ['flags', 'show', '--json'], env={'LIFECYCLE_WORKSPACE': str(ws.root)})
        assert (
            json.loads(r.stdout)['servers_elsewhere'] == []
            and 'server PID' not in invoke(app, ['flags', 'show'], env={'LIFECYCLE_WORKSPACE': str(ws.root)}).stdout
        )


def _spec_live(ws: Workspace, spec: FlagsParams) -> None:
    "Write `spec` and its flag file as `flags` does (agreeing), for a running server's gate to judge."
    body = {'model_name': NAME, **spec.model_dump(mode='json', by_alias=True)}
    atomic_write(fl.spec_path(ws), json.dumps(body).encode())
    atomic_write(fl.flagd_path(ws), json.dumps(fl.compile_flags(spec)).encode())


def _until(srv, valid: bool) -> dict:
    end = time.monotonic() + 10
    while srv.status()['flags_valid'] != valid:
        assert time.monotonic() < end, srv.status()
        time.sleep(0.05)
    return srv.status()


@pytest.mark.parametrize('why', ['policy', 'signature'])
def test_the_kill_switch_goes_live_though_the_flags_it_is_pulled_on_name_a_version_the_server_refused(ws, why):
    """A server refusing a challenger (the release policy, a signature that fails) kept its last good flags, and then
    refused the kill switch pulled on the same flags too, as they still named that challenger: everyone stayed on the
    control (found by review). Killed, every answer is the safe version's, so only the safe version is judged."""
    if why == 'policy':
        ws.client.set_model_version_tag(NAME, '2', 'validation_id', 'val-0000000000000000')  # as if never validated
    with TestClient(create_app(Server(ws))) as c:
        srv = c.app.state.server
        assert c.get('/ready').status_code == 200
        if why == 'signature':  # as its files changed after signing: refused at load

            def load(version, loaded=srv.gate.load):
                from lifecycle.model.signing import SignatureError

                if version == '2':
                    raise SignatureError('its artifact files do not match the signed manifest')
                return loaded(version)

            srv.gate.load = load
        canary = FlagsParams(control='1', safe='1', challenger='2', percentage=50)
        _spec_live(ws, canary)
        assert 'version 2' in _until(srv, False)['flags_problem']
        _spec_live(ws, canary.model_copy(update={'kill': True}))
        st = _until(srv, True)
        assert c.get('/ready').json()['deployed'] == {'safe': '1'}, st

        def answers():
            return {
                (g['variant'], g['model_version'])
                for g in (
                    c.post('/predict', json={'records': [REC], 'context': {'targetingKey': f'k{i}'}}).json()
                    for i in range(20)
                )
            }

        end = time.monotonic() + 5  # (the flag client reads the gate's active file as the provider polls it)
        while (got := answers()) != {('safe', '1')}:
            assert time.monotonic() < end, got
            time.sleep(0.05)
        _spec_live(ws, canary)  # the kill lifted, the challenger still named: judged afresh, refused again
        assert 'version 2' in _until(srv, False)['flags_problem']
        assert answers() == {('safe', '1')} and c.get('/ready').json()['deployed'] == {'safe': '1'}


def test_a_spec_swapped_for_a_killed_one_while_the_gate_looks_never_lets_a_refused_challenger_answer(ws, monkeypatch):
    """A killed spec is judged by its safe arm alone; the gate read the spec twice, once to check the flag file against
    it and once to judge it, so a spec swapped between the two had a canary file judged as killed, and an unvalidated
    challenger answered (found by review). The file and the spec it is judged by are now one pair, or none."""
    ws.client.set_model_version_tag(NAME, '2', 'validation_id', 'val-0000000000000000')  # as if never validated
    canary = FlagsParams(control='1', safe='1', challenger='2', percentage=50)
    real = fl.check_live

    def racing(s, doc):  # another writer replaces spec.json alone just after the gate compared the file with it
        checked = real(s, doc)
        if 'challenger' in doc['flags'][fl.MODEL_FLAG]['variants']:
            body = {
                'model_name': NAME,
                **canary.model_copy(update={'kill': True}).model_dump(mode='json', by_alias=True),
            }
            atomic_write(fl.spec_path(s), json.dumps(body).encode())
        return checked

    with TestClient(create_app(Server(ws))) as c:
        assert c.get('/ready').status_code == 200
        monkeypatch.setattr(fl, 'check_live', racing)
        _spec_live(ws, canary)
        time.sleep(1.5)  # (several looks of the gate)
        monkeypatch.undo()
        assert 'challenger' not in c.get('/ready').json()['deployed']
        got = {
            c.post('/predict', json={'records': [REC], 'context': {'targetingKey': f'k{i}'}}).json()['variant']
            for i in range(40)
        }
        assert 'challenger' not in got, got


def test_the_first_flags_go_live_only_once_the_file_their_flag_client_reads_exists(ws, monkeypatch):
    """A server that started without flags makes its flag client on the first request after they went live, on the
    gate's active file: that file is written before they go live (a request in between found no file, once in CI)."""
    from lifecycle.serve import gate

    ws.client.delete_registered_model_alias(NAME, 'dev')
    srv = Server(ws)
    try:
        live_at_write = []
        real = gate.atomic_write

        def write(path, data):
            live_at_write.append(srv.gate.live.doc is not None)
            real(path, data)

        monkeypatch.setattr(gate, 'atomic_write', write)
        srv.gate.stop()  # (its thread would race this test's own look)
        fl.init_flags(ws, FlagsParams(control='1', safe='1'), NAME, lambda a: None, reason='deploy version 1')
        assert srv.gate.check() and srv.gate.active.is_file() and srv.flags is not None
        assert live_at_write == [False]  # the first flags: nothing was live while their file was written
    finally:
        srv.close()


def test_a_server_that_started_not_ready_serves_once_flags_meeting_the_policy_are_deployed(ws):
    ws.client.delete_registered_model_alias(NAME, 'dev')  # nothing named for dev yet
    with TestClient(create_app(Server(ws))) as c:
        r = c.get('/ready')
        assert r.status_code == 503 and "alias 'dev' names no registered version" in r.json()['not_ready'], r.text
        assert c.post('/predict', json={'records': [REC]}).status_code == 503
        fl.init_flags(ws, FlagsParams(control='1', safe='1'), NAME, lambda a: None, reason='deploy version 1')
        end = time.monotonic() + 10
        while (r := c.get('/ready')).status_code != 200:  # the gate activates them: no restart
            assert time.monotonic() < end, r.text
            time.sleep(0.05)
        assert r.json()['flags_applied'] == r.json()['flags_revision'] and r.json()['not_ready'] is None, r.text
        p = c.post('/predict', json={'records': [REC]})
        assert p.status_code == 200 and p.json()['model_version'] == '1', p.text


def test_a_starting_server_removes_the_active_flag_files_that_killed_servers_left(ws):
    """A server killed before its gate's `stop` (SIGKILL) leaves the gate's active file behind; the next server started
    where its PIDs count removes it. The files of another origin (a machine or container sharing the flags folder: its
    PIDs are not ours to judge), of a live process, of this one, those named before origins were, and odd names (a
    server starts whatever the folder holds), stay."""
    import os
    import subprocess
    import sys
    from lifecycle.serve import gate

    origin = gate._origin()
    if not origin:
        pytest.skip("no /proc here: other processes' PIDs cannot be judged, so nothing is removed")
    folder = fl.flags_dir(ws)
    folder.mkdir(parents=True, exist_ok=True)
    dead = subprocess.Popen([sys.executable, '-c', 'pass'])
    dead.wait()
    live = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'])
    names = {
        'dead': f'active-{origin}-{dead.pid}-7f0a.flagd.json',
        'live': f'active-{origin}-{live.pid}-7f0a.flagd.json',
        'this process': f'active-{origin}-{os.getpid()}-7f0a.flagd.json',
        'another origin': f'active-0123456789ab-{dead.pid}-7f0a.flagd.json',
        'named before origins': f'active-{dead.pid}-7f0a.flagd.json',
        'no process could have': f'active-{origin}-99999999999999999999-7f0a.flagd.json',  # (past any PID)
        'not a number': f'active-{origin}-\u00b2-7f0a.flagd.json',  # (a digit to str.isdigit, not to int)
    }
    try:
        for name in names.values():
            (folder / name).write_text('{}')
        assert gate._sweep_active(folder, origin) == [names['dead']]  # (the odd names judged, not tripped on)
        (folder / names['dead']).write_text('{}')
        srv = Server(ws)  # ... as a server starts
        try:
            left = {p.name for p in folder.glob('active-*')}
            assert names['dead'] not in left
            assert {n for k, n in names.items() if k != 'dead'} <= left
            assert srv.gate.active.name.startswith(f'active-{origin}-{os.getpid()}-')
        finally:
            srv.close()
    finally:
        live.kill()
        live.wait()


def test_batch_scoring_takes_the_release_policy_and_the_kill_switch_as_the_server_does(ws, tmp_path):
    """`lifecycle score` loaded any registered version it was given, in any environment, and scored with the control
    while the kill switch sent the server's answers to the safe version (found by review): its scores become decisions
    as the server's answers do."""
    src = tmp_path / 'in.csv'
    src.write_text('age,checks,employed,citizen\n' + '30,2,Yes,No\n' * 5)

    def score(*args, env=None):
        from conftest import cli_json

        return cli_json(ws.root, 'score', '--input', str(src), '--output', str(tmp_path / 'out.csv'), *args, env=env)

    _spec_live(ws, FlagsParams(control='2', safe='1', kill=True))
    r, out = score()
    assert r.returncode == 0 and out['model_version'] == '1', r.stderr  # killed: the safe version's scores
    (tmp_path / 'out.csv').unlink()
    _spec_live(ws, FlagsParams(control='1', safe='1', challenger='2', percentage=100))
    r, out = score()  # (a blue-green switch: everyone on the challenger, and scored with the control before)
    assert r.returncode == 0 and out['model_version'] == '2', r.stderr
    r, out = score('--version', '1', env={'LIFECYCLE_ENVIRONMENT': 'production'})
    said = ' '.join((r.stdout + r.stderr).split())  # (--json: the error as JSON)
    assert r.returncode == 2 and "version 1 may not be exposed as 'production'" in said and 'refusing' in said, said
    ws.client.set_model_version_tag(NAME, '2', 'validation_id', 'val-0000000000000000')  # as if never validated
    (tmp_path / 'out.csv').unlink()
    r, _ = score('--version', '2')
    assert r.returncode == 2 and "version 2 may not be exposed as 'dev'" in ' '.join(r.stdout.split()), r.stdout
    assert not (tmp_path / 'out.csv').exists()


def test_batch_scoring_with_an_alias_the_model_lacks_names_the_aliases_it_has(ws, tmp_path):
    """Review DA: `score --version dve` said "neither a version number nor an alias of 'arrests-release'" and no more;
    it names the aliases the model has, as a version it lacks names its versions."""
    from conftest import cli

    src = tmp_path / 'in.csv'
    src.write_text('age,checks,employed,citizen\n30,2,Yes,No\n')
    r = cli(ws.root, 'score', '--input', str(src), '--output', str(tmp_path / 'out.csv'), '--version', 'dve')
    said = ' '.join(r.stderr.split())
    words = f"--version dve: neither a version number nor an alias of {NAME!r} (its aliases: dev)"
    assert r.returncode == 2 and words in said, said
    assert not (tmp_path / 'out.csv').exists()


def test_batch_scoring_refuses_flags_that_route_another_model_than_the_params(ws, tmp_path):
    """Review AG: with the flags routing one model and the params registering another (another dataset just run),
    `score` took the flags' model and the params' contract, which checked none of its inputs: an out-of-range value
    was scored. It is refused as `serve` refuses it, before anything is scored."""
    from conftest import cli_json, set_yaml

    _spec_live(ws, FlagsParams(control='1', safe='1'))
    set_yaml(ws.root / 'params' / 'register.yaml', model_name='another-model')
    src = tmp_path / 'in.csv'
    src.write_text('age,checks,employed,citizen\n' + '30,2,Yes,No\n' * 5)
    r, out = cli_json(ws.root, 'score', '--input', str(src), '--output', str(tmp_path / 'out.csv'))
    said = ' '.join(out['error'].split())
    assert r.returncode == 2 and f"route model {NAME!r}, but the params" in said and "'another-model'" in said, said
    assert not (tmp_path / 'out.csv').exists()
