"""Issue #13, item 4: an alias moved in MLflow's registry without an audited register or promotion (here a raw UPDATE
on the SQLite registry) is flagged by `lifecycle status` and refused by the server, which keeps the version it had
verified."""

from __future__ import annotations
import sqlite3
from pathlib import Path
import pytest
from conftest import cli, cli_json, killed_before_register_entry, toy_validation
from lifecycle.core.workspace import Workspace
from lifecycle.model.registry import alias_mismatches, audited_aliases
from lifecycle.serve import flags as fl
from lifecycle.serve.server import Server

NAME = 'arrests-release'


def move_behind_the_back(ws: Path, alias: str, version: str) -> None:
    "Move an alias as someone with write access to MLflow's database would: no audit entry."
    with sqlite3.connect(ws / '.lifecycle' / 'mlflow.db') as db:
        n = db.execute(
            'UPDATE registered_model_aliases SET version = ? WHERE alias = ? AND name = ?', (int(version), alias, NAME)
        ).rowcount
    assert n == 1


@pytest.mark.slow
def test_unaudited_move_is_flagged_by_status(two_versions):
    ws = Workspace.open(two_versions)
    assert audited_aliases(ws.audit_path, NAME) == {'dev': '1'}
    assert alias_mismatches(ws.client, ws.audit_path, NAME) == []
    _, before = cli_json(two_versions, 'status')
    assert before['alias_mismatches'] == []
    move_behind_the_back(two_versions, 'dev', '2')
    want = dict(model=NAME, alias='dev', registry_version='2', audited_version='1')
    assert alias_mismatches(ws.client, ws.audit_path, NAME) == [want]
    r, after = cli_json(two_versions, 'status')
    assert [{k: m[k] for k in want} for m in after['alias_mismatches']] == [want]
    text = cli(two_versions, 'status').stdout
    line = next(x for x in text.splitlines() if x.startswith('UNAUDITED'))
    assert "alias 'dev'" in line and 'version 2' in line and 'version 1' in line, line


@pytest.mark.slow
def test_server_refuses_a_version_an_unaudited_alias_points_to(two_versions):
    s = Workspace.open(two_versions)
    srv = Server(s)
    try:
        assert srv.status()['ready'] and srv.status()['deployed'] == {'control': '1', 'safe': '1'}
        move_behind_the_back(two_versions, 'dev', '2')
        fl.change_flags(s, {'challenger': '2', 'percentage': 10}, actor='test', reason='route some traffic to v2')
        assert not srv.gate.check()
        st = srv.status()
        assert "alias 'dev'" in st['flags_problem'] and 'version 2 refused' in st['flags_problem'], st
        assert st['ready'] and st['deployed'] == {'control': '1', 'safe': '1'}  # the last verified one serves
    finally:
        srv.close()
    fresh = Server(Workspace.open(two_versions))  # a fresh start refuses to route to it at all: not ready, saying why
    try:
        st = fresh.status()
        assert not st['ready'] and "alias 'dev'" in st['not_ready'] and 'version 2 refused' in st['not_ready'], st
    finally:
        fresh.close()


def test_an_erased_promotion_entry_does_not_make_its_alias_look_unaudited(tmp_path):
    from types import SimpleNamespace
    from lifecycle.core import audit

    log, keys = tmp_path / 'state' / 'audit.log', tmp_path / 'keys'
    log.parent.mkdir()
    audit.append(
        log, 'model.register', f'{NAME}/1', 'gates passed', actor='alice', keys_dir=keys, aliases=['production']
    )
    e = audit.append(log, 'model.promote', f'{NAME}/2', 'approved', actor='carol', keys_dir=keys, alias='production')
    registry = SimpleNamespace(get_registered_model=lambda name: SimpleNamespace(aliases={'production': '2'}))
    assert alias_mismatches(registry, log, NAME) == []
    audit.erase(log, e['seq'], 'carol asked for her data to be erased', keys_dir=keys)
    assert audited_aliases(log, NAME) == {'production': '1'}  # the erased entry no longer says which alias moved
    assert alias_mismatches(registry, log, NAME) == []  # ... so version 2 is not called unaudited
    elsewhere = SimpleNamespace(get_registered_model=lambda name: SimpleNamespace(aliases={'production': '3'}))
    assert alias_mismatches(elsewhere, log, NAME)[0]['registry_version'] == '3'  # a version no entry moved still is


def test_a_registration_killed_before_its_audit_entry_is_finished_once_by_the_next(tmp_path, monkeypatch):
    """Review U: a run killed in its register stage left a version registered (with `dev` on it, unaudited); the run
    again registered a second version of the same validation, and `dev` stayed on the first, unsigned. The same
    validation's version is now taken up again: audited once, its alias with it, no second version."""
    from lifecycle.core import audit
    from lifecycle.model.registry import register_version

    (tmp_path / 'settings.ini').write_text('[workspace]\n')
    monkeypatch.setenv('LIFECYCLE_KEYS_DIR', str(tmp_path / 'keys'))
    ws = Workspace.open(tmp_path)
    vid = toy_validation(ws)
    killed_before_register_entry(
        monkeypatch, lambda: register_version(ws, vid, 'toy', alias='dev', tags={}, reason='first')
    )
    again = register_version(ws, vid, 'toy', alias='dev', tags={}, reason='again')
    assert (again['model_version'], again['aliases']) == ('1', ['dev'])
    assert [int(v.version) for v in ws.client.search_model_versions("name='toy'")] == [1]
    assert audited_aliases(ws.audit_path, 'toy') == {'dev': '1'}
    assert alias_mismatches(ws.client, ws.audit_path, 'toy') == []
    assert register_version(ws, vid, 'toy', alias='dev', tags={}, reason='once more')['aliases'] == ['dev']  # (holds)
    assert [e['action'] for e in audit.read(ws.audit_path)].count('model.register') == 1
    from lifecycle.model.signing import ensure_keypair, sign_model_version

    ensure_keypair(ws.key_dir)
    sign_model_version(ws.mlflow, ws.store, 'toy', '1', ws.key_dir)  # (signed, with the key now: taken up, review X)
    assert register_version(ws, vid, 'toy', alias='dev', tags={}, reason='signed')['model_version'] == '1'
    for f in Path(ws.key_dir).iterdir():  # (another key now, as after a rotation: signed with the old one, whole;
        f.unlink() if f.is_file() else None  # registering again makes a version the new key signs, review W)
    ensure_keypair(ws.key_dir)
    assert register_version(ws, vid, 'toy', alias='dev', tags={}, reason='rotated')['model_version'] == '2'


def test_an_erased_older_promotion_does_not_excuse_an_alias_moved_back_to_its_version(tmp_path):
    """Review AH: staging went to version 2 (entry A), then to 3 (entry B); someone moved it back to 2 in the registry
    and erased entry A. The log still puts staging at 3 after A, so the move back stays unaudited."""
    from types import SimpleNamespace
    from lifecycle.core import audit

    log, keys = tmp_path / 'state' / 'audit.log', tmp_path / 'keys'
    log.parent.mkdir()
    a = audit.append(log, 'model.promote', f'{NAME}/2', 'approved', actor='carol', keys_dir=keys, alias='staging')
    audit.append(log, 'model.promote', f'{NAME}/3', 'approved', actor='carol', keys_dir=keys, alias='staging')
    audit.erase(log, a['seq'], 'carol asked for her data to be erased', keys_dir=keys)
    back = SimpleNamespace(get_registered_model=lambda name: SimpleNamespace(aliases={'staging': '2'}))
    want = [dict(model=NAME, alias='staging', registry_version='2', audited_version='3')]
    assert alias_mismatches(back, log, NAME) == want


def test_an_audit_line_written_by_hand_does_not_audit_an_alias_move(tmp_path, monkeypatch):
    """Review AH: a `model.promote` line appended to the log by hand (its payload beside it, no valid MAC) made an
    alias moved outside lifecycle look audited to `status` and the server."""
    from types import SimpleNamespace
    from lifecycle.core import audit
    from lifecycle.core.store import append_jsonl, canonical_json

    log, keys = tmp_path / 'state' / 'audit.log', tmp_path / 'keys'
    log.parent.mkdir()
    monkeypatch.setenv('LIFECYCLE_KEYS_DIR', str(keys))  # (where readers find the key, as a workspace's commands do)
    audit.append(log, 'model.promote', f'{NAME}/3', 'approved', actor='carol', keys_dir=keys, alias='staging')
    payload = dict(actor='carol', reason='approved', details=dict(alias='staging'))
    append_jsonl(audit.payloads_path(log), payload)
    forged = dict(action='model.promote', seq=2, subject=f'{NAME}/2', time='2026-01-01T00:00:00+00:00',
                  digest=audit.payload_digest(payload), prev_mac='0' * 64, mac='0' * 64)  # fmt: skip
    with open(log, 'a') as f:
        f.write(canonical_json(forged) + '\n')
    moved = SimpleNamespace(get_registered_model=lambda name: SimpleNamespace(aliases={'staging': '2'}))
    assert alias_mismatches(moved, log, NAME) == [
        dict(model=NAME, alias='staging', registry_version='2', audited_version='3')
    ]
    assert [e['seq'] for e in audit.read(log)] == [1]


def test_an_erased_failed_move_still_gives_its_alias_back(tmp_path, monkeypatch):
    """Review AJ: a `model.promote.failed` entry erased on a deletion request kept none of its details, so its target
    version counted as an alias's erased move and the alias, where the log had put it back, looked moved outside."""
    from types import SimpleNamespace
    from lifecycle.core import audit

    log, keys = tmp_path / 'state' / 'audit.log', tmp_path / 'keys'
    log.parent.mkdir()
    monkeypatch.setenv('LIFECYCLE_KEYS_DIR', str(keys))
    for v in ('2', '3', '2'):
        audit.append(log, 'model.promote', f'{NAME}/{v}', 'approved', actor='carol', keys_dir=keys, alias='staging')
    e = audit.append(log, 'model.promote.failed', f'{NAME}/2', 'MlflowException', actor='carol', keys_dir=keys,
                     alias='staging', restored_version='3')  # fmt: skip
    at3 = SimpleNamespace(get_registered_model=lambda name: SimpleNamespace(aliases={'staging': '3'}))
    assert alias_mismatches(at3, log, NAME) == []
    audit.erase(log, e['seq'], 'carol asked for her data to be erased', keys_dir=keys)
    assert alias_mismatches(at3, log, NAME) == [] and audited_aliases(log, NAME) == {'staging': '3'}


@pytest.mark.slow
def test_a_server_started_while_the_registry_is_busy_becomes_ready_once_it_answers(trained, monkeypatch):
    """A server started with no flags deploys those of the params, reading which version the environment's alias
    names; a registry too busy to answer then left it not ready until restarted (or `flags init` run by hand), though
    nothing was wrong. It tries again until the registry answers, and becomes ready with no restart."""
    import time
    from mlflow.exceptions import MlflowException

    s = Workspace.open(trained)
    fl.spec_path(s).unlink(missing_ok=True)
    fl.flagd_path(s).unlink(missing_ok=True)
    real, busy = type(s.client).get_model_version_by_alias, [3]

    def sometimes_busy(self, name, alias):
        if busy[0]:
            busy[0] -= 1
            raise MlflowException('database is locked', error_code='TEMPORARILY_UNAVAILABLE')
        return real(self, name, alias)

    monkeypatch.setattr(type(s.client), 'get_model_version_by_alias', sometimes_busy)
    srv = Server(s)
    try:
        assert 'try again' in srv.not_ready(), srv.not_ready()
        deadline = time.monotonic() + 30
        while srv.not_ready() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert srv.not_ready() == '' and srv.status()['deployed'] == {'control': '1', 'safe': '1'}, srv.status()
    finally:
        srv.close()
