"""PII never reaches disk: a whole pipeline run over a batch carrying names, e-mails and phone numbers, then a search
of every file the run wrote for any raw value."""

from __future__ import annotations
import json
import time
from pathlib import Path
import pandas as pd
import pytest
import yaml
from conftest import DIGEST, cli, cli_json, digests_masked

pytestmark = pytest.mark.slow  # pipeline runs over batches carrying PII, a server

KEY = {'LIFECYCLE_PII_KEY': 'test-key-0123456789abcdef'}
MARKERS = [b'@example.org', b'Testperson', b'555-01']  # every raw value carries one of these


def with_people(arrests: pd.DataFrame) -> pd.DataFrame:
    n = len(arrests)
    return arrests.assign(
        name=[f'Ann{i:05d} Testperson' for i in range(n)],
        email=[f'person{i % 4000:05d}@example.org' for i in range(n)],
        phone=[f'555-01{i:05d}' for i in range(n)],
    )


def declare_pii(ws: Path) -> None:
    p = ws / 'params/ingest.yaml'
    d = yaml.safe_load(p.read_text())
    d['source'] = 'data/people.csv'
    d['columns'].update(
        name={'dtype': 'str', 'personal': True, 'pii': {'method': 'redact'}},
        email={'dtype': 'str', 'personal': True, 'pii': {'method': 'pseudonymise'}},
        phone={'dtype': 'str', 'personal': True, 'required': False, 'pii': {'method': 'drop'}},
    )
    p.write_text(yaml.safe_dump(d, sort_keys=False))


def leaks(ws: Path, markers: list[bytes] = MARKERS) -> list[str]:
    "Files under the workspace (but the raw source) holding a raw PII value, Parquet read cell by cell."
    found = []
    for f in ws.rglob('*'):
        if not f.is_file() or f.parent.name == 'data':
            continue
        data = f.read_bytes()
        if data[:4] == b'PAR1':
            frame = pd.read_parquet(f).astype(str)
            text = '\n'.join(frame[c].str.cat(sep='\n') for c in frame.columns).encode()
        else:
            text = data
        if any(m in text for m in markers):
            found.append(str(f.relative_to(ws)))
    return found


def test_no_raw_pii_in_any_file_a_pipeline_run_writes(workspace, arrests):
    (workspace / 'data').mkdir()
    people = with_people(arrests)
    people.to_csv(workspace / 'data/people.csv', index=False)
    declare_pii(workspace)
    r, out = cli_json(workspace, 'run', env=KEY)
    assert r.returncode == 0, out
    written = [f for f in workspace.rglob('*') if f.is_file() and f.parent.name != 'data']
    assert len(written) > 50  # snapshots, notebooks, site, MLflow db and artifacts
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
    assert len(pairs) == first.email.nunique() == snap.email.nunique()  # one stable pseudonym per person


def test_without_the_key_pseudonymisation_refuses_to_run(workspace, arrests):
    (workspace / 'data').mkdir()
    with_people(arrests).to_csv(workspace / 'data/people.csv', index=False)
    declare_pii(workspace)
    r = cli(workspace, 'run', '--no-site')
    assert r.returncode == 2 and 'LIFECYCLE_PII_KEY' in ' '.join(r.stderr.split()), r.stderr
    assert 'no stage ran' in ' '.join(r.stderr.split()) and not list((workspace / 'reports/runs').glob('*'))
    assert leaks(workspace) == []


def test_with_auto_anonymisation_off_a_batch_carrying_pii_is_refused(workspace, arrests):
    (workspace / 'data').mkdir()
    with_people(arrests).head(100).to_csv(workspace / 'data/people.csv', index=False)
    declare_pii(workspace)
    p = workspace / 'params/ingest.yaml'
    d = yaml.safe_load(p.read_text())
    d['flags']['auto_anonymise'] = False
    p.write_text(yaml.safe_dump(d, sort_keys=False))
    r, out = cli_json(workspace, 'ingest', 'data/people.csv', '--dataset', 'arrests', env=KEY)
    assert r.returncode == 1 and {f['rule'] for f in out['findings']} == {'pii_unmasked'}
    assert {f['column'] for f in out['findings']} == {'name', 'email', 'phone'}
    assert leaks(workspace) == []


# --- values that failed their contract, and personal values where none is declared -----------------------------------
SYLLABLES = ['ka', 'mi', 'ra', 'lo', 'ne', 'ti', 'su', 'be', 'do', 'fa']


def person(i: int) -> str:
    "A generated personal name, 1,000 distinct ones; each carries the marker 'Testperson'."
    return (SYLLABLES[i % 10] + SYLLABLES[i // 10 % 10] + SYLLABLES[i // 100 % 10]).capitalize() + ' Testperson'


def with_reference(ws: Path, arrests: pd.DataFrame, **ingest_changes) -> None:
    "Ingest a clean batch and make it the drift reference, so rejected batches also get drift reports."
    (ws / 'data').mkdir(exist_ok=True)
    arrests[arrests.year <= 2000].head(1500).to_csv(ws / 'data/clean.csv', index=False)
    r, out = cli_json(ws, 'ingest', 'data/clean.csv', '--dataset', 'arrests')
    assert r.returncode == 0, out
    p = ws / 'params/ingest.yaml'
    d = yaml.safe_load(p.read_text())
    d['drift']['reference'] = out['snapshot']
    d.update(ingest_changes)
    p.write_text(yaml.safe_dump(d, sort_keys=False))


def declare_name(ws: Path, source: str) -> None:
    p = ws / 'params/ingest.yaml'
    d = yaml.safe_load(p.read_text())
    d['source'] = source
    d['columns']['name'] = {'dtype': 'str', 'personal': True, 'pii': {'method': 'redact'}}
    p.write_text(yaml.safe_dump(d, sort_keys=False))


@pytest.mark.parametrize('policy', ['fail_closed', 'fail_open'])
def test_a_name_column_labelled_as_a_declared_column_is_refused_and_never_written(workspace, arrests, policy):
    with_reference(workspace, arrests, policy=policy)
    batch = arrests[arrests.year > 2000].head(600).copy()
    batch['name'] = [person(i) for i in range(len(batch))]
    batch.rename(columns={'name': 'colour', 'colour': 'name'}).to_csv(workspace / 'data/swapped.csv', index=False)
    declare_name(workspace, 'data/swapped.csv')
    r = cli(workspace, 'ingest', 'data/swapped.csv', '--dataset', 'arrests')  # the terminal view
    assert r.returncode == 1 and 'Testperson' not in r.stdout + r.stderr
    assert 'colour' in r.stderr and 'look like personal names' in ' '.join(r.stderr.split())
    r, out = cli_json(workspace, 'ingest', 'data/swapped.csv', '--dataset', 'arrests')
    assert r.returncode == 1 and out['status'] == 'rejected' and out['snapshot'] is None and out['report'] is None
    found = {f['rule']: f for f in out['findings']}
    assert found['personal_data']['column'] == 'colour' and found['personal_data']['count'] == 600
    assert 'Testperson' not in r.stdout + r.stderr
    r = cli(workspace, 'run')  # and through the stage notebook
    assert r.returncode == 1 and 'Testperson' not in r.stdout + r.stderr
    assert list((workspace / 'reports/runs').glob('*/01_ingest.ipynb'))  # the evidence was written
    from lifecycle.core.audit import read

    log = read(workspace / '.lifecycle/audit.log')
    assert [e for e in log if e['action'] == 'ingest.reject' and 'personal' in e['reason']]
    assert cli(workspace, 'audit', 'verify').returncode == 0
    assert leaks(workspace, [b'Testperson']) == []


def test_values_that_fail_the_contract_are_quoted_as_digests_never_as_values(workspace, arrests):
    with_reference(workspace, arrests, policy='fail_open')
    batch = arrests[arrests.year > 2000].head(400).copy().astype({'age': object})
    batch.loc[batch.index[:2], 'colour'] = [person(1), person(2)]  # too few to look like a name column
    batch.loc[batch.index[2], 'age'] = 1961  # out of range
    batch.to_csv(workspace / 'data/some.csv', index=False)
    r, out = cli_json(workspace, 'ingest', 'data/some.csv', '--dataset', 'arrests')
    assert r.returncode == 0 and out['status'] == 'accepted_with_quarantine' and out['quarantined_rows'] == 3
    found = {f['rule']: f for f in out['findings']}
    assert found['unseen_category']['count'] == 2 and found['unseen_category']['found'].startswith(
        '2 distinct value(s), e.g. h:'
    )
    assert found['unseen_category']['expected'] == "one of ['Black', 'White']"  # vocabulary may be quoted
    said = digests_masked(found['out_of_range']['found'])  # a random digest may hold '1961'
    assert 'Testperson' not in r.stdout and 'h:<hash>' in said and '1961' not in said
    from lifecycle.store import Store
    from lifecycle.ingest import load_snapshot

    q = load_snapshot(Store(workspace / '.lifecycle/store'), out['quarantine'])
    assert len(q) == 3 and q['colour'].str.fullmatch(f'{DIGEST}|Black|White').all() and '1961' not in q['age'].tolist()
    assert leaks(workspace, [b'Testperson']) == []
    # the terminal may show a few such values, for a dataset that declares no personal column only
    r = cli(workspace, 'ingest', 'data/some.csv', '--dataset', 'arrests')
    assert person(1) not in r.stderr and "<a value withheld: it looks like a person's name>" in r.stderr  # (review
    assert '1961' in r.stderr  # CK: a name, a phone number or an address is withheld, one being enough)
    declare_name(workspace, 'data/some.csv')
    pd.read_csv(workspace / 'data/some.csv').assign(name='x').to_csv(workspace / 'data/some.csv', index=False)
    r = cli(workspace, 'ingest', 'data/some.csv', '--dataset', 'arrests')
    assert r.returncode == 0 and 'Testperson' not in r.stdout + r.stderr and 'h:' in r.stderr
    assert leaks(workspace, [b'Testperson']) == []


def test_a_personal_value_sent_to_the_server_is_refused_and_never_logged(trained):
    from lifecycle.serve.local import LocalServer
    from conftest import clean_env
    import httpx

    workspace = trained  # version 1 registered; deployed by `flags init`
    r = cli(workspace, 'flags', 'init')
    assert r.returncode == 0, r.stderr
    good = {'age': 30, 'checks': 2, 'employed': 'Yes', 'citizen': 'No'}
    with LocalServer(workspace, env=clean_env()) as srv, httpx.Client(base_url=srv.url, timeout=10) as http:
        refused = [
            http.post('/predict', json={'records': [{**good, 'employed': person(7)}]}),
            http.post('/invocations', json={'dataframe_records': [good, {**good, 'citizen': person(8)}]}),
            http.post('/predict', json={'records': [{**good, 'age': person(9)}]}),
            http.post('/predict', json={'records': [{**good, 'age': 250}]}),
        ]
        assert [x.status_code for x in refused] == [422] * 4
        assert all('Testperson' not in x.text for x in refused)
        assert (
            "column 'employed' row 0: expected one of the declared categories ['Yes', 'No']"
            in refused[0].json()['error']
        )
        assert (
            "column 'citizen' row 1" in refused[1].json()['error']
            and "column 'age' row 0" in refused[3].json()['error']
        )
        # a column the model does not read (here a personal one) is ignored, as MLflow does, and dropped unlogged
        ok = http.post('/predict', json={'records': [{**good, 'name': person(10)}], 'context': {'targetingKey': 'u'}})
        assert ok.status_code == 200 and 'Testperson' not in ok.text, ok.text
        rid = ok.json()['request_id']
        from lifecycle.predlog import read_log

        db = f"sqlite:///{workspace / '.lifecycle/predictions.db'}"
        end = time.monotonic() + 10
        while time.monotonic() < end and rid not in set(read_log(db)['request_id']):
            time.sleep(0.05)
    log = read_log(db)
    assert len(log) == 1 and log['inputs'][0] == {
        k: [v] for k, v in good.items()
    }  # the model inputs, as monitoring needs
    assert leaks(workspace, [b'Testperson']) == []


def test_a_digest_salt_cut_short_is_refused_by_ingestion_naming_it_and_one_is_made_whole(workspace, arrests):
    "A salt emptied or cut short (a crash as it was written) would make every digest and pseudonym easy to reverse."
    from lifecycle.core.store import StateError
    from lifecycle.data.pii import finding_salt

    made = workspace / 'salt' / 'digest.salt'
    assert len(finding_salt(made)) == 64 and made.stat().st_mode & 0o777 == 0o600
    assert finding_salt(made) == made.read_bytes()  # made once
    made.write_bytes(made.read_bytes()[:20])
    with pytest.raises(StateError, match=r"digest.salt: expected .* \(64 hex digits\), found 20 byte\(s\)"):
        finding_salt(made)
    (workspace / 'data').mkdir()
    arrests.head(50).to_csv(workspace / 'data/a.csv', index=False)
    salt = workspace / '.lifecycle' / 'keys' / 'digest.salt'
    salt.parent.mkdir(parents=True, exist_ok=True)
    salt.write_bytes(b'\n')
    salt.chmod(0o600)  # as `create_once` makes it (one others may read is refused for that: test_secret_modes.py)
    r = cli(workspace, 'ingest', 'data/a.csv', '--dataset', 'arrests', '--no-report')
    said = ' '.join(r.stderr.split())
    assert r.returncode == 4 and 'Traceback' not in r.stderr and f'{salt}: expected the workspace' in said, r.stderr
    assert salt.read_bytes() == b'\n'  # left for its owner to restore, never replaced


@pytest.mark.parametrize('repeats', [True, False])
def test_a_file_without_its_header_row_is_refused_without_quoting_its_first_row(workspace, arrests, repeats):
    """Read with a header, a file that has none names its columns after its first row's values: a one-word name or a
    postcode, which look like nothing personal alone, were quoted as undeclared (or repeated) columns in the terminal,
    the ingest log and the audit log. A header naming no declared column reads as data: no name of it is quoted."""
    (workspace / 'data').mkdir()
    batch = arrests[arrests.year > 2000].head(50).copy()
    batch['name'] = [person(i) for i in range(len(batch))]
    batch.iloc[0, batch.columns.get_loc('name')] = 'Testperson'  # one word: not a personal name by its look alone
    if not repeats:  # (the first row's values all distinct: the contract's check, not the reader's, refuses it)
        batch = batch[['released', 'colour', 'year', 'age', 'name']]
        batch.iloc[0, :4] = ['Yes', 'White', 2002, 21]
    batch.to_csv(workspace / 'data/noheader.csv', index=False, header=False)
    declare_name(workspace, 'data/noheader.csv')
    r = cli(workspace, 'ingest', 'data/noheader.csv', '--dataset', 'arrests', '--no-report')
    said = ' '.join((r.stdout + r.stderr).split())
    assert r.returncode == (4 if repeats else 1) and 'may be data' in said and 'Testperson' not in said, said
    r = cli(workspace, 'ingest', 'data/noheader.csv', '--dataset', 'arrests', '--no-report', '--json')
    assert r.returncode == (4 if repeats else 1) and 'Testperson' not in r.stdout + r.stderr
    json.loads(r.stdout)
    assert leaks(workspace, [b'Testperson']) == []


def test_a_first_row_holding_a_declared_columns_name_is_not_quoted_as_undeclared_columns(workspace, arrests):
    """A file without its header row whose first row holds, among its values, a declared column's name (`employed` in
    a status column): one name of the contract made the whole row read as a header, and its other values (a person's
    one-word name) were quoted as undeclared columns. A header naming fewer than half its columns by the contract's
    names, and not all of them, may be data (`pii.header_may_be_data`): no name of it is quoted."""
    (workspace / 'data').mkdir()
    batch = arrests[arrests.year > 2000].head(50)[['released', 'colour', 'year', 'age']].copy()
    batch['status'] = 'unemployed'
    batch['nickname'] = [person(i).split()[0] for i in range(len(batch))]
    batch.iloc[0, 4:] = ['employed', 'Testperson']
    batch.to_csv(workspace / 'data/noheader.csv', index=False, header=False)
    for args in ([], ['--json']):
        r = cli(workspace, 'ingest', 'data/noheader.csv', '--dataset', 'arrests', '--no-report', *args)
        said = ' '.join((r.stdout + r.stderr).split())
        assert r.returncode == 1 and 'may be data' in said and 'Testperson' not in said, said
    assert leaks(workspace, [b'Testperson']) == []


def test_a_long_value_is_judged_in_time_linear_in_its_length():
    """The e-mail pattern searched within text backtracked over every word character from each position: one 200 KB
    cell took 100 s of an ingest, a 1 MB one hours (review M). Bounded by the parts' real lengths, 1 MB takes a fraction
    of a second; the bound here is a guard against that cliff, not a speed goal."""
    import time
    from lifecycle.data.pii import looks_personal

    for text in ('SECRETLONG' * 100_000, ('a' * 64 + '@') * 15_000):  # (1 MB of word, of words joined by `@`)
        start = time.perf_counter()
        assert looks_personal(pd.Series([text] + [f'plan {i}' for i in range(99)])) is None
        assert time.perf_counter() - start < 20
    note = 'x' * 64 + '@example.org in a note'  # (a local part of 64, the most an address has: still one)
    assert looks_personal(pd.Series([note] + ['ok'] * 20)).kind == 'text holding an e-mail address'


def test_a_wide_export_with_a_renamed_column_names_it(workspace, arrests):
    """The header rule withheld every undeclared name of a wide export (7 of its 17 names declared) as a first line
    that may be data, the renamed column among them (review N): a header naming most of the contract's columns is
    one."""
    (workspace / 'data').mkdir()
    wide = arrests[arrests.year > 2000].head(50).rename(columns={'employed': 'employment'})
    wide = wide.assign(**{f'extra_{i}': i for i in range(9)})
    wide.to_csv(workspace / 'data/wide.csv', index=False)
    r = cli(workspace, 'ingest', 'data/wide.csv', '--dataset', 'arrests', '--no-report')
    said = ' '.join((r.stdout + r.stderr).split())
    assert r.returncode == 1 and "undeclared column(s) ['employment'," in said and 'may be data' not in said, said


def test_a_pii_key_of_random_bytes_is_taken_as_its_bytes(monkeypatch):
    "Review AB: a key that is no UTF-8 (`head -c 48 /dev/urandom`) ended every command in a UnicodeEncodeError."
    import os
    from lifecycle.data.pii import PiiError, load_key

    raw = bytes(range(128, 176))
    monkeypatch.setitem(os.environb, b'LIFECYCLE_PII_KEY', raw)
    assert load_key() == raw
    monkeypatch.setitem(os.environb, b'LIFECYCLE_PII_KEY', b'\xff' * 8)
    with pytest.raises(PiiError, match=r'too short \(8 bytes'):
        load_key()


def test_a_file_named_with_an_e_mail_address_after_words_joined_by_hyphens_is_withheld():
    """`holds_contact` read `export-for-review-meeting-2024-01-31-sent-by-bob@corp.example.csv` as one local part of
    over 64 characters before its '@', too long for an address, so every message, the batch log and drift's table
    named such a file whole; an ordinary name with an '@' (`logo-...@2x.png`, `...@k10.csv`) stays as it is."""
    from lifecycle.data.pii import holds_contact
    from lifecycle.data.sources import shown_source

    long = 'quarterly-customer-export-for-review-meeting-2024-01-31-sent-by-bob@corp.example.csv'
    assert holds_contact(long) and holds_contact('x' * 61 + '-bob@corp.example')
    assert shown_source(f'data/{long}') == 'data/<file name withheld: it holds personal data>'
    for ordinary in ('logo-final-version-for-the-website-homepage-banner-retina-display@2x.png',
                     'a-very-long-name-of-a-metric-for-the-validation-report-of-the-model@k10.csv',
                     'data-2024-01-01.csv', 'user+tag', 'recall@0.5'):  # fmt: skip
        assert not holds_contact(ordinary), ordinary


def test_a_file_named_with_an_e_mail_address_after_words_joined_by_dots_or_nothing_is_withheld():
    """Reading words joined by '-', '_' or '+' alone left a run of over 64 characters joined by '.' (or by capitals)
    before the '@' read as one local part, too long for an address: shown_source named such a file whole. The last
    64 characters of the run are read as the local part; an ordinary long name with an '@' stays as it is."""
    from lifecycle.data.pii import holds_contact
    from lifecycle.data.sources import shown_source

    dots = 'quarterly.customer.export.for.review.meeting.2024.01.31.sent.by.bob@corp.example.csv'
    camel = 'QuarterlyCustomerExportForTheReviewMeetingOfJanuaryTwentyFourSentByBob@corp.example.csv'
    assert shown_source(f'data/{dots}') == 'data/<file name withheld: it holds personal data>'
    assert holds_contact(camel)
    for ordinary in ('a.very.long.name.of.a.metric.for.the.validation.report.of.the.model@k10.csv',
                     'model.checkpoint.from.the.long.experiment.run.number.forty.two.final@v1.2.csv'):  # fmt: skip
        assert not holds_contact(ordinary), ordinary


def test_an_os_error_naming_a_file_with_an_escaped_name_withholds_it():
    """An OSError quotes its file as repr does: a name holding a byte that is not UTF-8 (an old Latin-1 export, read as
    `\\udcf6`) or a backslash is written escaped, so `sources._withheld_in` found no name to replace and the e-mail
    address went out whole. The escaped form is replaced too."""
    from lifecycle.data.sources import _withheld_in

    for name in ('/in/m\udcfcller-bob@corp.example.csv', '/in/a\\bob@corp.example.csv', '/in/t\tbob@corp.example.csv'):
        said = _withheld_in(f"{name}: unreadable while reading: {FileNotFoundError(2, 'gone', name)}", name)
        assert 'bob@' not in said and said.count('<file name withheld: it holds personal data>') == 2, said
