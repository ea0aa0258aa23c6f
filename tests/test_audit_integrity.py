"""The audit log holds against what a hash chain alone does not catch: entries deleted from its end, a truncated or
deleted file, an edit with the chain re-hashed after it; it survives a torn last line; one entry's payload can be
erased (with a tombstone) and the log still verifies; a log of the old format is checked, then migrated."""

from __future__ import annotations
import hashlib
import hmac
import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace
import pytest
from conftest import ROOT, cli, cli_json
from lifecycle.core import audit
from lifecycle.core.store import canonical_json, sha256_bytes


@pytest.fixture
def ws(tmp_path, monkeypatch):
    "A throw-away workspace (settings.ini only) whose keys folder is a fresh folder beside it."
    keys, root = tmp_path / 'keys', tmp_path / 'ws'
    root.mkdir()
    (root / 'settings.ini').write_text('[workspace]\n')
    monkeypatch.setenv('LIFECYCLE_KEYS_DIR', str(keys))
    log = root / '.lifecycle' / 'audit.log'
    return SimpleNamespace(
        root=root,
        keys=keys,
        log=log,
        payloads=root / '.lifecycle' / 'audit.payloads.jsonl',
        env={'LIFECYCLE_KEYS_DIR': str(keys)},
    )


def fill(ws, n: int) -> list[dict]:
    "Append n entries, each with an actor, a reason and details."
    return [
        audit.append(ws.log, 'flags.change', f'model-{i}', reason=f'step {i}', actor=f'user{i}', share=i)
        for i in range(1, n + 1)
    ]


def chain(ws) -> list[dict]:
    return [json.loads(line) for line in ws.log.read_text().splitlines()]


def verify_cli(ws) -> subprocess.CompletedProcess:
    return cli(ws.root, 'audit', 'verify', env=ws.env)


def failed_with(ws, message: str) -> None:
    "`audit verify` (library and command) fails with exactly this reason."
    v = audit.verify(ws.log)
    assert not v.ok and v.reason == message, v.reason
    r = verify_cli(ws)
    assert r.returncode == 3 and message in r.stderr, r.stderr


def test_keys_and_checkpoint_live_outside_the_workspace(ws):
    fill(ws, 2)
    wid = (ws.root / '.lifecycle' / 'workspace.id').read_text().strip()
    folder = ws.keys / wid
    assert sorted(p.name for p in folder.iterdir()) == ['audit.key', 'audit.log.checkpoint.json']
    assert (folder / 'audit.key').stat().st_mode & 0o777 == 0o600 and ws.keys.stat().st_mode & 0o777 == 0o700
    cp = json.loads((folder / 'audit.log.checkpoint.json').read_text())
    assert cp['entries'] == 2 and cp['head_mac'] == chain(ws)[-1]['mac'] and cp['log'] == str(ws.log.resolve())
    r, v = cli_json(ws.root, 'audit', 'verify', env=ws.env)
    assert r.returncode == 0 and v['ok'] and v['entries'] == 2 and v['notes'] == []


def test_another_keys_folder_makes_no_new_key_for_a_log_with_entries(ws, tmp_path):
    """Run with another keys_dir (another XDG_DATA_HOME or user), an append made a new key and wrote under it: the chain
    broke for good at that entry. Now it is refused (exit 2, as a missing PII key), nothing written, the folder named.
    """
    fill(ws, 2)
    before = ws.log.read_bytes()
    other = {'LIFECYCLE_KEYS_DIR': str(tmp_path / 'elsewhere')}
    with pytest.raises(audit.AuditError, match=r"holds entries, but this workspace's audit key is not in .*elsewhere"):
        audit.append(ws.log, 'flags.change', 'm', keys_dir=tmp_path / 'elsewhere')
    r = cli(ws.root, 'audit', 'erase', '1', '--reason', 'request 7', env=other)
    assert r.returncode == 2 and 'Run with the keys_dir that holds it' in r.stderr, r.stderr
    assert ws.log.read_bytes() == before and not (tmp_path / 'elsewhere').exists()
    assert verify_cli(ws).returncode == 0
    fill(ws, 1)  # with its own keys folder, the log goes on


@pytest.mark.parametrize('text', ['', '\n', 'abcd\n', 'not hex at all\n', 'ab' * 20 + '\n', 'ab' * 33 + '\n'])
def test_an_audit_key_emptied_or_cut_short_is_refused_and_nothing_is_written(ws, text):
    "A MAC under an empty or short key would prove nothing: such a key is named, never used."
    fill(ws, 1)
    key, before = (
        ws.keys / (ws.root / '.lifecycle' / 'workspace.id').read_text().strip() / 'audit.key',
        ws.log.read_bytes(),
    )
    key.write_text(text)
    with pytest.raises(audit.AuditError, match=r"audit.key: expected the audit key \(64 hex digits\), found something"):
        audit.append(ws.log, 'flags.change', 'm', keys_dir=ws.keys)
    assert ws.log.read_bytes() == before and key.read_text() == text


def test_another_key_in_place_of_the_logs_is_refused_and_nothing_is_written(ws):
    "A key that verifies neither the last entry nor the checkpoint: an entry under it would break the log for good."
    import secrets

    fill(ws, 3)
    key = ws.keys / (ws.root / '.lifecycle' / 'workspace.id').read_text().strip() / 'audit.key'
    good, before = key.read_text(), ws.log.read_bytes()
    cp = key.parent / 'audit.log.checkpoint.json'
    was = cp.read_bytes()
    key.write_text(secrets.token_hex(32) + '\n')
    with pytest.raises(audit.AuditError, match='this key verifies neither the last entry .* nor a checkpoint of it'):
        audit.append(ws.log, 'approval.granted', 'm/2', keys_dir=ws.keys)
    assert ws.log.read_bytes() == before and cp.read_bytes() == was  # (the checkpoint not rewritten under it)
    key.write_text(good)
    assert audit.verify(ws.log).ok
    cp.unlink()  # no checkpoint to tell a wrong key from an altered entry (found by review: then used silently)
    key.write_text(secrets.token_hex(32) + '\n')
    with pytest.raises(audit.AuditError, match='nor a checkpoint of it'):
        audit.append(ws.log, 'approval.granted', 'm/2', keys_dir=ws.keys)
    assert ws.log.read_bytes() == before and not cp.exists()


def test_deleting_the_last_entry_is_detected_and_a_later_append_does_not_hide_it(ws, caplog):
    fill(ws, 5)
    head = chain(ws)[-1]['mac']
    ws.log.write_text(''.join(ws.log.read_text().splitlines(keepends=True)[:4]))
    message = (
        f"the log ends at entry 4 but the checkpoint kept outside the workspace records 5 entries ending in "
        f"{head[:12]}…: entries were deleted from its end, or it was truncated or replaced"
    )
    failed_with(ws, message)
    assert audit.verify(ws.log).bad_seq == 5
    with caplog.at_level('WARNING', logger='lifecycle'):
        e = audit.append(ws.log, 'run.start', 'r9', actor='mallory')  # the log goes on, the break is kept
    assert e['seq'] == 5 and 'entries were deleted from its end' in caplog.text and 'audit verify' in caplog.text
    v = audit.verify(ws.log)
    assert not v.ok and v.reason.startswith(message + " (found when entry 5 was appended at ")


def test_truncating_to_a_prefix_is_detected(ws):
    fill(ws, 6)
    head = chain(ws)[-1]['mac']
    ws.log.write_text(''.join(ws.log.read_text().splitlines(keepends=True)[:2]))
    failed_with(
        ws,
        f"the log ends at entry 2 but the checkpoint kept outside the workspace records 6 entries ending in "
        f"{head[:12]}…: entries were deleted from its end, or it was truncated or replaced",
    )


def test_deleting_the_log_is_detected(ws):
    fill(ws, 3)
    head = chain(ws)[-1]['mac']
    ws.log.unlink()
    ws.payloads.unlink()
    failed_with(
        ws,
        f"the log is missing or empty but the checkpoint kept outside the workspace records 3 entries "
        f"ending in {head[:12]}…: it was deleted or emptied",
    )


def test_an_edit_with_the_chain_rehashed_after_it_is_detected(ws):
    fill(ws, 4)
    lines, payloads = chain(ws), [json.loads(line) for line in ws.payloads.read_text().splitlines()]
    forged_key = os.urandom(32)  # the forger has everything but the workspace's key
    payloads[1]['reason'] = 'approved by the board'
    lines[1]['digest'] = sha256_bytes(canonical_json(payloads[1]).encode())
    prev = lines[0]['mac']
    for e in lines[1:]:
        e['prev_mac'] = prev
        e['mac'] = prev = hmac.new(
            forged_key, canonical_json({k: v for k, v in e.items() if k != 'mac'}).encode(), hashlib.sha256
        ).hexdigest()
    ws.payloads.write_text(''.join(canonical_json(p) + '\n' for p in payloads))
    ws.log.write_text(''.join(canonical_json(e) + '\n' for e in lines))
    failed_with(
        ws,
        "entry 2 (line 2) was altered: its MAC does not match its content (an edit, or an entry written "
        "without the workspace's audit key)",
    )


def test_an_edited_payload_is_detected(ws):
    fill(ws, 3)
    ws.payloads.write_text(ws.payloads.read_text().replace('"step 2"', '"step 7"'))
    failed_with(
        ws,
        "entry 2's payload (actor, reason, details) in audit.payloads.jsonl was altered: it does not match "
        "the digest in the chain",
    )


def test_a_torn_last_line_is_ignored_then_set_aside_and_the_log_goes_on(ws):
    fill(ws, 3)
    with open(ws.log, 'ab') as f:
        f.write(b'{"action":"run.fin')  # a crash mid-write
    with open(ws.payloads, 'ab') as f:
        f.write(
            canonical_json({'seq': 4, 'salt': 'ab', 'actor': 'x', 'reason': '', 'details': {}}).encode() + b'\n'
        )  # its payload made it
    r = verify_cli(ws)
    assert r.returncode == 0 and 'ok: 3 entries' in r.stdout
    assert "note: a torn last line (18 bytes, from an interrupted write) was ignored" in r.stderr.replace("\n", " ")
    r = cli(ws.root, 'audit', 'show', '--json', env=ws.env)
    assert r.returncode == 0 and [e['seq'] for e in json.loads(r.stdout)['entries']] == [1, 2, 3]
    e = audit.append(ws.log, 'run.finish', 'r1', actor='alice', stages=6)
    assert e['seq'] == 4 and audit.read(ws.log)[-1] == e
    torn = [json.loads(line) for line in (ws.log.parent / 'audit.log.torn').read_text().splitlines()]
    assert [t['bytes'] for t in torn] == [18]
    r, v = cli_json(ws.root, 'audit', 'verify', env=ws.env)
    assert r.returncode == 0 and v['ok'] and v['entries'] == 4 and v['notes'] == []


def test_an_action_after_damaged_lines_at_the_end_is_recorded_after_the_last_good_entry_and_the_damage_kept(ws, caplog):
    "What was done (a kill switch, a promotion) is never left unaudited because the log's end was damaged."
    fill(ws, 2)
    with open(ws.log, 'ab') as f:
        f.write(b'\x00\xff{not json\n[1, 2, 3]\n')  # whole lines, not entries: damage, not a torn write
    e = audit.append(ws.log, 'flags.kill', 'model-1', reason='incident', actor='alice')
    assert e['seq'] == 3 and chain_good(ws)[2]['prev_mac'] == chain_good(ws)[1]['mac']  # after the last good entry
    assert '2 line(s) at its end after entry 2 are not entries' in caplog.text and 'flags.kill' in caplog.text
    cp = json.loads(audit.checkpoint_path(audit.keys_folder(ws.log), ws.log).read_text())
    assert cp['entries'] == 3 and '2 line(s) at its end after entry 2' in cp['breaks'][-1]['reason']
    assert ws.log.read_bytes().count(b'\x00\xff{not json\n[1, 2, 3]\n') == 1  # kept for `audit verify` to name
    r = verify_cli(ws)
    assert r.returncode == 3 and 'Traceback' not in r.stderr, r.stderr


def chain_good(ws) -> list[dict]:
    "The chain's entries, damaged lines left out."
    return [e for e in map(audit._entry, ws.log.read_bytes().splitlines()) if e is not None]


def test_a_torn_line_set_aside_is_readable_by_no_one_its_log_is_not_readable_by(tmp_path):
    from lifecycle.core.store import append_jsonl

    log = tmp_path / 'private.jsonl'
    log.write_bytes(b'{"a": 1}\n{"b": "a value of thei')  # a crash mid-write
    os.chmod(log, 0o600)
    old = os.umask(0o022)  # (as a user's shell has it: new files readable by all)
    try:
        append_jsonl(log, {'c': 3})
    finally:
        os.umask(old)
    assert log.read_text() == '{"a": 1}\n{"c": 3}\n'
    assert os.stat(tmp_path / 'private.jsonl.torn').st_mode & 0o777 == 0o600
    (tmp_path / 'private.jsonl.torn').chmod(0o644)  # as older versions made it, whatever the log's mode
    with log.open('ab') as f:
        f.write(b'{"d": "another tor')
    append_jsonl(log, {'e': 5})
    assert os.stat(tmp_path / 'private.jsonl.torn').st_mode & 0o777 == 0o600  # narrowed to the log's
    assert len((tmp_path / 'private.jsonl.torn').read_text().splitlines()) == 2


def test_erasing_a_payload_with_a_tombstone_still_verifies(ws):
    audit.append(
        ws.log, 'token.issue', 'user-7', reason='issued to Jane Example', actor='carol', email='jane@example.org'
    )
    fill(ws, 2)
    r, out = cli_json(
        ws.root, 'audit', 'erase', '1', '--reason', 'deletion request 17', env={**ws.env, 'LIFECYCLE_ACTOR': 'dave'}
    )
    assert r.returncode == 0 and out['tombstone']['seq'] == 4 and out['tombstone']['actor'] == 'dave'
    assert b'Jane' not in ws.payloads.read_bytes() and b'jane@' not in ws.payloads.read_bytes()
    r = verify_cli(ws)
    assert r.returncode == 0 and 'ok: 4 entries' in r.stdout
    first, *_, tomb = audit.read(ws.log)
    assert (first['action'], first['subject'], first['actor'], first['reason'], first['details'], first['erased']) == (
        'token.issue',
        'user-7',
        '(erased)',
        '(erased by entry 4)',
        {},
        True,
    )
    assert (tomb['action'], tomb['subject'], tomb['reason'], tomb['details']) == (
        'audit.erase',
        '1',
        'deletion request 17',
        {'erased_seq': 1},
    )
    r = cli(ws.root, 'audit', 'erase', '9', '--reason', 'x', env=ws.env)
    assert r.returncode == 2 and 'there is no entry 9 to erase' in r.stderr
    r, out = cli_json(ws.root, 'audit', 'erase', '1', '--reason', 'again', env=ws.env)  # (was exit 0, the first
    assert r.returncode == 2 and 'entry 1 is already erased (its tombstone is entry 4)' in out['error'], out  # one)
    assert len(audit.read(ws.log)) == 4 and 'again' not in ws.log.read_text() + ws.payloads.read_text()


def test_an_erasure_cut_short_is_finished_by_erasing_again(ws):
    "A tombstone written, the payload still there (the process killed between the two): erasing again removes it."
    audit.append(ws.log, 'token.issue', 'user-7', reason='issued to Jane Example', actor='carol')
    fill(ws, 2)
    (jane,) = [ln for ln in ws.payloads.read_text().splitlines(keepends=True) if json.loads(ln)['seq'] == 1]
    tomb = audit.erase(ws.log, 1, 'deletion request 17', keys_dir=ws.keys)
    ws.payloads.write_text(jane + ws.payloads.read_text())  # (as if the payload file was never rewritten)
    again = audit.erase(ws.log, 1, 'deletion request 17', keys_dir=ws.keys)
    assert again['seq'] == tomb['seq'] == 4 and b'Jane' not in ws.payloads.read_bytes() and audit.verify(ws.log).ok


def test_deleting_a_payload_without_a_tombstone_fails(ws):
    fill(ws, 3)
    ws.payloads.write_text(''.join(x + '\n' for x in ws.payloads.read_text().splitlines() if json.loads(x)['seq'] != 2))
    failed_with(
        ws,
        "entry 2's payload (actor, reason, details) is missing from audit.payloads.jsonl, and no "
        "audit.erase entry erased it",
    )
    assert audit.verify(ws.log).bad_seq == 2 and audit.verify(ws.log).bad_line == 2


def test_a_lost_or_altered_checkpoint_is_named(ws):
    fill(ws, 2)
    folder = ws.keys / (ws.root / '.lifecycle' / 'workspace.id').read_text().strip()
    cp = (folder / 'audit.log.checkpoint.json').resolve()
    cp.write_text(cp.read_text().replace('"entries":2', '"entries":1'))
    failed_with(ws, f"the checkpoint {cp} does not carry a valid MAC: it was altered, or written with another key")
    cp.unlink()
    failed_with(
        ws,
        f"no checkpoint of this log is kept outside the workspace ({cp}), though it holds 2 entries: it was "
        "deleted, or the keys folder changed",
    )


def legacy_module(tmp_path: Path):
    "The audit module as it was before the keyed format (git history), else the same writer rebuilt here."
    src = subprocess.run(['git', 'show', '3a97dc1:lifecycle/core/audit.py'], cwd=ROOT, capture_output=True, text=True)
    if src.returncode == 0:
        p = tmp_path / 'legacy_audit.py'
        p.write_text(
            src.stdout.replace('from .store', 'from lifecycle.core.store').replace(
                'from .manifest', 'from lifecycle.core.manifest'
            )
        )
        spec = importlib.util.spec_from_file_location('legacy_audit', p)
        mod = importlib.util.module_from_spec(spec)
        sys.modules['legacy_audit'] = mod  # dataclasses look it up
        spec.loader.exec_module(mod)
        return mod

    def append(path, action, subject='', reason='', actor=None, **details):
        lines = Path(path).read_text().splitlines() if Path(path).is_file() else []
        prev = json.loads(lines[-1]) if lines else None
        e = dict(
            seq=len(lines) + 1,
            time='2024-05-01T00:00:00+00:00',
            actor=actor,
            action=action,
            subject=subject,
            reason=reason,
            details=details,
            prev_hash=prev['hash'] if prev else '0' * 64,
        )
        e['hash'] = sha256_bytes(canonical_json(e).encode())
        with open(path, 'a') as f:
            f.write(canonical_json(e) + '\n')
        return e

    def read(p):
        return [json.loads(line) for line in Path(p).read_text().splitlines()]

    return SimpleNamespace(append=append, read=read)


def test_a_log_of_the_old_format_is_checked_then_migrated(ws, tmp_path):
    old = legacy_module(tmp_path)
    ws.log.parent.mkdir(parents=True)
    old.append(ws.log, 'run.start', 'r1', reason='lifecycle run', actor='alice', force=False)
    old.append(
        ws.log, 'model.register', 'arrests/1', reason='all validation gates passed', actor='alice', aliases=['champion']
    )
    old.append(ws.log, 'approval.granted', 'arrests/1', reason='reviewed', actor='dave', step='production')
    before = [
        {k: e[k] for k in ('seq', 'time', 'actor', 'action', 'subject', 'reason', 'details')} for e in old.read(ws.log)
    ]
    head = old.read(ws.log)[-1]['hash']
    r = verify_cli(ws)
    assert (
        r.returncode == 2 and 'older version of lifecycle' in r.stderr and '`lifecycle migrate`' in r.stderr
    )  # the workspace check comes first
    with pytest.raises(audit.AuditError, match='old audit format'):
        audit.append(ws.log, 'x')
    assert audit.read(ws.log) == before  # readable meanwhile
    out = audit.migrate_legacy(ws.log, actor='ops')
    assert out == {'migrated': True, 'entries': 3, 'legacy_head': head, 'path': str(ws.log.resolve())}
    r, v = cli_json(ws.root, 'audit', 'verify', env=ws.env)
    assert r.returncode == 0 and v['entries'] == 4
    first, *rest = audit.read(ws.log)
    assert (first['seq'], first['action'], first['actor'], first['details']) == (
        1,
        'audit.migrate',
        'ops',
        {'legacy_entries': 3, 'legacy_head_hash': head},
    )
    assert rest == [{**e, 'seq': e['seq'] + 1} for e in before]
    assert audit.append(ws.log, 'run.finish', 'r1', actor='alice')['seq'] == 5 and audit.verify(ws.log).ok
    assert audit.migrate_legacy(ws.log)['migrated'] is False  # already keyed: left alone


def test_a_broken_log_of_the_old_format_is_not_migrated(ws, tmp_path):
    old = legacy_module(tmp_path)
    ws.log.parent.mkdir(parents=True)
    for i in range(3):
        old.append(ws.log, 'flags.change', f'm{i}', reason='r', actor='carol')
    lines = ws.log.read_text().splitlines(keepends=True)
    ws.log.write_text(lines[0] + lines[2])  # entry 2 removed
    before = ws.log.read_bytes()
    with pytest.raises(audit.AuditError) as e:
        audit.migrate_legacy(ws.log)
    assert (
        'not migrated, the old chain is broken: entry 3 (line 2) does not link to the entry before it: an entry '
        'was removed, inserted or reordered; nothing was changed'
    ) in str(e.value)
    assert ws.log.read_bytes() == before and not ws.payloads.exists()


def test_a_damaged_line_in_the_middle_is_left_out_by_every_reader_said_and_named_by_verify(ws, caplog):
    """A whole line in the middle that is not an entry (not JSON, or JSON without the fields every entry has): every
    reader leaves it out and says so, naming it, as an append goes on after such lines. Before, every command that read
    the log refused (or, for a key edited away, gave a KeyError traceback), and so did a server loading a version
    (its audited aliases): one stray line took serving down (a review). `audit verify` still fails on it."""
    fill(ws, 3)
    lines = ws.log.read_text().splitlines(keepends=True)
    keyless = json.dumps({k: v for k, v in json.loads(lines[1]).items() if k != 'seq'}) + '\n'
    ws.log.write_text(lines[0] + '{not json\n' + keyless + lines[2])
    r = cli(ws.root, 'audit', 'show', '--json', env=ws.env, own_process=True)  # (stderr as a user sees it)
    assert r.returncode == 0 and 'Traceback' not in r.stderr, (r.stdout, r.stderr)
    assert [e['seq'] for e in json.loads(r.stdout)['entries']] == [1, 3]  # (entry 2 is lost, as a deleted one is)
    assert f'{ws.log}: line(s) 2, 3 are not entries' in r.stderr and 'audit verify' in r.stderr, r.stderr
    with caplog.at_level('WARNING', logger='lifecycle'):
        assert [e['seq'] for e in audit.read(ws.log)] == [1, 3] and 'line(s) 2, 3 are not entries' in caplog.text
    r = verify_cli(ws)
    assert r.returncode == 3 and 'line 2 is not a valid audit entry' in r.stdout + r.stderr, (r.stdout, r.stderr)
    r = cli(ws.root, 'audit', 'erase', '1', '--reason', 'a request to erase', env=ws.env)  # (an erasure never waits
    assert r.returncode == 0, r.stdout + r.stderr  # on the damage: it was refused, "restore from a backup"; a review)
    assert [(e['seq'], e['actor']) for e in audit.read(ws.log)][:2] == [(1, '(erased)'), (3, 'user3')]
    ws.log.write_text(lines[0] + keyless + lines[2])
    assert 'line 2 is not a valid audit entry' in verify_cli(ws).stderr  # (JSON whose seq was edited away too)


def test_audit_show_prints_what_people_typed_as_escapes_where_it_would_act_on_the_terminal(ws):
    audit.append(ws.log, 'flags.kill', 'model', reason='\x1b[2J\x1b[32mall fine\u202eevil', actor='mallory\x1b[0m')
    r = cli(ws.root, 'audit', 'show', env=ws.env)
    assert r.returncode == 0 and '\x1b' not in r.stdout and '\u202e' not in r.stdout, repr(r.stdout)
    assert '\\x1b[2J\\x1b[32mall fine\\u202eevil' in r.stdout and 'mallory\\x1b[0m' in r.stdout
    r, out = cli_json(ws.root, 'audit', 'show', env=ws.env)
    assert out['entries'][-1]['reason'] == '\x1b[2J\x1b[32mall fine\u202eevil'  # (JSON escapes them itself)


@pytest.mark.parametrize('made', [False, True], ids=['absent', 'empty'])
def test_audit_show_of_a_log_without_entries_says_so_in_one_line(ws, made):
    "`audit show` of an absent or empty log printed nothing at all, exit 0: it says the log (named) holds no entry."
    if made:  # (the state folder as a command makes it, then an empty log in it)
        assert cli(ws.root, 'audit', 'verify', env=ws.env).returncode == 0 and not ws.log.exists()
        ws.log.write_bytes(b'')
    r = cli(ws.root, 'audit', 'show', env=ws.env)
    said = f'audit log {ws.log}: no entries yet (nothing has been audited in this workspace)'
    assert r.returncode == 0 and r.stdout.splitlines() == [said], r.stdout + r.stderr
    r = cli(ws.root, 'audit', 'show', '--json', env=ws.env)
    assert r.returncode == 0 and json.loads(r.stdout, parse_constant=pytest.fail) == {'ok': True, 'entries': []}


@pytest.mark.parametrize('junk', [b'garbage\n', b'{"seq": 9, "note": "not an entry"}\n'], ids=['not-json', 'no-mac'])
def test_damage_at_the_end_never_hides_entries_deleted_before_it(ws, junk):
    "Entries cut from the end and a damaged line added: the next append records both, so neither launders the other."
    fill(ws, 5)
    lines = ws.log.read_bytes().splitlines(keepends=True)
    ws.log.write_bytes(b''.join(lines[:3]) + junk)
    e = audit.append(ws.log, 'flags.kill', 'model-1', reason='incident', actor='alice')
    assert e['seq'] == 4
    cp = json.loads(audit.checkpoint_path(audit.keys_folder(ws.log), ws.log).read_text())
    why = cp['breaks'][-1]['reason']
    assert '1 line(s) at its end after entry 3 are not entries' in why and 'records 5 entries' in why, why


def test_an_append_that_cannot_be_written_is_an_audit_error_and_a_recorded_one_never_is(ws, monkeypatch, caplog):
    """Nothing written (the log read-only, immutable, on a full disk): `AuditError` naming the log, and the caller
    undoes what it cannot record. Written, but its checkpoint kept elsewhere cannot follow: the entry stands (a caller
    must not undo what the log records), said as a warning, and the next append keeps the lag as a break."""
    fill(ws, 2)
    real = audit._save_checkpoint

    def unwritable(*a, **k):
        raise PermissionError(13, 'Permission denied')

    monkeypatch.setattr(audit, '_save_checkpoint', unwritable)
    with caplog.at_level('WARNING', logger='lifecycle'):
        e = audit.append(ws.log, 'flags.change', 'm', reason='r', actor='ada')
    assert (
        e['seq'] == 3
        and len(chain(ws)) == 3
        and 'entry 3 (flags.change) is recorded, but its checkpoint' in caplog.text
    )
    monkeypatch.setattr(audit, '_save_checkpoint', real)
    assert audit.append(ws.log, 'flags.change', 'm', reason='r', actor='ada')['seq'] == 4  # (the lag kept as a break)
    monkeypatch.setattr(audit, 'write_line', lambda *a, **k: unwritable())
    with pytest.raises(
        audit.AuditError, match=r"audit log .*audit.log cannot be written \(Permission denied\): its 'x'"
    ):
        audit.append(ws.log, 'x', 'm', reason='r', actor='ada')
    assert len(chain(ws)) == 4


def test_a_torn_line_longer_than_a_block_is_set_aside_whole(tmp_path):
    """A crash can tear a line of any length (a batch of thousands of undeclared columns logs megabytes): all goes,
    noted by where it was and its length, never its bytes (a torn audit payload's personal data outlived `audit
    erase`) nor their hash (a line torn before its salt is a prefix anyone can guess and check)."""
    from lifecycle.core.store import append_jsonl, read_jsonl

    log = tmp_path / 'batches.jsonl'
    append_jsonl(log, {'batch': 1})
    torn = b'{"batch": 2, "columns": "' + b'x' * 2_500_000  # 2.4 blocks of the set-aside's reading, no newline
    with open(log, 'ab') as f:
        f.write(torn)
    append_jsonl(log, {'batch': 3})
    assert read_jsonl(log) == [{'batch': 1}, {'batch': 3}]
    (note,) = [json.loads(line) for line in (tmp_path / 'batches.jsonl.torn').read_text().splitlines()]
    assert note['bytes'] == len(torn) and note['offset'] == len(b'{"batch": 1}\n')
    assert set(note) == {'time', 'offset', 'bytes'}  # (never its bytes, nor their hash: reviews CC, CE)
    log.write_bytes(torn)  # a log that is one torn line
    append_jsonl(log, {'batch': 4})
    assert read_jsonl(log) == [{'batch': 4}]


def test_tombstones_are_written_by_erase_alone_and_keep_only_the_digests_the_release_path_orders_by(ws):
    "Found by review: a tombstone appended by hand moved an approval; an erased score kept its input file's hash."
    fill(ws, 2)
    with pytest.raises(audit.AuditError, match="'audit.erase' entries are written by the log itself"):
        audit.append(ws.log, 'audit.erase', '1', keys_dir=ws.keys, kept={'record_sha256': 'ab' * 32})
    digest = 'cd' * 32
    s = audit.append(ws.log, 'score.batch', 'm/1', keys_dir=ws.keys, input_sha256=digest, rows=3)['seq']
    a = audit.append(ws.log, 'approval.granted', 'm/1', keys_dir=ws.keys, record_sha256=digest, step='staging')['seq']
    for seq in (s, a):
        audit.erase(ws.log, seq, 'a deletion request', keys_dir=ws.keys)
    got = {e['seq']: e for e in audit.read(ws.log)}
    assert got[s]['details'] == {} and got[a]['details'] == {'record_sha256': digest}  # (not its step, its actor)


def test_an_altered_last_entry_without_a_checkpoint_is_a_break_not_a_refusal(ws):
    "Found by review: the entry before it verifies under the key, so the key is right and the log goes on."
    fill(ws, 3)
    folder = ws.keys / (ws.root / '.lifecycle' / 'workspace.id').read_text().strip()
    (folder / 'audit.log.checkpoint.json').write_text('{not json')
    lines = ws.log.read_text().splitlines(keepends=True)
    lines[-1] = lines[-1].replace('"subject":"', '"subject":"x', 1)
    ws.log.write_text(''.join(lines))
    assert audit.append(ws.log, 'run.start', 'r', keys_dir=ws.keys)['seq'] == 4
    assert not audit.verify(ws.log, keys_dir=ws.keys).ok


def test_a_tombstone_written_by_hand_does_not_stop_a_real_erasure(ws):
    """Review AJ: with a hand-written `audit.erase` line naming entry 2 in the log, `audit erase 2` took the entry as
    erased, wrote no tombstone, removed the payload and ended in a traceback."""
    fill(ws, 3)
    last = json.loads(ws.log.read_text().splitlines()[-1])
    forged = {**last, 'seq': last['seq'] + 1, 'action': 'audit.erase', 'subject': '2', 'mac': '0' * 64}
    with open(ws.log, 'a') as f:
        f.write(canonical_json(forged) + '\n')
    done = audit.erase(ws.log, 2, 'a deletion request', keys_dir=ws.keys)
    assert done['action'] == 'audit.erase' and done['subject'] == '2' and done['seq'] == last['seq'] + 2
    assert {e['seq']: e for e in audit.read(ws.log)}[2].get('erased')



def test_erasing_an_entry_that_fails_its_mac_says_so(ws):
    "Review AK: `erase 2` of an edited entry 2 said there was no entry 2, and that the log held one entry fewer."
    fill(ws, 4)
    lines = ws.log.read_text().splitlines(keepends=True)
    lines[1] = lines[1].replace('"subject":"', '"subject":"x', 1)
    ws.log.write_text(''.join(lines))
    with pytest.raises(audit.AuditError, match='entry 2 does not carry the MAC .* nothing was erased'):
        audit.erase(ws.log, 2, 'a deletion request', keys_dir=ws.keys)
    with pytest.raises(audit.AuditError, match='there is no entry 9 to erase .it holds entries 1 to 4.'):
        audit.erase(ws.log, 9, 'a deletion request', keys_dir=ws.keys)
    lines = ws.log.read_text().splitlines(keepends=True)  # (review AL: entries told by their seq, not their line)
    del lines[0]
    ws.log.write_text(''.join(lines))
    with pytest.raises(audit.AuditError, match='there is no entry 1 to erase .it holds entries 3 to 4.'):
        audit.erase(ws.log, 1, 'a deletion request', keys_dir=ws.keys)
    with pytest.raises(audit.AuditError, match='entry 2 does not carry the MAC'):
        audit.erase(ws.log, 2, 'a deletion request', keys_dir=ws.keys)


def test_a_payload_line_no_entry_names_is_named_by_line_and_one_an_append_cut_short_left_is_not_damage(ws, monkeypatch):
    """Review BH: a forged copy of entry 2's payload (another actor) added to the payloads file, which readers ignore,
    was called intact. Verify names its line (never its values) and says readers do not use it; the payload an append
    killed before its chain line leaves (the next append takes the same seq) is no damage, as before."""
    from lifecycle.core import store

    fill(ws, 2)
    real = store.write_line
    calls = []

    def killed(fd, data):  # (the payload is written, then the process dies before the chain line)
        calls.append(data)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(fd, data)

    monkeypatch.setattr(audit, 'write_line', killed)
    with pytest.raises(KeyboardInterrupt):
        audit.append(ws.log, 'flags.change', 'model-3', reason='killed', actor='user3')
    monkeypatch.setattr(audit, 'write_line', real)
    fill(ws, 1)  # takes seq 3 again: the payload cut short is set aside first (review CA), then its own written
    v = audit.verify(ws.log)
    assert v.ok and v.notes == [], v  # (as before)
    assert [e['actor'] for e in audit.read(ws.log)] == ['user1', 'user2', 'user1']
    aside = [json.loads(ln) for ln in ws.payloads.with_name('audit.payloads.jsonl.torn').read_text().splitlines()]
    assert [(a['sha256'], a['bytes'], a['unrecorded']) for a in aside] == [  # (where it was, never its bytes: CC)
        (sha256_bytes(calls[0].rstrip(b'\n')), len(calls[0]), 3)
    ]
    lines = ws.payloads.read_text().splitlines()
    forged = json.loads(lines[1])
    ws.payloads.write_text('\n'.join([*lines, canonical_json({**forged, 'actor': 'mallory'})]) + '\n')
    failed_with(
        ws,
        "audit.payloads.jsonl holds 1 line(s) no entry of the chain names (line(s) 4): readers do not use them (an "
        "entry's payload is the one whose digest its chain line carries), but no append, erasure or interrupted write "
        "leaves such a line there: it was written by hand. Remove those lines and run `lifecycle audit verify` again",
    )
    assert [e['actor'] for e in audit.read(ws.log)] == ['user1', 'user2', 'user1']  # (readers: as before)


def test_a_forged_payload_line_before_an_entrys_own_is_named_and_a_killed_append_at_the_end_is_fine(ws, monkeypatch):
    """Review CA: a forged copy of entry 2's payload put just before the real one looked like what an append killed
    before its chain line leaves, and passed. Such a leftover is only ever at the end of the file (the next append
    sets it aside), so one before an entry's own payload is named; one at the end is still no damage."""
    fill(ws, 3)
    lines = ws.payloads.read_text().splitlines()
    forged = canonical_json({**json.loads(lines[1]), 'actor': 'mallory'})
    ws.payloads.write_text('\n'.join([lines[0], forged, *lines[1:]]) + '\n')
    failed_with(
        ws,
        "audit.payloads.jsonl holds 1 line(s) no entry of the chain names (line(s) 2): readers do not use them (an "
        "entry's payload is the one whose digest its chain line carries), but no append, erasure or interrupted write "
        "leaves such a line there: it was written by hand. Remove those lines and run `lifecycle audit verify` again",
    )
    ws.payloads.write_text('\n'.join(lines) + '\n')
    real = audit.write_line
    monkeypatch.setattr(audit, 'write_line', lambda fd, data: real(fd, data) if b'"actor"' in data else 1 / 0)
    with pytest.raises(ZeroDivisionError):  # (the payload is written, then the process dies before the chain line)
        audit.append(ws.log, 'flags.change', 'model-4', reason='killed', actor='user4')
    monkeypatch.setattr(audit, 'write_line', real)
    assert len(ws.payloads.read_text().splitlines()) == 4
    v = audit.verify(ws.log)
    assert v.ok and v.notes == [], v


def test_erasing_an_entry_leaves_no_trace_of_a_killed_append_of_the_same_seq(ws, monkeypatch):
    """Review CC (D2): the set-aside note kept a killed append's whole payload line (as hex) in
    `audit.payloads.jsonl.torn`, so the personal data in its reason outlived `lifecycle audit erase` of that sequence
    number. The note keeps where the line was, its length, seq and sha256, never its bytes."""
    fill(ws, 2)
    start, real = ws.payloads.stat().st_size, audit.write_line
    with monkeypatch.context() as m:
        m.setattr(audit, 'write_line', lambda fd, data: real(fd, data) if b'"actor"' in data else 1 / 0)
        m.setattr(audit, '_set_aside_unrecorded', lambda *a: None)  # (two killed in a row, by an earlier lifecycle)
        for _ in range(2):
            with pytest.raises(ZeroDivisionError):  # (the payload is written, then the process dies before its chain
                audit.append(ws.log, 'token.issue', 'user-7', reason='issued to jane.doe@example.com', actor='carol')
    killed = [ln for ln in ws.payloads.read_bytes().splitlines(keepends=True) if b'jane.doe' in ln]
    assert len(killed) == 2
    again = audit.append(ws.log, 'token.issue', 'user-7', reason='issued to jane.doe@example.com', actor='carol')
    assert again['seq'] == 3
    audit.erase(ws.log, 3, 'deletion request 18', keys_dir=ws.keys)
    assert audit.verify(ws.log).ok
    address, aside = b'jane.doe@example.com', ws.payloads.with_name('audit.payloads.jsonl.torn')
    kept = {f: f.read_bytes() for top in (ws.root, ws.keys) for f in top.rglob('*') if f.is_file()}  # (and the keys)
    assert aside in kept and not [f for f, b in kept.items() if address in b or address.hex().encode() in b]
    notes = [json.loads(ln) for ln in aside.read_text().splitlines()]
    assert [(n['unrecorded'], n['offset'], n['bytes'], n['sha256']) for n in notes] == [
        (3, start, len(killed[0]), sha256_bytes(killed[0].rstrip(b'\n'))),
        (3, start + len(killed[0]), len(killed[1]), sha256_bytes(killed[1].rstrip(b'\n'))),
    ]


def test_a_torn_file_that_cannot_be_written_leaves_the_leftover_and_the_append_goes_on(ws, monkeypatch, caplog):
    """Review CC (P5): with `audit.payloads.jsonl.torn` not writable (here a folder), every append failed while a
    killed append's leftover was there, with a message naming the audit log. The append goes on, the leftover where it
    is and the entry without the `aside` mark (so `verify` reads the leftover as before), with a warning naming it."""
    fill(ws, 2)
    real = audit.write_line
    monkeypatch.setattr(audit, 'write_line', lambda fd, data: real(fd, data) if b'"actor"' in data else 1 / 0)
    with pytest.raises(ZeroDivisionError):  # (the payload is written, then the process dies before its chain line)
        audit.append(ws.log, 'flags.change', 'model-3', reason='killed', actor='user3')
    monkeypatch.setattr(audit, 'write_line', real)
    aside = ws.payloads.with_name('audit.payloads.jsonl.torn')
    aside.mkdir()
    with caplog.at_level('WARNING', logger='lifecycle'):
        e = audit.append(ws.log, 'flags.change', 'model-3', reason='again', actor='user3')
    assert e['seq'] == 3 and str(aside) in caplog.text and 'flags.change' in caplog.text, caplog.text
    assert [bool(c.get('aside')) for c in chain(ws)] == [True, True, False]  # (the leftover: kept, before entry 3's)
    reasons = [json.loads(ln)['reason'] for ln in ws.payloads.read_text().splitlines()]
    assert reasons == ['step 1', 'step 2', 'killed', 'again']
    v = audit.verify(ws.log)
    assert v.ok and v.notes == [], v
    aside.rmdir()
    fill(ws, 1)  # (entry 4: the set-aside works again, and finds nothing of its seq to set aside)
    assert [bool(c.get('aside')) for c in chain(ws)] == [True, True, False, True] and not aside.exists()
    assert audit.verify(ws.log).ok


def test_a_payload_line_that_is_not_a_json_object_when_verify_looks_for_unnamed_ones_is_named_not_a_crash(
    ws, monkeypatch
):
    """Review CC (N1): `verify` reads the payload file again to look for lines no entry names; one that is not JSON
    there (damage, or a reader racing an append's truncate after the first read) was a traceback. It is named by its
    line number, as any line no entry names."""
    fill(ws, 3)
    real = audit._payload_problem

    def then_damaged(*a):  # (the file changes between verify's two reads of it)
        found = real(*a)
        lines = ws.payloads.read_text().splitlines(keepends=True)
        ws.payloads.write_text(''.join([lines[0], '{"seq": 2, "actor": "us\n', '[2]\n', *lines[1:]]))
        return found

    monkeypatch.setattr(audit, '_payload_problem', then_damaged)
    v = audit.verify(ws.log)
    assert not v.ok and v.reason.startswith(
        "audit.payloads.jsonl holds 2 line(s) no entry of the chain names (line(s) 2, 3): readers do not use them"
    ), v.reason


def test_a_torn_file_wider_than_its_payload_file_is_narrowed_when_a_leftover_is_set_aside(ws, monkeypatch):
    """Review CC (N2): the set-aside of a killed append's payload line left an `audit.payloads.jsonl.torn` readable
    by more than its payload file as it was; the set-aside of a torn line (`store._set_aside_torn`) narrows it."""
    fill(ws, 2)
    ws.payloads.chmod(0o600)
    aside = ws.payloads.with_name('audit.payloads.jsonl.torn')
    aside.write_text('')
    aside.chmod(0o644)  # (as made by hand, or under a wide umask)
    real = audit.write_line
    monkeypatch.setattr(audit, 'write_line', lambda fd, data: real(fd, data) if b'"actor"' in data else 1 / 0)
    with pytest.raises(ZeroDivisionError):  # (the payload is written, then the process dies before its chain line)
        audit.append(ws.log, 'flags.change', 'model-3', reason='killed', actor='user3')
    monkeypatch.setattr(audit, 'write_line', real)
    assert os.stat(aside).st_mode & 0o777 == 0o644
    fill(ws, 1)
    assert os.stat(aside).st_mode & 0o777 == 0o600 and len(aside.read_text().splitlines()) == 1


def test_a_log_an_earlier_lifecycle_wrote_with_a_killed_appends_leftover_within_it_still_verifies(ws, monkeypatch):
    """An earlier lifecycle left what an append killed before its chain line wrote where it was, and the next append's
    payload after it: such a log is not called forged (its entries carry no mark that their append set leftovers
    aside). Entries this lifecycle appends after it carry the mark, and a line forged before one of them is named."""
    real = audit.write_line
    with monkeypatch.context() as m:
        m.setattr(audit, '_aside_mark', lambda problem: {})  # (an earlier lifecycle's appends)
        m.setattr(audit, '_set_aside_unrecorded', lambda *a: None)
        fill(ws, 2)
        m.setattr(audit, 'write_line', lambda fd, data: real(fd, data) if b'"actor"' in data else 1 / 0)
        with pytest.raises(ZeroDivisionError):  # (the payload is written, then the process dies before its chain line)
            audit.append(ws.log, 'flags.change', 'model-3', reason='killed', actor='user3')
        m.setattr(audit, 'write_line', real)
        audit.append(ws.log, 'flags.change', 'model-3', reason='again', actor='user3')  # (its payload after it)
    assert len(ws.payloads.read_text().splitlines()) == 4 and len(chain(ws)) == 3
    v = audit.verify(ws.log)
    assert v.ok, v.reason
    fill(ws, 1)  # this lifecycle's entry 4, marked
    assert [bool(e.get('aside')) for e in chain(ws)] == [False, False, False, True]
    lines = ws.payloads.read_text().splitlines()
    forged = canonical_json({**json.loads(lines[-1]), 'actor': 'mallory'})
    ws.payloads.write_text('\n'.join([*lines[:-1], forged, lines[-1]]) + '\n')
    assert not audit.verify(ws.log).ok


def test_appends_made_while_verify_reads_the_log_are_not_taken_for_lines_written_by_hand(tmp_path, monkeypatch):
    """Review BJ: `verify` takes no lock; two appends made after it read the chain left payload lines past its end,
    and a sound log was called written by hand, with the advice to remove a real entry's payload."""
    from lifecycle.core import audit

    (tmp_path / 'state').mkdir()
    log, keys = tmp_path / 'state' / 'audit.jsonl', tmp_path / 'keys'
    for _ in range(3):
        audit.append(log, 'flags.change', 'm', 'r', actor='ops', keys_dir=keys)
    real, once = audit._head_problem, []

    def two_appends_meanwhile(*a, **k):  # (another process appends twice while verify reads)
        if not once:
            once.append(1)
            for _ in range(2):
                audit.append(log, 'flags.change', 'm', 'r', actor='ops', keys_dir=keys)
        return real(*a, **k)

    monkeypatch.setattr(audit, '_head_problem', two_appends_meanwhile)
    v = audit.verify(log, keys_dir=keys)
    assert v.ok, v.reason
    monkeypatch.undo()
    assert audit.verify(log, keys_dir=keys).ok


def test_a_torn_payload_line_whose_torn_file_cannot_be_written_never_holds_an_append_back(ws, caplog):
    """Review CE: with `audit.payloads.jsonl.torn` not writable (here a folder), a payload line torn by a crash made
    every later append fail, with a message naming the audit log. The line is cut off all the same, the log says the
    note could not be written (naming the file), and the entry is appended."""
    fill(ws, 2)
    with open(ws.payloads, 'ab') as f:
        f.write(b'{"actor": "user3", "reason": "half wri')  # a crash mid-write of a payload
    aside = ws.payloads.with_name('audit.payloads.jsonl.torn')
    aside.mkdir()
    with caplog.at_level('WARNING', logger='lifecycle'):
        e = audit.append(ws.log, 'flags.change', 'model-3', reason='after the crash', actor='user3')
    assert e['seq'] == 3 and audit.verify(ws.log).ok
    said = ' '.join(r.getMessage() for r in caplog.records)
    assert 'a torn last line (38 bytes at offset' in said and str(aside) in said, said


def test_an_erasure_forgets_the_bytes_earlier_lifecycles_kept_in_the_audit_logs_torn_notes(ws):
    """Review CE: `.torn` notes written by earlier lifecycles keep a torn or set-aside payload's bytes (`hex`), with
    whatever personal data it held, and no erasure reached them. An erasure rewrites those notes without them."""
    import hashlib

    fill(ws, 2)
    leaked = b'{"actor": "jane.doe@example.com", "reason": "complai'
    aside = ws.payloads.with_name('audit.payloads.jsonl.torn')
    notes = [
        {'time': 't', 'offset': 10, 'bytes': len(leaked), 'hex': leaked.hex()},
        {'time': 't', 'offset': 10, 'bytes': len(leaked), 'sha256': hashlib.sha256(leaked).hexdigest()},  # (unsalted)
    ]
    aside.write_text(''.join(json.dumps(n) + '\n' for n in notes))
    aside.chmod(0o600)
    real = audit._forget_torn_bytes
    audit._forget_torn_bytes = lambda log: 1 / 0  # (the erasure killed once its payload file is rewritten)
    try:
        with pytest.raises(ZeroDivisionError):
            audit.erase(ws.log, 1, reason='a data subject asked')
    finally:
        audit._forget_torn_bytes = real
    with pytest.raises(audit.AuditError, match='already erased'):  # (its rerun: refused, and the notes done: CG)
        audit.erase(ws.log, 1, reason='a data subject asked')
    kept = {'time': 't', 'offset': 10, 'bytes': len(leaked)}
    assert [json.loads(ln) for ln in aside.read_text().splitlines()] == [kept, kept]
    aside.write_text(json.dumps({**kept, 'hex': '00'}) + '\n7\n')  # (a line that is no note: kept, review CH)
    audit._forget_torn_bytes(ws.log)
    assert aside.read_text() == json.dumps(kept) + '\n7\n'
    assert aside.stat().st_mode & 0o777 == 0o600 and audit.verify(ws.log).ok


def test_read_tail_is_the_end_of_read_from_the_ends_of_the_files(ws):
    "Review CP: ingest looks back at recent entries without reading the whole (possibly large) log."
    fill(ws, 7)
    audit.erase(ws.log, 6, reason='asked')
    assert audit.read_tail(ws.log, 3) == audit.read(ws.log)[-3:] and audit.read_tail(ws.log, 100) == audit.read(ws.log)
    assert audit.read_tail(ws.root / 'absent.log') == []


def test_a_folder_where_the_log_should_be_is_named_by_verify_and_erase_never_called_emptied(ws):
    """A folder in place of `audit.log`: `audit verify` said the log was "missing or empty ... deleted or emptied" (and
    passed it, 0 entries, before any checkpoint), `audit erase` printed `[Errno 21] Is a directory` (exit 1). Both now
    name the path and what was found there, as `audit show` does."""
    fill(ws, 2)
    ws.log.rename(ws.log.with_name('kept.log'))
    ws.log.mkdir()
    found = f"{ws.log}: expected a JSON-lines log, found a folder or other non-file; move it aside"
    failed_with(ws, found)
    r, out = cli_json(ws.root, 'audit', 'verify', env=ws.env)
    assert r.returncode == 3 and out['ok'] is False and out['reason'] == found, r.stdout
    r, out = cli_json(ws.root, 'audit', 'erase', '1', '--reason', 'a request', env=ws.env)
    assert r.returncode == 2 and out == {'ok': False, 'error': found}, r.stdout + r.stderr
    r = cli(ws.root, 'audit', 'show', env=ws.env)
    assert r.returncode == 3 and found in r.stderr, r.stderr


def test_audit_erase_prints_the_actor_as_audit_show_does_never_a_terminal_escape(ws):
    """`audit erase` printed the tombstone's actor (`$LIFECYCLE_ACTOR`, the login name) raw, an ANSI escape in it
    acting on the terminal, where `audit show` prints the same entry's actor escaped."""
    fill(ws, 2)
    r = cli(ws.root, 'audit', 'erase', '1', '--reason', 'a request', env={**ws.env, 'LIFECYCLE_ACTOR': 'ev\x1b[31mil'})
    assert r.returncode == 0 and 'by ev\\x1b[31mil' in r.stdout and '\x1b' not in r.stdout, repr(r.stdout)
    r = cli(ws.root, 'audit', 'show', '-n', '1', env=ws.env)
    assert 'ev\\x1b[31mil' in r.stdout and '\x1b' not in r.stdout, repr(r.stdout)


def test_audit_show_calls_an_edited_payload_altered_as_verify_does_never_missing(ws):
    """An edited payload in `audit.payloads.jsonl`: `audit verify` fails ("was altered: it does not match the digest"),
    but `audit show` labelled the entry `(missing)` / `(payload missing)`, as if it had been deleted (review EB)."""
    fill(ws, 3)
    ws.payloads.write_text(ws.payloads.read_text().replace('"step 2"', '"step 7"'))
    r, out = cli_json(ws.root, 'audit', 'show', env=ws.env)
    e = out['entries'][1]
    assert (e['seq'], e['actor'], e.get('altered')) == (2, '(altered)', True), e
    assert 'does not match' in e['reason'] and 'step 7' not in json.dumps(e), e  # (never the edited text as fact)
    assert [x['actor'] for x in audit.read_tail(ws.log)] == ['user1', '(altered)', 'user3']
    ws.payloads.write_text(''.join(ln + '\n' for ln in ws.payloads.read_text().splitlines() if '"step 7"' not in ln))
    assert audit.read(ws.log)[1]['actor'] == '(missing)'  # (deleted, not edited: still missing)


def test_audit_show_refuses_when_the_log_is_gone_but_its_checkpoint_records_entries(ws):
    """`audit.log` renamed away: `audit verify` exits 3 (the checkpoint kept outside the workspace records 3 entries),
    but `audit show --json` printed `{"ok": true, "entries": []}` (review EB)."""
    fill(ws, 3)
    ws.log.rename(ws.log.with_name('elsewhere.log'))
    r, out = cli_json(ws.root, 'audit', 'show', env=ws.env)
    assert r.returncode == 3 and out['ok'] is False, out
    assert 'the log is missing or empty but the checkpoint kept outside the workspace records 3 entries' in out['error']
    r = cli(ws.root, 'audit', 'show', env=ws.env)
    assert r.returncode == 3 and 'audit verify' in r.stderr, r.stderr
    fresh = ws.root.parent / 'fresh'  # (a new workspace, no entries and no checkpoint, shows nothing and is fine)
    fresh.mkdir()
    (fresh / 'settings.ini').write_text('[workspace]\n')
    r, out = cli_json(fresh, 'audit', 'show', env={'LIFECYCLE_KEYS_DIR': str(ws.root.parent / 'keys2')})
    assert r.returncode == 0 and out == {'ok': True, 'entries': []}, out


def test_audit_show_refuses_a_log_whose_last_entries_were_deleted_as_verify_does(ws):
    """Entries deleted from the end of `audit.log`: `audit verify` exits 3 (its checkpoint records more), but `audit
    show` printed what was left as the latest entries, exit 0 (review EB). An append after the checkpoint is fine."""
    fill(ws, 4)
    was = ws.log.read_text()
    ws.log.write_text(''.join(was.splitlines(keepends=True)[:2]))
    r, out = cli_json(ws.root, 'audit', 'show', env=ws.env)
    assert r.returncode == 3 and 'the log ends at entry 2 but the checkpoint' in out['error'], out
    ws.log.write_text(was)
    fill(ws, 1)
    r, out = cli_json(ws.root, 'audit', 'show', env=ws.env)
    assert r.returncode == 0 and [e['seq'] for e in out['entries']] == [1, 2, 3, 4, 5], out


@pytest.mark.parametrize('checkpoint', ['deleted', 'altered'])
def test_audit_show_refuses_a_log_whose_last_entries_were_deleted_with_its_checkpoint(ws, checkpoint):
    """Entries deleted from the end of `audit.log` together with the checkpoint kept outside the workspace (or that
    checkpoint written over): `audit verify` exits 3, but `audit show` printed what was left as the latest entries,
    exit 0, as before review EB: with no checkpoint to compare, the log's end read as whole."""
    fill(ws, 4)
    ws.log.write_text(''.join(ws.log.read_text().splitlines(keepends=True)[:2]))
    cp = next(ws.keys.rglob('*.checkpoint.json'))
    cp.unlink() if checkpoint == 'deleted' else cp.write_text('{}')
    assert not audit.verify(ws.log).ok
    r, out = cli_json(ws.root, 'audit', 'show', env=ws.env)
    assert r.returncode == 3 and 'checkpoint' in out['error'] and 'audit verify' in out['error'], out


def test_a_payload_line_whose_seq_is_a_list_is_no_crash_of_audit_show_or_verify(ws):
    """A payload line edited to `{"seq": [9]}`: `read`, `read_tail` (so `audit show`) and `verify` raised TypeError
    'unhashable type' from the set of payload sequences `(altered)` is found by (review ED)."""
    fill(ws, 2)
    ws.payloads.write_text(ws.payloads.read_text() + '{"seq": [9]}\n')
    assert [e['actor'] for e in audit.read(ws.log)] == ['user1', 'user2']
    assert [e['actor'] for e in audit.read_tail(ws.log)] == ['user1', 'user2']
    assert not audit.verify(ws.log).ok
    r, out = cli_json(ws.root, 'audit', 'show', env=ws.env)
    assert r.returncode == 0 and [e['seq'] for e in out['entries']] == [1, 2], out


def test_audit_show_reads_on_with_a_damaged_key_as_every_reader_does(ws):
    """A damaged `audit.key`: `read` reads on (`_authentic`), and `audit show` did before review EB, but its check of
    the log's end against the checkpoint (`end_problem`) raised the key's AuditError, exit 3 (review ED)."""
    fill(ws, 2)
    next(ws.keys.rglob('audit.key')).write_text('garbage\n')
    assert audit.end_problem(ws.log) == ''
    r, out = cli_json(ws.root, 'audit', 'show', env=ws.env)
    assert r.returncode == 0 and [e['seq'] for e in out['entries']] == [1, 2], out


def test_a_blank_lifecycle_actor_is_no_actor_the_login_name_acts(monkeypatch):
    """Found by review (ET): `LIFECYCLE_ACTOR=' '` (a script's unset variable, blank) was taken as the actor, so the
    audit log said ' ' did it, where an empty value already meant the login name, as a blank setting means unset."""
    import getpass
    from lifecycle.core.audit import default_actor

    monkeypatch.setattr(getpass, 'getuser', lambda: 'erin')
    for blank in ('', ' ', '\t\n'):
        monkeypatch.setenv('LIFECYCLE_ACTOR', blank)
        assert default_actor() == 'erin', repr(blank)
    monkeypatch.setenv('LIFECYCLE_ACTOR', ' dave ')
    assert default_actor() == 'dave'


def test_a_moved_workspaces_old_folder_named_by_an_e_mail_address_is_withheld_in_audit_verify(tmp_path, monkeypatch):
    """Found by review FZ: of a workspace moved out of a folder whose name holds an e-mail address, `audit verify`
    (text and `--json`) noted 'the checkpoint was last written for /.../carol@corp.example/ws/.lifecycle/audit.log':
    the workspace's folder is withheld only while it is there. The note now names the old log as `shown_path` does."""
    keys, old, new = tmp_path / 'keys', tmp_path / 'carol@corp.example' / 'ws', tmp_path / 'ws'
    old.mkdir(parents=True)
    (old / 'settings.ini').write_text('[workspace]\n')
    monkeypatch.setenv('LIFECYCLE_KEYS_DIR', str(keys))
    audit.append(old / '.lifecycle' / 'audit.log', 'test.entry', 'x', reason='r', keys_dir=keys)
    old.rename(new)
    r, v = cli_json(new, 'audit', 'verify', env={'LIFECYCLE_KEYS_DIR': str(keys)})
    assert r.returncode == 0 and v['ok'] and len(v['notes']) == 1, v
    assert 'carol' not in r.stdout + r.stderr and '<folder name withheld: it holds personal data>/ws' in v['notes'][0]
    r = cli(new, 'audit', 'verify', env={'LIFECYCLE_KEYS_DIR': str(keys)})
    assert r.returncode == 0 and 'was moved' in r.stdout + r.stderr and 'carol' not in r.stdout + r.stderr
