"""Review CK: what a source file holds is what is stored, or the file is refused naming where: a NUL byte that pandas
ends a value at, a byte-order mark hiding a repeated first column, a Parquet file naming a column twice, a file that
changes while it is read, an unreadable file, an undecodable byte deep in a file (its line, not a block's offset)."""

from __future__ import annotations
import json
import numpy as np
import pandas as pd
import pytest
from lifecycle.core.cli_support import invoke
from lifecycle.core.params import ColumnRule, IngestParams
from lifecycle.core.workspace import Workspace
from lifecycle.data import ingest as ing, sources
from conftest import make_workspace

P = IngestParams(
    dataset='people',
    source='people.csv',
    target='label',
    max_duplicate_rate=1.0,
    columns={
        'id': ColumnRule(dtype='int', personal=False),
        'income': ColumnRule(dtype='float', personal=False),
        'plan': ColumnRule(dtype='str', personal=False, allowed=['basic', 'pro']),
        'label': ColumnRule(dtype='str', personal=False, allowed=['yes', 'no']),
    },
)


def people(n: int = 6) -> pd.DataFrame:
    return pd.DataFrame(
        {
            'id': np.arange(1, n + 1),
            'income': np.round(np.linspace(40000.25, 60000.75, n), 2),
            'plan': (['basic', 'pro'] * n)[:n],
            'label': (['yes', 'no', 'no'] * n)[:n],
        }
    )


@pytest.fixture
def ws(tmp_path, monkeypatch):
    monkeypatch.setenv('LIFECYCLE_KEYS_DIR', str(tmp_path / 'keys'))
    (tmp_path / 'settings.ini').write_text('[workspace]\n')
    return Workspace.open(tmp_path)


def read(path, **kw) -> pd.DataFrame:
    return pd.concat(list(sources.read_chunks(str(path), **kw)), ignore_index=True)


def cmds():
    from lifecycle.data import commands

    return commands


# --- 1. a NUL byte -------------------------------------------------------------------------------------------------


def with_nul(path) -> bytes:
    "people() as CSV, a NUL inside line 3's income (`4xxxx\\0.25`) and after its plan (`pro\\0secret`)."
    lines = people().to_csv(index=False).encode().split(b'\n')
    cells = lines[2].split(b',')
    cells[1], cells[2] = cells[1].replace(b'.', b'\0.'), cells[2] + b'\0secret'
    lines[2] = b','.join(cells)
    path.write_bytes(b'\n'.join(lines))
    return path


@pytest.mark.parametrize('declared', [None, P.columns], ids=['plain', 'contract'])
def test_a_nul_byte_in_a_csv_value_is_refused_naming_line_and_column_not_the_value(tmp_path, declared):
    src = with_nul(tmp_path / 'nul.csv')
    with pytest.raises(sources.SourceError) as e:
        read(src, declared=declared)
    said = str(e.value)
    assert str(src) in said and 'NUL byte at line 3, column income' in said, said
    assert 'secret' not in said and '40000' not in said and '44000' not in said


@pytest.fixture
def cli_ws(tmp_path, monkeypatch) -> tuple:
    "A workspace as the current folder, for in-process CLI calls with its keys outside it: (folder, environment)."
    w = make_workspace(tmp_path / 'ws')
    monkeypatch.chdir(w)
    return w, {'LIFECYCLE_WORKSPACE': str(w), 'LIFECYCLE_KEYS_DIR': str(tmp_path / 'keys')}


def test_a_nul_byte_in_the_header_or_a_gzip_file_is_refused(tmp_path):
    src = tmp_path / 'head.csv'
    src.write_bytes(people().to_csv(index=False).encode().replace(b'income', b'inc\0ome', 1))
    with pytest.raises(sources.SourceError, match='NUL byte in its header row, line 1'):
        read(src)
    import gzip

    gz = tmp_path / 'nul.csv.gz'
    gz.write_bytes(gzip.compress(with_nul(tmp_path / 'n.csv').read_bytes()))
    with pytest.raises(sources.SourceError, match='NUL byte at line 3, column income'):
        read(gz)
    text = tmp_path / 'text.csv'  # (a file in UTF-16 is all NUL bytes: read as before, a NUL character refused)
    text.write_bytes(people().to_csv(index=False).encode('utf-16'))
    from lifecycle.core.params import CsvDialect

    assert read(text, dialect=CsvDialect(encoding='utf-16')).shape == (6, 4)
    text.write_bytes(with_nul(tmp_path / 'n.csv').read_bytes().decode().encode('utf-16'))
    with pytest.raises(sources.SourceError, match='NUL byte at line 3, column income'):
        read(text, dialect=CsvDialect(encoding='utf-16'))
    nul = with_nul(tmp_path / 'n.csv').read_bytes().decode().replace('yes', 'Ċyes', 1)  # (U+010A: a byte 0x0a)
    for enc in ('utf-16', 'utf-16-be'):
        text.write_bytes(nul.encode(enc))
        with pytest.raises(sources.SourceError, match=r'NUL byte at line 3, column income \(byte (\d+)') as e:
            read(text, dialect=CsvDialect(encoding=enc))
        assert text.read_bytes()[int(e.value.args[0].split('(byte ')[1].split()[0]) :].startswith('\0'.encode(enc)[-2:])


def test_a_nul_byte_in_a_headerless_file_names_no_value_of_its_first_row_as_a_column(tmp_path):
    src = tmp_path / 'nohead.csv'  # (no header row, read under header: true: its first row of values is the "header")
    src.write_bytes(b'1041,50000.5,HIV positive,yes\n1042,55623.98,basic,yes\n1043,41000.5,pro\0x,no\n')
    with pytest.raises(sources.SourceError) as e:
        read(src, declared=P.columns)
    said = str(e.value)
    assert 'NUL byte at line 3, column <column 3>' in said and 'HIV' not in said and '50000' not in said, said


@pytest.mark.parametrize('delimiter', [',', ';'])
def test_a_nul_byte_in_a_value_quoted_over_several_lines_is_named_in_its_records_column(tmp_path, delimiter):
    "Its line starts inside the quoted value: the column is counted from its record's start, not its line's."
    from lifecycle.core.params import CsvDialect

    src = tmp_path / 'lines.csv'
    text = 'id,income,plan,label\n1,"40000,25\nmore, and more",basic,yes\n2,41000.5,"pro\nx, y\nz, sec\0ret",no\n'
    src.write_bytes(text.replace(',', delimiter).encode())
    with pytest.raises(sources.SourceError) as e:
        read(src, dialect=CsvDialect(delimiter=delimiter))
    said = str(e.value)
    assert 'NUL byte at line 6, column plan (byte' in said and 'sec' not in said and 'pro' not in said, said


def test_a_nul_byte_is_refused_by_ingest_drift_and_init_with_exit_4_and_nothing_stored(
    cli_ws, arrests
):
    from lifecycle.data.init_command import init

    w, env = cli_ws
    arrests.head(40).to_csv(w / 'a.csv', index=False)
    lines = arrests.head(40).to_csv(index=False).encode().split(b'\n')
    lines[5] = lines[5].replace(b',', b'\0,', 1)  # (in the first column's value)
    (w / 'nul.csv').write_bytes(b'\n'.join(lines))
    r = invoke(cmds().ingest, ['nul.csv', '--dataset', 'arrests', '--json', '--no-report'], env=env)
    out = json.loads(r.stdout)
    assert r.exit_code == 4 and out['status'] == 'unreadable' and 'NUL byte at line 6' in out['error'], out
    assert [e['status'] for e in ing.read_log(Workspace.open(w))] == ['unreadable']
    assert not list((w / '.lifecycle' / 'store' / 'records').rglob('*.json'))
    r = invoke(cmds().drift, ['--reference', 'a.csv', '--current', 'nul.csv'], env=env)
    assert r.exit_code == 4 and 'NUL byte at line 6' in r.stderr, r.stderr
    r = invoke(init, ['--from', str(w / 'nul.csv'), '--target', 'released', '--out', str(w / 'p2')], env=env)
    assert r.exit_code == 4 and 'NUL byte at line 6' in r.stderr and not (w / 'p2').exists(), r.stderr


# --- 4. a byte-order mark before a repeated first column ----------------------------------------------------------


def test_a_byte_order_mark_does_not_hide_a_repeated_first_column(tmp_path):
    src = tmp_path / 'bom.csv'
    df = people()
    df.insert(4, 'id2', df['id'])
    src.write_bytes(df.to_csv(index=False).replace('id2', 'id', 1).encode('utf-8-sig'))
    for declared in (None, P.columns):
        with pytest.raises(sources.SourceError, match=r"names column\(s\) \['id'\] more than once"):
            read(src, declared=declared)
    src.write_bytes('\ufeff"id","plan","id"\n1,basic,1\n2,pro,2\n'.encode())  # (a quoted header: the same)
    with pytest.raises(sources.SourceError, match=r"names column\(s\) \['id'\] more than once"):
        read(src)
    src.write_bytes(people().to_csv(index=False).encode('utf-8-sig'))  # (no repeat: read as before)
    assert list(read(src, declared=P.columns).columns) == ['id', 'income', 'plan', 'label']


# --- 8. an undecodable byte deep in a file -------------------------------------------------------------------------


def test_an_undecodable_byte_deep_in_a_csv_is_located_by_its_line_and_offset_in_the_file(tmp_path):
    df = pd.concat([people()] * 900, ignore_index=True)
    df.loc[4000, 'plan'] = 'café'
    src = tmp_path / 'latin.csv'
    df.to_csv(src, index=False, encoding='latin-1')
    raw = src.read_bytes()
    at = raw.index(b'\xe9')
    line = raw[:at].count(b'\n') + 1
    assert at > 1 << 16 and line == 4002
    with pytest.raises(sources.SourceError) as e:
        read(src, chunk_rows=1000)
    assert f'not valid UTF-8 at line 4002 (byte offset {at} in the file)' in str(e.value), str(e.value)


# --- 3. a Parquet file naming a column twice -----------------------------------------------------------------------


def dup_parquet(df: pd.DataFrame, path, column: str):
    import pyarrow as pa
    import pyarrow.parquet as pq

    t = pa.Table.from_pandas(df, preserve_index=False)
    pq.write_table(t.append_column(column, t.column(column)), path)
    return path


def test_a_parquet_file_naming_a_column_twice_is_refused_naming_it_by_every_reader(tmp_path):
    src = dup_parquet(people(), tmp_path / 'dup.parquet', 'income')
    for reader in (lambda: read(src), lambda: read(src, declared=P.columns), lambda: sources.read_table(str(src))):
        with pytest.raises(sources.SourceError, match=r"names column\(s\) \['income'\] more than once"):
            reader()
    assert read(src, only={'id', 'plan'}).shape == (6, 5)  # (a reader not taking it: as it comes)


def test_a_parquet_file_naming_a_column_twice_is_refused_by_ingest_watch_drift_and_init(
    cli_ws, arrests
):
    from lifecycle.data.init_command import init

    w, env = cli_ws
    arrests.head(40).to_csv(w / 'a.csv', index=False)
    dup_parquet(arrests.head(40), w / 'dup.parquet', 'age')
    r = invoke(cmds().ingest, ['dup.parquet', '--dataset', 'arrests', '--json', '--no-report'], env=env)
    out = json.loads(r.stdout)
    assert r.exit_code == 4 and out['status'] == 'unreadable' and "['age'] more than once" in out['error'], out
    r = invoke(cmds().drift, ['--reference', 'a.csv', '--current', 'dup.parquet'], env=env)
    assert r.exit_code == 4 and "['age'] more than once" in r.stderr, r.stderr
    r = invoke(init, ['--from', str(w / 'dup.parquet'), '--target', 'released', '--out', str(w / 'p2')], env=env)
    assert r.exit_code == 4 and "['age'] more than once" in r.stderr and not (w / 'p2').exists(), r.stderr
    (w / 'inbox').mkdir()  # (a watch takes the files after it)
    dup_parquet(arrests.head(40), w / 'inbox' / '1.parquet', 'age')
    arrests.iloc[40:80].to_csv(w / 'inbox' / '2.csv', index=False)
    r = invoke(cmds().ingest, ['--watch', 'inbox', '--once', '--interval', '0.05', '--json', '--no-report'], env=env)
    out = json.loads(r.stdout)
    assert r.exit_code == 4 and [b['status'] for b in out['batches']] == ['unreadable', 'accepted'], r.stdout


# --- 2. a file that changes while it is read ----------------------------------------------------------------------


def changed_midway(monkeypatch, line: bytes = b'9,1.0,pro,no\n'):
    "Make each CSV read append `line` to its file after its first chunk: a writer still writing it (no sleep race)."
    real = sources._csv_chunks

    def reading(path, *a, **k):
        for i, chunk in enumerate(real(path, *a, **k)):
            yield chunk
            if i == 0:
                with open(path, 'ab') as f:
                    f.write(line)

    monkeypatch.setattr(sources, '_csv_chunks', reading)


def test_a_same_size_rewrite_in_place_with_its_time_set_back_is_refused(tmp_path, monkeypatch):
    import os

    src = tmp_path / 'p.csv'
    src.write_bytes(people().to_csv(index=False).encode())
    real = sources._csv_chunks

    def reading(path, *a, **k):  # (a writer rewrites a value in place, same size, and restores the file's mtime)
        st = os.stat(path)
        for chunk in real(path, *a, **k):
            yield chunk
            data = path.read_bytes()
            with open(path, 'r+b') as f:
                f.write(data.replace(b'basic', b'BASIC', 1))
            os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))

    state = sources.file_state(str(src))
    monkeypatch.setattr(sources, '_csv_chunks', reading)
    with pytest.raises(sources.SourceError, match='changed while'):
        list(sources.read_chunks(str(src), state=state))


def records(w) -> list:
    return sorted(p.name for p in (w / '.lifecycle' / 'store').rglob('*') if p.is_file())


def test_a_file_changed_while_the_ingest_stage_reads_it_is_refused_and_nothing_is_stored(ws, tmp_path, monkeypatch):
    from lifecycle.data import stages

    people().to_csv(tmp_path / 'people.csv', index=False)
    before = records(tmp_path)
    changed_midway(monkeypatch)
    with pytest.raises(sources.SourceError, match='people.csv: the source changed while reading'):
        stages.ingest(ws, P.model_copy(update={'chunk_rows': 2}), 'm')
    assert records(tmp_path) == before and ing.read_log(ws) == []
    monkeypatch.undo()  # (changed between its fingerprint and its reading: refused as well)
    real = sources.fingerprint

    def fingerprint(*a, **k):
        said = real(*a, **k)
        with open(tmp_path / 'people.csv', 'ab') as f:
            f.write(b'10,1.0,pro,no\n')
        return said

    monkeypatch.setattr(sources, 'fingerprint', fingerprint)
    with pytest.raises(sources.SourceError, match='changed while reading'):
        stages.ingest(ws, P, 'm')
    assert records(tmp_path) == before and ing.read_log(ws) == []
    monkeypatch.undo()
    r = stages.ingest(ws, P, 'm')  # (left alone: taken whole)
    assert r.train.status == 'accepted' and r.train.rows == 8


def test_a_file_changed_while_ingest_or_a_watch_reads_it_exits_4_logged_and_nothing_stored(cli_ws, 
    tmp_path, monkeypatch, arrests
):
    w, env = cli_ws
    arrests.head(40).to_csv(w / 'b.csv', index=False)
    (w / 'inbox').mkdir()
    arrests.iloc[40:80].to_csv(w / 'inbox' / 'c.csv', index=False)
    row = arrests.iloc[[99]].to_csv(index=False, header=False).encode()
    changed_midway(monkeypatch, row)
    r = invoke(cmds().ingest, ['b.csv', '--dataset', 'arrests', '--json', '--no-report'], env=env)
    out = json.loads(r.stdout)
    assert r.exit_code == 4 and out['status'] == 'unreadable', out
    assert 'b.csv: the source changed while reading' in out['error'] and 'nothing of it was kept' in out['error']
    r = invoke(cmds().ingest, ['--watch', 'inbox', '--once', '--interval', '0.05', '--json', '--no-report'], env=env)
    out = json.loads(r.stdout)
    assert r.exit_code == 4 and [b['status'] for b in out['batches']] == ['unreadable'], out
    assert [e['status'] for e in ing.read_log(Workspace.open(w))] == ['unreadable', 'unreadable']
    assert not list((w / '.lifecycle' / 'store' / 'records').rglob('*.json'))


@pytest.mark.parametrize('kind', ['csv', 'parquet'])
def test_a_file_changed_while_drift_reads_it_exits_4_naming_it(tmp_path, monkeypatch, arrests, kind):
    "Drift reads a Parquet file whole (`read_table`), not by `read_chunks`: one rewritten meanwhile is refused as well."
    import pyarrow.parquet as pq
    from conftest import cli

    w = make_workspace(tmp_path / 'ws')
    cur = w / f'b.{kind}'
    if kind == 'csv':  # (the reference of the other kind: the writer touches `cur` alone)
        ref = w / 'a.parquet'
        arrests.head(40).to_parquet(ref, index=False)
        arrests.iloc[40:80].to_csv(cur, index=False)
        changed_midway(monkeypatch, arrests.iloc[[99]].to_csv(index=False, header=False).encode())
    else:
        ref = w / 'a.csv'
        arrests.head(40).to_csv(ref, index=False)
        arrests.iloc[40:80].to_parquet(cur, index=False)
        real = pq.ParquetFile.read

        def reading(self, *a, **k):  # (a writer rewrites it, with more rows, while it is read)
            table = real(self, *a, **k)
            arrests.iloc[40:90].to_parquet(cur, index=False)
            return table

        monkeypatch.setattr(pq.ParquetFile, 'read', reading)
    r = cli(w, 'drift', '--reference', ref.name, '--current', cur.name, env={'LIFECYCLE_KEYS_DIR': str(tmp_path / 'k')})
    assert r.returncode == 4 and f'{cur}: the source changed while reading' in r.stderr, r.stderr
    assert r.stderr.count('\n') == 1 and 'Traceback' not in r.stderr and r.stdout == '', r.stderr


# --- 7. a file that cannot be opened -------------------------------------------------------------------------------


def locked(monkeypatch, name: str):
    "Files called `name` cannot be opened, as for a user without permission (the tests may run as root)."
    import builtins

    real = builtins.open

    def opening(file, *a, **k):
        if str(file).endswith(name):
            raise PermissionError(13, 'Permission denied', str(file))
        return real(file, *a, **k)

    monkeypatch.setattr(builtins, 'open', opening)


def test_an_unreadable_file_is_refused_with_exit_4_logged_and_counted_by_ingest_watch_and_drift(cli_ws, 
    tmp_path, monkeypatch, arrests
):
    w, env = cli_ws
    arrests.head(40).to_csv(w / 'a.csv', index=False)
    arrests.head(40).to_csv(w / 'locked.csv', index=False)
    (w / 'inbox').mkdir()
    arrests.head(40).to_csv(w / 'inbox' / '1-locked.csv', index=False)
    arrests.iloc[40:80].to_csv(w / 'inbox' / '2.csv', index=False)
    import builtins

    unlocked = builtins.open
    locked(monkeypatch, 'locked.csv')
    r = invoke(cmds().ingest, ['locked.csv', '--dataset', 'arrests', '--json', '--no-report'], env=env)
    out = json.loads(r.stdout)
    assert r.exit_code == 4 and out['status'] == 'unreadable', out
    assert out['error'] == f"{w / 'locked.csv'}: the source cannot be read: Permission denied"
    r = invoke(cmds().ingest, ['--watch', 'inbox', '--once', '--interval', '0.05', '--json', '--no-report'], env=env)
    out = json.loads(r.stdout)
    assert r.exit_code == 4 and [b['status'] for b in out['batches']] == ['unreadable', 'accepted'], out
    again = ['--watch', 'inbox', '--once', '--interval', '0.05', '--json', '--no-report']  # (cron's next run)
    r = invoke(cmds().ingest, again, env=env)
    assert r.exit_code == 0 and json.loads(r.stdout)['batches'] == [], r.stdout  # (said once while it stays: CT)
    r = invoke(cmds().ingest, ['stats', '--dataset', 'arrests', '--json'], env=env)
    assert json.loads(r.stdout)['unreadable'] == 2
    (w / 'inbox' / '1-locked.csv').touch()  # (changed, still locked: said again)
    r = invoke(cmds().ingest, ['--watch', 'inbox', '--once', '--interval', '0.05', '--json', '--no-report'], env=env)
    assert r.exit_code == 4 and [b['status'] for b in json.loads(r.stdout)['batches']] == ['unreadable'], r.stdout
    monkeypatch.setattr(builtins, 'open', unlocked)  # (readable now: taken by its content)
    r = invoke(cmds().ingest, ['--watch', 'inbox', '--once', '--interval', '0.05', '--json', '--no-report'], env=env)
    assert r.exit_code == 0 and [b['status'] for b in json.loads(r.stdout)['batches']] == ['accepted'], r.stdout
    locked(monkeypatch, 'locked.csv')
    r = invoke(cmds().drift, ['--reference', 'a.csv', '--current', 'locked.csv'], env=env)
    assert r.exit_code == 4 and 'locked.csv: the source cannot be read: Permission denied' in r.stderr, r.stderr


# --- 5. the audit log names no snapshot that was not kept ---------------------------------------------------------


def test_a_batch_whose_log_line_cannot_be_written_leaves_no_audit_entry_naming_it(ws, monkeypatch):
    import os

    from lifecycle.core import audit

    fail_open = P.model_copy(update={'policy': 'fail_open'})
    ing.ingest_batch([people()], fail_open, ws, source='a.csv', fingerprint='a')  # (the flags of the last batch)
    before = sorted(p.name for p in (ws.store_dir / 'records').rglob('*.json'))
    real = os.open

    def opening(path, flags, *a, **k):  # (the batch log read-only, for a user who may not write it: the tests are root)
        if str(path).endswith('batches.jsonl') and flags & os.O_APPEND:
            raise PermissionError(13, 'Permission denied', str(path))
        return real(path, flags, *a, **k)

    monkeypatch.setattr(os, 'open', opening)
    bad = people().assign(plan=['basic', 'team', 'pro', 'pro', 'basic', 'pro'])  # (one row quarantined)
    changed = fail_open.model_copy(update={'flags': fail_open.flags.model_copy(update={'strict_schema': False})})
    for p in (fail_open, changed):
        with pytest.raises(ing.IngestError, match='nothing of the batch was kept'):
            ing.ingest_batch([bad], p, ws, source='b.csv', fingerprint='b')
    assert sorted(p.name for p in (ws.store_dir / 'records').rglob('*.json')) == before
    assert [e['action'] for e in audit.read(ws.audit_path)] == []  # (no fallback, no flags change of an undone batch)
    monkeypatch.undo()
    r = ing.ingest_batch([bad], fail_open, ws, source='b.csv', fingerprint='b')  # (the log writable: the fallback)
    assert r.status == 'accepted_with_quarantine' and [e['status'] for e in ing.read_log(ws)][-1] == r.status
    entries = [(e['action'], e['subject']) for e in audit.read(ws.audit_path)]
    assert entries == [('ingest.fallback', r.snapshot['version'])]


def test_a_batch_the_audit_log_cannot_take_leaves_no_batch_log_line(ws, monkeypatch):
    from lifecycle.core import audit

    fail_open = P.model_copy(update={'policy': 'fail_open'})
    bad = people().assign(plan=['basic', 'team', 'pro', 'pro', 'basic', 'pro'])

    def refused(*a, **k):
        raise audit.AuditError('the audit log cannot be written: no space left')

    monkeypatch.setattr(audit, 'append', refused)
    with pytest.raises(audit.AuditError, match='nothing of the batch was kept'):
        ing.ingest_batch([bad], fail_open, ws, source='b.csv', fingerprint='b')
    assert ing.read_log(ws) == [] and not list((ws.store_dir / 'records').rglob('*.json'))


KILLED = """
import os, sys
sys.path.insert(0, {tests!r})
from pathlib import Path
from lifecycle.core.workspace import Workspace
from lifecycle.core import audit
from lifecycle.data import ingest as ing
from test_source_integrity import P, people
ws = Workspace.open(Path({root!r}))
fail_open = P.model_copy(update={{'policy': 'fail_open'}})
changed = fail_open.model_copy(update={{'flags': fail_open.flags.model_copy(update={{'strict_schema': False}})}})
bad = people().assign(plan=['basic', 'team', 'pro', 'pro', 'basic', 'pro'])
at, calls = {at!r}, []
real_append, real_line = audit.append, ing.write_line
def appending(*a, **k):  # (kill -9 before the n-th audit entry)
    calls.append(a[1])
    if at == 'audit%d' % len(calls):
        os._exit(137)
    return real_append(*a, **k)
def line(*a, **k):
    if at == 'line':
        os._exit(137)
    real_line(*a, **k)
    if at == 'after':
        os._exit(137)
audit.append, ing.write_line = appending, line
ing.ingest_batch([bad], changed, ws, source='b.csv', fingerprint='b')
"""


@pytest.mark.slow
@pytest.mark.parametrize('at', ['audit1', 'audit2', 'line', 'after'])
def test_a_kill_at_any_point_of_logging_a_batch_never_loses_its_flags_change_or_fallback(ws, tmp_path, at):
    import subprocess
    import sys
    from pathlib import Path

    from lifecycle.core import audit

    fail_open = P.model_copy(update={'policy': 'fail_open'})
    changed = fail_open.model_copy(update={'flags': fail_open.flags.model_copy(update={'strict_schema': False})})
    bad = people().assign(plan=['basic', 'team', 'pro', 'pro', 'basic', 'pro'])
    ing.ingest_batch([people()], fail_open, ws, source='a.csv', fingerprint='a')
    script = KILLED.format(tests=str(Path(__file__).parent), root=str(tmp_path), at=at)
    assert subprocess.run([sys.executable, '-c', script], env=dict(__import__('os').environ)).returncode == 137
    if at != 'after':  # (killed before its line: the rerun records the batch, its flags change among it)
        ing.ingest_batch([bad], changed, ws, source='b.csv', fingerprint='b')
    log, entries = ing.read_log(ws), audit.read(ws.audit_path)
    assert log[-1]['flags'] == changed.flags.model_dump() and log[-1]['status'] == 'accepted_with_quarantine'
    changes = [e for e in entries if e['action'] == 'ingest.flags.change']
    assert changes and all(e['details']['new'] == changed.flags.model_dump() for e in changes), entries
    assert ('ingest.fallback', log[-1]['snapshot']) in [(e['action'], e['subject']) for e in entries]
    assert log[-1]['batch_id'] in {e['details'].get('batch_id') for e in entries}  # (an entry may repeat, none lost)
    killed = {e['details'].get('batch_id') for e in entries} - {x['batch_id'] for x in log} - {None}
    assert killed == {e['subject'] for e in entries if e['action'] == 'ingest.undone'}, entries  # (each undone)



@pytest.mark.parametrize('end', [pytest.param('killed', marks=pytest.mark.slow), 'audit_error'])  # (kill -9: slow)
def test_a_batch_ended_before_its_line_is_undone_and_a_flags_change_back_is_recorded(ws, tmp_path, end, monkeypatch):
    "Review CP (D3): the audit log kept a flags change of a batch never logged, and a change back went unrecorded."
    import subprocess
    import sys
    from pathlib import Path

    from lifecycle.core import audit

    fail_open = P.model_copy(update={'policy': 'fail_open'})
    changed = fail_open.model_copy(update={'flags': fail_open.flags.model_copy(update={'strict_schema': False})})
    bad = people().assign(plan=['basic', 'team', 'pro', 'pro', 'basic', 'pro'])
    ing.ingest_batch([people()], fail_open, ws, source='a.csv', fingerprint='a')
    if end == 'killed':  # (kill -9 after its audit entries, before its line)
        script = KILLED.format(tests=str(Path(__file__).parent), root=str(tmp_path), at='line')
        assert subprocess.run([sys.executable, '-c', script], env=dict(__import__('os').environ)).returncode == 137
    else:  # (its flags change recorded, its fallback not: no `ingest.undone` either)
        real, calls = audit.append, []

        def second_fails(*a, **k):
            calls.append(a[1])
            if len(calls) == 2:
                raise audit.AuditError('the audit log cannot be written')
            return real(*a, **k)

        monkeypatch.setattr(audit, 'append', second_fails)
        with pytest.raises(audit.AuditError):
            ing.ingest_batch([bad], changed, ws, source='b.csv', fingerprint='b')
        monkeypatch.setattr(audit, 'append', real)
    lost = [e for e in audit.read(ws.audit_path) if e['action'] == 'ingest.flags.change'][-1]
    assert lost['details']['new']['strict_schema'] is False
    ing.ingest_batch([people(7)], fail_open, ws, source='c.csv', fingerprint='c')  # (ingest.yaml put back)
    entries, log = audit.read(ws.audit_path), ing.read_log(ws)
    assert [x['flags']['strict_schema'] for x in log] == [True, True]
    undone = [e for e in entries if e['action'] == 'ingest.undone']
    assert [e['subject'] for e in undone] == [lost['details']['batch_id']], entries
    fell = [e for e in entries if e['action'] == 'ingest.fallback']
    fallback = [v for e in fell for v in (e['subject'], e['details']['quarantine'])]
    assert undone[0]['details']['removed'] == [] and undone[0]['details']['unlogged'] == fallback
    assert all(ws.store.record_path('datasets', v).exists() for v in fallback)  # (said to stay: it stays)
    last = [e for e in entries if e['action'] == 'ingest.flags.change'][-1]
    assert last['details']['new'] == fail_open.flags.model_dump() and last['details']['batch_id'] == log[-1]['batch_id']
    assert entries.index(undone[0]) < entries.index(last) and audit.verify(ws.audit_path).ok
    ing.ingest_batch([people(8)], fail_open, ws, source='d.csv', fingerprint='d')  # (nothing more to undo or change)
    assert audit.read(ws.audit_path) == entries


@pytest.mark.parametrize('undo_fails', [False, True])
def test_a_whole_line_that_cannot_be_cut_back_keeps_its_batch_and_is_not_undone(ws, monkeypatch, undo_fails):
    "Review CP: the batch was undone (and its snapshots removed) though its whole line stayed in the log."
    import os

    from lifecycle.core import audit

    fail_open = P.model_copy(update={'policy': 'fail_open'})
    bad = people().assign(plan=['basic', 'team', 'pro', 'pro', 'basic', 'pro'])

    def whole(fd, line, fsync=True):  # (the line written, its fsync and the cut-back failing)
        os.write(fd, line)
        raise OSError(5, 'Input/output error')

    real = audit.append

    def no_undone(*a, **k):
        if undo_fails and a[1] == 'ingest.undone':
            raise audit.AuditError('the audit log cannot be written')
        return real(*a, **k)

    monkeypatch.setattr(ing, 'write_line', whole)
    monkeypatch.setattr(audit, 'append', no_undone)
    with pytest.raises(ing.IngestError, match='the line remains'):
        ing.ingest_batch([bad], fail_open, ws, source='b.csv', fingerprint='b')
    log, entries = ing.read_log(ws), audit.read(ws.audit_path)
    assert len(log) == 1 and 'ingest.undone' not in [e['action'] for e in entries]
    assert all(ws.store.record_path('datasets', log[0][k]).exists() for k in ('snapshot', 'quarantine'))

def test_a_batch_log_line_that_fails_after_its_audit_entries_is_undone_in_the_audit_log(ws, monkeypatch):
    import errno
    import os

    from lifecycle.core import audit

    fail_open = P.model_copy(update={'policy': 'fail_open'})
    bad = people().assign(plan=['basic', 'team', 'pro', 'pro', 'basic', 'pro'])

    def full(*a, **k):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(ing, 'write_line', full)
    with pytest.raises(ing.IngestError, match='nothing of the batch was kept'):
        ing.ingest_batch([bad], fail_open, ws, source='b.csv', fingerprint='b')
    assert ing.read_log(ws) == [] and not list((ws.store_dir / 'records').rglob('*.json'))
    fallback, undone = audit.read(ws.audit_path)
    assert fallback['action'] == 'ingest.fallback' and undone['action'] == 'ingest.undone'
    assert undone['subject'] == fallback['details']['batch_id']
    assert undone['details']['removed'][0] == fallback['subject']
    assert 'No space left on device' in undone['reason']


def test_a_replayed_batch_whose_line_fails_removes_and_says_it_removed_no_earlier_snapshot(ws, monkeypatch):
    "Review CP: the undoing named the earlier batch's snapshots as removed, which stay stored and logged."
    import errno
    import os

    from lifecycle.core import audit

    fail_open = P.model_copy(update={'policy': 'fail_open'})
    bad = people().assign(plan=['basic', 'team', 'pro', 'pro', 'basic', 'pro'])
    first = ing.ingest_batch([bad], fail_open, ws, source='a.csv', fingerprint='a')

    def full(*a, **k):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(ing, 'write_line', full)
    with pytest.raises(ing.IngestError, match='nothing of the batch was kept'):
        ing.ingest_batch([bad], fail_open, ws, source='a2.csv', fingerprint='a2')
    undone = audit.read(ws.audit_path)[-1]
    assert undone['action'] == 'ingest.undone' and undone['details']['removed'] == [], undone
    assert all(ws.store.record_path('datasets', x['version']).exists() for x in (first.snapshot, first.quarantine))


def test_a_batch_log_line_that_cannot_be_cut_back_is_said_not_passed_over(ws, monkeypatch):
    import os

    calls = []

    def torn(fd, line, fsync=True):  # (half the line written, then the disk fails and the cut-back too)
        os.write(fd, line[: len(line) // 2])
        calls.append(1)
        raise OSError(5, 'Input/output error')

    monkeypatch.setattr(ing, 'write_line', torn)
    with pytest.raises(ing.IngestError) as e:
        ing.ingest_batch([people()], P, ws, source='b.csv', fingerprint='b')
    said = str(e.value)
    assert 'could not take batch' in said and 'nor be cut back' in said and 'Input/output error' in said, said
    assert str(ing.ingest_log_path(ws)) in said and calls


def test_a_line_that_fails_is_cut_back_durably(tmp_path, monkeypatch):
    import os

    from lifecycle.core import store

    log, done = tmp_path / 'x.jsonl', []
    real_write, real_truncate, real_fsync = os.write, os.ftruncate, os.fsync
    monkeypatch.setattr(os, 'write', lambda fd, b: real_write(fd, b[:3]))  # (a short write: the disk filled up)
    monkeypatch.setattr(os, 'ftruncate', lambda fd, n: (done.append('cut'), real_truncate(fd, n)))
    monkeypatch.setattr(os, 'fsync', lambda fd: (done.append('sync'), real_fsync(fd)))
    with pytest.raises(OSError), store.locked_append(log) as fd:
        store.write_line(fd, b'{"a": 1}\n')
    monkeypatch.undo()
    assert log.read_bytes() == b'' and done[-2:] == ['cut', 'sync'], done


# --- 6. Parquet types the contract has no word for ----------------------------------------------------------------


def odd_types(path, n: int = 240, plan=None):
    "A Parquet file with a binary, a time-of-day and a duration column."
    import datetime as dt
    import pyarrow as pa
    import pyarrow.parquet as pq

    rng = np.random.default_rng(3)
    plans = plan or [p.encode() for p in rng.choice(['basic', 'pro', 'team'], n)]
    pq.write_table(
        pa.table(
            {
                'plan': pa.array(plans, pa.binary()),
                'at': pa.array([dt.time(9 + i % 8, 30, i % 60, 250000 * (i % 2)) for i in range(n)], pa.time64('us')),
                'took': pa.array([dt.timedelta(seconds=7.5 * i) for i in range(n)], pa.duration('ms')),
                'spend': np.round(rng.normal(100, 10, n), 2),
                'churned': rng.choice(['yes', 'no'], n),
            }
        ),
        path,
    )
    return path


def test_init_proposes_for_binary_time_and_duration_parquet_columns_what_ingestion_then_takes(ws, tmp_path):
    from lifecycle.core.cli_support import scratch_workspace
    from lifecycle.core.params import load_params
    from lifecycle.data.init_command import init

    w = scratch_workspace(tmp_path / 'w')
    src = odd_types(w / 'odd.parquet')
    env = {'LIFECYCLE_WORKSPACE': str(w)}
    r = invoke(init, ['--from', str(src), '--target', 'churned', '--out', str(w / 'p')], env=env)
    assert r.exit_code == 0, r.stderr
    p = load_params(w / 'p')['ingest']
    assert {c: p.columns[c].dtype for c in ('plan', 'at', 'took')} == {'plan': 'str', 'at': 'str', 'took': 'float'}
    assert p.columns['plan'].allowed == ['basic', 'pro', 'team']
    res = ing.ingest_batch(sources.read_chunks(str(src), declared=p.columns), p, ws, source='odd', fingerprint='o')
    assert res.status == 'accepted' and not len(res.violations), res.reason
    df = ing.load_snapshot(ws.store, res.snapshot['version'])
    assert df.plan.isin(['basic', 'pro', 'team']).all() and df['at'].tolist()[:2] == ['09:30:00', '10:30:01.250']
    assert df.took.tolist()[:3] == [0.0, 7.5, 15.0]
    table = sources.read_table(str(src))  # (`drift` reads it alike)
    assert str(table.schema.field('plan').type) == 'string' and str(table.schema.field('took').type) == 'double'


@pytest.mark.parametrize('kind', ['dictionary', 'binary_view'])
def test_a_dictionary_or_view_binary_parquet_column_is_read_as_its_text_as_a_plain_one(ws, tmp_path, kind):
    """Ingestion read a Parquet column of bytes as its UTF-8 text only when plain binary, where batch scoring takes a
    dictionary of binary values and a binary view as bytes too (47be5cae): ingestion, init and drift got Python bytes
    (`b'basic'`, no declared category), and one that is not UTF-8 was never refused. Both read as text now (one
    predicate, `sources.holds_bytes`, for scoring and ingestion), refused naming the column when not UTF-8; a
    string view reads as text, dictionary-encoded for drift as any text column."""
    import pyarrow as pa
    import pyarrow.parquet as pq
    from lifecycle.core.cli_support import scratch_workspace
    from lifecycle.core.params import load_params
    from lifecycle.data.init_command import init

    def as_kind(path, plans):
        t = pq.read_table(odd_types(path, len(plans), plan=plans))
        plan = t.column('plan').combine_chunks()
        plan = plan.dictionary_encode() if kind == 'dictionary' else plan.cast(pa.binary_view())
        t = t.set_column(t.schema.get_field_index('plan'), 'plan', plan)
        pq.write_table(t.set_column(4, 'churned', t.column('churned').cast(pa.string_view())), path)
        assert str(pq.read_schema(path).field('churned').type) == 'string_view'
        return path

    w = scratch_workspace(tmp_path / 'w')
    rng = np.random.default_rng(5)
    src = as_kind(w / 'odd.parquet', [p.encode() for p in rng.choice(['basic', 'pro', 'team'], 240)])
    env = {'LIFECYCLE_WORKSPACE': str(w)}
    r = invoke(init, ['--from', str(src), '--target', 'churned', '--out', str(w / 'p')], env=env)
    assert r.exit_code == 0, r.stderr
    p = load_params(w / 'p')['ingest']
    assert (p.columns['plan'].dtype, p.columns['plan'].allowed) == ('str', ['basic', 'pro', 'team'])
    res = ing.ingest_batch(sources.read_chunks(str(src), declared=p.columns), p, ws, source='odd', fingerprint='o')
    assert res.status == 'accepted' and not len(res.violations), res.reason
    df = ing.load_snapshot(ws.store, res.snapshot['version'])
    assert df.plan.isin(['basic', 'pro', 'team']).all() and df.churned.isin(['yes', 'no']).all()
    table = sources.read_table(str(src))  # (`drift` reads it alike)
    assert {str(table.schema.field(c).type) for c in ('plan', 'churned')} <= {
        'string', 'dictionary<values=string, indices=int32, ordered=0>'}  # fmt: skip
    bad = as_kind(tmp_path / 'bad.parquet', [b'basic', b'\xffsecret\xfe', None])
    for reader in (lambda: read(bad), lambda: sources.read_table(str(bad), declared={'plan': P.columns['plan']})):
        with pytest.raises(sources.SourceError, match='column plan holds binary values that are not UTF-8 text') as e:
            reader()
        assert 'secret' not in str(e.value)
    with pytest.raises(sources.SourceError, match='column plan holds binary values that are not UTF-8 text'):
        sources.refuse_binary(sources.read_table(str(bad)).schema, 'bad.parquet', {'plan': P.columns['plan']})


def test_a_parquet_time_of_day_reads_as_the_same_text_in_every_unit(tmp_path):
    import datetime as dt
    import pyarrow as pa
    import pyarrow.parquet as pq

    times = [dt.time(10, 30, 1, 250000), dt.time(10, 30, 1), dt.time(10, 30, 1, 250100), dt.time(0, 0, 0, 250), None]
    units = {'ms': pa.time32('ms'), 'us': pa.time64('us'), 'ns': pa.time64('ns')}
    pq.write_table(
        pa.table({u: pa.array(times, pa.time64('us')).cast(t, safe=False) for u, t in units.items()}),
        tmp_path / 't.parquet',
    )
    df = read(tmp_path / 't.parquet')
    assert df['us'].tolist() == ['10:30:01.250', '10:30:01', '10:30:01.250100', '00:00:00.000250', None], df
    assert df['ns'].tolist() == df['us'].tolist()
    assert df['ms'].tolist() == ['10:30:01.250', '10:30:01', '10:30:01.250', '00:00:00', None]


def test_a_binary_parquet_column_that_is_not_utf8_is_refused_naming_it_not_its_value(tmp_path):
    src = odd_types(tmp_path / 'bad.parquet', 3, plan=[b'basic', b'\xffsecret\xfe', None])
    for reader in (lambda: read(src), lambda: sources.read_table(str(src), declared={'plan': P.columns['plan']})):
        with pytest.raises(sources.SourceError, match='column plan holds binary values that are not UTF-8 text') as e:
            reader()
        assert 'secret' not in str(e.value)
    assert read(src, only={'spend'}).shape == (3, 5)  # (a reader not taking it: as it comes)
    assert read(src, declared={'spend': P.columns['income']}).plan.tolist()[1] == b'\xffsecret\xfe'  # (undeclared)


def with_uuid(df: pd.DataFrame, path):
    "`df` as Parquet with an undeclared `row_uuid` column of 16 raw bytes (fixed_size_binary(16), not UTF-8)."
    import uuid

    import pyarrow as pa
    import pyarrow.parquet as pq

    t = pa.Table.from_pandas(df, preserve_index=False)
    ids = [uuid.UUID(int=0xFEDCBA98 << 96 | i).bytes for i in range(len(df))]
    pq.write_table(t.append_column('row_uuid', pa.array(ids, pa.binary(16))), path)
    return path


def test_an_undeclared_binary_parquet_column_that_is_not_utf8_is_an_extra_column_not_a_refusal(ws, tmp_path, arrests):
    src = with_uuid(people(), tmp_path / 'p.parquet')
    loose = P.model_copy(update={'flags': P.flags.model_copy(update={'strict_schema': False})})
    r = ing.ingest_batch(sources.read_chunks(str(src), declared=loose.columns), loose, ws, source='p', fingerprint='p')
    assert r.status == 'accepted' and r.rows == 6 and 'extra_column' in set(r.violations.rule), r.violations
    w = make_workspace(tmp_path / 'ws2')
    env = {'LIFECYCLE_WORKSPACE': str(w), 'LIFECYCLE_KEYS_DIR': str(tmp_path / 'keys')}
    with_uuid(arrests.head(60), w / 'a.parquet')
    with_uuid(arrests.iloc[60:120], w / 'b.parquet')
    r = invoke(cmds().drift, ['--reference', str(w / 'a.parquet'), '--current', str(w / 'b.parquet')], env=env)
    assert r.exit_code == 0 and 'not UTF-8' not in r.stderr, r.stderr


def test_drift_refuses_a_declared_binary_parquet_column_not_utf8_though_read_before_the_params(tmp_path, arrests):
    "Review CP: drift reads Parquet files while its params load, with no contract; a declared column then passed."
    import pyarrow as pa
    import pyarrow.parquet as pq

    w = make_workspace(tmp_path / 'ws')
    env = {'LIFECYCLE_WORKSPACE': str(w), 'LIFECYCLE_KEYS_DIR': str(tmp_path / 'keys')}
    for name, rows in (('a', arrests.head(60)), ('b', arrests.iloc[60:120])):
        t = pa.Table.from_pandas(rows, preserve_index=False)
        raw = pa.array([b'\xff' + v.encode() for v in rows.colour], pa.binary())
        pq.write_table(t.set_column(t.schema.get_field_index('colour'), 'colour', raw), w / f'{name}.parquet')
    r = invoke(cmds().drift, ['--reference', str(w / 'a.parquet'), '--current', str(w / 'b.parquet')], env=env)
    assert r.exit_code == 4 and 'column colour holds binary values that are not UTF-8 text' in r.stderr, r.stderr
    assert 'White' not in r.stderr and 'Black' not in r.stderr


def test_names_and_paths_that_look_like_markup_are_printed_by_ingest_and_init_as_written(cli_ws, arrests):
    """Review CY: ingest's outcome and init's proposal read a column's name and a path as Rich markup, so a CSV column
    named `[/x]` (or a folder `d[/]x`) ended both commands in a traceback ("internal error: MarkupError"), init's after
    it had written its params folder."""
    from lifecycle.data.init_command import init

    w, env = cli_ws
    (w / 'd[').mkdir()
    arrests.head(80).assign(**{'[/x]': 'a', 'x\\': 'b'}).to_csv(w / 'd[' / ']x.csv', index=False)  # (`d[/]x.csv`)
    r = invoke(cmds().ingest, ['d[/]x.csv', '--dataset', 'arrests', '--no-report'], env=env)
    assert r.exit_code == 1 and not isinstance(r.exception, Exception), r.output  # (rejected: an extra column)
    assert 'MarkupError' not in r.output and 'd[/]x.csv: rejected' in r.stderr and '[/x]' in r.stderr, r.stderr
    r = invoke(init, ['--from', 'd[/]x.csv', '--target', 'released', '--out', 'p'], env=env)
    assert r.exit_code == 0 and 'd[/]x.csv: 80 rows' in r.stdout and '[/x]' in r.stdout, r.output
    assert '│ x\\ ' in r.stdout and 'x\\\\' not in r.stdout, r.stdout  # (one backslash: review CZ)


def test_a_missing_file_named_with_an_email_address_is_fingerprinted_withheld(tmp_path):
    """`fingerprint` of a file not there was `missing:` and its whole path, which a run's manifest (the ingest stage's
    `source` output) and a snapshot's record keep when the file is made between the fingerprint and the read: a name
    holding an e-mail address was kept whole. It is named as `shown_source` shows it, with a digest of the path so two
    such files still key the stage cache apart; a file named with no personal data keeps its fingerprint as before."""
    bob, ann = (sources.fingerprint(f'in/{n}@corp.example.csv', tmp_path) for n in ('bob', 'ann'))
    assert 'corp.example' not in bob + ann and bob.startswith('missing:') and 'name withheld' in bob, bob
    assert bob != ann and bob == sources.fingerprint('in/bob@corp.example.csv', tmp_path)  # (distinct, stable)
    assert sources.fingerprint('in/plain.csv', tmp_path) == f"missing:{tmp_path / 'in/plain.csv'}"
