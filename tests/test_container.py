"""The container runs what we ship. No Docker engine here: the release bundle's image command is started as the
generated Dockerfile says (WORKDIR, ENV, ENTRYPOINT/CMD parsed from it; the bundle's files where its COPY lines put
them, /srv being the bundle), so `lifecycle serve` runs from the package shipped in the bundle, bound to 127.0.0.1,
and answers /predict with the verified model, its flags and a logged row. The same bundle
refuses a tampered model file at load. hadolint checks the Dockerfile (tests/test_release.py)."""

from __future__ import annotations
import json
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
import httpx
import pytest
from conftest import ROOT, clean_env
from lifecycle.core import audit
from lifecycle.core.workspace import Workspace
from lifecycle.release.container import release_bundle
from lifecycle.serve.local import tiny_workspace

REC = {'age': 30, 'checks': 2, 'employed': 'Yes', 'citizen': 'No'}


def image(dockerfile: str) -> dict:
    "WORKDIR, ENV, the COPY sources and the command (ENTRYPOINT then CMD, exec form) of a Dockerfile."
    out = dict(workdir='/', env={}, copy=[], entrypoint=[], cmd=[])
    for line in dockerfile.replace('\\\n', ' ').splitlines():
        word, _, rest = line.strip().partition(' ')
        if word == 'WORKDIR':
            out['workdir'] = rest.strip()
        elif word == 'ENV':
            out['env'].update(kv.split('=', 1) for kv in shlex.split(rest))
        elif word == 'COPY':
            out['copy'] += [a for a in shlex.split(rest)[:-1] if not a.startswith('--')]
        elif word in ('ENTRYPOINT', 'CMD'):
            out[word.lower()] = json.loads(rest)
    out['command'] = out['entrypoint'] + out['cmd']
    return out


@pytest.fixture(scope='module')
def tiny_one(tmp_path_factory) -> Path:
    """A tiny workspace with one version (validated, signed, dev's champion), built once for this module (about a
    CPU second each time); never changed: each test takes its own copy (`tiny_copy`)."""
    from conftest import _check_untouched, _process_state_kept, _template_listing

    with _process_state_kept():  # (built in this process: MLflow's URIs never left pointing at it)
        ws = tiny_workspace(tmp_path_factory.mktemp('tiny-one') / 'ws', versions=1, template=ROOT).root
    built = {'listing': _template_listing(ws)}
    yield ws
    _check_untouched(ws, built)


@pytest.fixture
def tiny_copy(tiny_one, tmp_path) -> Workspace:
    "This test's own copy of the module's one-version tiny workspace (`tiny_one`), opened."
    from conftest import copy_workspace

    return Workspace.open(copy_workspace(tiny_one, tmp_path / 'ws'))


@pytest.fixture(scope='module')
def bundle(tiny_one, tmp_path_factory) -> tuple[Path, dict]:
    "A tiny workspace's version 1 (validated, signed) and its release bundle."
    from conftest import copy_workspace

    home = tmp_path_factory.mktemp('container')
    ws = Workspace.open(copy_workspace(tiny_one, home / 'ws'))
    b = release_bundle(ws, ws.params['register'].model_name, '1', home / 'bundle')
    return Path(b['path']), b


def free_port() -> int:
    with socket.socket() as so:
        so.bind(('127.0.0.1', 0))
        return so.getsockname()[1]


@pytest.mark.slow  # a server process
def test_the_image_command_serves_the_verified_model_with_flags_and_prediction_log(bundle, tmp_path):
    src, b = bundle
    root = tmp_path / 'srv'  # the image's WORKDIR: what its COPY lines ship, as every container starts from the image
    img = image(b['dockerfile'])
    root.mkdir()
    for c in img['copy']:
        (shutil.copytree if (src / c).is_dir() else shutil.copy2)(src / c, root / c)
    assert img['workdir'] == '/srv' and img['command'] == ['python', '-m', 'lifecycle', 'serve'], img
    assert img['env']['PYTHONPATH'] == '/srv/lib'  # the lifecycle package shipped in the bundle, not an installed one
    assert sorted(f.name for f in src.iterdir() if f.name not in {c.rstrip('/') for c in img['copy']}) == [
        'Dockerfile'
    ], img['copy']  # the bundle's layout is what COPY ships, but for its recipe
    assert not (root / '.lifecycle').exists()  # nothing served yet: flags and logs are written at start
    port = free_port()
    env = {
        **clean_env(),
        **{k: v.replace('/srv', str(root)) if v.startswith('/srv') else v for k, v in img['env'].items()},
        'LIFECYCLE_HOST': '127.0.0.1',  # `docker run -e`: bound to this machine only, on a free port
        'LIFECYCLE_PORT': str(port),
        'LIFECYCLE_KEYS_DIR': str(tmp_path / 'keys'),  # /var/lib/lifecycle/keys in the image
        'PATH': f"{Path(sys.executable).parent}:{clean_env().get('PATH', '')}",
    }
    proc = subprocess.Popen(img['command'], cwd=root, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        url, end = f'http://127.0.0.1:{port}', time.monotonic() + 180
        with httpx.Client(base_url=url, timeout=10) as http:
            while True:
                assert proc.poll() is None, proc.stdout.read().decode()
                try:
                    if http.get('/ready').json().get('ready'):
                        break
                except httpx.TransportError:
                    pass
                assert time.monotonic() < end, 'the image command never became ready'
                time.sleep(0.3)
            ready = http.get('/ready').json()
            assert ready['deployed'] == {'control': '1', 'safe': '1'}, ready
            r = http.post('/predict', json={'records': [REC], 'context': {'targetingKey': 'person-1'}})
            assert r.status_code == 200, r.text
            ans = r.json()
            assert ans['model_version'] == '1' and ans['variant'] == 'control' and len(ans['predictions']) == 1
    finally:
        proc.terminate()
        out = proc.communicate(timeout=30)[0].decode()
    # uvicorn drains, then re-raises SIGTERM (as `docker stop` sees it): a clean stop, no traceback
    assert proc.returncode in (0, -signal.SIGTERM) and 'Traceback' not in out, out
    log = audit.read(root / '.lifecycle/audit.log')
    assert [e['subject'] for e in log if e['action'] == 'serve.load'] == [f"{b['release']['model_name']}/1"]
    assert any(e['action'] == 'flags.init' and 'release bundle' in e['reason'] for e in log)
    from lifecycle.serve.predlog import read_log

    rows = read_log(f"sqlite:///{root / '.lifecycle/predictions.db'}")
    assert len(rows) == 1 and rows.iloc[0]['request_id'] == ans['request_id']


def test_a_bundle_loads_only_its_own_verified_version(bundle, tmp_path, monkeypatch):
    from lifecycle.model.signing import SignatureError
    from lifecycle.release.container import BundleError
    from lifecycle.serve.models import load_bundled

    src, b = bundle
    root = shutil.copytree(src, tmp_path / 'srv')
    monkeypatch.setenv('LIFECYCLE_KEYS_DIR', str(tmp_path / 'keys'))
    s, name = Workspace.open(root), b['release']['model_name']
    assert load_bundled(s, name, '1').version == '1'
    with pytest.raises(SignatureError, match='carries .* version 1 only'):
        load_bundled(s, name, '2')
    victim = next(p for p in sorted((root / 'model').rglob('*')) if p.is_file() and p.name != 'MLmodel')
    victim.write_bytes(victim.read_bytes() + b'\n')
    with pytest.raises((SignatureError, BundleError), match=victim.name):  # (the bundle's file list names it first)
        load_bundled(s, name, '1')


def test_a_bundle_is_made_only_for_a_version_its_environment_may_serve(tiny_copy, tmp_path):
    "The image serves its version to everyone: bundling checks the release policy first, as every exposure does."
    from dataclasses import replace
    from lifecycle.release.container import BundleError

    ws = tiny_copy
    name = ws.params['register'].model_name
    with pytest.raises(BundleError, match="no release bundle: .*production.*approval") as e:
        release_bundle(replace(ws, environment='production'), name, '1', tmp_path / 'prod')
    assert "environment 'production'" in str(e.value) and not (tmp_path / 'prod').exists()
    b = release_bundle(ws, name, '1', tmp_path / 'dev')  # dev needs the gates only
    assert b['release']['policy'] == {'environment': 'dev', 'exposure': 'dev'}
    from lifecycle.serve.server import Server
    from lifecycle.core.params import FlagsParams
    from lifecycle.core.settings import SettingsError

    with pytest.raises(
        SettingsError, match="checked against the release policy of the 'dev' environment, not 'production'"
    ):
        Server(replace(Workspace.open(tmp_path / 'dev'), environment='production'))  # `-e LIFECYCLE_ENVIRONMENT=...`
    srv = Server.__new__(Server)  # the bundle's policy look, without starting a server
    srv.bundle, srv.s, srv.model_name = b['release'], Workspace.open(tmp_path / 'dev'), name
    spec = FlagsParams(control='1', safe='1', challenger='2', percentage=10)
    assert srv._vet(spec, name, None) == ['challenger: version 2 is not the version this release bundle carries (1)']


@pytest.mark.slow
def test_a_bundle_edited_to_serve_another_environment_is_refused(bundle, tmp_path):
    """release.json says which environment's release policy allowed its version, signed by the workspace's key: a
    bundle made for dev, edited (release.json and settings.ini) to serve as production, does not start (exit 2)."""
    from conftest import cli

    src, b = bundle
    root = shutil.copytree(src, tmp_path / 'srv')
    rel, ini = root / 'release.json', root / 'settings.ini'
    doc = json.loads(rel.read_text())
    assert doc['statement']['policy'] == {'environment': 'dev', 'exposure': 'dev'} and doc['signature']
    doc['statement']['policy'] = {'environment': 'production', 'exposure': 'production'}
    rel.write_text(json.dumps(doc))
    ini.write_text(ini.read_text().replace('environment = dev', 'environment = production'))
    keys = {'LIFECYCLE_KEYS_DIR': str(tmp_path / 'keys'), 'LIFECYCLE_PORT': str(free_port())}
    r = cli(root, 'serve', env=keys, own_process=True, timeout=120)  # (a server that started would time out)
    assert r.returncode == 2 and 'release.json: the statement does not match its signature' in r.stderr, r.stderr
    assert 'Traceback' not in r.stderr and not (root / '.lifecycle' / 'flags.json').exists()
    rel.write_text(json.dumps(doc['statement']))  # the statement without its signature: refused as unsigned
    r = cli(root, 'serve', env=keys, own_process=True, timeout=120)
    assert r.returncode == 2 and 'release.json: not signed' in r.stderr, r.stderr


@pytest.mark.slow  # server processes (that must not start)
def test_a_bundle_serves_only_its_own_signed_params(bundle, tmp_path):
    """Review U: a signed bundle served with another params folder (--params, $LIFECYCLE_PARAMS_DIR, or one line in
    its unsigned state folder), whose contract, masking and policy nothing signed: refused, exit 2."""
    from conftest import cli

    src, b = bundle
    root = shutil.copytree(src, tmp_path / 'srv')
    other = shutil.copytree(root / 'params', tmp_path / 'evil')
    keys = {'LIFECYCLE_KEYS_DIR': str(tmp_path / 'keys'), 'LIFECYCLE_PORT': str(free_port())}
    for how, env in ((('--params', str(other)), {}), ((), {'LIFECYCLE_PARAMS_DIR': str(other)})):
        r = cli(root, 'serve', *how, env={**keys, **env}, own_process=True, timeout=120)
        assert r.returncode == 2 and 'a release bundle serves its own signed params/ only, not ' in r.stderr, r.stderr
        assert str(other) in r.stderr and 'Traceback' not in r.stderr


def test_a_bundle_whose_params_or_code_were_edited_is_refused_and_a_deployment_can_anchor_its_key(bundle, tmp_path):
    """release.json lists every file the bundle ships: a decision threshold edited in params/flags.yaml is refused.
    A bundle rewritten whole under a new key its own settings.ini pins verifies against itself; a deployment that sets
    $LIFECYCLE_RELEASE_PIN (the workspace's signing pin) refuses it."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    from lifecycle.core.settings import read_trust, write_trust
    from lifecycle.model.signing import TRUST_SIGNING, public_pin, sign_statement
    from lifecycle.release.container import BundleError, bundle_files, read_bundle

    src, b = bundle
    root = shutil.copytree(src, tmp_path / 'srv')
    flags = root / 'params' / 'flags.yaml'
    flags.write_text(flags.read_text() + '\n# threshold lowered by hand\n')
    with pytest.raises(BundleError, match=r'the bundle is not the one signed \(changed: params/flags.yaml\)') as e:
        read_bundle(root)
    assert '`lifecycle bundle MODEL VERSION --force` in the environment it serves' in str(e.value)  # (review HI)
    (root / 'params' / 'extra.yaml').write_text('x: 1\n')
    with pytest.raises(BundleError, match=r'changed: params/flags.yaml; added: params/extra.yaml'):
        read_bundle(root)
    forger = Ed25519PrivateKey.generate()  # the whole bundle re-signed under a key of the forger's
    pins = read_trust(root)[TRUST_SIGNING]
    write_trust(root, TRUST_SIGNING, [*pins, public_pin(forger)])
    statement = {**json.loads((root / 'release.json').read_text())['statement'], 'files': bundle_files(root)}
    (root / 'release.json').write_text(json.dumps(sign_statement(statement, forger)))
    assert read_bundle(root)['model_version'] == '1'  # (its own settings.ini is all it has to go by)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv('LIFECYCLE_RELEASE_PIN', pins[0])
        with pytest.raises(BundleError, match=r'not one \$LIFECYCLE_RELEASE_PIN names'):
            read_bundle(root)
        assert read_bundle(src)['model_version'] == '1'  # the bundle as made: its key is the one anchored


def test_a_bundle_served_as_another_environment_is_refused_before_it_says_it_serves(bundle, tmp_path):
    "Review AH: `serve` printed 'serving the production environment on http://...', then refused (exit 2)."
    from conftest import cli

    src, _ = bundle
    root = shutil.copytree(src, tmp_path / 'srv')
    env = {'LIFECYCLE_KEYS_DIR': str(tmp_path / 'keys'), 'LIFECYCLE_PORT': str(free_port()),
           'LIFECYCLE_ENVIRONMENT': 'production'}  # fmt: skip
    r = cli(root, 'serve', env=env, own_process=True, timeout=120)
    said = ' '.join(r.stderr.split())
    assert r.returncode == 2 and "checked against the release policy of the 'dev' environment" in said, said
    assert 'serving the' not in said and 'Traceback' not in said


@pytest.mark.slow
def test_a_bundle_written_again_and_killed_midway_leaves_the_one_there_whole(tiny_copy):
    """A bundle was written in place, after the one there was removed: a process killed midway left a folder with
    some of the files and no release.json, and no bundle at all. It is written beside its place and renamed in whole;
    what a kill -9 leaves beside it (a part written, or the old bundle set aside between the two renames) is cleared,
    or put back, by the next write and by `lifecycle bundle`, which then finds the bundle there (review CC)."""
    from lifecycle.core.cli_support import invoke
    from lifecycle.release.commands import bundle
    from lifecycle.release.container import bundle_dir, tidy_bundle

    ws = tiny_copy
    name = ws.params['register'].model_name
    dest = bundle_dir(ws, name, '1')  # (where `lifecycle bundle` writes it)
    release_bundle(ws, name, '1', dest)
    before = {p.relative_to(dest): p.read_bytes() for p in dest.rglob('*') if p.is_file()}

    def killed_at(patch: str) -> None:  # `release_bundle` in a process that SIGKILLs itself where `patch` says
        code = (
            "import os, signal\nfrom lifecycle.core.workspace import Workspace\nfrom lifecycle.release import container"
            f"\n{patch}\ncontainer.release_bundle(Workspace.open({str(ws.root)!r}), {name!r}, '1', {str(dest)!r})"
        )
        r = subprocess.run([sys.executable, '-c', code], env=clean_env(), capture_output=True, timeout=120)
        assert r.returncode == -signal.SIGKILL, r.stderr.decode()[-2000:]

    def files() -> dict:
        return {p.relative_to(dest): p.read_bytes() for p in dest.rglob('*') if p.is_file()}

    def beside() -> list[str]:
        return sorted(p.name for p in dest.parent.iterdir() if p != dest)

    die = 'lambda *a, **k: os.kill(os.getpid(), signal.SIGKILL)'
    killed_at(f'container.bundle_files = {die}')  # (struck after the model, lib/ and params are written)
    changed = sorted(str(k) for k in set(files()) ^ set(before) | {k for k in before if files().get(k) != before[k]})
    assert changed == [] and [re.sub(r'\d+$', 'PID', n) for n in beside()] == [f'.{dest.name}.part-PID'], changed
    release_bundle(ws, name, '1', dest)  # written again in whole; the part left beside it is gone
    assert (dest / 'release.json').exists() and beside() == []
    renames = "real, n = os.rename, []\ndef rename(a, b):\n    n.append(a)\n    return real(a, b) if len(n) < 2 else "
    (dest / '.lifecycle').mkdir()
    (dest / '.lifecycle' / 'served.txt').write_text('what a server run in it wrote')  # (this bundle, not a new one)
    killed_at(renames + f"({die})()\nos.rename = rename")  # (struck between the swap's two renames)
    assert not dest.exists() and len(beside()) == 2  # (the bundle set aside, the new one beside it)
    r = invoke(bundle, [name, '1'], env={'LIFECYCLE_WORKSPACE': str(ws.root)})
    assert r.exit_code == 2 and "is there already" in r.stderr, (r.stdout, r.stderr)  # (put back, found there)
    assert (dest / '.lifecycle' / 'served.txt').exists() and beside() == [] and tidy_bundle(dest) == dest


def test_a_bundle_that_cannot_be_renamed_into_place_puts_the_one_there_back(tiny_copy, monkeypatch):
    "Review CE: with the new bundle's rename into place failing, the old bundle was left hidden beside its place."
    import os
    from lifecycle.release import container

    ws = tiny_copy
    name = ws.params['register'].model_name
    dest = container.bundle_dir(ws, name, '1')
    release_bundle(ws, name, '1', dest)
    (dest / 'kept.txt').write_text('the bundle there')
    real = os.rename

    def refused(a, b):
        if '.part-' in str(a):
            raise OSError(28, 'No space left on device')
        return real(a, b)

    monkeypatch.setattr(os, 'rename', refused)
    with pytest.raises(OSError, match='No space'):
        release_bundle(ws, name, '1', dest)
    assert (dest / 'kept.txt').exists() and sorted(p.name for p in dest.parent.iterdir()) == [dest.name]


def test_two_writes_of_one_bundle_at_once_are_taken_in_turn(tiny_copy, monkeypatch):
    """Review CE: two `lifecycle bundle --force` at once had no lock; one failed (ENOTEMPTY), or, in one process, the
    second's tidying removed the first's part as it was written. They are written one at a time."""
    import threading
    from lifecycle.release import container

    ws = tiny_copy
    name = ws.params['register'].model_name
    dest = container.bundle_dir(ws, name, '1')
    writing, real, errors = threading.Event(), container._write_bundle, []

    def slow(*a, **k):  # (the first write takes its time once its part is begun)
        out = real(*a, **k)
        if not writing.is_set():
            writing.set()
            threading.Event().wait(1.0)
        return out

    monkeypatch.setattr(container, '_write_bundle', slow)

    def write():
        try:
            release_bundle(ws, name, '1', dest)
        except Exception as e:  # (said below)
            errors.append(e)

    first = threading.Thread(target=write)
    first.start()
    assert writing.wait(60)
    write()
    first.join(60)
    assert errors == [] and (dest / 'release.json').exists()
    assert sorted(p.name for p in dest.parent.iterdir()) == [dest.name]


def test_a_file_where_a_bundle_or_its_folder_goes_is_named_or_replaced_not_left_beside_it(tiny_copy, tmp_path):
    """Found by review DD: a file at .lifecycle/releases made `lifecycle bundle` fail with a bare '[Errno 17] File
    exists'; a file where the bundle goes, replaced by --force, was left beside it (`.NAME.old-PID`) with a warning
    that it could not be removed."""
    from lifecycle.release.container import BundleError, bundle_dir

    ws = tiny_copy
    name = ws.params['register'].model_name
    dest = bundle_dir(ws, name, '1')
    dest.parent.write_text('not a folder')
    with pytest.raises(BundleError, match=r"releases: expected the folder release bundles go in, found a file"):
        release_bundle(ws, name, '1', dest)
    dest.parent.unlink()
    dest.parent.symlink_to(tmp_path / 'gone')  # (a link to nothing: said so, review DH)
    with pytest.raises(BundleError, match=r"releases: expected the folder release bundles go in, found a link to no"):
        release_bundle(ws, name, '1', dest)
    dest.parent.unlink()
    dest.parent.mkdir()
    dest.write_text('not a bundle')
    release_bundle(ws, name, '1', dest)
    assert (dest / 'release.json').is_file() and [p.name for p in dest.parent.iterdir()] == [dest.name]


def test_a_version_number_with_spaces_around_it_is_that_version(tiny_copy):
    """Found by review DD: `lifecycle bundle NAME ' 1'` said version ' 1' was unsigned (the registry read it as 1, the
    signature records did not), and promote said 'alias -> version  1'. A number is taken without its spaces."""
    from lifecycle.core.cli_support import invoke, registry_version
    from lifecycle.release.commands import bundle
    from lifecycle.release.container import bundle_dir

    assert registry_version(' 1 ', 'VERSION') == '1' and registry_version(' dev', 'VERSION') == ' dev'
    assert registry_version('007', 'VERSION') == '7'  # (the registry's version 7: '007' was 'unsigned' to bundle)
    ws = tiny_copy
    name = ws.params['register'].model_name
    r = invoke(bundle, [name, ' 1 ', '--json'], env={'LIFECYCLE_WORKSPACE': str(ws.root)})
    assert r.exit_code == 0, r.stdout + r.stderr
    assert json.loads(r.stdout)['path'] == str(bundle_dir(ws, name, '1'))


def test_a_bundle_ships_only_params_that_register_its_model_and_a_refusal_keeps_the_one_there(tiny_copy):
    """Found by review GP: with the workspace's params registering another model (the last run was another
    dataset's), `lifecycle bundle NAME V --force` put in place of the sound bundle one shipping the other dataset's
    params (its contract, policy and model name), said it serves that version, and its server stayed not ready for
    good. The bundle is refused as govern check, approve and promote refuse, naming the folder that registers NAME."""
    from lifecycle.core.cli_support import invoke
    from lifecycle.release.commands import bundle
    from lifecycle.release.container import BundleError, bundle_dir

    ws = tiny_copy
    name = ws.params['register'].model_name
    dest = bundle_dir(ws, name, '1')
    release_bundle(ws, name, '1', dest)  # a sound bundle, as registration writes it
    sound = {p.relative_to(dest): p.read_bytes() for p in dest.rglob('*') if p.is_file()}
    other = ws.root / 'params-other'
    shutil.copytree(ws.params_dir, other)
    reg = other / 'register.yaml'
    reg.write_text(reg.read_text().replace(f'model_name: {name}', 'model_name: other'))
    env = {'LIFECYCLE_WORKSPACE': str(ws.root), 'LIFECYCLE_PARAMS_DIR': str(other)}  # (as --params sets it)
    r = invoke(bundle, [name, '1', '--force', '--json'], env=env)
    said = json.loads(r.stdout or '{}').get('error', r.stdout + r.stderr)
    assert r.exit_code == 2, r.stdout[:500]
    assert f'registers other, not {name}' in said and f'pass --params {Path(ws.params_dir).name}' in said, said
    assert {p.relative_to(dest): p.read_bytes() for p in dest.rglob('*') if p.is_file()} == sound  # kept whole
    with pytest.raises(BundleError, match=f'registers other, not {name}'):  # (the library's one way in too)
        release_bundle(Workspace.open(ws.root, params_dir=other), name, '1', ws.root / 'elsewhere')
    assert not (ws.root / 'elsewhere').exists()


@pytest.mark.slow  # a lifecycle process
def test_a_bundles_python_m_lifecycle_runs_as_the_lifecycle_command_does(bundle):
    """A bundle's `python -m lifecycle` (the image's command) ran the Click app itself, not `lifecycle`'s `main`: a
    `--json` error came as Click's boxed text, not strict JSON; a defect as a traceback, not one paragraph; and numpy
    was not switched to its AVX2 kernels on Zen 4, so the image's server differed from `lifecycle serve` on the same
    machine. Its `__main__` now calls `main`."""
    src, _ = bundle
    env = {**clean_env(), 'PYTHONPATH': str(src / 'lib')}  # (as the image's ENV: the shipped package)
    cmd = [sys.executable, '-m', 'lifecycle', 'serve', '--nope', '--json']
    r = subprocess.run(cmd, cwd=src, env=env, capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and json.loads(r.stdout) == {'ok': False, 'error': 'No such option: --nope'}, r


@pytest.mark.slow  # trains and registers a version
def test_a_bundle_of_a_workspace_in_a_folder_named_by_an_e_mail_address_ships_no_such_name(tmp_path, monkeypatch):
    """Found by review FZ: MLflow wrote in each model's `MLmodel` where its files were stored,
    `artifact_path: file:///.../carol%40corp.example/ws/.lifecycle/mlartifacts/...`, and that file, signed with the
    model, went into every release bundle and image. A model is now logged without it (MLflow loads a model folder
    without it), so the bundle holds neither the folder's name nor the workspace's path; it verifies and loads."""
    import mlflow.pyfunc
    import pandas as pd
    import yaml
    from lifecycle.serve.models import load_bundled

    ws = tiny_workspace(tmp_path / 'carol@corp.example' / 'ws', versions=1, template=ROOT)
    name = ws.params['register'].model_name
    b = release_bundle(ws, name, '1', tmp_path / 'bundle')
    root = Path(b['path'])
    shown = [str(ws.root), ws.root.as_uri(), 'carol@corp.example', 'carol%40corp.example']
    files = [p for p in root.rglob('*') if p.is_file()]
    held = {str(p.relative_to(root)): [s for s in shown if s.encode() in p.read_bytes()] for p in files}
    assert not {p: s for p, s in held.items() if s}, held
    mlmodels = [root / 'model' / 'MLmodel', *(ws.root / '.lifecycle' / 'mlartifacts').rglob('MLmodel')]
    assert len(mlmodels) == 2 and not any('artifact_path' in yaml.safe_load(p.read_text()) for p in mlmodels)
    monkeypatch.setenv('LIFECYCLE_KEYS_DIR', str(tmp_path / 'keys'))
    assert load_bundled(Workspace.open(root), name, '1').version == '1'  # its signature verifies
    model = mlflow.pyfunc.load_model(str(root / 'model'))  # and MLflow loads the folder as it is shipped
    assert model.predict(pd.DataFrame([REC])).shape == (1,)


def test_bundle_ships_no_database_password_or_address_of_the_source(tiny_copy, tmp_path):
    """Review GM: a bundle copied the params folder as it was, so a database source's user and password (or a source
    file named with an e-mail address) went into the bundle's ingest.yaml and the image built from it. The bundle's
    copy names the source as messages do; its params still load; the workspace's own file is untouched."""
    from lifecycle.core.params import load_params

    ws = tiny_copy
    own = ws.params_dir / 'ingest.yaml'
    text = own.read_text()
    url = 'postgresql+psycopg://alice:S3cretPW@db.example/crm'
    own.write_text(re.sub(r'(?m)^source:.*$', f'source: "{url}"\nquery: SELECT * FROM arrests', text, count=1))
    b = release_bundle(ws, ws.params['register'].model_name, '1', tmp_path / 'bundle')
    shipped = Path(b['path'])
    said = [p for p in shipped.rglob('*') if p.is_file() and b'S3cretPW' in p.read_bytes()]
    assert not said and 'alice' not in (shipped / 'params' / 'ingest.yaml').read_text(), said
    assert load_params(shipped / 'params')['ingest'].source.startswith('postgresql+psycopg://***:***@db.example')
    assert url in own.read_text()


_URL = 'postgresql+psycopg://alice:S3cretPW@db.example/crm'


@pytest.mark.parametrize(
    'written',
    [
        f'source: >-\n  {_URL}\n',  # a folded block
        f'source:\n  {_URL}\n',  # on the next line
        'source: "postgresql+psycopg://alice:S3cretPW@db.example/\\\n  crm"\n',  # quoted, over two lines
        f'# was: source: {_URL}\nsource: {_URL}  # production\n',  # quoted again in a comment
    ],
    ids=['folded', 'next-line', 'quoted-two-lines', 'in-a-comment'],
)
def test_a_bundles_source_written_over_several_lines_or_quoted_in_a_comment_is_withheld(tmp_path, written):
    """A source written over several lines made the bundle's rewrite of ingest.yaml fail with YAML's ParserError, whose
    message quoted the line it stopped at, password and all (review revGS); a comment quoting the source kept it."""
    import yaml
    from lifecycle.release.container import _source_withheld

    path = tmp_path / 'ingest.yaml'
    path.write_text(f'# the contract\ndataset: crm\n{written}query: SELECT * FROM arrests\n')
    _source_withheld(path)
    text = path.read_text()
    assert 'S3cretPW' not in text and 'alice' not in text, text
    assert yaml.safe_load(text) == {
        'dataset': 'crm', 'source': 'postgresql+psycopg://***:***@db.example/crm', 'query': 'SELECT * FROM arrests'
    }


def test_a_deployment_pin_refuses_a_bundle_whose_model_a_key_outside_it_signed(bundle, tmp_path):
    """Review HI: after `keys rotate` then `keys revoke OLD`, a bundle made between the two (release.json signed by the
    new key, the model by OLD, both pinned by the bundle's own settings.ini) started under a $LIFECYCLE_RELEASE_PIN
    naming the new key alone: the pin was asked about release.json's key only, and the revoked key's model served."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    from lifecycle.core.settings import read_trust, write_trust
    from lifecycle.model.signing import TRUST_SIGNING, public_pin, sign_statement
    from lifecycle.release.container import BundleError, bundle_files, read_bundle

    src, _ = bundle
    root = shutil.copytree(src, tmp_path / 'srv')
    new = Ed25519PrivateKey.generate()  # the workspace's key after the rotation
    pins = read_trust(root)[TRUST_SIGNING]
    write_trust(root, TRUST_SIGNING, [*pins, public_pin(new)])
    statement = {**json.loads((root / 'release.json').read_text())['statement'], 'files': bundle_files(root)}
    (root / 'release.json').write_text(json.dumps(sign_statement(statement, new)))
    model_key = json.loads((root / 'signature.json').read_text())['key_id']
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv('LIFECYCLE_RELEASE_PIN', public_pin(new))  # the old key revoked: no longer named
        with pytest.raises(BundleError, match=rf'the model is signed with key {model_key}, not one \$LIFECYCLE_REL'):
            read_bundle(root)
        mp.setenv('LIFECYCLE_RELEASE_PIN', f'{pins[0]}, {public_pin(new)}')  # both trusted: it starts
        assert read_bundle(root)['model_version'] == '1'
