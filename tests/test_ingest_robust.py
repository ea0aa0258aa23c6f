"""Inputs that used to end in a traceback end in a refusal naming the column and what was found: a word in a numeric
column, strings in a numeric Parquet column, a column that starts all null, a disk that fills up while a batch is
stored, a corrupted snapshot read by `lifecycle drift`, a column with no values at all. In-process, on small frames."""

from __future__ import annotations
import errno
import json
import os
from pathlib import Path
import numpy as np
import pandas as pd
import pytest
from lifecycle.core.cli_support import invoke
from lifecycle.core.params import IngestParams, ColumnRule
from lifecycle.core.store import Store
from lifecycle.core.workspace import Workspace
from lifecycle.data import ingest as ing, sources
from lifecycle.data.drift import compare, profile
from conftest import make_workspace, set_yaml

P = IngestParams(
    dataset='people',
    source='people.csv',
    target='label',
    max_duplicate_rate=1.0,
    columns={
        'label': ColumnRule(dtype='str', personal=False, allowed=['Yes', 'No']),
        'age': ColumnRule(dtype='int', personal=False, min=10, max=100),
        'note': ColumnRule(dtype='str', personal=False, required=False, max_null_rate=1.0),
    },
)


def frame(n: int = 3, start: int = 0, **cols) -> pd.DataFrame:
    df = pd.DataFrame(
        {
            'label': ['Yes', 'No', 'Yes'] * (n // 3) + ['Yes'] * (n % 3),
            'age': [20 + (start + i) % 50 for i in range(n)],
            'note': [f'n{start + i}' for i in range(n)],
        }
    )
    return df.assign(**cols)


@pytest.fixture
def ws(tmp_path, monkeypatch):
    monkeypatch.setenv('LIFECYCLE_KEYS_DIR', str(tmp_path / 'keys'))
    (tmp_path / 'settings.ini').write_text('[workspace]\n')
    return Workspace.open(tmp_path)


def stored(ws) -> dict:
    "Every file under the store's objects, records and tmp folders, and the ingest log's lines."
    root = ws.store_dir
    files = sorted(str(p.relative_to(root)) for d in ('objects', 'records', 'tmp') for p in (root / d).rglob('*'))
    return dict(files=[f for f in files if not (root / f).is_dir()], log=len(ing.read_log(ws)))


def findings(r) -> dict:
    return {(f.rule, f.column): f for f in r.violations.itertuples()}


def test_a_word_in_a_numeric_csv_column_is_a_type_refusal_naming_the_column_and_no_range_finding(ws, tmp_path):
    src = tmp_path / 'people.csv'
    frame(3).astype({'age': object}).assign(age=['30', 'twenty', '41']).to_csv(src, index=False)
    with pytest.raises(ing.BatchRejected) as e:
        ing.ingest_batch(sources.read_chunks(str(src)), P, ws, source=str(src), fingerprint='fp')
    f = findings(e.value.result)
    assert list(f) == [('dtype', 'age')]  # not also an out_of_range finding counting 0 rows
    assert 'string values' in f[('dtype', 'age')].found and 'twenty' not in str(e.value)
    assert '1 of 3 value(s) in the first such chunk are not numbers' in f[('dtype', 'age')].message


def test_the_count_of_values_that_are_no_numbers_reads_them_with_the_csv_number_marks(ws, tmp_path):
    """Review Y: with a decimal comma, a float column holding one word was refused saying all its values were no
    numbers (pandas reads none of `2,5`); and `1.150`, which the marks do not write, was counted a number."""
    from lifecycle.core.params import CsvDialect

    p = P.model_copy(update={'csv': CsvDialect(delimiter=';', decimal=','), 'columns': {
        **P.columns, 'age': ColumnRule(dtype='float', personal=False, min=10, max=100)}})  # fmt: skip
    src = tmp_path / 'people.csv'
    for ages, said in ((['30,5', 'twenty', '41'], '1 of 3'), (['30,5', '1.150', '41'], '1 of 3')):
        frame(3).astype({'age': object}).assign(age=ages).to_csv(src, index=False, sep=';')
        with pytest.raises(ing.BatchRejected) as e:
            ing.ingest_batch(sources.read_chunks(str(src), dialect=p.csv, declared=p.columns), p, ws, source=str(src),
                             fingerprint=f'fp{said}{ages[1]}')  # fmt: skip
        f = findings(e.value.result)
        assert list(f) == [('dtype', 'age')] and ages[1] not in str(e.value), ages
        assert f"{said} value(s) in the first such chunk are not numbers written with csv's decimal ','" in (
            f[('dtype', 'age')].message
        ), f[('dtype', 'age')].message


def test_an_e_mail_address_in_a_date_column_is_personal_data_and_dates_written_otherwise_are_dates(ws, tmp_path):
    """Review AA: a `kind: date` column passed the personal-data detector (a date reads as personal), and a name and
    an e-mail address typed into one were stored, and listed in its drift profile. Its values with words are read by
    the detector now; dates written in words (review AC: a check that every value was a date refused these) are not."""
    p = P.model_copy(update={'columns': {**P.columns, 'signup': ColumnRule(dtype='str', personal=False, kind='date')}})
    src = tmp_path / 'people.csv'
    frame(6, signup=['Ann Roe', 'Zorblatina Xyloquist', 'Bob Stone', 'ask zqx@plantedmail.test', 'x', 'y']).to_csv(
        src, index=False
    )  # (review AF: the names made the detector answer 'personal name', and the e-mail address was not looked for)
    with pytest.raises(ing.BatchRejected) as e:
        ing.ingest_batch(sources.read_chunks(str(src)), p, ws, source=str(src), fingerprint='fp-dates')
    f = findings(e.value.result)
    assert list(f) == [('personal_data', 'signup')] and 'e-mail address' in f[('personal_data', 'signup')].found
    assert 'Xyloquist' not in str(e.value) and 'plantedmail' not in str(e.value)
    go = '2024-01-05 14:03:22 +0100 CET m=+12.345678901'  # (review AE: placeholders, Go's, read as names, a phone)
    for i, written in enumerate((
        ['01. Januar 2025', '2025-01-01T00:00+01:00[Europe/Berlin]', 'Jan 26 2024 06:22AM', '20240131', 'Q1 2024',
         'unknown'],
        ['2024-01-31'] * 4 + ['Not Known', 'Not Applicable', 'To Be Confirmed'] + [go] * 3,
    )):  # fmt: skip
        frame(len(written), signup=written).to_csv(src, index=False)
        res = ing.ingest_batch(sources.read_chunks(str(src)), p, ws, source=str(src), fingerprint=f'fp-dates-{i}')
        assert res.status == 'accepted', res.reason


def test_strings_in_a_numeric_parquet_column_are_refused_and_the_drift_report_still_works(
    tmp_path, monkeypatch, arrests
):
    w = make_workspace(tmp_path / 'ws')
    env = {'LIFECYCLE_WORKSPACE': str(w), 'LIFECYCLE_KEYS_DIR': str(tmp_path / 'keys')}
    monkeypatch.chdir(w)
    arrests.head(60).to_csv(w / 'ref.csv', index=False)
    r = invoke(cmds().ingest, ['ref.csv', '--dataset', 'arrests', '--json', '--no-report'], env=env)
    ref = json.loads(r.stdout)['snapshot']
    set_yaml(w / 'params' / 'ingest.yaml', drift__reference=ref)
    arrests.iloc[60:120].astype({'age': str, 'checks': str}).to_parquet(w / 'b.parquet')
    r = invoke(cmds().ingest, ['b.parquet', '--dataset', 'arrests', '--json'], env=env)
    assert r.exception is None or isinstance(r.exception, SystemExit), r.exception
    out = json.loads(r.stdout)
    assert r.exit_code == 1 and out['status'] == 'rejected'
    rules = {(f['rule'], f['column']) for f in out['findings']}
    assert {('dtype', 'age'), ('dtype', 'checks')} <= rules and not any(rule == 'out_of_range' for rule, _ in rules)
    assert out['report'] and Path(out['report']).is_file()  # Evidently charts the columns that could be read
    page = Path(out['report'])  # Evidently's 3.5 MB of scripts are linked from one shared copy, not embedded
    shared = sorted((page.parent.parent / '_evidently').glob('evidently-*.js'))
    assert (
        page.stat().st_size < 1_000_000 and len(shared) == 1 and f'../_evidently/{shared[0].name}' in page.read_text()
    )


def test_a_drift_report_that_cannot_be_written_leaves_the_stored_batch_accepted_and_says_so(
    tmp_path, monkeypatch, arrests
):
    """Review AB: a report folder that could not be written ended `ingest` with exit 1 and no batch ID, after the
    batch was stored and logged accepted; each retry stored another."""
    w = make_workspace(tmp_path / 'ws')
    env = {'LIFECYCLE_WORKSPACE': str(w), 'LIFECYCLE_KEYS_DIR': str(tmp_path / 'keys')}
    monkeypatch.chdir(w)
    arrests.head(60).to_csv(w / 'ref.csv', index=False)
    r = invoke(cmds().ingest, ['ref.csv', '--dataset', 'arrests', '--json', '--no-report'], env=env)
    set_yaml(w / 'params' / 'ingest.yaml', drift__reference=json.loads(r.stdout)['snapshot'])
    arrests.iloc[60:120].to_csv(w / 'b.csv', index=False)
    (w / 'reports').mkdir(exist_ok=True)
    (w / 'reports' / 'ingest').write_text('a file where the reports folder goes')
    r = invoke(cmds().ingest, ['b.csv', '--dataset', 'arrests', '--json'], env=env)
    out = json.loads(r.stdout)
    assert r.exit_code == 0 and out['status'] == 'accepted' and out['batch_id'] and out['report'] is None, out
    said = out['report_error']
    assert said.startswith('its drift report was not written')
    assert f"{w / 'reports' / 'ingest'}: expected a folder (to hold " in said and 'found a file; move it aside' in said
    assert [e['status'] for e in ing.read_log(Workspace.open(w))] == ['accepted', 'accepted']


def test_a_watched_folder_named_with_an_e_mail_address_is_said_without_its_name(tmp_path, monkeypatch, arrests):
    """`ingest --watch DIR` named its folder whole in its refusals (not found, given with a SOURCE) and its summary
    (`folder` under --json, the line on stderr), an e-mail address in its name with them, where its batches' sources
    withhold it (`sources.shown_source`): the folder is named as they are."""
    w = make_workspace(tmp_path / 'ws')
    env = {'LIFECYCLE_WORKSPACE': str(w), 'LIFECYCLE_KEYS_DIR': str(tmp_path / 'keys')}
    monkeypatch.chdir(w)
    folder = 'inbox-ann.roe@mail.test'
    said = []
    for args in ([], ['--json']):
        r = invoke(cmds().ingest, ['--watch', folder, '--once', *args], env=env)
        assert r.exit_code == 2 and 'watched folder not found' in r.output, r.output
        said.append(r.output)
        r = invoke(cmds().ingest, ['x.csv', '--watch', folder, '--once', *args], env=env)
        assert r.exit_code == 2 and 'not both' in r.output, r.output
        said.append(r.output)
    (w / folder).mkdir()
    for args in ([], ['--json']):
        r = invoke(cmds().ingest, ['--watch', folder, '--once', *args], env=env)
        assert r.exit_code == 0 and ('batch(es) processed' in r.output or '"folder"' in r.output), r.output
        said.append(r.output)
    for s in said:
        assert 'roe@' not in s and 'withheld' in s, s


def test_a_batch_file_named_with_an_e_mail_address_is_logged_without_its_name(tmp_path, monkeypatch, arrests):
    "Review AA: `ingest` and `ingest stats` kept and printed a batch's file name whole, an e-mail address in it."
    w = make_workspace(tmp_path / 'ws')
    env = {'LIFECYCLE_WORKSPACE': str(w), 'LIFECYCLE_KEYS_DIR': str(tmp_path / 'keys')}
    monkeypatch.chdir(w)
    named = 'export_ann.roe@mail.test.csv'
    arrests.head(60).to_csv(w / named, index=False)
    r = invoke(cmds().ingest, [named, '--dataset', 'arrests', '--json', '--no-report'], env=env)
    out = json.loads(r.stdout)
    assert r.exit_code == 0 and out['source'] == '<file name withheld: it holds personal data>', out
    (w / 'inbox').mkdir()  # review AE: a phone number (its extension kept it), an error's text, the watch ledger
    arrests.iloc[60:120].to_csv(w / 'inbox' / 'tel_+4915123456789.csv', index=False)
    arrests.iloc[60:120].to_csv(w / 'inbox' / 'tel_+4915123456780.csv', index=False)  # (review AF: one id for both)
    (w / 'inbox' / 'export_ann.roe@mail.test.csv').write_bytes('age\n1\n'.encode('utf-16'))
    for args in (['--watch', 'inbox', '--once', '--interval', '0.05'], ['gone_ann.roe@mail.test.csv']):
        r = invoke(cmds().ingest, [*args, '--dataset', 'arrests', '--json', '--no-report'], env=env)
        assert 'ann.roe' not in r.stdout + r.stderr and '151234' not in r.stdout + r.stderr, r.stdout
    kept = ''.join(p.read_text() for p in (w / '.lifecycle').rglob('*.jsonl'))
    assert 'ann.roe' not in kept and '151234' not in kept and 'withheld' in kept
    assert 'name-hmac:' in kept and 'name-sha256:' not in kept  # (keyed with the workspace's salt)
    assert len([e for e in ing.read_log(Workspace.open(w)) if e['status'] == 'accepted']) == 3  # (both phones' files)
    assert sources.shown_source('home/bob@corp.example.com/data.csv') == (
        'home/<folder name withheld: it holds personal data>/data.csv')  # (review AF)  # fmt: skip
    r = invoke(cmds().ingest, ['stats', '--dataset', 'arrests', '--json'], env=env)
    assert 'ann.roe' not in r.stdout and '151234' not in r.stdout


def cmds():
    from lifecycle.data import commands

    return commands


def test_a_column_all_null_in_the_first_chunk_and_filled_later_is_stored(ws):
    chunks = [frame(3, note=None), frame(3, 3)]  # the first chunk's `note` has no type Arrow can infer
    r = ing.ingest_batch(chunks, P, ws, source='b.csv', fingerprint='fp')
    assert r.status == 'accepted' and r.accepted_rows == 6
    df = ing.load_snapshot(ws.store, r.snapshot['version'])
    assert df.note.isna().sum() == 3 and df.note.dropna().tolist() == ['n3', 'n4', 'n5']
    assert r.snapshot['columns']['note'] == 'string'


def test_a_column_all_null_in_every_chunk_is_stored_with_its_contract_type(ws):
    r = ing.ingest_batch([frame(3, note=None)], P, ws, source='b.csv', fingerprint='fp')
    assert r.status == 'accepted' and r.snapshot['columns']['note'] == 'string'


def full(*a, **k):
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


@pytest.mark.parametrize('where', ['chunk', 'close', 'object', 'record', 'log'])
def test_a_full_disk_while_storing_is_a_refusal_and_leaves_nothing_behind(ws, monkeypatch, where):
    import pyarrow.parquet as pq
    from lifecycle.core import store as store_mod

    first = ing.ingest_batch([frame(3)], P, ws, source='a.csv', fingerprint='a')
    before = stored(ws)
    target = {
        'chunk': (pq.ParquetWriter, 'write_table'),
        'close': (pq.ParquetWriter, 'close'),
        'object': (os, 'replace'),
        'record': (store_mod, 'atomic_write'),
        'log': (ing, 'write_line'),
    }[where]
    monkeypatch.setattr(*target, full)
    with pytest.raises(ing.IngestError) as e:
        ing.ingest_batch([frame(3, 10), frame(3, 20)], P, ws, source='b.csv', fingerprint='b')
    monkeypatch.undo()
    assert str(e.value).startswith('b.csv: ') and 'No space left on device' in str(e.value)
    assert 'nothing of the batch was kept' in str(e.value)
    assert stored(ws) == before  # no object, record, temporary file or log line of the failed batch
    assert ing.load_snapshot(ws.store, first.snapshot['version']).shape == (3, 3)
    again = ing.ingest_batch([frame(3, 10), frame(3, 20)], P, ws, source='b.csv', fingerprint='b')
    assert again.status == 'accepted' and ing.load_snapshot(ws.store, again.snapshot['version']).shape == (6, 3)


def test_a_full_disk_is_reported_by_the_ingest_command_with_its_exit_code(tmp_path, monkeypatch, arrests):
    import pyarrow.parquet as pq

    w = make_workspace(tmp_path / 'ws')
    arrests.head(30).to_csv(w / 'b.csv', index=False)
    monkeypatch.setattr(pq.ParquetWriter, 'write_table', full)
    monkeypatch.chdir(w)
    env = {'LIFECYCLE_WORKSPACE': str(w), 'LIFECYCLE_KEYS_DIR': str(tmp_path / 'keys')}
    r = invoke(cmds().ingest, ['b.csv', '--dataset', 'arrests', '--no-report'], env=env)
    assert isinstance(r.exception, SystemExit) and r.exit_code == 1
    assert 'not stored' in r.stderr and 'No space left on device' in r.stderr


def test_a_corrupted_snapshot_read_by_drift_is_named_not_a_traceback(tmp_path, monkeypatch, arrests):
    w = make_workspace(tmp_path / 'ws')
    env = {'LIFECYCLE_WORKSPACE': str(w), 'LIFECYCLE_KEYS_DIR': str(tmp_path / 'keys')}
    monkeypatch.setenv('LIFECYCLE_KEYS_DIR', env['LIFECYCLE_KEYS_DIR'])  # for the store read here
    monkeypatch.chdir(w)
    arrests.head(40).to_csv(w / 'a.csv', index=False)
    arrests.iloc[40:80].to_csv(w / 'b.csv', index=False)
    a = json.loads(invoke(cmds().ingest, ['a.csv', '--dataset', 'arrests', '--json', '--no-report'], env=env).stdout)
    b = json.loads(invoke(cmds().ingest, ['b.csv', '--dataset', 'arrests', '--json', '--no-report'], env=env).stdout)
    s = Store(w / '.lifecycle' / 'store')
    obj = s.object_path(s.get_record('datasets', b['snapshot'])['object'])
    obj.chmod(0o644)
    obj.write_bytes(obj.read_bytes()[:-10])
    r = invoke(cmds().drift, ['--reference', a['snapshot'], '--current', b['snapshot']], env=env)
    assert isinstance(r.exception, SystemExit) and r.exit_code == 4, r.exception
    assert 'corrupted' in r.stderr and obj.name in r.stderr
    s.record_path('datasets', a['snapshot']).write_text('{"version": ')  # a damaged record
    r = invoke(cmds().drift, ['--reference', a['snapshot'], '--current', 'a.csv'], env=env)
    assert r.exit_code == 4 and 'not valid JSON' in r.stderr and a['snapshot'] in r.stderr


def test_an_all_null_column_is_a_drift_finding():
    ref = pd.DataFrame({'x': np.arange(50.0), 'c': ['a', 'b'] * 25})
    res = compare(profile(ref), ref.assign(x=np.nan, c=None)).set_index('column')
    assert res.drifted.all() and (res.method == 'all_null').all() and res.score.isna().all()
    res = compare(profile(ref.assign(x=np.nan)), ref).set_index('column')  # no values in the reference
    assert res.loc['x', 'drifted'] and res.loc['x', 'method'] == 'all_null' and not res.loc['c', 'drifted']
    both = compare(profile(ref.assign(x=np.nan)), ref.assign(x=np.nan)).set_index('column')
    assert not both.loc['x', 'drifted']


def test_an_all_null_column_in_a_batch_is_a_drift_finding_under_watch(tmp_path, monkeypatch, arrests):
    w = make_workspace(tmp_path / 'ws')
    env = {'LIFECYCLE_WORKSPACE': str(w), 'LIFECYCLE_KEYS_DIR': str(tmp_path / 'keys')}
    monkeypatch.chdir(w)
    arrests.head(60).to_csv(w / 'ref.csv', index=False)
    ref = json.loads(
        invoke(cmds().ingest, ['ref.csv', '--dataset', 'arrests', '--json', '--no-report'], env=env).stdout
    )
    set_yaml(w / 'params' / 'ingest.yaml', drift__reference=ref['snapshot'])
    set_yaml(w / 'params' / 'ingest.yaml', columns__employed={'dtype': 'str', 'personal': False, 'max_null_rate': 1.0})
    (w / 'in').mkdir()
    arrests.iloc[60:120].assign(employed=None).to_csv(w / 'in' / 'b.csv', index=False)
    r = invoke(cmds().ingest, ['--watch', 'in', '--once', '--interval', '0.05', '--json'], env=env)
    assert r.exit_code == 0, (r.exception, r.stderr)
    (out,) = json.loads(r.stdout)['batches']
    drift = {f['column']: f for f in out['findings'] if f['rule'] == 'drift'}
    assert out['status'] == 'accepted' and drift['employed']['found'].startswith('no values')
    assert out['report'] and Path(out['report']).is_file()


def test_a_word_in_a_numeric_column_read_by_drift_is_refused_naming_the_column_not_the_value(
    tmp_path, monkeypatch, arrests
):
    w = make_workspace(tmp_path / 'ws')
    env = {'LIFECYCLE_WORKSPACE': str(w), 'LIFECYCLE_KEYS_DIR': str(tmp_path / 'keys')}
    monkeypatch.chdir(w)
    arrests.head(40).to_csv(w / 'a.csv', index=False)
    arrests.iloc[40:80].astype({'age': object}).assign(age=['twenty'] + [30] * 39).to_csv(w / 'b.csv', index=False)
    r = invoke(cmds().drift, ['--reference', 'a.csv', '--current', 'b.csv'], env=env)
    assert isinstance(r.exception, SystemExit) and r.exit_code == 2
    assert "column 'age'" in r.stderr and '1 non-numeric value(s)' in r.stderr and 'twenty' not in r.stderr


@pytest.mark.parametrize(
    'args, says',
    [
        (['--watch', 'inbox', '--interval', '-1'], '--interval: expected a number of seconds above 0 and at most'),
        (['--watch', 'inbox', '--interval', '0'], '--interval: expected a number of seconds above 0 and at most'),
        (['--watch', 'inbox', '--interval', '1e300'], 'at most 3.16224e+07 (a year), found 1e+300'),  # (overflowed)
        (['--watch', 'inbox', '--max-batches', '0'], '--max-batches: expected at least 1, found 0'),
        (['a.csv', '--watch', 'inbox', '--dataset', 'arrests'], 'give SOURCE (a.csv) or --watch DIR (inbox), not both'),
        (['--watch', 'inbox', '--query', 'SELECT 1'], "--query: a watched folder's files are read whole"),
        (['a.csv', '--query', 'SELECT 1', '--dataset', 'arrests'], '--query: for a database URL; a.csv is a file'),
        (['a.csv', '--once', '--dataset', 'arrests'], '--once: only with --watch DIR'),
    ],
)
def test_watch_options_that_contradict_or_hold_no_sane_value_are_refused_before_anything_is_read(workspace, args, says):
    "A negative interval was a traceback, 0 a busy loop, 0 batches a watch for ever; a source or query was ignored."
    from conftest import cli

    (workspace / 'inbox').mkdir()
    r = cli(workspace, 'ingest', *args)
    assert r.returncode == 2 and says in ' '.join(r.stderr.split()) and 'Traceback' not in r.stderr, r.stderr


def test_infinite_numbers_are_refused_by_the_contract_and_by_init_naming_the_column(ws, tmp_path):
    "Found by review: +-inf passed a float column with no range (or init's infinite bounds); training then failed."
    from lifecycle.data.infer import propose_params

    spend = ColumnRule(dtype='float', personal=False, max_null_rate=0.5)
    p = P.model_copy(update={'columns': {**P.columns, 'spend': spend}})
    src = tmp_path / 'people.csv'
    frame(6, spend=[1.5, np.inf, 2.0, -np.inf, 3.0, np.nan]).to_csv(src, index=False)
    with pytest.raises(ing.BatchRejected) as e:
        ing.ingest_batch(sources.read_chunks(str(src)), p, ws, source=str(src), fingerprint='fp')
    f = findings(e.value.result)
    assert list(f) == [('out_of_range', 'spend')] and f[('out_of_range', 'spend')].count == 2
    assert 'expected a finite number, found 2 distinct value(s)' in f[('out_of_range', 'spend')].message
    frame(6, spend=[1.5, 2.5, 2.0, 0.5, 3.0, np.nan]).to_csv(src, index=False)  # finite, and a blank: accepted
    assert ing.ingest_batch(sources.read_chunks(str(src)), p, ws, source=str(src), fingerprint='fp2').status
    df = frame(60, spend=[np.inf] + [1.0] * 59)
    with pytest.raises(ValueError, match=r"column 'spend' holds 1 infinite value\(s\): a contract takes finite"):
        propose_params(df, target='label', source='people.csv')


def test_category_columns_are_read_as_written_codes_with_zeros_and_na_as_a_category(ws, tmp_path):
    "Found by review: `010` was read as 10 and North America's `NA` as missing, so their own contract refused them."
    cols = {
        **P.columns,
        'region': ColumnRule(dtype='str', personal=False, allowed=['EU', 'NA', 'APAC'], max_null_rate=0.5),
        'code': ColumnRule(dtype='str', personal=False, allowed=['010', '020', '030']),
        'spend': ColumnRule(dtype='float', personal=False, max_null_rate=0.5),
        'ref': ColumnRule(dtype='str', personal=False),  # text with no categories: read as written too
    }
    p = P.model_copy(update={'columns': cols})
    src = tmp_path / 'people.csv'
    df = frame(6)
    df['region'], df['code'], df['spend'], df['ref'] = (
        ['EU', 'NA', 'APAC', 'NA', '', 'EU'],
        '010',
        ['1.5', 'NA', '2', '', '3', '4'],
        ['012', '034', '1.50', '7', '09', '12'],
    )
    df.to_csv(src, index=False)
    r = ing.ingest_batch(sources.read_chunks(str(src), declared=p.columns), p, ws, source=str(src), fingerprint='fp')
    assert r.status == 'accepted', r.violations
    got = ing.load_snapshot(ws.store, r.snapshot['version'])
    assert got.region.tolist()[:4] == ['EU', 'NA', 'APAC', 'NA'] and got.region.isna().tolist()[4]
    assert set(got.code) == {'010'} and got.spend.isna().tolist() == [False, True, False, True, False, False]
    assert got.ref.tolist() == ['012', '034', '1.50', '7', '09', '12']  # (pandas: 12.0, 34.0, 1.5, ...)


def test_category_columns_are_read_by_position_whatever_the_header_padding_or_byte_order_mark(tmp_path):
    "Found by review: names parsed with a BOM or trimmed missed pandas' labels, so a float column read as text."
    from lifecycle.serve.batch import _chunks

    rules = {
        'region': ColumnRule(dtype='str', personal=False, allowed=['EU', 'NA']),
        'spend': ColumnRule(dtype='float', personal=False),
    }
    for name, text, kw in (
        ('bom.csv', 'region,spend\nEU,1.5\nNA,\n', {'encoding': 'utf-8-sig'}),
        ('pad.csv', 'region ,spend \nEU,1.5\nNA,\n', {}),
    ):
        (tmp_path / name).write_text(text, **kw)
        got = next(sources.read_chunks(str(tmp_path / name), declared=rules))
        assert got.iloc[:, 0].tolist() == ['EU', 'NA'] and got.iloc[:, 1].isna().tolist() == [False, True], name
        assert got.iloc[:, 1].dtype == 'float64', name
    scored = next(_chunks(tmp_path / 'bom.csv', 10, ['spend'], declared=rules))  # `score`, its inputs or not
    assert scored.region.tolist() == ['EU', 'NA']
    (tmp_path / 'r.csv').write_text('region,spend\n1,EU,1.5\n2,NA,\n')  # (R's write.table: one more field a row)
    got = next(sources.read_chunks(str(tmp_path / 'r.csv'), declared=rules))
    assert got.region.tolist() == ['EU', 'NA'] and got.spend.isna().tolist() == [False, True]
    (tmp_path / 'two.csv').write_text('region,region \nEU,x\nNA,y\n')  # (the exact name is the column)
    assert next(sources.read_chunks(str(tmp_path / 'two.csv'), declared=rules)).region.tolist() == ['EU', 'NA']


def test_a_date_split_judges_the_order_of_its_dates_once_over_the_whole_source(ws, tmp_path):
    "Found by review: each chunk judged day-first by itself, so chunks whose days were all 12 or less read month first."
    from lifecycle.data.stages import date_order, later_values, split_plan

    days = pd.date_range('2024-01-01', '2024-12-31', freq='D')
    df = pd.DataFrame({'label': ['Yes', 'No'] * (len(days) // 2) + ['Yes'] * (len(days) % 2), 'age': 30})
    df['signup'] = days.strftime('%d/%m/%Y')
    df.to_csv(tmp_path / 'people.csv', index=False)
    cols = {**P.columns, 'signup': ColumnRule(dtype='str', personal=False, kind='date')}
    p = P.model_copy(
        update=dict(
            source=str(tmp_path / 'people.csv'), columns=cols, split_column='signup', train_until='2024-06-30',
            chunk_rows=7,
        )
    )  # fmt: skip
    assert date_order(ws, p) is True  # (a chunk of 1-7 January alone says nothing)
    assert later_values(ws, p, True) == [f'2024-{m:02d}' for m in range(7, 13)]
    df.loc[[3, 200], 'signup'] = ['cnry-Zebulon', '']  # (review AW: in no batch, dropped unsaid)
    df.to_csv(tmp_path / 'people.csv', index=False)
    assert split_plan(ws, p, True) == ([f'2024-{m:02d}' for m in range(7, 13)], 2)
    from lifecycle.data.stages import batch_key, in_training

    years = pd.Series([1999, 'cnry-x', 2001, None], dtype=object)  # (a year column a cell of text made text)
    assert in_training(years, 2000).tolist() == [True, False, False, False]
    assert batch_key(years, 2000).tolist() == [1999, pd.NA, 2001, pd.NA]  # (2001, not 2001.0: review BB)


def test_a_personal_text_column_is_read_as_before_so_its_pseudonyms_stay_the_earlier_snapshots():
    "Found by review: reading every text column as written changed the pseudonym of `01234` (hashed as 1234.0 before)."
    from lifecycle.core.params import PiiRule

    rules = {
        'ref': ColumnRule(dtype='str', personal=False),
        'customer': ColumnRule(dtype='str', personal=True, pii=PiiRule(method='pseudonymise')),
    }
    assert sources._as_declared(['ref', 'customer'], rules) == {'dtype': {'ref': str}}


def test_a_file_removed_from_a_watched_folder_while_an_earlier_batch_is_taken_is_passed_over(tmp_path):
    """Another consumer moving a file away while the batch before it was taken ended the whole watch in
    `[Errno 2] No such file or directory` (exit 2), the batches it had taken unreported (review EA)."""
    from lifecycle.data.watch import Ledger, watch

    inbox = tmp_path / 'inbox'
    inbox.mkdir()
    for i in range(3):
        (inbox / f'{i}.csv').write_text(f'x\n{i}\n')
        os.utime(inbox / f'{i}.csv', ns=(i * 10**9, i * 10**9))  # (taken in this order)

    def take(path):
        (inbox / '1.csv').unlink(missing_ok=True)  # (moved away meanwhile)
        return {'status': path.name}

    (inbox / 'loop.csv').symlink_to('loop.csv')  # (no file at all: passed over, as before)
    led = Ledger(tmp_path / 'ledger.jsonl')
    assert watch(inbox, led, take, once=True, interval=0) == [{'status': '0.csv'}, {'status': '2.csv'}]
    assert [e['name'] for e in led.entries() if e['state'] == 'done'] == ['0.csv', '2.csv']


def test_a_watched_folder_that_cannot_be_read_is_said_not_taken_for_an_empty_one(tmp_path, monkeypatch):
    """`glob` lists a folder it may not read, or one removed while watched, as empty: `--once` said 0 batches, ok, and
    a watch went on silent for good (review EA). Now refused naming the folder and the reason (exit 4); a watch that
    loses its folder says so once and looks again."""
    import shutil
    from lifecycle.data import watch as w
    from lifecycle.data.sources import SourceError

    inbox, led = tmp_path / 'inbox', w.Ledger(tmp_path / 'ledger.jsonl')
    inbox.mkdir()
    real = os.scandir

    def denied(path='.'):
        if Path(path) == inbox:
            raise PermissionError(errno.EACCES, 'Permission denied', str(path))
        return real(path)

    monkeypatch.setattr(w.os, 'scandir', denied)
    with pytest.raises(SourceError, match=f'^{inbox}: the watched folder cannot be read: Permission denied$'):
        w.watch(inbox, led, lambda p: {}, once=True)
    monkeypatch.setattr(w.os, 'scandir', real)
    looks, said = [], []

    def idle():
        looks.append(1)
        if len(looks) == 1:
            shutil.rmtree(inbox)  # (removed while watched)
        elif len(looks) == 3:
            inbox.mkdir()
            (inbox / 'a.csv').write_text('x\n1\n')

    outs = w.watch(
        inbox, led, lambda p: {'status': p.name}, interval=0.01, max_batches=1, on_idle=idle, on_missed=said.append
    )
    assert outs == [{'status': 'a.csv'}] and said == [
        f'{inbox}: the watched folder cannot be read: No such file or directory'
    ]


@pytest.mark.parametrize(
    'query, says',
    [
        ('drop table people', 'found a DROP statement'),
        ('/* x */ create table t2 as select * from people', 'found a CREATE statement'),
        ("select * from people; drop table people", "found more than one statement (a ';')"),
        ('ann.roe@mail.test', 'found a statement that is no SELECT'),
        ('with p as (select 1) delete from people returning *', 'found a DELETE in it'),  # (review EC: WITH let by)
        ('with p as (select 1) insert into people select * from people', 'found an INSERT in it'),
        ('select * into people2 from people', 'found an INTO in it'),
        ("select * from people /*!50000 into outfile '/tmp/p.csv' */", 'found an INTO in it'),  # (MySQL runs it)
        ("select '\\'' into outfile '/tmp/p.csv' -- '", 'found an INTO in it'),  # (MySQL: a quote, then INTO; ED)
        ("select e'\\''; drop table people; -- '", "found more than one statement (a ';')"),  # (PostgreSQL's E'..')
    ],
)
def test_a_query_that_is_no_select_is_refused_before_it_runs_and_changes_nothing(tmp_path, monkeypatch, query, says):
    """`--query 'drop table people'` dropped the table (SQLite, as MySQL, does not roll its DDL back) and said 'query
    failed: This result object does not return rows', exit 4 (review EA). Now refused before it runs, exit 2."""
    import sqlite3

    w = make_workspace(tmp_path / 'ws')
    env = {'LIFECYCLE_WORKSPACE': str(w), 'LIFECYCLE_KEYS_DIR': str(tmp_path / 'keys')}
    monkeypatch.chdir(w)
    with sqlite3.connect(w / 'b.db') as con:
        con.execute('create table people (email text, age int)')
        con.execute("insert into people values ('ann.roe@mail.test', 30)")
    r = invoke(cmds().ingest, ['sqlite:///b.db', '--query', query, '--dataset', 'arrests', '--json'], env=env)
    out = json.loads(r.stdout)
    assert r.exit_code == 2 and out['error'].startswith('sqlite:///b.db: the query cannot be used as written: '), out
    assert says in out['error'] and 'nothing was run' in out['error'] and 'ann.roe' not in r.stdout + r.stderr
    with sqlite3.connect(w / 'b.db') as con:
        assert con.execute('select name from sqlite_master').fetchall() == [('people',)]
        assert con.execute('select count(*) from people').fetchone() == (1,)
    ok = ['sqlite:///b.db', '--query', "-- the batch\nselect ';' as note from people;", '--dataset', 'arrests']
    r = invoke(cmds().ingest, [*ok, '--json'], env=env)
    assert json.loads(r.stdout)['status'] == 'rejected'  # (run: a SELECT, its `;` quoted or at its end)


def test_a_database_url_without_a_query_is_a_refusal_exit_2_and_its_status_says_refused(tmp_path, monkeypatch):
    """Review HH: `ingest sqlite:///b.db --dataset arrests` (no --query) was 'unreadable', exit 4, as if the database
    could not be read, and a DELETE refused before it ran said status 'unreadable' beside exit 2. Both are refusals."""
    import sqlite3

    w = make_workspace(tmp_path / 'ws')
    env = {'LIFECYCLE_WORKSPACE': str(w), 'LIFECYCLE_KEYS_DIR': str(tmp_path / 'keys')}
    monkeypatch.chdir(w)
    with sqlite3.connect(w / 'b.db') as con:
        con.execute('create table people (age int)')
    for extra in ([], ['--query', 'delete from people']):
        r = invoke(cmds().ingest, ['sqlite:///b.db', *extra, '--dataset', 'arrests', '--json'], env=env)
        out = json.loads(r.stdout)
        assert (r.exit_code, out['exit'], out['status']) == (2, 2, 'refused'), out
        assert out['error'].startswith('sqlite:///b.db: the query cannot be used as written: expected '), out
    assert (
        'found none; nothing was run'
        in json.loads(invoke(cmds().ingest, ['sqlite:///b.db', '--dataset', 'arrests', '--json'], env=env).stdout)[
            'error'
        ]
    )


def test_the_lock_file_excel_leaves_beside_a_file_in_a_watched_folder_is_no_batch(tmp_path):
    "Opening `b.csv` on a share left `~$b.csv`, taken as a batch and refused as unreadable, exit 4 (review EA)."
    from lifecycle.data.watch import Ledger, watch

    inbox = tmp_path / 'inbox'
    inbox.mkdir()
    (inbox / 'b.csv').write_text('x\n1\n')
    (inbox / '~$b.csv').write_bytes(b'\x07ann roe' + b'\x00' * 40)
    taken = watch(inbox, Ledger(tmp_path / 'l.jsonl'), lambda p: {'status': p.name}, once=True, interval=0)
    assert taken == [{'status': 'b.csv'}]


@pytest.mark.parametrize(
    'query',
    [
        'select `update`, `into` from people',  # (MySQL's and SQLite's quoting of a name that is a keyword)
        'select * from people for no key update',  # (PostgreSQL's lock, as FOR UPDATE)
        "select deleted, updated_at, 'insert' as note from people -- INSERT later",
        "select * from people where note like '%into%' /* into */",
        "select 'C:\\' as folder, deleted from people",  # (a `\` ending standard SQL's quoted text)
    ],
)
def test_a_select_naming_a_write_only_as_a_quoted_name_a_lock_or_text_is_let_by(query):
    "Review EC's check of writes anywhere refused a backtick-quoted `update` column and FOR NO KEY UPDATE (review ED)."
    from lifecycle.data.sources import _query_problem

    assert _query_problem(query) == ''


def test_a_link_in_a_watched_folder_to_a_file_outside_it_is_refused_naming_the_link(tmp_path, monkeypatch, arrests):
    """A symbolic link dropped into the watched folder, `inbox/x.csv -> ~/private.csv`, was followed and the file it
    leads to ingested: a file the watcher's user may read but nobody delivered. Now refused (exit 2) naming the link,
    never read; a link to a file in the folder (or a folder of it) is taken as the file."""
    w = make_workspace(tmp_path / 'ws')
    env = {'LIFECYCLE_WORKSPACE': str(w), 'LIFECYCLE_KEYS_DIR': str(tmp_path / 'keys')}
    monkeypatch.chdir(w)
    private, inbox = tmp_path / 'private', w / 'inbox'
    private.mkdir()
    (inbox / 'sub').mkdir(parents=True)
    arrests.head(60).assign(colour='SECRETVALUE').to_csv(private / 'people.csv', index=False)
    arrests.iloc[60:120].to_csv(inbox / 'sub' / 'delivered.csv', index=False)
    (inbox / 'a-out.csv').symlink_to(private / 'people.csv')
    (inbox / 'b-in.csv').symlink_to(Path('sub') / 'delivered.csv')
    r = invoke(cmds().ingest, ['--watch', 'inbox', '--once', '--interval', '0.01', '--json', '--no-report'], env=env)
    out = json.loads(r.stdout)
    assert r.exit_code == 2 and [o['status'] for o in out['batches']] == ['refused', 'accepted'], out
    said = out['batches'][0]['error']
    assert said.startswith('inbox/a-out.csv: a symbolic link to a file outside the watched folder'), said
    assert 'private' not in r.stdout + r.stderr and 'SECRETVALUE' not in r.stdout + r.stderr
    assert len(ing.read_log(Workspace.open(w))) == 1  # (the link's target never read)
    r = invoke(cmds().ingest, ['--watch', 'inbox', '--once', '--interval', '0.05', '--json', '--no-report'], env=env)
    assert r.exit_code == 0 and json.loads(r.stdout)['batches'] == []  # (said once while the link stays)


def test_a_watch_taken_once_leaves_a_file_still_being_written_as_a_watch_does(tmp_path, monkeypatch):
    """`--once` took a file as it found it, still being written: its first rows became a batch, and once it was whole
    its next run took it again by its new content (under `fail_open` those rows went in twice). A watch takes a file
    once it is unchanged over an interval; `--once` now applies that rule: it looks again after one interval when it
    found a new file, takes it if unchanged, and leaves one still changing for its next run."""
    from lifecycle.data import watch as w

    inbox, led = tmp_path / 'inbox', w.Ledger(tmp_path / 'ledger.jsonl')
    inbox.mkdir()
    (inbox / 'a.csv').write_text('x\n1\n')
    naps = []

    def writer_goes_on(seconds):
        naps.append(seconds)
        with open(inbox / 'a.csv', 'a') as f:
            f.write('2\n')

    def take(path):
        return {'status': path.name, 'rows': path.read_text().count('\n') - 1}

    monkeypatch.setattr(w.time, 'sleep', writer_goes_on)
    assert w.watch(inbox, led, take, once=True, interval=5) == [] and naps == [5]  # (still being written: left)
    monkeypatch.setattr(w.time, 'sleep', naps.append)
    assert w.watch(inbox, led, take, once=True, interval=5) == [{'status': 'a.csv', 'rows': 2}]  # (whole, once)
    assert w.watch(inbox, led, take, once=True, interval=5) == [] and naps == [5, 5]  # (nothing new: no wait)


def test_a_watched_file_not_stored_for_a_full_disk_is_taken_again_by_the_next_run(tmp_path, monkeypatch, arrests):
    """A batch refused as "not stored" (the disk full: nothing of it kept) was marked done in the watch's ledger by its
    content, so no later run took it again: the file was never stored and never would be, unless renamed. Now its
    run says it (exit 1) and the next run takes it."""
    import pyarrow.parquet as pq

    w = make_workspace(tmp_path / 'ws')
    env = {'LIFECYCLE_WORKSPACE': str(w), 'LIFECYCLE_KEYS_DIR': str(tmp_path / 'keys')}
    monkeypatch.chdir(w)
    (w / 'inbox').mkdir()
    arrests.head(30).to_csv(w / 'inbox' / 'b.csv', index=False)
    once = ['--watch', 'inbox', '--once', '--interval', '0.01', '--json', '--no-report']
    with monkeypatch.context() as m:
        m.setattr(pq.ParquetWriter, 'write_table', full)
        r = invoke(cmds().ingest, once, env=env)
    assert r.exit_code == 1 and [b['status'] for b in json.loads(r.stdout)['batches']] == ['not stored'], r.stdout
    r = invoke(cmds().ingest, once, env=env)  # (room again)
    assert r.exit_code == 0 and [b['status'] for b in json.loads(r.stdout)['batches']] == ['accepted'], r.stdout
    r = invoke(cmds().ingest, once, env=env)
    assert r.exit_code == 0 and json.loads(r.stdout)['batches'] == [], r.stdout


def test_a_watch_reads_a_file_it_took_no_more_while_it_stays_as_it_is(tmp_path, monkeypatch):
    """Every look of a watch read every file of the folder whole again to learn it was taken (its content's hash): a
    folder that keeps what was delivered, a year of files, was read through every two seconds. A file is now hashed
    once while its size, times and inode stay as they are."""
    from lifecycle.data import watch as w

    inbox, led = tmp_path / 'inbox', w.Ledger(tmp_path / 'ledger.jsonl')
    inbox.mkdir()
    for i in range(3):
        (inbox / f'{i}.csv').write_text(f'x\n{i}\n')
    real, hashed, looks = w.file_sha256, [], []
    monkeypatch.setattr(w, 'file_sha256', lambda p: hashed.append(Path(p).name) or real(p))

    def idle():
        looks.append(1)
        if len(looks) == 4:
            (inbox / '3.csv').write_text('x\n3\n')

    outs = w.watch(inbox, led, lambda p: {'status': p.name}, interval=0, max_batches=4, on_idle=idle)
    assert [o['status'] for o in outs] == ['0.csv', '1.csv', '2.csv', '3.csv'] and len(looks) >= 5
    assert sorted(hashed) == ['0.csv', '1.csv', '2.csv', '3.csv'], hashed


def test_a_watched_file_named_with_a_terminals_escapes_is_shown_escaped(tmp_path, monkeypatch, arrests):
    """Whoever may drop a file into a watched folder chose what the watch and `ingest stats` wrote to the terminal: a
    name holding `ESC ]0;...` retitled it, `ESC [2J` cleared it, a line break made a line of its own. Now shown as
    `printable` shows them, as the other commands do."""
    w = make_workspace(tmp_path / 'ws')
    env = {'LIFECYCLE_WORKSPACE': str(w), 'LIFECYCLE_KEYS_DIR': str(tmp_path / 'keys')}
    monkeypatch.chdir(w)
    (w / 'inbox').mkdir()
    arrests.head(30).to_csv(w / 'inbox' / 'a\x1b[2J\n2026 accepted.csv', index=False)
    (w / 'inbox' / 'b\x1b]0;x\x07.csv').write_text('colour,x\x1b[31m\n1,2\n')
    r = invoke(cmds().ingest, ['--watch', 'inbox', '--once', '--interval', '0.01', '--no-report'], env=env)
    assert r.exit_code == 1 and '\x1b' not in r.stderr and '\x07' not in r.stderr, repr(r.stderr)
    assert 'a\\x1b[2J\\n2026 accepted.csv: accepted' in r.stderr.replace('\n', ''), repr(r.stderr)
    r = invoke(cmds().ingest, ['stats', '--dataset', 'arrests'], env=env)
    assert r.exit_code == 0 and '\x1b' not in r.stdout and r.stdout.count('\n2026 accepted.csv') == 0, repr(r.stdout)


def test_two_watches_of_one_folder_take_each_file_once(tmp_path):
    """Cron's `--once` beside a running watch of the same folder (or two `--once` runs overlapping) each found a file
    not done in the ledger and each took it: one delivery, two batches. A file is now taken under the ledger's lock,
    which the second watch waits for, then sees the file done."""
    import threading
    from lifecycle.data import watch as w

    inbox = tmp_path / 'inbox'
    inbox.mkdir()
    (inbox / 'a.csv').write_text('x\n1\n')
    second, took = [], []

    def watch_too():
        second.extend(w.watch(inbox, w.Ledger(led.path), take_too, once=True, interval=0))

    def take(path):
        other = threading.Thread(target=watch_too)
        other.start()
        other.join(0.5)  # (the second watch finds the file while the first takes it)
        second.append('waited' if other.is_alive() else 'did not wait')
        took.append(other)
        return {'status': path.name}

    def take_too(path):
        return {'status': f'again {path.name}'}

    led = w.Ledger(tmp_path / 'ledger.jsonl')
    assert w.watch(inbox, led, take, once=True, interval=0) == [{'status': 'a.csv'}]
    took[0].join()
    assert second == ['waited'], second  # (and took nothing)
    assert [e['state'] for e in led.entries()] == ['claimed', 'done']


def test_a_watch_takes_a_data_file_whatever_the_case_of_its_extension(tmp_path):
    "`DATA.CSV`, as a Windows export names it, was never taken (the watch's patterns matched `*.csv` alone), unsaid."
    from lifecycle.data.watch import Ledger, watch

    inbox = tmp_path / 'inbox'
    inbox.mkdir()
    for i, name in enumerate(('A.CSV', 'b.Parquet', 'c.csv.GZ', 'd.txt', 'E.XLSX')):
        (inbox / name).write_text('x\n1\n')
        os.utime(inbox / name, ns=(i * 10**9, i * 10**9))
    taken = watch(inbox, Ledger(tmp_path / 'l.jsonl'), lambda p: {'status': p.name}, once=True, interval=0)
    assert taken == [{'status': 'A.CSV'}, {'status': 'b.Parquet'}, {'status': 'c.csv.GZ'}]


def _watching(tmp_path, monkeypatch, arrests, file: str):
    """A workspace (the working folder) with 30 rows of the default data at `file` (`inbox/b.csv`: a folder to watch,
    and its file), and the environment its commands run with: (workspace, env)."""
    w = make_workspace(tmp_path / 'ws')
    (w / file).parent.mkdir(parents=True)
    arrests.head(30).to_csv(w / file, index=False)
    monkeypatch.chdir(w)
    return w, {'LIFECYCLE_WORKSPACE': str(w), 'LIFECYCLE_KEYS_DIR': str(tmp_path / 'keys')}


def test_a_watched_file_replaced_after_the_watch_hashed_it_is_taken_once_by_what_was_read(
    tmp_path, monkeypatch, arrests
):
    """A file replaced (renamed over, as a job rewrites its export) after the watch hashed it and before its batch read
    it was ingested as read, but the ledger marked the content hashed: the next look took the same content again, a
    second batch of it (`replayed_batch`). The ledger now marks what the batch read as taken too."""
    from lifecycle.data import watch as w

    ws, env = _watching(tmp_path, monkeypatch, arrests, 'inbox/b.csv')
    real = w.Ledger.mark

    def then_replaced(self, file_id, name, state, **info):  # (claimed: hashed, its batch not yet begun)
        real(self, file_id, name, state, **info)
        if state == 'claimed':
            arrests.iloc[30:60].to_csv(ws / 'b.tmp', index=False)
            os.replace(ws / 'b.tmp', ws / 'inbox' / name)

    once = ['--watch', 'inbox', '--once', '--interval', '0.01', '--json', '--no-report']
    with monkeypatch.context() as m:
        m.setattr(w.Ledger, 'mark', then_replaced)
        r = invoke(cmds().ingest, once, env=env)
    assert r.exit_code == 0 and [b['rows'] for b in json.loads(r.stdout)['batches']] == [30], r.stdout
    r = invoke(cmds().ingest, once, env=env)
    assert r.exit_code == 0 and json.loads(r.stdout)['batches'] == [], r.stdout


def test_a_watch_once_interrupted_exits_130_with_the_batches_it_took_and_the_rest_is_taken_next(
    tmp_path, monkeypatch, arrests
):
    """Review HH: Ctrl-C during `ingest --watch DIR --once --json` before a batch was done printed nothing and exited
    0, as if the folder had been taken; one after a batch exited 0 too. It is now 130, with one JSON document (the
    batches taken and the interruption), and the next run takes the file it was taking, once."""
    from lifecycle.data import watch as w

    ws, env = _watching(tmp_path, monkeypatch, arrests, 'inbox/a.csv')
    arrests.iloc[30:60].to_csv(ws / 'inbox' / 'b.csv', index=False)
    real = w.Ledger.mark

    def ctrl_c_at(name_to_stop):
        def mark(self, file_id, name, state, **info):
            real(self, file_id, name, state, **info)
            if state == 'claimed' and name == name_to_stop:
                raise KeyboardInterrupt

        return mark

    once = ['--watch', 'inbox', '--once', '--interval', '0.01', '--json', '--no-report']
    for stop, taken in (('a.csv', []), ('b.csv', ['a.csv'])):
        with monkeypatch.context() as m:
            m.setattr(w.Ledger, 'mark', ctrl_c_at(stop))
            r = invoke(cmds().ingest, once, env=env)
        out = json.loads(r.stdout)
        assert r.exit_code == 130 and out['ok'] is False and out['error'].startswith('interrupted'), r.stdout
        assert [Path(b['source']).name for b in out.get('batches', [])] == taken, out
    r = invoke(cmds().ingest, once, env=env)
    assert r.exit_code == 0 and [Path(b['source']).name for b in json.loads(r.stdout)['batches']] == ['b.csv']


def test_a_watch_reads_its_ledger_again_only_when_it_changed(tmp_path, monkeypatch):
    """Every look of a watch parsed its whole ledger (a year of files: 100,000 lines, a second of CPU every two
    seconds). It is now read again only when it changed: by this watch's own batches (noted as they are marked) or
    another's."""
    from lifecycle.data import watch as w

    inbox, led = tmp_path / 'inbox', w.Ledger(tmp_path / 'ledger.jsonl')
    inbox.mkdir()
    (inbox / 'a.csv').write_text('x\n1\n')
    real, reads, looks = w.Ledger.entries, [], []
    monkeypatch.setattr(w.Ledger, 'entries', lambda self: reads.append(1) or real(self))

    def idle():
        looks.append(1)
        if len(looks) == 3:
            w.Ledger(led.path).mark('b.csv:0', 'b.csv', 'done')  # (another watch's batch)
        if len(looks) == 5:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        w.watch(inbox, led, lambda p: {'status': p.name}, interval=0, on_idle=idle)
    assert 'b.csv:0' in led.done() and len(reads) == 2  # (once at the start, once after the other watch wrote)
    assert [e['state'] for e in real(led)] == ['claimed', 'done', 'done']


def test_a_watched_folder_that_is_a_file_is_said_to_be_one(workspace, monkeypatch):
    "`--watch settings.ini` said 'watched folder not found' of a file that is there; now it says what it found."
    env = {'LIFECYCLE_WORKSPACE': str(workspace), 'LIFECYCLE_KEYS_DIR': str(workspace / 'keys')}
    monkeypatch.chdir(workspace)
    for given, found in (('settings.ini', 'a file'), ('gone', 'nothing')):
        r = invoke(cmds().ingest, ['--watch', given, '--once', '--interval', '0.05'], env=env)
        said = f'{given}: watched folder not found (expected a folder, found {found})'
        assert r.exit_code == 2 and said in r.stderr and 'Traceback' not in r.stderr, r.stderr


def test_a_watch_waiting_for_another_watch_of_its_folder_says_so(tmp_path, monkeypatch, arrests):
    """review EI: a second watch of a folder (cron's `--once` beside a running watch taking a batch of minutes) waited
    for the ledger's lock without a word, a run that seemed hung; it now says it waits for another watch of the folder,
    then takes the file (or sees it taken)."""
    import fcntl
    import threading
    from lifecycle.data.pii import finding_salt
    from lifecycle.data.watch import ledger_for

    w = make_workspace(tmp_path / 'ws')
    env = {'LIFECYCLE_WORKSPACE': str(w), 'LIFECYCLE_KEYS_DIR': str(tmp_path / 'keys')}
    monkeypatch.chdir(w)
    (w / 'inbox').mkdir()
    arrests.head(60).to_csv(w / 'inbox' / 'a.csv', index=False)
    s = Workspace.open(w)
    led = ledger_for(s.state_dir, w / 'inbox', finding_salt(s.digest_salt_path))
    led.path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(led.path.with_suffix('.lock'), os.O_RDWR | os.O_CREAT, 0o644)
    fcntl.flock(fd, fcntl.LOCK_EX)  # (another watch taking a file)
    ran = {}
    args = ['--watch', 'inbox', '--once', '--interval', '0.05', '--json', '--no-report']
    second = threading.Thread(target=lambda: ran.update(r=invoke(cmds().ingest, args, env=env)))
    second.start()
    second.join(1.5)
    assert second.is_alive()  # (it waits)
    os.close(fd)  # (the other watch is done: closing releases its lock)
    second.join(60)
    r = ran['r']
    assert r.exit_code == 0 and len(json.loads(r.stdout)['batches']) == 1, r.stdout
    assert 'waiting for another watch of this folder' in ' '.join(r.stderr.split()), r.stderr


def test_a_file_not_stored_is_taken_again_by_a_running_watch_after_a_while_not_at_each_poll(tmp_path, monkeypatch):
    """review EI: a file "not stored" (a full disk) was held back by a running watch until the watch's next run: a
    watch that runs for months (the service it is) never took it again once the disk had room, and said nothing more;
    the batch waited for a restart. It is now taken again after a wait (a minute, doubling to an hour), not at each
    poll (which would say the same failure every interval)."""
    from lifecycle.data import watch as w

    class Stop(Exception):
        pass

    inbox, led = tmp_path / 'inbox', w.Ledger(tmp_path / 'ledger.jsonl')
    inbox.mkdir()
    (inbox / 'a.csv').write_text('x\n1\n')
    clock, polls, answers = [1000.0], [], ['not stored', 'not stored', 'accepted']

    def poll():
        polls.append(clock[0])
        if len(polls) > 40:
            raise Stop
        clock[0] += 20  # (an interval of 20 s)

    def take(path):
        return {'status': answers.pop(0)}

    monkeypatch.setattr(w, '_now', lambda: clock[0], raising=False)
    monkeypatch.setattr(w.time, 'sleep', lambda s: None)
    got = w.watch(inbox, led, take, interval=20, max_batches=3, on_idle=poll)
    assert [o['status'] for o in got] == ['not stored', 'not stored', 'accepted'], got
    states = [e['state'] for e in led.entries()]
    assert states == ['claimed', 'failed', 'claimed', 'failed', 'claimed', 'done'], states
    assert 3 <= len(polls) - 1 <= 12, polls  # (60 s, then 120 s between the tries: not each 20 s poll)


def test_unsigned_64_bit_ids_beyond_a_signed_int_are_refused_not_stored_wrapped_negative(ws):
    """A Parquet file's `uint64` column is read as `UInt64`, whose cast to `Int64` wraps a value of 2**63 or more to a
    negative number without an error: such ids declared `int` were stored negative, the batch accepted with no
    finding. `exact_int64` takes them as beyond 64 bits (None), and the type check counts them."""
    assert sources.exact_int64(pd.Series([2**63 + 10, 5, None], dtype='UInt64')) is None
    assert sources.exact_int64(pd.Series([2**63 - 1, None], dtype='UInt64')).tolist() == [2**63 - 1, pd.NA]
    ids = pd.Series([2**64 - 1 - i for i in range(6)], dtype='UInt64')
    p = P.model_copy(update={'columns': {**P.columns, 'age': ColumnRule(dtype='int', personal=False)}})
    with pytest.raises(ing.BatchRejected) as e:
        ing.ingest_batch([frame(6).assign(age=ids)], p, ws, source='b.parquet', fingerprint='fp')
    assert "age: dtype: expected 'Int64', found integer values (UInt64)" in str(e.value)
    assert not any(f.startswith('objects') for f in stored(ws)['files'])  # (nothing stored)


def test_a_watched_folder_whose_name_is_withheld_is_called_a_folder_not_a_file(tmp_path, monkeypatch):
    """`ingest --watch DIR` withheld a folder named with an e-mail address as `<file name withheld ...>`: its refusals
    ("<file name withheld>: watched folder not found", "--watch DIR (<file name withheld>)") and --json's `folder` then
    called the folder a file; it is called a folder."""
    w = make_workspace(tmp_path / 'ws')
    env = {'LIFECYCLE_WORKSPACE': str(w), 'LIFECYCLE_KEYS_DIR': str(tmp_path / 'keys')}
    monkeypatch.chdir(w)
    folder = 'inbox-ann.roe@mail.test'
    said = [invoke(cmds().ingest, ['--watch', folder, '--once'], env=env).output]
    said.append(invoke(cmds().ingest, ['x.csv', '--watch', folder, '--once'], env=env).output)
    (w / folder).mkdir()
    r = invoke(cmds().ingest, ['--watch', folder, '--once', '--json'], env=env)
    assert r.exit_code == 0, r.output
    said.append(json.loads(r.output)['folder'])
    for s in said:
        assert 'roe@' not in s and '<folder name withheld' in s and 'file name' not in s, s


def test_a_sqlite_database_file_named_with_an_e_mail_address_is_said_without_its_name(tmp_path, monkeypatch):
    """`sources.shown_source` withheld a file named with an e-mail address, but a SQLite URL naming one
    (`sqlite:///bob@corp.example.db`) went through `shown_url` alone, whole: ingest's refusal ('no SQLite database at
    ...'), its outcome's source and the batch log named the file. Its database file is named as any file is."""
    from lifecycle.data.sources import shown_source

    w = make_workspace(tmp_path / 'ws')
    env = {'LIFECYCLE_WORKSPACE': str(w), 'LIFECYCLE_KEYS_DIR': str(tmp_path / 'keys')}
    monkeypatch.chdir(w)
    url = 'sqlite:///db-bob@corp.example.db'
    r = invoke(cmds().ingest, [url, '--query', 'SELECT 1', '--dataset', 'arrests', '--json'], env=env)
    assert r.exit_code == 4 and 'no SQLite database' in r.output, r.output
    assert 'bob@' not in r.output and '<file name withheld' in r.output, r.output
    assert shown_source('sqlite:////d/+4915123456789/x.db?mode=ro') == (
        'sqlite:////d/<folder name withheld: it holds personal data>/x.db?mode=ro'
    )
    assert shown_source('sqlite:///data/sales_2024.db') == 'sqlite:///data/sales_2024.db'


class _Killed(BaseException):
    "A `kill -9`: nothing after it runs (no `except Exception` catches it)."


def _watched_once(w: Path, env: dict) -> None:
    r = invoke(cmds().ingest, ['--watch', 'in', '--once', '--interval', '0.01', '--json', '--no-report'], env=env)
    assert r.exit_code == 0, (r.exception, r.stdout, r.stderr)


def _kill_watch_at(tmp_path, monkeypatch, arrests, where: str):
    """A workspace whose watch of `in/` was killed while taking `in/a.csv`: after the batch's line is in the ingest log,
    before the ledger's 'done' (`where='done'`), or before the line (`where='line'`)."""
    from lifecycle.data import watch as wa

    w, env = _watching(tmp_path, monkeypatch, arrests, 'in/a.csv')
    mark = wa.Ledger.mark

    def killed_at_done(self, file_id, name, state, **info):
        if state == 'done':
            raise _Killed()
        return mark(self, file_id, name, state, **info)

    def killed_before_line(*a, **k):
        raise _Killed()

    with monkeypatch.context() as m:
        if where == 'done':
            m.setattr(wa.Ledger, 'mark', killed_at_done)
        else:
            m.setattr(ing, '_log_batch', killed_before_line)
        with pytest.raises(_Killed):
            invoke(cmds().ingest, ['--watch', 'in', '--once', '--interval', '0.01', '--json', '--no-report'], env=env)
    s = Workspace.open(w)
    ledger = wa.ledger_for(s.state_dir, w / 'in')
    assert [e['state'] for e in ledger.entries()] == ['claimed']
    return w, env, s, ledger


def test_a_watch_killed_after_a_batch_is_logged_but_before_its_ledger_says_done_does_not_take_the_file_again(
    tmp_path, monkeypatch, arrests
):
    """`--watch` promises each file exactly once, across restarts: a `kill -9` after the batch's line reached the ingest
    log but before the ledger's 'done' left the file claimed, so the next run ingested it again (two lines for one file,
    counted twice by `ingest stats`). The claim's id is now in the batch's line: the next run finds it there and marks
    the file done with what the line says, taking nothing again."""
    w, env, s, ledger = _kill_watch_at(tmp_path, monkeypatch, arrests, 'done')
    (line,) = ing.read_log(s)
    _watched_once(w, env)
    _watched_once(w, env)  # (and a run after it: still nothing taken again)
    assert ing.read_log(s) == [line] and ing.batch_stats(s, 'arrests')['batches'] == 1
    claimed, done = ledger.entries()
    assert done['state'] == 'done' and done['recovered'] and line['watch_claim'] == claimed['claim']
    assert (done['status'], done['snapshot'], done['batch_id']) == (line['status'], line['snapshot'], line['batch_id'])


def test_a_watch_killed_after_logging_a_file_replaced_since_its_hash_does_not_take_what_it_read_again(
    tmp_path, monkeypatch, arrests
):
    """Review GR: a file replaced after the watch hashed it, then a `kill -9` after the batch's line but before the
    ledger's 'done': the claim was the first content's, the batch the second's, so the next run found no unfinished
    claim for the file as it now is and ingested it again (two batches of one content). The batch's line keeps what it
    read (`watch_read`): the next run settles the name's unfinished claims first, marking both contents done."""
    from lifecycle.data import watch as wa

    w, env = _watching(tmp_path, monkeypatch, arrests, 'in/a.csv')
    mark = wa.Ledger.mark

    def replaced_then_killed(self, file_id, name, state, **info):
        if state == 'done':
            raise _Killed()
        mark(self, file_id, name, state, **info)
        if state == 'claimed':  # (hashed, its batch not yet begun: the export rewritten under it)
            arrests.iloc[30:60].to_csv(w / 'a.tmp', index=False)
            os.replace(w / 'a.tmp', w / 'in' / 'a.csv')

    with monkeypatch.context() as m:
        m.setattr(wa.Ledger, 'mark', replaced_then_killed)
        with pytest.raises(_Killed):
            invoke(cmds().ingest, ['--watch', 'in', '--once', '--interval', '0.01', '--json', '--no-report'], env=env)
    s = Workspace.open(w)
    (line,) = ing.read_log(s)
    _watched_once(w, env)
    _watched_once(w, env)
    assert ing.read_log(s) == [line] and ing.batch_stats(s, 'arrests')['batches'] == 1
    ledger = wa.ledger_for(s.state_dir, w / 'in')
    claimed, *done = ledger.entries()
    assert [e['state'] for e in done] == ['done', 'done'] and all(e['recovered'] for e in done)
    assert {e['file_id'] for e in done} == {claimed['file_id'], f"a.csv:{line['watch_read'].removeprefix('sha256:')}"}


def test_a_claim_killed_before_its_batch_whose_file_was_replaced_since_is_closed_not_looked_up_again(
    tmp_path, monkeypatch, arrests
):
    """Review GY: a claim killed before its batch was logged, of a content the folder no longer holds (the file
    replaced since), stayed open for good, and every later take of a file of that name looked it up in the ingest log
    (read from its end: the whole log, as none carries it). The next take closes it as failed; the new content is
    taken once."""

    w, env, s, ledger = _kill_watch_at(tmp_path, monkeypatch, arrests, 'line')
    arrests.iloc[30:60].to_csv(w / 'in' / 'a.csv', index=False)  # (replaced while no watch ran)
    _watched_once(w, env)
    states = [(e['state'], e.get('status')) for e in ledger.entries()]
    assert states == [('claimed', None), ('failed', 'abandoned'), ('claimed', None), ('done', 'accepted')], states
    ledger.done()
    assert ledger.unfinished('a.csv') == [] and len(ing.read_log(s)) == 1


def test_a_watch_killed_before_a_batch_is_logged_takes_the_file_once_on_its_next_run(tmp_path, monkeypatch, arrests):
    "Killed before the batch's line, the file is taken again by the next run, once, its line naming that run's claim."
    w, env, s, ledger = _kill_watch_at(tmp_path, monkeypatch, arrests, 'line')
    assert ing.read_log(s) == []
    _watched_once(w, env)
    _watched_once(w, env)
    (line,) = ing.read_log(s)
    assert [e['state'] for e in ledger.entries()] == ['claimed', 'claimed', 'done'] and line['status'] == 'accepted'
    assert line['watch_claim'] == ledger.entries()[1]['claim'] != ledger.entries()[0].get('claim')
