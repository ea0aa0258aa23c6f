"""PII never reaches disk: a whole pipeline run over a batch carrying names, e-mails and phone numbers, then a search
of every file the run wrote for any raw value."""
from __future__ import annotations
import json
from pathlib import Path
import pandas as pd
import pytest
import yaml
from conftest import cli, cli_json

KEY = {'LIFECYCLE_PII_KEY': 'test-key-0123456789abcdef'}
MARKERS = [b'@example.org', b'Testperson', b'555-01']      # every raw value carries one of these

def with_people(arrests: pd.DataFrame) -> pd.DataFrame:
    n = len(arrests)
    return arrests.assign(name=[f'Ann{i:05d} Testperson' for i in range(n)],
                          email=[f'person{i % 4000:05d}@example.org' for i in range(n)],
                          phone=[f'555-01{i:05d}' for i in range(n)])

def declare_pii(ws: Path) -> None:
    p = ws / 'params/ingest.yaml'
    d = yaml.safe_load(p.read_text())
    d['source'] = 'data/people.csv'
    d['columns'].update(name={'dtype': 'str', 'pii': {'method': 'redact'}},
                        email={'dtype': 'str', 'pii': {'method': 'pseudonymise'}},
                        phone={'dtype': 'str', 'required': False, 'pii': {'method': 'drop'}})
    p.write_text(yaml.safe_dump(d, sort_keys=False))

def leaks(ws: Path) -> list[str]:
    "Files under the workspace (but the raw source) holding a raw PII value, Parquet read cell by cell."
    found = []
    for f in ws.rglob('*'):
        if not f.is_file() or f.parent.name == 'data': continue
        data = f.read_bytes()
        if data[:4] == b'PAR1':
            frame = pd.read_parquet(f).astype(str)
            text = '\n'.join(frame[c].str.cat(sep='\n') for c in frame.columns).encode()
        else: text = data
        if any(m in text for m in MARKERS): found.append(str(f.relative_to(ws)))
    return found

def test_no_raw_pii_in_any_file_a_pipeline_run_writes(workspace, arrests):
    (workspace / 'data').mkdir()
    people = with_people(arrests); people.to_csv(workspace / 'data/people.csv', index=False)
    declare_pii(workspace)
    r, out = cli_json(workspace, 'run', env=KEY)
    assert r.returncode == 0, out
    written = [f for f in workspace.rglob('*') if f.is_file() and f.parent.name != 'data']
    assert len(written) > 50                                   # snapshots, notebooks, site, MLflow db and artifacts
    assert leaks(workspace) == []
    ds = out['stages'][0]['outputs']['dataset_version']
    from lifecycle.store import Store
    from lifecycle.ingest import load_snapshot
    snap = load_snapshot(Store(workspace / '.lifecycle/store'), ds)
    assert 'phone' not in snap and set(snap['name']) == {'[redacted]'}
    assert snap['email'].str.fullmatch(r'[0-9a-f]{16}').all()
    first = people[people.year <= 2000].reset_index(drop=True)
    assert len(first) == len(snap)
    pairs = pd.DataFrame({'raw': first.email.values, 'pseudo': snap.email.values}).drop_duplicates()
    assert len(pairs) == first.email.nunique() == snap.email.nunique()    # one stable pseudonym per person

def test_without_the_key_pseudonymisation_refuses_to_run(workspace, arrests):
    (workspace / 'data').mkdir()
    with_people(arrests).to_csv(workspace / 'data/people.csv', index=False)
    declare_pii(workspace)
    r = cli(workspace, 'run', '--no-site')
    assert r.returncode == 1 and 'LIFECYCLE_PII_KEY' in ' '.join(r.stderr.split())
    assert leaks(workspace) == []

def test_with_auto_anonymisation_off_a_batch_carrying_pii_is_refused(workspace, arrests):
    (workspace / 'data').mkdir()
    with_people(arrests).head(100).to_csv(workspace / 'data/people.csv', index=False)
    declare_pii(workspace)
    p = workspace / 'params/ingest.yaml'; d = yaml.safe_load(p.read_text()); d['flags']['auto_anonymise'] = False
    p.write_text(yaml.safe_dump(d, sort_keys=False))
    r, out = cli_json(workspace, 'ingest', 'data/people.csv', '--dataset', 'arrests', env=KEY)
    assert r.returncode == 1 and {f['rule'] for f in out['findings']} == {'pii_unmasked'}
    assert {f['column'] for f in out['findings']} == {'name', 'email', 'phone'}
    assert leaks(workspace) == []
