"""Secrets every user of the machine may read are refused: a person's key, the signing key, the audit key, the PII key
and the digest salt, each named with its mode and the `chmod` that mends it, by a command's exit code and message
(never a traceback), before anything is signed, appended or masked with it. A group's may (a mounted volume's)."""

from __future__ import annotations
import pytest
from conftest import cli
from test_trust import base, ws  # noqa: F401  (the trust tests' workspace: people, keys, signed versions)


def test_a_persons_key_others_can_read_signs_nothing(ws):  # noqa: F811
    from lifecycle.core import audit
    from lifecycle.model.signing import person_key_path

    w = ws['ws']
    person_key_path(ws['keys'], 'ada').chmod(0o644)  # a copy made under a umask of 022
    before = len(audit.read(w.audit_path))
    r = cli(w.root, 'trust', 'add', 'mallory', '--role', 'ml_engineer', '--as', 'ada')
    assert r.returncode == 2 and 'ada.pem: a private key may be read or changed by every user' in r.stderr, r.stderr
    assert 'mode 644; expected 600' in r.stderr and 'chmod o-rwx' in r.stderr and 'Traceback' not in r.stderr
    assert len(audit.read(w.audit_path)) == before
    person_key_path(ws['keys'], 'ada').chmod(0o660)  # a group's (a keys folder mounted with one) is used
    r = cli(w.root, 'trust', 'add', 'mallory', '--role', 'ml_engineer', '--as', 'ada')
    assert r.returncode == 0, r.stderr


def test_a_signing_key_others_can_read_signs_no_model(ws):  # noqa: F811
    from lifecycle.model.signing import PRIVATE_KEY_FILE, SigningKeyError, sign_model_version

    w = ws['ws']
    (w.key_dir / PRIVATE_KEY_FILE).chmod(0o604)  # readable by every user
    with pytest.raises(SigningKeyError, match=r'signing_key.pem: a private key .* \(mode 604; expected 600'):
        sign_model_version(w.mlflow, w.store, 'toy', '1', w.key_dir)


def test_an_audit_key_others_can_read_is_refused_by_the_commands(ws):  # noqa: F811
    from lifecycle.core.audit import keys_folder

    w = ws['ws']
    key = keys_folder(w.audit_path, w.keys_dir) / 'audit.key'
    key.chmod(0o604)
    r = cli(w.root, 'audit', 'verify')
    assert r.returncode != 0 and 'audit.key: the audit key may be read or changed by every user' in r.stderr, r.stderr
    assert 'mode 604' in r.stderr and 'Traceback' not in r.stderr


def test_a_pii_key_file_and_a_salt_others_can_read_are_refused(tmp_path, monkeypatch):
    from lifecycle.core.store import StateError
    from lifecycle.data.pii import PiiError, finding_salt, load_key

    monkeypatch.delenv('LIFECYCLE_PII_KEY', raising=False)
    key = tmp_path / 'pii.key'
    key.write_bytes(b'k' * 32)
    key.chmod(0o600)
    assert load_key(key) == b'k' * 32
    key.chmod(0o644)
    with pytest.raises(
        PiiError, match=r'pii.key: the PII key may be read or changed by every user of this machine \(mode 6'
    ):
        load_key(key)
    salt = tmp_path / 'state' / 'digest.salt'
    assert len(finding_salt(salt)) == 64  # made 600
    salt.chmod(0o660)  # the server's group (a monitor running as another user of it) may read it
    assert len(finding_salt(salt)) == 64
    salt.chmod(0o606)
    with pytest.raises(StateError, match="digest salt may be read or changed by every user"):
        finding_salt(salt)
