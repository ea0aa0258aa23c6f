"""Keys apart from what they protect: the model-signing key lives in `keys_dir` outside the workspace, the public keys
loads trust are pinned in settings.ini, a workspace made before (key in the state folder) is migrated, and a model
rewritten and re-signed with a fresh key is refused at load naming that key. Rotation keeps old signatures
verifiable; revocation refuses them."""

from __future__ import annotations
import warnings
from pathlib import Path
import json
import pytest

NAME = 'toy'


def toy_workspace(root: Path, keys: Path, *, versions: int = 1):
    "A workspace (keys_dir = `keys`) with a tiny sklearn model logged and registered `versions` times."
    import pandas as pd
    from sklearn.linear_model import LogisticRegression
    from lifecycle.core.workspace import Workspace

    root.mkdir(parents=True)
    (root / 'settings.ini').write_text(f'[workspace]\nkeys_dir = {keys}\n')
    ws = Workspace.open(root)
    X = pd.DataFrame({'a': [0.0, 1.0, 2.0, 3.0]})
    with warnings.catch_warnings(), ws.mlflow.start_run(experiment_id=ws.experiment('toy')):
        warnings.simplefilter('ignore')
        uri = ws.mlflow.sklearn.log_model(
            LogisticRegression().fit(X, [0, 0, 1, 1]), name='model', pip_requirements=['scikit-learn']
        ).model_uri
    for _ in range(versions):
        ws.mlflow.register_model(uri, NAME)
    return ws, X


def sign(ws, version, key_dir=None):
    from lifecycle.model.signing import sign_model_version

    return sign_model_version(ws.mlflow, ws.store, NAME, version, key_dir or ws.key_dir, audit_path=ws.audit_path)


def load(ws, version):
    from lifecycle.model.signing import verified_load

    return verified_load(ws.mlflow, ws.store, NAME, version, ws.key_dir)


def stored_model_file(ws) -> Path:
    "The stored `model.pkl`-like artifact of the registered model (the real file MLflow serves from)."
    files = [p for p in ws.state_dir.rglob('*') if p.is_file() and p.suffix in ('.pkl', '.skops')]
    assert files, 'no stored model file found'
    return files[0]


@pytest.fixture
def signed_ws(tmp_path):
    "A workspace at the current format whose version 1 is signed with its pinned key in keys_dir."
    from lifecycle.model.signing import ensure_signing_key

    ws, X = toy_workspace(tmp_path / 'ws', tmp_path / 'keys', versions=2)
    ensure_signing_key(ws)
    sign(ws, 1)
    return ws, X


def test_the_signing_key_lives_outside_the_workspace_and_is_pinned(signed_ws, tmp_path):
    from lifecycle.core.settings import read_trust
    from lifecycle.model.signing import key_id, load_public_key, public_pin

    ws, X = signed_ws
    assert ws.key_dir.is_relative_to(tmp_path / 'keys') and not ws.key_dir.is_relative_to(ws.root)
    assert not (ws.state_dir / 'keys' / 'signing_key.pem').exists()
    assert read_trust(ws.root)['model_signing'] == [public_pin(load_public_key(ws.key_dir))]
    assert list(load(ws, 1).predict(X)) == [0, 0, 1, 1]
    from lifecycle.core.audit import read

    pins = [e for e in read(ws.audit_path) if e['action'] == 'keys.pin']
    assert len(pins) == 1 and pins[0]['details']['key_id'] == key_id(load_public_key(ws.key_dir))


def test_a_model_rewritten_and_resigned_with_a_fresh_key_in_the_state_folder_is_refused(signed_ws):
    "The tamper test: artifacts AND signature record rewritten with a new key put in the state folder."
    from lifecycle.model.signing import (
        SignatureError,
        artifact_manifest,
        ensure_keypair,
        key_id,
        load_private_key,
        sign_manifest,
    )
    from lifecycle.model.signing import _download

    ws, _ = signed_ws
    f = stored_model_file(ws)
    f.write_bytes(f.read_bytes() + b'\n')  # the intruder's model
    ensure_keypair(ws.state_dir / 'keys')  # a fresh key where main used to keep its key
    fresh = load_private_key(ws.state_dir / 'keys')
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        manifest = {
            **artifact_manifest(_download(ws.mlflow, NAME, '1', Path(tmp) / 'm')),
            'subject': f'models:/{NAME}/1',
        }
    rec = ws.store.record_path('signatures', f'{NAME}-1')
    rec.chmod(0o644)
    import json

    rec.write_text(json.dumps(sign_manifest(manifest, fresh)))
    with pytest.raises(SignatureError) as e:
        load(ws, 1)
    assert e.value.reason == 'key' and key_id(fresh) in str(e.value) and 'does not trust' in str(e.value)
    from lifecycle.core.settings import read_trust
    from lifecycle.model.signing import key_from_pin

    assert key_id(fresh) not in [key_id(key_from_pin(p)) for p in read_trust(ws.root)['model_signing']]


def test_a_replaced_key_folder_does_not_make_its_key_trusted(signed_ws):
    "Even an intruder who swaps the key pair in keys_dir is refused: loads trust the key pinned in settings.ini."
    import shutil
    from lifecycle.model.signing import SignatureError, SigningKeyError, ensure_signing_key, key_id, load_public_key

    ws, _ = signed_ws
    shutil.rmtree(ws.key_dir)
    sign_with = ws.key_dir
    from lifecycle.model.signing import ensure_keypair

    ensure_keypair(sign_with)
    ws.store.record_path('signatures', f'{NAME}-1').chmod(0o644)
    ws.store.record_path('signatures', f'{NAME}-1').unlink()
    sign(ws, 1)
    with pytest.raises(SignatureError, match=key_id(load_public_key(ws.key_dir))):
        load(ws, 1)
    with pytest.raises(SigningKeyError, match='lifecycle keys rotate'):  # and it is not pinned behind our back
        ensure_signing_key(ws)


def test_a_missing_signing_key_is_named_and_no_new_one_is_made(signed_ws):
    "Found by review: a new, untrusted pair was made in keys_dir and blamed as 'not one this workspace trusts'."
    import shutil
    from lifecycle.model.signing import SigningKeyError, ensure_signing_key

    ws, _ = signed_ws
    shutil.rmtree(ws.key_dir)
    with pytest.raises(SigningKeyError, match=r"signing key is missing from .* restore that folder .* keys rotate"):
        ensure_signing_key(ws)
    assert not Path(ws.key_dir).exists()  # nothing made: the pinned key's folder is what to restore
    from lifecycle.model import registry, stages

    registered = []
    monkey = pytest.MonkeyPatch()
    monkey.setattr(registry, 'passed_validation', lambda store, vid: {'mlflow_run_id': 'r'})
    monkey.setattr(ws.client, 'get_run', lambda run_id: type('Run', (), {'data': type('D', (), {'tags': {}})})())
    monkey.setattr(registry, 'register_version', lambda *a, **kw: registered.append(a))
    try:
        with pytest.raises(SigningKeyError, match='signing key is missing'):
            stages.register(ws, type('RP', (), {'model_name': 'toy'})(), None, 'val-1')
    finally:
        monkey.undo()
    assert registered == []  # refused before the registry held a version it could not sign


def test_rotation_keeps_old_signatures_verifiable_and_revocation_refuses_them(signed_ws):
    from lifecycle.core.audit import read
    from lifecycle.model.signing import SignatureError, rotate_signing_key, revoke_signing_key

    ws, X = signed_ws
    out = rotate_signing_key(ws, 'yearly rotation')
    assert out['retired'] != out['key_id'] and out['pinned'] == 2
    assert not (ws.key_dir / 'retired' / f"{out['retired']}.pem").exists()  # no old private key kept
    sign(ws, 2)
    assert list(load(ws, 1).predict(X)) == list(load(ws, 2).predict(X)) == [0, 0, 1, 1]  # old and new verify
    from lifecycle.model.signing import SigningKeyError

    with pytest.raises(SigningKeyError, match='keys rotate` first'):  # the key new versions are signed with
        revoke_signing_key(ws, out['key_id'], 'not yet rotated')
    from lifecycle.core.settings import read_trust
    from lifecycle.model.signing import TRUST_SIGNING, key_from_pin, key_id

    revoked = revoke_signing_key(ws, out['retired'], 'laptop stolen')
    # (review HI: what a deployment's $LIFECYCLE_RELEASE_PIN names from now on: the pins less the revoked key)
    assert [key_id(key_from_pin(x)) for x in revoked['release_pin'].split(', ')] == [out['key_id']]
    assert len(read_trust(ws.root)[TRUST_SIGNING]) == 2  # (the old pin stays, so the refusal names it as revoked)
    with pytest.raises(SignatureError) as e:
        load(ws, 1)
    assert e.value.reason == 'revoked' and out['retired'] in str(e.value)
    assert list(load(ws, 2).predict(X)) == [0, 0, 1, 1]
    assert [e['action'] for e in read(ws.audit_path) if e['action'].startswith('keys.')] == [
        'keys.pin',
        'keys.rotate',
        'keys.revoke',
    ]
    ini = ws.root / 'settings.ini'  # (review U: a revocation undone by deleting one line of settings.ini)
    ini.write_text('\n'.join(line for line in ini.read_text().splitlines() if not line.startswith('revoked')) + '\n')
    with pytest.raises(SignatureError, match='as the audit log says') as e:
        load(ws, 1)
    assert e.value.reason == 'revoked'
    from lifecycle.core.audit import erase  # (review W: nor by erasing the revocation's details from the log)

    erase(ws.audit_path, next(e['seq'] for e in read(ws.audit_path) if e['action'] == 'keys.revoke'), 'a request')
    with pytest.raises(SignatureError, match='as the audit log says'):
        load(ws, 1)


def test_a_signing_key_every_user_could_read_in_the_state_folder_is_moved_and_said_to_need_rotating(tmp_path):
    "Migration 3 copied an old in-workspace key to a 600 file without a word on its old mode (review)."
    from lifecycle.core.audit import read
    from lifecycle.core.workspace import Workspace, migrate, write_format
    from lifecycle.model.signing import ensure_keypair

    ws, _ = toy_workspace(tmp_path / 'ws', tmp_path / 'keys')
    old = ws.state_dir / 'keys'
    ensure_keypair(old)
    sign(ws, 1, key_dir=old)
    (old / 'signing_key.pem').chmod(0o644)  # as a checkout or a copy with the default umask leaves it
    write_format(ws.state_dir, 2)
    out = migrate(Workspace.open(ws.root, migrating=True))
    did = next(s['did'] for s in out['steps'] if s['step'] == 'move_signing_key')
    assert 'readable by every user of this machine (mode 644)' in did and '`lifecycle keys rotate' in did
    assert 'take key ' in did and '`lifecycle keys revoke ' in did  # (a rotation alone keeps the old key trusted)
    assert 'keys rotate' in next(e['reason'] for e in read(ws.audit_path) if 'move_signing_key' in json.dumps(e))
    assert (Workspace.open(ws.root).key_dir / 'signing_key.pem').stat().st_mode & 0o777 == 0o600


def test_a_workspace_made_by_the_previous_version_is_migrated_and_its_models_still_load(tmp_path):
    "Format 1 (today's main) kept the key pair in <state>/keys: migrate moves it to keys_dir and pins it."
    from lifecycle.core.workspace import Workspace, WorkspaceFormatError, migrate, write_format
    from lifecycle.core.settings import read_trust
    from lifecycle.model.signing import ensure_keypair, key_id, load_public_key

    ws, X = toy_workspace(tmp_path / 'ws', tmp_path / 'keys')
    old = ws.state_dir / 'keys'
    ensure_keypair(old)  # what main's register stage did
    sign(ws, 1, key_dir=old)
    kid = key_id(load_public_key(old))
    write_format(ws.state_dir, 1)
    with pytest.raises(WorkspaceFormatError, match='lifecycle migrate'):
        Workspace.open(ws.root)
    out = migrate(Workspace.open(ws.root, migrating=True))
    assert [s['step'] for s in out['steps']] == [
        'seal_records',
        'move_signing_key',
        'canonical_content',
        'one_alias_family',
    ] and kid in out['steps'][1]['did'] and 'rotate' not in out['steps'][1]['did']
    ws = Workspace.open(ws.root)
    assert not (old / 'signing_key.pem').exists() and not (old / 'signing_key.pub.pem').exists()
    assert (ws.key_dir / 'signing_key.pem').stat().st_mode & 0o777 == 0o600
    assert key_id(load_public_key(ws.key_dir)) == kid and len(read_trust(ws.root)['model_signing']) == 1
    assert list(load(ws, 1).predict(X)) == [0, 0, 1, 1]
    assert migrate(ws)['steps'] == []


def test_a_persons_key_pair_left_half_made_is_finished_not_refused(tmp_path):
    """Review U: `keys new` killed (or a full disk) between writing the private key and its public key left a state
    where `keys new` refused (a key exists) and `trust add` asked for `keys new`. The public key is written from the
    private one; a whole pair is still never replaced."""
    from lifecycle.model.signing import SigningKeyError, new_person_key

    first = new_person_key(tmp_path, 'erin')
    Path(first['public_key']).unlink()
    again = new_person_key(tmp_path, 'erin')
    assert again['key_id'] == first['key_id'] and Path(again['public_key']).is_file()
    assert again['finished'] and not first['finished']
    with pytest.raises(SigningKeyError, match='never replaced silently'):
        new_person_key(tmp_path, 'erin')
    Path(again['public_key']).unlink()  # (review W: a private key planted, readable by the group, is not taken up)
    Path(again['private_key']).chmod(0o660)
    with pytest.raises(SigningKeyError, match='never replaced silently') as e:
        new_person_key(tmp_path, 'erin')
    priv, pub = again['private_key'], again['public_key']  # (review CA: its advice named a .pub.pem not there)
    assert f"move it aside (`mv {priv} {priv}.old`) and run" in str(e.value) and pub not in str(e.value)
    Path(priv).chmod(0o600)
    new_person_key(tmp_path, 'erin')  # (the pair finished again: both named)
    with pytest.raises(SigningKeyError, match='never replaced silently') as e:
        new_person_key(tmp_path, 'erin')
    assert f"move the pair aside (`mv {priv} {priv}.old` and `mv {pub} {pub}.old`) and run" in str(e.value)


def test_a_folder_or_a_dangling_link_at_a_persons_key_path_is_named_as_such(tmp_path):
    """Found by review DD: a folder at `people/NAME.pem` made approve say "no key: make one with keys new" and keys new
    say it "already holds a key"; a link to nothing made keys new fail with a bare [Errno 2]. Each is named now."""
    from lifecycle.model.signing import SigningKeyError, key_id, load_person_key, new_person_key

    people = tmp_path / 'people'
    (people / 'erin.pem').mkdir(parents=True)
    for call in (load_person_key, new_person_key):
        with pytest.raises(SigningKeyError, match=r"erin\.pem: expected erin's private key file, found a folder: move"):
            call(tmp_path, 'erin')
    (people / 'erin.pem').rmdir()
    (people / 'erin.pem').symlink_to(tmp_path / 'gone.pem')
    for call in (load_person_key, new_person_key):
        with pytest.raises(SigningKeyError, match=r"found a link to .*gone\.pem, which is missing: move it aside"):
            call(tmp_path, 'erin')
    (people / 'erin.pem').unlink()
    made = new_person_key(tmp_path, 'erin')  # (nothing in the way: made, and loaded)
    assert key_id(load_person_key(tmp_path, 'erin')) == made['key_id']


@pytest.mark.parametrize('kill_at', ['private', 'public', 'audit'])
def test_a_rerun_of_the_key_move_killed_midway_says_the_key_moved_not_that_another_was_there(
    tmp_path, monkeypatch, kill_at
):
    """Migration step 3 killed after copying the key to keys_dir, before the state folder's files went: its rerun said
    keys_dir "already held a signing key, which stays the current one (both are pinned)" and filed the very key as a
    retired one; killed after both went, it said only that there was no key to move. The rerun says the key moved."""
    from lifecycle.core.settings import read_trust
    from lifecycle.core.workspace import Workspace, move_signing_key
    from lifecycle.model.signing import ensure_keypair, key_id, load_public_key

    root = tmp_path / 'ws'
    root.mkdir()
    (root / 'settings.ini').write_text(f"[workspace]\nkeys_dir = {tmp_path / 'keys'}\n")
    ws = Workspace.open(root)
    old = ws.state_dir / 'keys'
    ensure_keypair(old)
    kid = key_id(load_public_key(old))
    unlink = Path.unlink

    def killed(self, *a, **k):
        private, public = self.name == 'signing_key.pem', self.name == 'signing_key.pub.pem'
        if (kill_at, True) in (('private', private), ('public', public)):
            raise KeyboardInterrupt
        return unlink(self, *a, **k)

    monkeypatch.setattr(Path, 'unlink', killed)
    if kill_at == 'audit':
        move_signing_key(ws)  # done, then killed before its audit entry
    else:
        with pytest.raises(KeyboardInterrupt):
            move_signing_key(ws)
    monkeypatch.undo()
    said = move_signing_key(ws)
    assert kid in said and 'cut short' in said and 'already held a signing key' not in said, said
    assert f'moved out of the state folder to {ws.key_dir}' in said or 'no signing key in the state folder' in said
    assert not (ws.key_dir / 'retired').exists()
    assert not (old / 'signing_key.pem').exists() and not (old / 'signing_key.pub.pem').exists()
    assert key_id(load_public_key(ws.key_dir)) == kid and len(read_trust(ws.root)['model_signing']) == 1


def test_a_key_move_killed_after_its_audit_entry_is_not_said_to_have_been_cut_short_before_it(tmp_path, monkeypatch):
    """`migrate` killed after step 3's audit entry and before the format moved runs the step again: its second entry
    must not say the first run was cut short before its audit entry (the log holds it)."""
    import lifecycle.core.workspace as wsm
    from lifecycle.core.audit import read
    from lifecycle.model.signing import ensure_keypair

    root = tmp_path / 'ws'
    root.mkdir()
    (root / 'settings.ini').write_text(f"[workspace]\nkeys_dir = {tmp_path / 'keys'}\n")
    ws = wsm.Workspace.open(root)
    ensure_keypair(ws.state_dir / 'keys')
    wsm.write_format(ws.state_dir, 2)
    write = wsm.write_format

    def killed(state_dir, version):
        if version == 3:
            raise KeyboardInterrupt
        return write(state_dir, version)

    with monkeypatch.context() as m, pytest.raises(KeyboardInterrupt):
        m.setattr(wsm, 'write_format', killed)
        wsm.migrate(wsm.Workspace.open(root, migrating=True))
    wsm.migrate(wsm.Workspace.open(root, migrating=True))
    first, again = [e['reason'] for e in read(ws.audit_path) if e['subject'] == 'format 3']
    assert 'moved out of the state folder' in first and 'before its audit entry' not in again, again
    assert 'cut short before the step was recorded as done' in again, again


def test_a_rerun_of_the_key_move_killed_after_filing_the_key_as_retired_does_not_say_it_moved_the_other_one(tmp_path):
    """Migration step 3 with keys_dir already holding a (pinned) signing key files the state folder's key as a retired
    one and removes it from the state folder; killed before the step was recorded as done, its rerun said keys_dir's
    own key "is in keys_dir and pinned already: an earlier run of this step moved it there", a key that was never in
    the state folder. It now says the state folder's key was filed as a retired one and the other stays current."""
    from lifecycle.core.settings import write_trust
    from lifecycle.core.workspace import Workspace, move_signing_key, pin_text
    from lifecycle.model.signing import ensure_keypair, key_id, load_public_key

    root = tmp_path / 'ws'
    root.mkdir()
    (root / 'settings.ini').write_text(f"[workspace]\nkeys_dir = {tmp_path / 'keys'}\n")
    ws = Workspace.open(root)
    ensure_keypair(ws.key_dir)
    there = key_id(load_public_key(ws.key_dir))
    write_trust(ws.root, 'model_signing', [pin_text((ws.key_dir / 'signing_key.pub.pem').read_bytes())[1]])
    ensure_keypair(ws.state_dir / 'keys')
    moved = key_id(load_public_key(ws.state_dir / 'keys'))
    assert 'already held a signing key' in move_signing_key(ws)  # (done, then killed before it was recorded)
    said = move_signing_key(ws)
    assert 'moved it there' not in said, said
    assert f"filed the state folder's key {moved} in {ws.key_dir / 'retired'}" in said and there in said, said


def test_a_key_move_killed_while_filing_the_key_as_retired_leaves_no_torn_key_after_its_rerun(tmp_path):
    """Migration step 3 with keys_dir already holding a signing key copies the state folder's public key into
    `retired/` (shutil.copyfile: no atomic rename) and skipped the copy when a file was there: killed midway, the copy
    was an empty or torn file its rerun kept as done, and removed the state folder's key: the retired key was lost for
    good, and the next rerun of the step stopped on a traceback reading it."""
    from lifecycle.core.workspace import Workspace, move_signing_key
    from lifecycle.model.signing import ensure_keypair, key_id, load_public_key

    root = tmp_path / 'ws'
    root.mkdir()
    (root / 'settings.ini').write_text(f"[workspace]\nkeys_dir = {tmp_path / 'keys'}\n")
    ws = Workspace.open(root)
    ensure_keypair(ws.key_dir)
    ensure_keypair(ws.state_dir / 'keys')
    pub = (ws.state_dir / 'keys' / 'signing_key.pub.pem').read_bytes()
    moved = key_id(load_public_key(ws.state_dir / 'keys'))
    torn = ws.key_dir / 'retired' / f'{moved}.pub.pem'
    torn.parent.mkdir()
    torn.write_bytes(pub[:20])  # (what a copy killed midway leaves)
    assert 'already held a signing key' in move_signing_key(ws)
    assert torn.read_bytes() == pub and key_id(load_public_key(torn)) == moved
    assert 'filed the state folder' in move_signing_key(ws)  # (killed again before it was recorded: no traceback)


def test_two_writes_of_settings_ini_trust_at_once_keep_both(tmp_path, monkeypatch):
    """settings.ini's [trust] is read, changed and replaced whole: a `trust init` pinning the administrator while a
    registration pins the signing key (or `keys revoke` beside `keys rotate`) lost one of the two lines when the other
    write landed between its read and its replace (review GO). Writers take turns."""
    import threading
    from lifecycle.core import settings as st

    root = tmp_path / 'ws'
    root.mkdir()
    (root / 'settings.ini').write_text('[workspace]\n')
    admin, signing = 'ed25519:' + 'A' * 43 + '=', 'ed25519:' + 'S' * 43 + '='
    real, other = st.atomic_write, []

    def interleaved(path, data, *a, **k):
        if not other:  # the other writer runs between this one's read and its replace
            other.append(threading.Thread(target=st.write_trust, args=(root, 'administrator', [admin])))
            other[0].start()
            other[0].join(timeout=1)  # (it waits, once writers take turns)
        return real(path, data, *a, **k)

    monkeypatch.setattr(st, 'atomic_write', interleaved)
    st.write_trust(root, 'model_signing', [signing])
    other[0].join(timeout=10)
    assert not other[0].is_alive()
    assert st.read_trust(root) == {'model_signing': [signing], 'administrator': [admin]}


def test_two_key_rotations_at_once_leave_the_current_key_pinned(signed_ws, monkeypatch):
    """A rotation made its key, read the pins, then wrote them with its key added: a second rotation in between
    retired that key, made and pinned its own, and had its pin overwritten, so the key new versions are signed with was
    one the workspace does not trust and every registration refused (review GO). Rotations take turns."""
    import threading
    from lifecycle.core import settings as st
    from lifecycle.model.signing import key_from_pin, key_id, load_public_key, rotate_signing_key

    ws, _ = signed_ws
    real, other, errors = st.read_trust, [], []

    def second():
        try:
            rotate_signing_key(ws, 'the second rotation')
        except Exception as e:  # (seen in the main thread)
            errors.append(e)

    def interleaved(root):
        pins = real(root)
        if not other and threading.current_thread() is threading.main_thread():
            other.append(threading.Thread(target=second))
            other[0].start()
            other[0].join(timeout=2)  # (it waits, once rotations take turns)
        return pins

    monkeypatch.setattr(st, 'read_trust', interleaved)
    rotate_signing_key(ws, 'the first rotation')
    other[0].join(timeout=30)
    monkeypatch.setattr(st, 'read_trust', real)
    assert not other[0].is_alive() and errors == []
    pins = {key_id(key_from_pin(p)) for p in real(ws.root)['model_signing']}
    assert key_id(load_public_key(ws.key_dir / 'signing_key.pub.pem')) in pins


@pytest.mark.parametrize('act', ['rotate', 'revoke'])
def test_a_key_change_killed_once_settings_ini_holds_it_is_in_the_audit_log(signed_ws, monkeypatch, act):
    """keys rotate pinned its new key, and keys revoke listed the key, in settings.ini before writing the audit entry:
    killed between the two, the workspace trusted a key (or refused one) that the log never mentions, and a rerun
    could not tell (review GO). The entry comes first, as a flags change's does: cut short, it names a change that
    never took effect, never the other way round."""
    from lifecycle.core import settings as st
    from lifecycle.core.audit import read
    from lifecycle.model.signing import key_from_pin, key_id, revoke_signing_key, rotate_signing_key

    ws, _ = signed_ws
    retired = rotate_signing_key(ws, 'first')['retired'] if act == 'revoke' else None
    real = st.write_trust

    def killed_after(root, key, values):
        real(root, key, values)
        raise KeyboardInterrupt  # (SIGKILL as the file is replaced: nothing of the command after it runs)

    monkeypatch.setattr(st, 'write_trust', killed_after)
    with pytest.raises(KeyboardInterrupt):
        rotate_signing_key(ws, 'yearly') if act == 'rotate' else revoke_signing_key(ws, retired, 'leaked')
    trust = st.read_trust(ws.root)
    if act == 'rotate':  # every key settings.ini pins, an entry made or pinned it
        held = {key_id(key_from_pin(p)) for p in trust['model_signing']}
        said = {e['details'].get('key_id') for e in read(ws.audit_path) if e['action'] in ('keys.pin', 'keys.rotate')}
    else:  # every key settings.ini revokes, an entry revoked it
        held = set(trust['revoked'])
        said = {e['details'].get('key_id') for e in read(ws.audit_path) if e['action'] == 'keys.revoke'}
    assert held and held <= said


def test_a_rotation_leaves_no_copy_of_the_retired_private_key_a_killed_write_left(signed_ws):
    """Making a key pair writes each file under a temporary name and links it into place: killed between the link and
    the temporary name's removal, a second name of the private key stayed in the keys folder, and a rotation removed
    `signing_key.pem` alone, so the retired key, still trusted for what it signed, could sign again (review GO).
    A rotation and a first pin remove what such a write left."""
    import os
    from lifecycle.model.signing import rotate_signing_key

    ws, _ = signed_ws
    folder = ws.key_dir
    secret = (folder / 'signing_key.pem').read_bytes()
    os.link(folder / 'signing_key.pem', folder / '.signing_key.pem.k1ll3d.tmp')  # (as `_write_new` killed left it)
    (folder / '.signing_key.pem.t0rn00.tmp').write_bytes(secret[:40])  # (killed while writing a key never linked)
    rotate_signing_key(ws, 'yearly')
    left = [p.name for p in folder.rglob('*') if p.is_file() and p.read_bytes() == secret]
    assert left == []
    assert sorted(p.name for p in folder.iterdir() if p.name.startswith('.')) == []


@pytest.mark.parametrize('killed_at', ['made', 'audited', 'pinned'])
def test_a_rotation_killed_before_its_pin_is_named_as_such_and_finished(signed_ws, monkeypatch, killed_at):
    """Review: `keys rotate` killed after it retired the key and before it pinned the new one left the next command
    saying to restore the pinned key's folder (or that the key was missing: restore it from a backup), a key rotate
    itself had deleted. Killed once its audit entry names the new key, any command pins it; killed before, the next
    command says a rotation was cut short and to run it again, which finishes it."""
    from lifecycle.core import settings as st
    from lifecycle.core.workspace import Workspace
    from lifecycle.model import signing
    from lifecycle.model.signing import SigningKeyError, ensure_signing_key, key_from_pin, key_id, rotate_signing_key

    ws, X = signed_ws
    old = key_id(signing.load_public_key(ws.key_dir))

    def kill(*a, **k):
        raise KeyboardInterrupt  # (SIGKILL there: nothing of the command after it runs)

    real_audit = Workspace.audit

    def audit_killed(self, action, *a, **k):
        return kill() if action == 'keys.rotate' else real_audit(self, action, *a, **k)

    if killed_at == 'made':  # (the old key retired and deleted, no new one made yet)
        monkeypatch.setattr(signing, 'ensure_keypair', kill)
    elif killed_at == 'audited':  # (a new key made, its entry not written)
        monkeypatch.setattr(Workspace, 'audit', audit_killed)
    else:  # (its entry written, the pin not)
        monkeypatch.setattr(st, 'write_trust', kill)
    with pytest.raises(KeyboardInterrupt):
        rotate_signing_key(ws, 'yearly')
    monkeypatch.undo()
    if killed_at == 'pinned':
        ensure_signing_key(ws)  # (the next registration pins the key the log says the rotation made)
    else:
        with pytest.raises(SigningKeyError) as e:
            ensure_signing_key(ws)
        said = str(e.value)
        assert '`lifecycle keys rotate` was cut short' in said and f'retired signing key {old}' in said
        assert 'run `lifecycle keys rotate --reason ...` again' in said and 'restore' not in said
        out = rotate_signing_key(ws, 'again')
        assert out['retired'] == old
    pins = [key_id(key_from_pin(p)) for p in st.read_trust(ws.root)['model_signing']]
    now = key_id(signing.load_public_key(ws.key_dir))
    assert pins == [old, now] and ensure_signing_key(ws)
    assert sorted(p.name for p in (ws.key_dir / 'retired').iterdir()) == [f'{old}.pub.pem']
    assert list(load(ws, 1).predict(X)) == [0, 0, 1, 1]  # (what the old key signed still verifies)
