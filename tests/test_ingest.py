"""The ingestion boundary through `lifecycle ingest`: every kind of bad input gets a message naming the file, the
column and the rule, and its documented exit code (1 rejected, 4 unreadable); nothing is stored for a refused batch."""

from __future__ import annotations
import json
import signal
import sqlite3
import subprocess
import time
from pathlib import Path
import pandas as pd
import pytest
from conftest import cli, cli_json, set_yaml, LIFECYCLE, clean_env
from lifecycle.core import audit

pytestmark = pytest.mark.slow  # a `lifecycle ingest` process per check, a kill -9 (in-process: test_checks.py)


def datasets(ws: Path) -> list[dict]:
    d = ws / '.lifecycle/store/records/datasets'
    return [json.loads(p.read_text()) for p in d.glob('*.json')] if d.is_dir() else []


def ingest(ws: Path, path: Path, *extra, env=None):
    return cli_json(ws, 'ingest', str(path), '--dataset', 'arrests', *extra, env=env)


def findings(out: dict) -> dict:
    return {(f['rule'], f['column']): f for f in out.get('findings', [])}


def test_a_clean_batch_becomes_a_versioned_snapshot_with_lineage(workspace, arrests):
    src = workspace / 'b2001.csv'
    arrests[arrests.year == 2001].to_csv(src, index=False)
    r, out = ingest(workspace, src)
    assert r.returncode == 0 and out['status'] == 'accepted' and out['rows'] == 1211
    (rec,) = datasets(workspace)
    assert rec['version'] == out['snapshot'] and rec['rows'] == 1211 and rec['source'].startswith('sha256:')
    for k in ('schema_hash', 'rules_hash', 'transform_hash', 'quality', 'parent', 'reference', 'retention_until'):
        assert k in rec
    r, again = ingest(workspace, src)  # same content: same version, flagged as a replay
    assert again['snapshot'] == out['snapshot'] and ('replayed_batch', '(batch)') in findings(again)
    assert len(datasets(workspace)) == 1


BAD = {  # name: (make the file, expected exit, expected finding (rule, column) or message part)
    'empty-file': (lambda df, p: p.write_bytes(b''), 4, 'the file is empty'),
    'header-only': (lambda df, p: df.head(0).to_csv(p, index=False), 1, ('too_few_rows', '(batch)')),
    'truncated-last-row': (
        lambda df, p: p.write_text(df.head(50).to_csv(index=False).rstrip('\n').rsplit(',', 4)[0] + '\n'),
        4,  # (refused as malformed, as a longer row is: its last four fields were filled with nulls, EM)
        'line 51 has 4 field(s), expected 8',
    ),
    'wrong-delimiter': (lambda df, p: df.head(50).to_csv(p, index=False, sep=';'), 1, ('missing_column', 'released')),
    'non-utf8': (
        lambda df, p: p.write_bytes(df.head(50).to_csv(index=False).encode().replace(b'White', b'Wh\xefte', 1)),
        4,
        'not valid UTF-8',
    ),
    'renamed-column': (
        lambda df, p: df.head(50).rename(columns={'age': 'age_years'}).to_csv(p, index=False),
        1,
        ('missing_column', 'age'),
    ),
    'numbers-as-text': (
        lambda df, p: df.head(50).astype({'age': str}).to_parquet(p.with_suffix('.parquet')),
        1,
        ('dtype', 'age'),
    ),
    'all-null-column': (
        lambda df, p: df.head(50).assign(employed=None).to_csv(p, index=False),
        1,
        ('nulls', 'employed'),
    ),
    'half-duplicated': (lambda df, p: pd.concat([df, df]).to_csv(p, index=False), 1, ('duplicates', '(batch)')),
    'new-category': (
        lambda df, p: df.head(50).assign(sex=['X'] * 3 + ['Male'] * 47).to_csv(p, index=False),
        1,
        ('unseen_category', 'sex'),
    ),
    'out-of-range': (
        lambda df, p: df.head(50).assign(age=[150] + [30] * 49).to_csv(p, index=False),
        1,
        ('out_of_range', 'age'),
    ),
}


@pytest.mark.parametrize('case', list(BAD))
def test_bad_input_is_refused_with_a_clear_message(workspace, arrests, case):
    make, code, expected = BAD[case]
    path = workspace / f'{case}.csv'
    make(arrests, path)
    if not path.exists():
        path = path.with_suffix('.parquet')
    r, out = ingest(workspace, path)
    assert r.returncode == code, (r.stdout, r.stderr)
    assert str(path) in out['source'] and not out['ok']
    if isinstance(expected, tuple):
        f = findings(out)
        assert expected in f, f.keys()
        assert f[expected]['meaning'] and f[expected]['severity'] in ('critical', 'high', 'medium')
        assert expected[1] in out['reason']
        assert (
            expected[0].replace('_', ' ') in out['reason']
            or expected[0] == 'missing_column'
            and 'is missing' in out['reason']
        )
    else:
        assert expected in out['error'] and str(path) in out['error']
    assert datasets(workspace) == []  # nothing stored
    assert (
        not list((workspace / '.lifecycle/store/tmp').glob('*'))
        if (workspace / '.lifecycle/store/tmp').exists()
        else True
    )


def test_messages_carry_operational_hints(workspace, arrests):
    p = workspace / 'semi.csv'
    arrests.head(20).to_csv(p, index=False, sep=';')
    r = cli(workspace, 'ingest', str(p), '--dataset', 'arrests')
    assert r.returncode == 1 and 'another delimiter' in r.stderr and 'upstream contract changed' in r.stderr
    p = workspace / 'renamed.csv'
    arrests.head(20).rename(columns={'age': 'age_years'}).to_csv(p, index=False)
    r = cli(workspace, 'ingest', str(p), '--dataset', 'arrests')
    assert r.returncode == 1 and "renamed upstream" in r.stderr and 'age_years' in r.stderr
    p = workspace / 'text.parquet'
    arrests.head(20).astype({'age': str}).to_parquet(p)
    r = cli(workspace, 'ingest', str(p), '--dataset', 'arrests')
    assert r.returncode == 1 and 'numbers arrive as text' in r.stderr


def test_a_source_that_disappears_mid_read_stores_nothing(workspace, arrests):
    from lifecycle.core.workspace import Workspace
    from lifecycle.sources import SourceError
    from lifecycle import ingest as ing

    s = Workspace.open(workspace)
    p = s.params['ingest']

    def vanishing():
        yield arrests.iloc[:2000]
        raise SourceError('gone.csv: the source became unreadable while reading: [Errno 2] No such file')

    with pytest.raises(SourceError, match='gone.csv'):
        ing.ingest_batch(vanishing(), p, s, source='gone.csv', fingerprint='x')
    assert datasets(workspace) == [] and not list((workspace / '.lifecycle/store/tmp').glob('*'))


def test_a_process_killed_while_writing_leaves_no_partial_snapshot_and_its_temporary_file_is_removed_next(
    workspace, arrests
):
    big = workspace / 'big.csv'
    set_yaml(workspace / 'params/ingest.yaml', max_duplicate_rate=1.0, chunk_rows=50_000)
    pd.concat([arrests] * 120, ignore_index=True).to_csv(big, index=False)  # ~630k rows
    proc = subprocess.Popen(
        [LIFECYCLE, 'ingest', str(big), '--dataset', 'arrests'],
        cwd=workspace,
        env=clean_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    tmp, deadline = workspace / '.lifecycle/store/tmp', time.time() + 120
    while time.time() < deadline and not (tmp.is_dir() and any(tmp.glob('*.parquet.tmp'))):
        time.sleep(0.05)
    time.sleep(0.3)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    left = sorted(tmp.glob('*'))
    assert left and all(p.name.startswith(f'{proc.pid}@') for p in left)  # named after the dead writer
    import hashlib

    for obj in (workspace / '.lifecycle/store/objects').rglob('*'):
        if obj.is_file():
            assert hashlib.sha256(obj.read_bytes()).hexdigest() == obj.name  # nothing partial under a real name
    for rec in datasets(workspace):
        assert (workspace / '.lifecycle/store/objects' / rec['object'][:2] / rec['object']).is_file()
    small = workspace / 'small.csv'
    arrests.head(300).to_csv(small, index=False)
    r, out = ingest(workspace, small)
    assert r.returncode == 0 and out['status'] == 'accepted'  # the next run succeeds
    assert not any(p.exists() for p in left) and list(tmp.glob('*')) == []  # and removed the dead writer's file


def test_sql_source_from_a_real_sqlite_file(workspace, arrests):
    db = workspace / 'batches.db'
    with sqlite3.connect(db) as con:
        arrests.to_sql('arrests', con, index=False)
    r, out = cli_json(
        workspace,
        'ingest',
        f'sqlite:///{db}',
        '--query',
        'select * from arrests where year = 2002',
        '--dataset',
        'arrests',
    )
    assert r.returncode == 0 and out['rows'] == 277 and out['status'] == 'accepted'
    r, out = cli_json(workspace, 'ingest', f'sqlite:///{db}', '--query', 'select * from nope', '--dataset', 'arrests')
    assert r.returncode == 4 and 'query failed' in out['error']


@pytest.mark.parametrize(
    'url, said',
    [
        ('mysql://ann:s3cret@127.0.0.1:1/db', "its driver for mysql is not installed here (ModuleNotFoundError"),
        ('postgresql://ann:s3cret@127.0.0.1:abc/db', 'it is not a URL SQLAlchemy can parse'),
        ('nosuchdialect://ann:s3cret@h/db', 'it names a database SQLAlchemy does not know (nosuchdialect'),
    ],
)
def test_a_database_url_that_cannot_be_used_as_written_is_refused_counted_and_never_a_traceback(workspace, url, said):
    """A driver not installed, a port that is no number, an unknown database: a traceback and exit 1 (a review). Now
    refused as the README says (exit 2), counted by `ingest stats`, and by `run` before it starts any stage (not by
    every command that reads the params: one that reads no source needs no driver); the password never shown."""
    r, out = cli_json(workspace, 'ingest', url, '--query', 'select 1', '--dataset', 'arrests')
    assert r.returncode == 2 and said in out['error'] and 'cannot be used as written' in out['error'], r.stdout
    assert 's3cret' not in r.stdout + r.stderr and 'Traceback' not in r.stderr
    assert cli_json(workspace, 'ingest', 'stats')[1]['unreadable'] == 1
    set_yaml(workspace / 'params/ingest.yaml', source=url, query='select 1')
    r, out = cli_json(workspace, 'run', '--no-site')
    assert r.returncode == 2 and 'no stage ran' in out['error'] and said in out['error'], r.stdout
    assert 's3cret' not in r.stdout + r.stderr
    assert cli_json(workspace, 'ingest', 'stats')[0].returncode == 0  # (a command that reads no source: not held)


def test_fail_open_quarantines_offending_rows_and_records_the_fallback(workspace, arrests):
    set_yaml(workspace / 'params/ingest.yaml', policy='fail_open')
    p = workspace / 'b.csv'
    arrests.head(200).assign(age=[999] * 7 + [30] * 193).to_csv(p, index=False)
    r = cli(workspace, 'ingest', str(p), '--dataset', 'arrests', '--json')
    out = json.loads(r.stdout)
    assert r.returncode == 0 and out['status'] == 'accepted_with_quarantine'
    assert (out['accepted_rows'], out['quarantined_rows']) == (193, 7)
    q = {d['version']: d for d in datasets(workspace)}[out['quarantine']]
    assert q['role'] == 'quarantine' and q['rows'] == 7 and q['parent'] == out['snapshot']
    log = audit.read(workspace / '.lifecycle/audit.log')
    assert [e['action'] for e in log] == ['ingest.fallback'] and 'age' in log[0]['reason']
    r = cli(workspace, 'ingest', str(p), '--dataset', 'arrests')
    assert 'warning' in r.stderr and 'fail-open' in r.stderr


def test_a_flag_change_applies_to_the_next_batch_and_is_recorded(workspace, arrests):
    p = workspace / 'extra.csv'
    arrests.head(100).assign(source_system='crm').to_csv(p, index=False)
    r, out = ingest(workspace, p)
    assert r.returncode == 1 and ('extra_column', 'source_system') in findings(out)
    set_yaml(
        workspace / 'params/ingest.yaml',
        flags={'strict_schema': False, 'drift_blocking': False, 'auto_anonymise': True},
    )
    r, out = ingest(workspace, p)
    assert r.returncode == 0 and findings(out)[('extra_column', 'source_system')]['severity'] == 'low'
    (rec,) = datasets(workspace)
    assert 'source_system' not in rec['columns'] and rec['flags']['strict_schema'] is False
    changes = [e for e in audit.read(workspace / '.lifecycle/audit.log') if e['action'] == 'ingest.flags.change']
    assert len(changes) == 1 and changes[0]['details']['old']['strict_schema'] is True


def test_watch_takes_each_file_exactly_once_across_restarts(workspace, arrests):
    inbox = workspace / 'inbox'
    inbox.mkdir()
    for i, y in enumerate((1997, 1998, 1999)):
        arrests[arrests.year == y].to_csv(inbox / f'{i}-{y}.csv', index=False)

    def run() -> list[dict]:
        r = cli(workspace, 'ingest', '--watch', str(inbox), '--once', '--interval', '0.05', '--json')
        out = json.loads(r.stdout)  # (one document)
        assert r.returncode == 0 and out['ok'] and out['folder'] == str(inbox), r.stdout
        return out['batches']

    assert [o['status'] for o in run()] == ['accepted'] * 3
    assert run() == []  # nothing taken twice
    arrests[arrests.year == 2000].to_csv(inbox / '3-2000.tmp', index=False)  # being written: ignored
    assert run() == []
    (inbox / '3-2000.tmp').rename(inbox / '3-2000.csv')
    from lifecycle.watch import ledger_for
    from lifecycle.sources import file_sha256

    led = ledger_for(workspace / '.lifecycle', inbox)
    led.mark(f"3-2000.csv:{file_sha256(inbox / '3-2000.csv')}", '3-2000.csv', 'claimed')  # crashed after claiming
    assert [o['rows'] for o in run()] == [1270]  # processed on restart, once
    done = [e['name'] for e in led.entries() if e['state'] == 'done']
    assert sorted(done) == ['0-1997.csv', '1-1998.csv', '2-1999.csv', '3-2000.csv']
    r, st = cli_json(workspace, 'ingest', 'stats')
    assert st['batches'] == 4 and st['success_rate'] == 1.0 and st['rejected_share'] == 0.0
    with open(led.path, 'a') as f:  # a whole line that is JSON but no entry of the ledger: named, not a KeyError
        f.write('{"name": "x"}\n')
    r = cli(workspace, 'ingest', '--watch', str(inbox), '--once', '--interval', '0.05')
    assert r.returncode != 0 and f"{led.path}: line 10 is not an entry" in r.stderr, r.stderr
    assert "no 'file_id', 'state'" in r.stderr and 'Traceback' not in r.stderr, r.stderr


def test_stats_count_rejections(workspace, arrests):
    good, bad = workspace / 'g.csv', workspace / 'b.csv'
    arrests.head(100).to_csv(good, index=False)
    arrests.head(100).drop(columns=['sex']).to_csv(bad, index=False)
    for f in (good, bad, bad):
        ingest(workspace, f)
    r, st = cli_json(workspace, 'ingest', 'stats')
    assert (st['batches'], st['accepted'], st['rejected']) == (3, 1, 2) and abs(st['rejected_share'] - 2 / 3) < 1e-9
    assert st['schema_violations'] == 2 and all('latency_s' in e and 'null_rate' in e for e in st['log'])


def test_retention_purge_deletes_data_keeps_lineage_and_audits(workspace, arrests):
    set_yaml(workspace / 'params/ingest.yaml', retention_days=0)
    p = workspace / 'b.csv'
    arrests.head(100).to_csv(p, index=False)
    r, out = ingest(workspace, p)
    (rec,) = datasets(workspace)
    obj = workspace / '.lifecycle/store/objects' / rec['object'][:2] / rec['object']
    assert obj.is_file()
    r, dry = cli_json(workspace, 'store', 'purge', '--expired', '--dry-run')
    assert [e['version'] for e in dry['purged']] == [rec['version']] and obj.is_file()
    r, done = cli_json(workspace, 'store', 'purge', '--expired')
    assert r.returncode == 0 and [e['version'] for e in done['purged']] == [rec['version']]
    assert not obj.exists() and datasets(workspace)[0]['version'] == rec['version']  # lineage record kept
    r, again = cli_json(workspace, 'store', 'purge', '--expired')
    assert again['purged'] == []
    actions = [e['action'] for e in audit.read(workspace / '.lifecycle/audit.log')]
    assert actions.count('store.purge') == 1
    assert cli(workspace, 'audit', 'verify').returncode == 0
    from lifecycle.store import Store
    from lifecycle.ingest import load_snapshot, SnapshotPurged

    with pytest.raises(SnapshotPurged, match='purged'):
        load_snapshot(Store(workspace / '.lifecycle/store'), rec['version'])


def test_a_purged_drift_reference_is_refused_naming_the_key_not_a_traceback(workspace, arrests):
    """Review DM: a batch ingested against a drift reference whose data a purge had deleted (before its drift profile
    was taken) ended in a traceback at the drift check; it is refused before the batch is read, naming the key."""
    set_yaml(workspace / 'params/ingest.yaml', retention_days=0)
    p = workspace / 'b.csv'
    arrests.head(100).to_csv(p, index=False)
    ingest(workspace, p)
    (rec,) = datasets(workspace)
    assert cli(workspace, 'store', 'purge', '--expired').returncode == 0
    set_yaml(workspace / 'params/ingest.yaml', drift__reference=rec['version'])
    arrests.iloc[100:200].to_csv(p, index=False)
    r, out = ingest(workspace, p)
    assert r.returncode == 2 and 'Traceback' not in r.stderr, r.stderr
    assert 'drift.reference' in out['error'] and rec['version'] in out['error'] and 'purged' in out['error']
    assert len(datasets(workspace)) == 1


def test_drift_command_flags_a_shifted_column(workspace, arrests):
    ref, cur = workspace / 'ref.csv', workspace / 'cur.csv'
    arrests[arrests.year <= 2000].to_csv(ref, index=False)
    arrests[arrests.year > 2000].assign(age=lambda d: d.age + 15).to_csv(cur, index=False)
    r, out = cli_json(workspace, 'drift', '--reference', str(ref), '--current', str(cur))
    assert r.returncode == 0
    cols = {c['column']: c for c in out['columns']}
    assert cols['age']['drifted'] is True and set(cols) >= {'age', 'checks', 'sex', 'colour'}
    assert {'method', 'score', 'threshold', 'psi'} <= set(cols['age'])


def test_a_batch_is_checked_for_drift_against_a_named_reference_with_an_evidently_report(workspace, arrests):
    ref, cur = workspace / 'ref.csv', workspace / 'cur.csv'
    arrests[arrests.year <= 2000].to_csv(ref, index=False)
    arrests[arrests.year == 2001].assign(age=lambda d: d.age + 20).to_csv(cur, index=False)
    r, first = ingest(workspace, ref)
    set_yaml(workspace / 'params/ingest.yaml', drift={'reference': first['snapshot'], 'exclude': ['year']})
    r, out = ingest(workspace, cur)
    assert r.returncode == 0 and out['reference'] == first['snapshot']  # drift does not block by default
    f = findings(out)
    assert ('drift', 'age') in f and f[('drift', 'age')]['severity'] == 'medium' and not f[('drift', 'age')]['blocking']
    assert out['metrics']['drifted_columns'] == ['age'] and 0 < out['metrics']['drift_score'] < 1
    html = Path(out['report']).read_text()
    assert (
        Path(out['report']).parent == workspace / 'reports/ingest/arrests'
        and 'root_metric' in html
        and len(html) > 50_000
    )
    set_yaml(
        workspace / 'params/ingest.yaml', flags={'strict_schema': True, 'drift_blocking': True, 'auto_anonymise': True}
    )
    cur2 = workspace / 'cur2.csv'
    arrests[arrests.year == 2002].assign(age=lambda d: d.age + 20).to_csv(cur2, index=False)
    r, out = ingest(workspace, cur2)
    assert r.returncode == 1 and findings(out)[('drift', 'age')]['severity'] == 'critical'  # drift blocking switched on


def test_drift_between_stored_versions_refuses_the_params_of_another_dataset(workspace, arrests):
    """A stored version names its dataset: drift measured with the params of another dataset (the folder the last
    run used, say) would apply its exclusions to these columns; it is refused, naming both, and --params mends it."""
    import shutil

    versions = []
    for part in (arrests[arrests.year <= 2000], arrests[arrests.year == 2001]):
        part.to_csv(workspace / 'part.csv', index=False)
        r, out = ingest(workspace, workspace / 'part.csv', '--no-report')
        assert r.returncode == 0, r.stderr
        versions.append(out['snapshot'])
    shutil.copytree(workspace / 'params', workspace / 'params-customers')
    set_yaml(workspace / 'params-customers/ingest.yaml', dataset='customers')
    r = cli(workspace, 'drift', '--reference', versions[0], '--current', versions[1], '--params', 'params-customers')
    words = [f"{versions[0]}: a version of dataset 'arrests'", "describe 'customers'", "--params with the folder of"]
    assert r.returncode == 2 and all(w in ' '.join(r.stderr.split()) for w in words), r.stderr
    r, out = cli_json(workspace, 'drift', '--reference', versions[0], '--current', versions[1], '--params', 'params')
    assert r.returncode == 0 and out['columns'], r.stderr
    r = cli(workspace, 'drift', '--reference', versions[0], '--current', versions[1], '--params', 'params')
    n = out['summary']['columns']
    assert f"{out['summary']['drifted_columns']} of {n} columns drifted" in r.stdout and "{'columns'" not in r.stdout


def test_a_watch_taken_once_with_json_is_one_document_and_exits_as_its_first_failed_batch(workspace, arrests):
    inbox = workspace / 'inbox'
    inbox.mkdir()
    r = cli(workspace, 'ingest', '--watch', str(inbox), '--once', '--interval', '0.05', '--json')
    assert r.returncode == 0 and json.loads(r.stdout) == {'ok': True, 'folder': str(inbox), 'batches': []}
    arrests.head(50).to_csv(inbox / '0-good.csv', index=False)
    arrests.head(50).drop(columns=['sex']).to_csv(inbox / '1-bad.csv', index=False)  # a required column gone
    r = cli(workspace, 'ingest', '--watch', str(inbox), '--once', '--interval', '0.05', '--json')
    out = json.loads(r.stdout)
    assert r.returncode == 1 and out['ok'] is False
    assert [o['status'] for o in out['batches']] == ['accepted', 'rejected']
    said = f"{inbox / '1-bad.csv'}: batch rejected"  # (each failed batch says why, as the document does: review AX)
    assert 'error' not in out['batches'][0] and out['batches'][1]['error'].startswith(said), out
    assert out['error'].startswith(f"1 of 2 batch(es) from {inbox} failed: {said}"), out


def test_a_watch_stopped_by_an_error_still_reports_the_batches_it_took(workspace, arrests, monkeypatch):
    from lifecycle.core.store import StoreError
    from lifecycle.data import commands

    inbox = workspace / 'inbox'
    inbox.mkdir()
    for i in range(2):
        arrests.head(50).to_csv(inbox / f'{i}.csv', index=False)
    real, calls = commands._ingest_one, []

    def second_fails(*a, **k):
        calls.append(1)
        if len(calls) == 2:
            raise StoreError('the store is full')  # (as a full disk would stop the second)
        return real(*a, **k)

    monkeypatch.setattr(commands, '_ingest_one', second_fails)
    r = cli(workspace, 'ingest', '--watch', str(inbox), '--once', '--interval', '0.05', '--json')
    out = json.loads(r.stdout)
    assert r.returncode == 2 and out['ok'] is False and out['error'] == 'the store is full', r.stdout
    assert [o['status'] for o in out['batches']] == ['accepted']  # taken (and in the ledger): said, not lost
