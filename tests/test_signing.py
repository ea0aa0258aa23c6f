"""Signed model versions: a registered version loads only when its artifact files, as MLflow stores them on disk, match
the manifest signed at registration with the workspace's Ed25519 key. One flipped byte, another key, a moved signature
or no signature at all is refused, naming what is wrong, before anything is loaded."""

from __future__ import annotations
import json
import shutil
import stat
from pathlib import Path
from types import SimpleNamespace
from urllib.parse import unquote, urlparse
import pytest
from lifecycle import audit
from lifecycle.signing import (
    SignatureError,
    SigningKeyError,
    artifact_manifest,
    ensure_keypair,
    key_id,
    load_private_key,
    load_public_key,
    sign_manifest,
    sign_model_version,
    verified_load,
    verified_path,
    verify_manifest,
)
from lifecycle.store import Store
from lifecycle.tracking import configure_mlflow, ensure_experiment

NAME = 'toy'


@pytest.fixture(scope='module')
def reg(tmp_path_factory):
    "A tiny sklearn model logged to a throw-away SQLite tracking store and registered twice (versions 1 and 2)."
    import mlflow as _mlflow
    import pandas as pd
    import warnings
    from sklearn.linear_model import LogisticRegression

    before = _mlflow.get_tracking_uri()
    d = tmp_path_factory.mktemp('signing')
    ml = configure_mlflow(f'sqlite:///{d}/mlflow.db', d)
    X = pd.DataFrame({'a': [0.0, 1.0, 2.0, 3.0]})
    y = [0, 0, 1, 1]
    exp = ensure_experiment(ml, 'toy', d)
    with warnings.catch_warnings(), ml.start_run(experiment_id=exp):
        warnings.simplefilter('ignore')
        uri = ml.sklearn.log_model(
            LogisticRegression().fit(X, y), name='model', pip_requirements=['scikit-learn']
        ).model_uri
    for _ in range(2):
        ml.register_model(uri, NAME)
    keys = d / 'keys'
    ensure_keypair(keys)
    store = Store(d / 'store')
    signed = sign_model_version(ml, store, NAME, 1, keys, audit_path=d / 'audit.log', actor='registrar')
    yield dict(
        ml=ml,
        uri=f'sqlite:///{d}/mlflow.db',
        d=d,
        X=X,
        keys=keys,
        store=store,
        signed=signed,
        artifacts=Path(unquote(urlparse(ml.get_experiment(exp).artifact_location).path)),
    )
    _mlflow.set_tracking_uri(before)
    _mlflow.set_registry_uri(before)


@pytest.fixture(autouse=True)
def _tracking(reg):
    "Each test talks to the module's tracking store (conftest puts MLflow's URIs back after every test)."
    reg['ml'].set_tracking_uri(reg['uri'])
    reg['ml'].set_registry_uri(reg['uri'])


def stored_file(reg, name: str) -> Path:
    "The one real file called `name` in MLflow's artifact store on disk (under the experiment's artifact location)."
    (p,) = [p for p in reg['artifacts'].rglob(name) if p.is_file()]
    return p


@pytest.fixture
def spy_load(reg, monkeypatch):
    "Record every pyfunc load, to show nothing is loaded when verification fails."
    calls, real = [], reg['ml'].pyfunc.load_model
    monkeypatch.setattr(reg['ml'].pyfunc, 'load_model', lambda path, *a, **k: calls.append(path) or real(path, *a, **k))
    return calls


def test_an_untouched_signed_version_loads_and_predicts(reg, spy_load):
    ml, store, signed = reg['ml'], reg['store'], reg['signed']
    assert store.get_record('signatures', f'{NAME}-1') == signed
    assert signed['algorithm'] == 'ed25519' and signed['key_id'] == key_id(load_public_key(reg['keys']))
    assert signed['manifest']['subject'] == f'models:/{NAME}/1'
    files = signed['manifest']['files']
    assert {'MLmodel', 'model.skops'} <= set(files) and 'registered_model_meta' not in files
    # the manifest describes exactly the files in MLflow's artifact store
    assert files == artifact_manifest(stored_file(reg, 'MLmodel').parent)['files']
    tags = ml.MlflowClient().get_model_version(NAME, '1').tags
    assert tags['signature.manifest_sha256'] == signed['manifest']['manifest_hash']
    assert tags['signature.key_id'] == signed['key_id']
    model = verified_load(ml, store, NAME, 1, reg['keys'])
    assert list(model.predict(reg['X'])) == [0, 0, 1, 1]
    assert len(spy_load) == 1
    (entry,) = audit.read(reg['d'] / 'audit.log')
    assert entry['action'] == 'model.sign' and entry['subject'] == f'{NAME}/1' and entry['actor'] == 'registrar'


def test_verified_path_is_the_folder_that_was_checked(reg, tmp_path):
    path = verified_path(reg['ml'], reg['store'], NAME, 1, reg['keys'], dst=tmp_path / 'm')
    assert artifact_manifest(path)['files'] == reg['signed']['manifest']['files']
    import mlflow.sklearn

    assert list(mlflow.sklearn.load_model(str(path)).predict(reg['X'])) == [0, 0, 1, 1]


@pytest.mark.parametrize('name', ['model.skops', 'MLmodel'])
def test_one_flipped_byte_in_the_artifact_store_is_refused_naming_the_file(reg, spy_load, name):
    f = stored_file(reg, name)
    original = f.read_bytes()
    i = len(original) // 2
    f.write_bytes(original[:i] + bytes([original[i] ^ 0x01]) + original[i + 1 :])
    try:
        with pytest.raises(SignatureError) as e:
            verified_load(reg['ml'], reg['store'], NAME, 1, reg['keys'])
        assert e.value.reason == 'files' and e.value.changed == [name] and not (e.value.added or e.value.removed)
        assert f'changed: {name}' in str(e.value) and f'models:/{NAME}/1' in str(e.value)
        assert 'lifecycle-verified-' not in str(e.value), str(e.value)  # (the stored files, not a copy; review AH)
        assert str(reg['artifacts']) in str(e.value), str(e.value)
        assert spy_load == []  # refused before any load
        # and the changed files cannot be laundered by signing them again
        with pytest.raises(SignatureError, match='changed since they were signed'):
            sign_model_version(reg['ml'], reg['store'], NAME, 1, reg['keys'])
    finally:
        f.write_bytes(original)
    assert list(verified_load(reg['ml'], reg['store'], NAME, 1, reg['keys']).predict(reg['X'])) == [0, 0, 1, 1]


def test_an_added_or_removed_artifact_file_is_refused(reg):
    folder = stored_file(reg, 'MLmodel').parent
    (folder / 'extra.py').write_text('print("hi")\n')
    (folder / 'requirements.txt').rename(folder / 'req.bak')
    try:
        with pytest.raises(SignatureError) as e:
            verified_path(reg['ml'], reg['store'], NAME, 1, reg['keys'])
        assert (e.value.added, e.value.removed) == (['extra.py', 'req.bak'], ['requirements.txt'])
        assert 'added: extra.py' in str(e.value) and 'removed: requirements.txt' in str(e.value)
    finally:
        (folder / 'extra.py').unlink()
        (folder / 'req.bak').rename(folder / 'requirements.txt')


@pytest.fixture
def keep_signature_tags(reg):
    "Signing version 1 again (with another key, into another store) rewrites its signature tags: put them back."
    client = reg['ml'].MlflowClient()
    saved = {k: v for k, v in client.get_model_version(NAME, '1').tags.items() if k.startswith('signature.')}
    yield
    for k, v in saved.items():
        client.set_model_version_tag(NAME, '1', k, v)


def test_a_signature_made_with_another_key_is_refused(reg, tmp_path, spy_load, keep_signature_tags):
    other_keys = tmp_path / 'other-keys'
    ensure_keypair(other_keys)
    other_store = Store(tmp_path / 'store')
    sign_model_version(reg['ml'], other_store, NAME, 1, other_keys)  # a valid signature, by an untrusted key
    client = reg['ml'].MlflowClient()  # it re-tagged the shared version: put the trusted signature's tags back
    client.set_model_version_tag(NAME, '1', 'signature.key_id', reg['signed']['key_id'])
    client.set_model_version_tag(NAME, '1', 'signature.manifest_sha256', reg['signed']['manifest']['manifest_hash'])
    with pytest.raises(SignatureError) as e:
        verified_load(reg['ml'], other_store, NAME, 1, reg['keys'])
    assert e.value.reason == 'key' and 'does not trust' in str(e.value)
    assert key_id(load_public_key(other_keys)) in str(e.value) and key_id(load_public_key(reg['keys'])) in str(e.value)
    # a forger who copies the trusted key id into the record still fails the signature check
    forged = {**other_store.get_record('signatures', f'{NAME}-1'), 'key_id': reg['signed']['key_id']}
    p = other_store.record_path('signatures', f'{NAME}-1')
    p.write_text(json.dumps(forged))
    with pytest.raises(SignatureError) as e:
        verified_load(reg['ml'], other_store, NAME, 1, reg['keys'])
    assert e.value.reason == 'signature'
    assert spy_load == []


def test_an_edited_signature_record_is_refused(reg, tmp_path):
    "Changing the stored manifest to match tampered files breaks the signature."
    store = Store(tmp_path / 'store')
    rec = json.loads(json.dumps(reg['signed']))
    rec['manifest']['files']['MLmodel']['size'] += 1
    store.put_record('signatures', f'{NAME}-1', rec)
    with pytest.raises(SignatureError) as e:
        verified_path(reg['ml'], store, NAME, 1, reg['keys'])
    assert e.value.reason == 'signature'


def test_an_unsigned_version_is_refused(reg, spy_load):
    with pytest.raises(SignatureError) as e:
        verified_load(reg['ml'], reg['store'], NAME, 2, reg['keys'])
    assert e.value.reason == 'unsigned' and f'models:/{NAME}/2 is unsigned' in str(e.value)
    assert spy_load == []
    with pytest.raises(SignatureError) as e:
        verify_manifest(reg['d'], None, load_public_key(reg['keys']))
    assert e.value.reason == 'unsigned' and 'unsigned artifact' in str(e.value)


def test_a_signature_cannot_be_moved_to_another_version(reg, tmp_path):
    "Version 2 has byte-identical files, yet version 1's signature does not vouch for it."
    store = Store(tmp_path / 'store')
    store.put_record('signatures', f'{NAME}-2', reg['signed'])
    with pytest.raises(SignatureError) as e:
        verified_load(reg['ml'], store, NAME, 2, reg['keys'])
    assert e.value.reason == 'subject' and f'models:/{NAME}/1' in str(e.value)


def test_signing_again_is_idempotent_and_another_key_cannot_replace_a_signature(reg, tmp_path):
    assert sign_model_version(reg['ml'], reg['store'], NAME, 1, reg['keys']) == reg['signed']
    other_keys = tmp_path / 'k'
    ensure_keypair(other_keys)
    with pytest.raises(SignatureError, match='already signed with key'):
        sign_model_version(reg['ml'], reg['store'], NAME, 1, other_keys)
    assert reg['store'].get_record('signatures', f'{NAME}-1') == reg['signed']


def test_keys_are_private_and_never_overwritten(tmp_path):
    priv, pub = ensure_keypair(tmp_path / 'keys')
    assert stat.S_IMODE(priv.stat().st_mode) == 0o600 and stat.S_IMODE(priv.parent.stat().st_mode) == 0o700
    before = priv.read_bytes()
    assert ensure_keypair(tmp_path / 'keys') == (priv, pub) and priv.read_bytes() == before
    assert key_id(load_private_key(priv)) == key_id(load_public_key(pub))
    pub.write_bytes(ensure_keypair(tmp_path / 'k2')[1].read_bytes())  # a public key from another pair
    with pytest.raises(SigningKeyError, match='does not belong to'):
        ensure_keypair(tmp_path / 'keys')
    with pytest.raises(SigningKeyError, match='no private signing key'):
        load_private_key(tmp_path / 'nowhere')


def test_manifest_signature_round_trip_on_a_plain_folder(tmp_path):
    priv, _ = ensure_keypair(tmp_path / 'keys')
    key = load_private_key(priv)
    art = tmp_path / 'art'
    (art / 'sub').mkdir(parents=True)
    (art / 'sub' / 'w.bin').write_bytes(bytes(range(256)))
    (art / 'a').write_text('a')
    signed = sign_manifest(artifact_manifest(art), key)
    assert list(signed['manifest']['files']) == ['a', 'sub/w.bin']
    assert verify_manifest(art, signed, key.public_key()) == signed['manifest']
    shutil.copytree(art, tmp_path / 'copy')  # same bytes elsewhere verify too
    assert verify_manifest(tmp_path / 'copy', signed, key.public_key()) == signed['manifest']


def registry_of(d: Path):
    """A fresh tracking store (its own SQLite file and artifacts) holding version 1 of NAME, a tiny model: what a
    workspace points at once its tracking store was deleted, or `tracking_uri` pointed at a new server."""
    import warnings
    from sklearn.linear_model import LogisticRegression

    ml = configure_mlflow(f'sqlite:///{d}/mlflow.db', d)
    with warnings.catch_warnings(), ml.start_run(experiment_id=ensure_experiment(ml, 'toy', d)) as run:
        warnings.simplefilter('ignore')
        uri = ml.sklearn.log_model(
            LogisticRegression().fit(*_toy()), name='model', pip_requirements=['scikit-learn']
        ).model_uri
    ml.register_model(uri, NAME)
    return ml, run.info.run_id


def _toy():
    import pandas as pd

    return pd.DataFrame({'a': [0.0, 1.0, 2.0, 3.0]}), [0, 0, 1, 1]


@pytest.fixture
def reset(reg, tmp_path):
    """The module's registry's version 1 signed into a store of its own (with a trained statement, approvals and
    monitoring lineage under its number), then the tracking store replaced by a new one whose version 1 is another."""
    store = Store(tmp_path / 'store')
    old = sign_model_version(reg['ml'], store, NAME, 1, reg['keys'])
    store.put_record('attestations', f'{NAME}-1-trained', {'statement': {'version': '1', 'run_id': 'old'}})
    store.put_record('approvals', f'{NAME}-1-staging', {'model_name': NAME, 'model_version': '1', 'step': 'staging'})
    store.put_record('approvals', f'{NAME}-1-2-staging', {'model_name': f'{NAME}-1', 'model_version': '2'})  # other's
    store.put_record('monitor-lineage', f'{NAME}-1', {'validation_id': 'val-old'})
    (tmp_path / 'new').mkdir()
    ml, run_id = registry_of(tmp_path / 'new')
    log = tmp_path / 'audit.log'  # (what the workspace's log holds: the old version signed, the new one registered)
    audit.append(log, 'model.sign', f'{NAME}/1', reason='s', manifest_hash=old['manifest']['manifest_hash'])
    audit.append(log, 'model.register', f'{NAME}/1', reason='after the reset', mlflow_run_id=run_id)
    return dict(ml=ml, run_id=run_id, store=store, old=old, log=log, keys=reg['keys'])


def test_version_1_of_a_reset_registry_is_signed_and_the_old_records_are_set_aside(reset):
    """Review: with the workspace's store kept and its tracking store reset, the new registry's version 1 found the
    old version 1's record under its number and signing refused it ('its artifact files changed since they were
    signed'), at every registration. The old records are set aside, audited, and the new version is signed."""
    ml, store, old = reset['ml'], reset['store'], reset['old']
    signed = sign_model_version(ml, store, NAME, 1, reset['keys'], audit_path=reset['log'], actor='registrar')
    assert signed['manifest']['registered']['run_id'] == reset['run_id'] != old['manifest']['registered']['run_id']
    assert store.get_record('signatures', f'{NAME}-1') == signed
    assert list(verified_load(ml, store, NAME, 1, reset['keys']).predict(_toy()[0])) == [0, 0, 1, 1]
    aside = store.root / 'set-aside' / f"{NAME}-1@run-{old['manifest']['registered']['run_id']}"
    assert json.loads((aside / 'signatures' / f'{NAME}-1.json').read_text()) == old  # kept, byte for byte the same
    moved = sorted(p.relative_to(aside).as_posix() for p in aside.rglob('*.json'))
    assert moved == [
        f'approvals/{NAME}-1-staging.json',
        f'attestations/{NAME}-1-trained.json',
        f'monitor-lineage/{NAME}-1.json',
        f'signatures/{NAME}-1.json',
    ]
    assert store.record_path('approvals', f'{NAME}-1-2-staging').is_file()  # (model toy-1's version 2: not ours)
    (entry,) = [e for e in audit.read(reset['log']) if e['action'] == 'model.records_set_aside']
    assert entry['subject'] == f'{NAME}/1' and entry['actor'] == 'registrar'
    assert entry['details']['made_for_run_id'] == old['manifest']['registered']['run_id']
    assert entry['details']['folder'] == aside.relative_to(store.root).as_posix()  # (no home folder's name)
    assert entry['details']['records'] == {'approvals': 1, 'attestations': 1, 'monitor-lineage': 1, 'signatures': 1}
    assert [e['action'] for e in audit.read(reset['log'])][2:] == ['model.records_set_aside', 'model.sign']


def test_a_reset_registrys_version_is_still_signed_once(reset, tmp_path):
    "Its signature is as immutable as any: signed again with another key, refused; with the same, a no-op."
    ml, store = reset['ml'], reset['store']
    signed = sign_model_version(ml, store, NAME, 1, reset['keys'], audit_path=reset['log'])
    assert sign_model_version(ml, store, NAME, 1, reset['keys']) == signed
    ensure_keypair(tmp_path / 'k')
    with pytest.raises(SignatureError, match='already signed with key'):
        sign_model_version(ml, store, NAME, 1, tmp_path / 'k')
    assert store.get_record('signatures', f'{NAME}-1') == signed
    assert len(list((store.root / 'set-aside').iterdir())) == 1  # (set aside once: the old version's alone)


def test_another_registrys_record_neither_verifies_nor_fails_a_version_it_was_not_made_for(reset, spy_load):
    """Verification of the new registry's version 1 never reads the record left under its number by the old one's:
    the version is unsigned (before, its files were compared with the old version's and 'did not match')."""
    with pytest.raises(SignatureError) as e:
        verified_load(reset['ml'], reset['store'], NAME, 1, reset['keys'])
    said = str(e.value)
    assert e.value.reason == 'unsigned' and f"models:/{NAME}/1 is unsigned" in said
    old_run = reset['old']['manifest']['registered']['run_id']
    assert f"made for another registry's version of that number (run {old_run};" in said
    assert spy_load == []


def test_a_record_signed_before_records_named_their_version_is_judged_by_the_audit_log(reg, reset, tmp_path):
    """A workspace's records from before (no `registered` in their manifest) are another registry's version's only where
    the audit log says so: signed before that number was registered from the version's run. Where it cannot say, the
    record is the version's (its files judge it, as before); the registry's tags, which anyone may edit, go unasked."""
    from lifecycle.signing import made_for, signature_of

    store, log = Store(tmp_path / 'legacy'), tmp_path / 'legacy.log'
    manifest = {k: v for k, v in reset['old']['manifest'].items() if k != 'registered'}
    legacy = sign_manifest(manifest, load_private_key(reg['keys']))
    store.put_record('signatures', f'{NAME}-1', legacy)
    old_run = reset['old']['manifest']['registered']['run_id']
    audit.append(log, 'model.register', f'{NAME}/1', reason='r', mlflow_run_id=old_run)
    audit.append(log, 'model.sign', f'{NAME}/1', reason='s', manifest_hash=manifest['manifest_hash'])
    theirs = reset['ml'].MlflowClient().get_model_version(NAME, '1')  # (the new registry's version 1)
    assert made_for(legacy, theirs) and made_for(legacy, theirs, log)  # (no log; no registration of its run in it)
    audit.append(log, 'model.register', f'{NAME}/1', reason='after the reset', mlflow_run_id=reset['run_id'])
    assert not made_for(legacy, theirs, log) and signature_of(store, NAME, 1, theirs, log) is None
    signed = sign_model_version(reset['ml'], store, NAME, 1, reg['keys'], audit_path=log)
    assert signed['manifest']['registered']['run_id'] == reset['run_id']
    aside = store.root / 'set-aside' / f"{NAME}-1@manifest-{manifest['manifest_hash'][:16]}"
    assert json.loads((aside / 'signatures' / f'{NAME}-1.json').read_text()) == legacy

    reg['ml'].set_tracking_uri(reg['uri'])  # the old registry's version 1: the record is its own
    reg['ml'].set_registry_uri(reg['uri'])
    mine = reg['ml'].MlflowClient().get_model_version(NAME, '1')
    untagged = SimpleNamespace(run_id=mine.run_id, creation_timestamp=mine.creation_timestamp, tags={})
    assert made_for(legacy, mine, log) and made_for(legacy, untagged, log)  # (its tags edited away: still its own)
    own = Store(tmp_path / 'own')
    own.put_record('signatures', f'{NAME}-1', legacy)
    verified_path(reg['ml'], own, NAME, 1, reg['keys'])
    assert sign_model_version(reg['ml'], own, NAME, 1, reg['keys'], audit_path=log) == legacy  # (kept as signed)


def test_a_record_claiming_another_registrys_version_is_set_aside_only_if_its_signature_holds(reset):
    """Files changed after their version was signed are never signed again under cover of its record: one edited to
    say it was made for another registry's version is refused, naming it, and nothing is moved or signed."""
    ml, store = reset['ml'], reset['store']
    signed = sign_model_version(ml, store, NAME, 1, reset['keys'], audit_path=reset['log'])
    p = store.record_path('signatures', f'{NAME}-1')
    forged = {**signed, 'manifest': {**signed['manifest'], 'registered': {'run_id': 'elsewhere', 'created_ms': 1}}}
    p.chmod(0o644)
    p.write_text(json.dumps(forged))
    with pytest.raises(SignatureError, match='cannot be trusted to say so') as e:
        sign_model_version(ml, store, NAME, 1, reset['keys'], audit_path=reset['log'])
    assert e.value.reason == 'signature' and str(p) in str(e.value)
    assert json.loads(p.read_text()) == forged and len(list((store.root / 'set-aside').iterdir())) == 1


def test_files_changed_under_a_signed_version_are_not_signed_again_by_editing_its_registry_entry(reset, tmp_path):
    """Review HG: anyone able to write the tracking store could change a signed version's files, then its registration
    time (or run) in the registry: the version's own record then read as another registry's version's, and the next
    signing of that number (a `lifecycle run` taking up the version of the same validation) set the genuine record
    aside and signed the changed files. A record is set aside only where the audit log, which the registry cannot
    edit, registered that number from the version's run after the record was signed."""
    import sqlite3

    ml, store, log = reset['ml'], reset['store'], reset['log']
    signed = sign_model_version(ml, store, NAME, 1, reset['keys'], audit_path=log)  # (the old v1's record set aside)
    (mlmodel,) = [p for p in (tmp_path / 'new').rglob('MLmodel') if p.is_file()]
    mlmodel.write_text(mlmodel.read_text() + '# changed after signing\n')
    with sqlite3.connect(tmp_path / 'new' / 'mlflow.db') as db:
        db.execute('UPDATE model_versions SET creation_time = creation_time + 1 WHERE name = ?', (NAME,))
    db.close()
    with pytest.raises(SignatureError, match='cannot be set aside') as e:
        sign_model_version(ml, store, NAME, 1, reset['keys'], audit_path=log)
    assert str(store.record_path('signatures', f'{NAME}-1')) in str(e.value)
    assert store.get_record('signatures', f'{NAME}-1') == signed  # (kept, not set aside, nothing signed)
    assert len(list((store.root / 'set-aside').iterdir())) == 1
    with pytest.raises(SignatureError):
        verified_path(ml, store, NAME, 1, reset['keys'])
