"""The ingestion checks streamed over several chunks: findings accumulate into one per rule and column, a check that
stops the reading stops it, and no temporary file survives an exception or a killed process. (Each check alone is
tested on three-row frames in nbs/api/data/03_checks.ipynb.)"""

from __future__ import annotations
import os
import re
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
import pandas as pd
import pytest
from lifecycle.core.params import IngestParams, ColumnRule
from lifecycle.core.workspace import Workspace
from lifecycle.core.store import Store
from lifecycle.data import ingest as ing
from lifecycle.data.checks import CHECKS

P = IngestParams(
    dataset='people',
    source='people.csv',
    target='label',
    min_rows=1,
    max_duplicate_rate=1.0,
    columns={
        'label': ColumnRule(dtype='str', personal=False, allowed=['Yes', 'No']),
        'age': ColumnRule(dtype='int', personal=False, min=10, max=100),
        'note': ColumnRule(dtype='str', personal=False, required=False, max_null_rate=0.5),
    },
)


def frame(n: int, start: int = 0) -> pd.DataFrame:
    return pd.DataFrame(
        {
            'label': ['Yes', 'No'] * (n // 2) + ['Yes'] * (n % 2),
            'age': [20 + (start + i) % 50 for i in range(n)],
            'note': [f'n{start + i}' for i in range(n)],
        }
    )


@pytest.fixture
def settings(tmp_path):
    (tmp_path / 'settings.ini').write_text('[workspace]\n')
    return Workspace.open(tmp_path)


def temporaries(s) -> list[Path]:
    d = s.store_dir / 'tmp'
    return sorted(d.iterdir()) if d.is_dir() else []


def counted(chunks: list[pd.DataFrame], read: list):
    "The chunks, noting each one as it is read."
    for i, c in enumerate(chunks):
        read.append(i)
        yield c


def test_findings_accumulate_over_chunks_into_one_per_rule_and_column(settings):
    chunks = [frame(3, 3 * i).assign(age=[20, 30, 500 + i]) for i in range(4)]
    chunks[1] = chunks[1].astype({'note': object})
    chunks[2].loc[0, 'label'] = 'Maybe'
    with pytest.raises(ing.BatchRejected) as e:
        ing.ingest_batch(chunks, P, settings, source='b.csv', fingerprint='fp')
    v = e.value.result.violations.set_index('rule')
    assert list(v.index) == ['out_of_range', 'unseen_category'] and v.loc['out_of_range', 'count'] == 4
    assert v.loc['out_of_range', 'rate'] == 4 / 12 and v.loc['out_of_range', 'found'].startswith(
        '4 distinct value(s), e.g. h:'
    )
    assert e.value.result.examples == {
        ('out_of_range', 'age'): ['500', '501', '502', '503'],
        ('unseen_category', 'label'): ['Maybe'],
    }
    assert e.value.result.rows == 12 and temporaries(settings) == []


def test_a_type_change_in_later_chunks_is_one_finding_and_nothing_after_it_is_written(settings):
    chunks = [frame(5), frame(5, 5).astype({'age': str}), frame(5, 10).astype({'age': str})]
    with pytest.raises(ing.BatchRejected) as e:
        ing.ingest_batch(
            chunks, P.model_copy(update={'policy': 'fail_open'}), settings, source='b.csv', fingerprint='fp'
        )
    r = e.value.result
    assert (r.violations.rule == 'dtype').sum() == 1 and r.status == 'rejected' and 'age' not in r.sample
    assert list(Store(settings.store_dir).records('datasets')) == [] and temporaries(settings) == []


def test_personal_data_in_a_later_chunk_stops_the_reading_and_stores_nothing(settings):
    people = frame(4, 10).assign(note=[f'p{i}@example.org' for i in range(4)])
    read: list = []
    with pytest.raises(ing.BatchRejected) as e:
        ing.ingest_batch(
            counted([frame(4), people, frame(4, 20)], read),
            P.model_copy(update={'policy': 'fail_open'}),
            settings,
            source='b.csv',
            fingerprint='fp',
        )
    r = e.value.result
    assert read == [0, 1] and r.rows == 8 and r.sample is None and list(r.violations.rule) == ['personal_data']
    assert (
        'example.org' not in str(e.value) + settings.audit_path.read_text() + ing.ingest_log_path(settings).read_text()
    )
    assert list(Store(settings.store_dir).records('datasets')) == [] and temporaries(settings) == []


def test_a_generalised_value_no_band_takes_is_out_of_range_not_a_null(settings):
    """Review AM: a generalised column's value beyond its bins (age 97 for bands up to 81), or text in it, was masked to
    a null: stored with no finding where the column took some nulls, else refused as "broken extraction or join". It
    fails as out of range, never counted as a null, its value never shown."""
    from lifecycle.data.checks import Chunk

    p = P.model_copy(
        update={
            'columns': {
                **P.columns,
                'age': ColumnRule(dtype='int', personal=True, max_null_rate=0.1,
                                  pii={'method': 'generalise', 'bins': [18, 40, 60, 81]}),
            },  # fmt: skip
            'policy': 'fail_open',
        }
    )
    chunks = [frame(6), frame(6, 6).astype({'age': object})]
    chunks[0].loc[2, 'age'], chunks[1].loc[[1, 4], 'age'] = 97, ['Johnny Secret', None]
    r = ing.ingest_batch(chunks, p, settings, source='b.csv', fingerprint='fp')
    v = r.violations.set_index('rule')
    assert r.status == 'accepted_with_quarantine' and (r.accepted_rows, r.quarantined_rows) == (10, 2)
    assert list(v.index) == ['out_of_range'] and v.loc['out_of_range', 'count'] == 2, v  # (no null spike: its one
    assert v.loc['out_of_range', 'expected'] == 'a number within the bands of its generalise rule [18, 81)'  # null)
    said = str(r.violations.to_dict()) + settings.audit_path.read_text() + ing.ingest_log_path(settings).read_text()
    assert 'Johnny' not in said and r.shown_examples(p) == {} and r.examples == {}  # (review AP: not even in memory)
    quoted = set(re.findall(r'h:[0-9a-f]+', v.loc['out_of_range', 'found']))
    held = ing.load_snapshot(Store(settings.store_dir), r.quarantine['version'])
    assert set(held['age']) == quoted and len(quoted) == 2  # (review AP: both were the digest of nothing)
    assert not re.search(r'\b97\b', str(r.violations.to_dict()))  # (not the ingest log: its latency may read 0.97)
    c = Chunk.masked(chunks[0], p, None)
    assert list(c.outside) == ['age'] and c.outside['age'][0].tolist() == [False, False, True, False, False, False]
    assert c.raw.age.tolist() == ['18-40', '18-40', None, '18-40', '18-40', '18-40'] and '97' in c.outside['age'][1]
    bands = r"age: out of range: expected a number within the bands of its generalise rule \[18, 81\), found 2 "
    with pytest.raises(ing.BatchRejected, match=bands):
        ing.ingest_batch(chunks, p.model_copy(update={'policy': 'fail_closed'}), settings, source='b', fingerprint='f')


def test_personal_data_declared_but_not_masked_is_refused_on_the_header(settings):
    p = P.model_copy(
        update={
            'flags': P.flags.model_copy(update={'auto_anonymise': False}),
            'columns': {**P.columns, 'email': ColumnRule(dtype='str', personal=True, pii={'method': 'redact'})},
        }
    )
    read: list = []
    with pytest.raises(ing.BatchRejected) as e:
        ing.ingest_batch(
            counted([frame(3).assign(email='a@example.org')] * 3, read), p, settings, source='b.csv', fingerprint='fp'
        )
    assert read == [0] and list(e.value.result.violations.rule) == ['pii_unmasked'] and e.value.result.rows == 0


def test_every_finding_names_a_registered_check_with_its_severity_and_meaning(settings):
    bad = frame(6).assign(age=[20, None, 30, 999, 40, 40], note=[None] * 4 + ['a', 'a'], extra=1)
    lax = P.model_copy(
        update={
            'policy': 'fail_open',
            'max_duplicate_rate': 0.0,
            'flags': P.flags.model_copy(update={'strict_schema': False}),
        }
    )
    r = ing.ingest_batch([bad, bad], lax, settings, source='b.csv', fingerprint='fp')
    v = r.violations
    assert list(v.rule) == ['extra_column', 'nulls', 'null_spike', 'out_of_range', 'duplicates']
    for f in v.itertuples():
        c = CHECKS[f.rule]
        assert f.meaning == c.meaning and f.row_level == c.row_level and f.severity in (c.severity, 'low')
    assert r.status == 'accepted_with_quarantine' and (r.accepted_rows, r.quarantined_rows) == (8, 4)


@pytest.mark.parametrize('where', ['source', 'drift', 'store'])
def test_an_exception_anywhere_leaves_no_temporary_file(settings, monkeypatch, where):
    ref = ing.ingest_batch([frame(40)], P, settings, source='ref.csv', fingerprint='ref')

    def source():
        yield frame(40, 100)
        if where == 'source':
            raise OSError('the source went away')
        yield frame(40, 200)

    def fail(*a, **k):
        raise RuntimeError(f'failed in {where}')

    if where == 'drift':
        monkeypatch.setattr(ing, '_compare', fail)
    if where == 'store':
        monkeypatch.setattr(Store, 'put_record', fail)
    with pytest.raises((OSError, RuntimeError)):
        ing.ingest_batch(source(), P, settings, source='b.csv', fingerprint='fp', reference=ref.snapshot['version'])
    assert temporaries(settings) == []
    assert [r['version'] for r in Store(settings.store_dir).records('datasets')] == [ref.snapshot['version']]


@pytest.mark.slow  # a process killed with SIGKILL mid-write
def test_a_killed_ingest_leaves_a_temporary_file_that_the_next_ingest_removes(settings, tmp_path):
    script = textwrap.dedent(f"""
        import time, pandas as pd
        from lifecycle.core.params import IngestParams
        from lifecycle.core.workspace import Workspace
        from lifecycle.data.ingest import ingest_batch
        p = IngestParams.model_validate_json({P.model_dump_json()!r})
        def chunks():
            yield pd.DataFrame({frame(50).to_dict('list')!r})
            time.sleep(120)                      # killed here, with the first chunk in a temporary file
        ingest_batch(chunks(), p, Workspace.open({str(tmp_path)!r}), source='b.csv', fingerprint='fp')
    """)
    proc = subprocess.Popen(
        [sys.executable, '-c', script], env={**os.environ, 'PYTHONPATH': str(Path(ing.__file__).parents[2])}
    )
    deadline = time.time() + 60
    while time.time() < deadline and not temporaries(settings) and proc.poll() is None:
        time.sleep(0.05)
    left = temporaries(settings)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert len(left) == 1 and left[0].name.endswith('.parquet.tmp') and temporaries(settings) == left
    r = ing.ingest_batch([frame(10)], P, settings, source='next.csv', fingerprint='fp2')
    assert r.status == 'accepted' and temporaries(settings) == []


@pytest.mark.parametrize(
    'column, values',
    [('age', ['30', 'twenty', '41']), ('label', [1, 0, 1])],  # a range check and a category check on the wrong type
)
def test_a_mistyped_column_gives_its_type_finding_only_not_an_empty_value_finding(settings, column, values):
    bad = frame(3).astype({column: object}).assign(**{column: values})
    with pytest.raises(ing.BatchRejected) as e:
        ing.ingest_batch([bad], P, settings, source='b.csv', fingerprint='fp')
    v = e.value.result.violations
    assert v[['rule', 'column']].values.tolist() == [['dtype', column]] and (v['count'] >= 0).all()
    assert not e.value.result.examples  # no raw TypeError text kept as an 'example value'


def test_a_header_less_files_first_row_is_never_quoted_as_a_column_name():
    from lifecycle.data.checks import _header_hint

    first_row = 'ann.lee@example.com;Ann Lee;Yes'
    hint = _header_hint([first_row], P)
    assert 'another delimiter' in hint and 'ann.lee' not in hint and 'Ann Lee' not in hint


def test_the_terminals_examples_of_unseen_categories_withhold_a_phone_number_or_a_name(settings):
    """Review CK: a dataset that declares no personal column has its failing values shown on the terminal; a phone
    number (one is too few for the detector to call the column personal) was quoted there as an unseen category."""
    f = frame(8)
    f.loc[[1, 2, 3], 'label'] = ['Maybe', '+44 7700 900123', 'Ann Example']
    with pytest.raises(ing.BatchRejected, match='unseen') as e:
        ing.ingest_batch([f], P, settings, source='b.csv', fingerprint='fp')
    shown = e.value.result.shown_examples(P)
    assert sorted(shown[('unseen_category', 'label')]) == [
        "'Maybe'", '<a value withheld: it holds a phone number>', "<a value withheld: it looks like a person's name>"
    ], shown
    assert '7700' not in str(e.value) and 'Ann' not in str(e.value)


def test_the_terminals_example_of_a_huge_unseen_value_is_cut_short_with_its_length(settings):
    """Review HH: a 5 MB field in a category column was printed whole as the terminal's example of an unseen category,
    filling the screen; the example now keeps the value's first characters and says how long it is."""
    f = frame(8)
    f.loc[1, 'label'] = 'X' * 5_000_000
    with pytest.raises(ing.BatchRejected, match='unseen') as e:
        ing.ingest_batch([f], P, settings, source='b.csv', fingerprint='fp')
    (said,) = e.value.result.shown_examples(P)[('unseen_category', 'label')]
    assert said == repr('X' * 120) + '... (5,000,000 characters)', said[:200]


def test_a_batch_lacking_a_required_column_has_no_duplicates_finding_from_the_columns_left(settings):
    """Review HH: `age` renamed `Age` upstream was refused as missing, and also as 76% duplicates: the rows, compared
    without `age`, looked alike. A duplicate rate is not measured on rows missing a column of the contract."""
    f = frame(8).drop(columns=['age']).assign(Age=range(8), note='same')
    strict = P.model_copy(update={'max_duplicate_rate': 0.1})
    with pytest.raises(ing.BatchRejected) as e:
        ing.ingest_batch([f], strict, settings, source='b.csv', fingerprint='fp')
    rules = set(e.value.result.violations.rule)
    assert 'missing_column' in rules and 'duplicates' not in rules, rules
    assert e.value.result.metrics['duplicate_rate'] is None


def test_allowed_values_of_a_number_or_boolean_column_are_compared_in_its_type(settings, tmp_path):
    """`y: {dtype: int, allowed: ['0', '1']}` (what /feedback and the monitor read as the target's labels): compared
    as text, no number was ever among them, so every row of every batch was refused; serving refused every input so."""
    import numpy as np
    from lifecycle.core.params import ParamsError, load_file
    from lifecycle.serve.models import check_inputs, input_contract
    from lifecycle.serve.scoring import InputError

    rules = {
        'y': ColumnRule(dtype='int', personal=False, allowed=['0', '1']),
        'r': ColumnRule(dtype='float', personal=False, allowed=['0.5', '1']),
        'b': ColumnRule(dtype='bool', personal=False, allowed=['true']),
    }
    p = P.model_copy(update={'target': 'y', 'columns': rules})
    ok = pd.DataFrame({'y': [0, 1, 1, 0], 'r': [0.5, 1.0, 0.5, 1.0], 'b': [True] * 4})
    assert ing.ingest_batch([ok], p, settings, source='b.csv', fingerprint='fp').status == 'accepted'
    with pytest.raises(ing.BatchRejected) as e:
        ing.ingest_batch([ok.assign(y=[0, 1, 2, 0])], p, settings, source='c.csv', fingerprint='fp2')
    assert e.value.result.violations[['rule', 'column', 'count']].values.tolist() == [['unseen_category', 'y', 1]]
    served = input_contract(rules, ['y', 'r', 'b'])
    check_inputs({'y': np.array([1, 0]), 'r': np.array([0.5, 1.0]), 'b': np.array([True, True])}, served)
    check_inputs({'y': np.array([1, 0] * 40), 'r': np.array([0.5] * 80), 'b': np.array([True] * 80)}, served)
    with pytest.raises(InputError, match=r"column 'y' row 1: expected one of the declared categories"):
        check_inputs({'y': np.array([1, 2])}, served)
    (tmp_path / 'ingest.yaml').write_text(
        "dataset: d\nsource: d.csv\ntarget: y\ncolumns:\n  y: {dtype: int, personal: false, allowed: ['0', 'one']}\n"
    )
    with pytest.raises(ParamsError, match=r"ingest\.yaml: key 'columns\.y': allowed: 'one' is not a whole number"):
        load_file(tmp_path / 'ingest.yaml', type(P))


@pytest.mark.parametrize(
    'dtype, allowed, positive, allowed_positive',
    [('int', ['0', '1'], 2, 1.0), ('float', ['0.5', '1'], 0.25, 1), ('bool', ['true'], False, True)],
)
def test_a_positive_class_a_number_or_boolean_target_does_not_allow_is_refused_with_the_params(
    dtype, allowed, positive, allowed_positive
):
    """A text target's positive class must be one of its allowed classes; a number's or boolean's, now that its allowed
    values are its classes (compared in its type), was not checked against them: no row could be positive, and
    training refused the run after ingestion and features had run."""
    from lifecycle.core.params import _no_positive

    rule = ColumnRule(dtype=dtype, personal=False, allowed=allowed)
    assert _no_positive(positive, rule) == f"is not one of the {len(allowed)} classes ingest.yaml allows"
    assert _no_positive(allowed[-1], rule) == _no_positive(allowed_positive, rule) == ''


def test_a_personal_columns_allowed_entries_are_not_read_in_its_declared_type(settings):
    """A personal column is checked as the text its masking writes (the contract declares it str and checks none of
    its rules), so ingest.yaml's `allowed` there is not read as its dtype: a generalised int column listing its bands
    (`allowed: ['18-40', '40-81']`) passed the params, then every ingest failed building the contract with a bare
    ValueError ('18-40' is not a whole number)."""
    from lifecycle.data.checks import contract

    age = ColumnRule(dtype='int', personal=True, allowed=['18-40', '40-81'],
                     pii={'method': 'generalise', 'bins': [18, 40, 81]})  # fmt: skip
    p = P.model_copy(update={'columns': {**P.columns, 'age': age}})
    assert contract(p).columns['age'].checks == []
    r = ing.ingest_batch([frame(6)], p, settings, source='b.csv', fingerprint='fp')
    assert r.status == 'accepted', r.violations


def test_serving_refuses_an_allowed_category_outside_the_columns_declared_range():
    """A column with both `allowed` and `min`/`max`: ingestion refuses a value outside either, serving checked the
    categories alone, so an allowed value out of range (never in a batch, so never trained on) reached the model."""
    import numpy as np
    from lifecycle.serve.models import check_inputs, input_contract
    from lifecycle.serve.scoring import InputError

    rules = {'n': ColumnRule(dtype='int', personal=False, allowed=['0', '1', '2', '3'], min=1, max=2)}
    served = input_contract(rules, ['n'])
    check_inputs({'n': np.array([1, 2])}, served)
    check_inputs({'n': np.array([1, 2] * 40)}, served)
    for rows in (np.array([2, 3]), np.array([2] * 70 + [0])):  # (a request's few rows, and a batch's many)
        with pytest.raises(InputError, match=rf"column 'n' row {len(rows) - 1}: expected one of .*\[1, 2\]"):
            check_inputs({'n': rows}, served)


def test_a_rule_whose_allowed_values_all_lie_outside_its_range_is_refused_when_params_are_read():
    """`allowed: ['1', '2']` with `min: 5`: ingestion checks both, so every batch was refused, and serving refused
    every value as 'one of the declared categories []'; the rule is refused as read, naming both, as min above max is.
    Bounds count as inside (ingestion's `ge`/`le`)."""
    with pytest.raises(ValueError, match=r"allowed: none of \['1', '2'\] is within min/max \[5, inf\]"):
        ColumnRule(dtype='int', personal=False, allowed=['1', '2'], min=5)
    with pytest.raises(ValueError, match=r"none of \['0.5'\] is within min/max \[-inf, 0.25\]"):
        ColumnRule(dtype='float', personal=False, allowed=['0.5'], max=0.25)
    assert ColumnRule(dtype='int', personal=False, allowed=['1', '2'], min=2, max=2).allowed == ['1', '2']


def test_a_range_on_a_text_column_is_refused_when_params_are_read():
    """`min`/`max` on a `dtype: str` column passed the params: ingestion let every text through, and serving failed
    each request with a bare TypeError ('<' not supported between 'str' and 'float'); now refused as read."""
    from lifecycle.core.params import IngestParams

    with pytest.raises(ValueError, match=r"columns\.label[\s\S]*min/max bound numbers, and the column is declared str"):
        label = dict(dtype='str', personal=False, min=1)
        IngestParams.model_validate(P.model_dump() | {'columns': {**P.model_dump()['columns'], 'label': label}})
