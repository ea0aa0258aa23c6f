"""A CSV file from another system is read as `csv:` in ingest.yaml says (delimiter, header-less with given names,
encoding, whitespace, thousands separators, gzip), wrong dialect keys are refused naming the key, a duplicated header or
a workbook named .csv is refused for what it is; `lifecycle drift` leaves out what the dataset says, prints strict JSON,
and `ingest stats` counts unreadable files."""

from __future__ import annotations
import contextlib
import gzip
import json
import re
import zipfile
from pathlib import Path
import pandas as pd
import pytest
from lifecycle.core.cli_support import invoke
from lifecycle.core.params import ColumnRule, CsvDialect, IngestParams, ParamsError, load_file
from lifecycle.core.workspace import Workspace
from lifecycle.data import commands, ingest as ing
from lifecycle.data.sources import SourceError, read_chunks
from conftest import make_workspace, set_yaml


def strict(text: str):
    "Parse JSON refusing NaN and infinities, as a strict parser would."

    def bad(c):
        raise ValueError(f'non-standard JSON constant {c}')

    return json.loads(text, parse_constant=bad)


@pytest.mark.parametrize(
    'csv, key, says',
    [
        ({'delimiter': ';;'}, 'csv.delimiter', 'one character'),
        ({'encoding': 'klingon-8'}, 'csv.encoding', 'not a text encoding of files'),
        ({'header': False}, 'csv.names', 'required'),
        ({'header': False, 'names': ['a', 'b', 'a']}, 'csv.names', "['a'] given more than once"),
        ({'thousands': '.', 'decimal': '.'}, 'csv.thousands', 'also the decimal mark'),
        ({'decimal': ',,'}, 'csv.decimal', 'one character'),
        ({'compression': 'zip'}, 'csv.compression', "'infer', 'none' or 'gzip'"),
        ({'delimeter': ';'}, 'csv.delimeter', 'unknown key'),
    ],
)
def test_dialect_keys_are_validated_naming_the_key(tmp_path, csv, key, says):
    import yaml

    f = tmp_path / 'ingest.yaml'
    base = dict(dataset='d', source='d.csv', target='a', columns={'a': {'dtype': 'str', 'personal': False}})
    f.write_text(yaml.safe_dump({**base, 'csv': csv}))
    with pytest.raises(ParamsError) as e:
        load_file(f, IngestParams)
    assert key in str(e.value) and says in str(e.value) and str(f) in str(e.value)


P = IngestParams(
    dataset='sales',
    source='s.csv',
    target='region',
    columns={
        'region': ColumnRule(dtype='str', personal=False, allowed=['North', 'Süd']),
        'amount': ColumnRule(dtype='int', personal=False, min=0),
        'price': ColumnRule(dtype='float', personal=False),
    },
)


def test_a_header_less_latin1_semicolon_gzip_file_with_spaces_and_thousands_is_read_as_declared(tmp_path):
    text = ' North ; 1.234 ; 2,5\nSüd;12.000;3,75\n North;7; 1\n'
    f = tmp_path / 'sales.csv.gz'
    f.write_bytes(gzip.compress(text.encode('latin-1')))
    d = CsvDialect(
        delimiter=';',
        header=False,
        names=['region', 'amount', 'price_text'],
        encoding='latin-1',
        trim_whitespace=True,
        thousands='.',
    )
    df = pd.concat(read_chunks(str(f), dialect=d))
    assert df.region.tolist() == ['North', 'Süd', 'North'] and df.amount.tolist() == [1234, 12000, 7]
    assert df.price_text.tolist() == ['2,5', '3,75', '1']  # a decimal comma stays text: not a thousands rule


def test_quoted_thousands_with_the_comma_delimiter_and_decimal_commas_are_read_as_numbers(tmp_path):
    """A spreadsheet quotes `"55,623.98"` in a comma-separated file (the thousands separator may be the delimiter, as
    pandas reads it), and writes `55.623,98` with `;` where the comma is the decimal mark; whole numbers stay exact."""
    us, eu = tmp_path / 'us.csv', tmp_path / 'eu.csv'
    us.write_text('region,amount,price\nNorth,"1,234","55,623.98"\nSouth,7,0.5\n')
    eu.write_text('region;amount;price\nNorth;1.234;55.623,98\nSouth;"1040,0";0,5\n')
    for f, d in ((us, CsvDialect(thousands=',')), (eu, CsvDialect(delimiter=';', thousands='.', decimal=','))):
        df = pd.concat(read_chunks(str(f), dialect=d, declared=P.columns))
        assert df.price.tolist() == [55623.98, 0.5] and df.amount.tolist() == [1234, 7 if f is us else 1040], f
        assert str(df.amount.dtype) == 'Int64'


def test_number_marks_read_only_numbers_written_with_them(tmp_path):
    """Review Y: the marks took any value apart: `1.150` with a decimal comma alone became 1.15, `1.234,56` in a file
    of `1,234.56` became 1.23456, and a date `31.01.2024` in a whole-number column 31012024, each accepted. A value
    not written with the marks leaves its column text, for the type check to refuse."""
    from lifecycle.data.sources import number_pattern

    cols = {'price': ColumnRule(dtype='float', personal=False), 'n': ColumnRule(dtype='int', personal=False)}
    cases = (
        ('eu.csv', 'price;n\n812,34;3\n1.150;4\n', CsvDialect(delimiter=';', decimal=','), 'price'),
        ('us.csv', 'price,n\n"8,604.31",3\n"1.234,56",4\n', CsvDialect(thousands=','), 'price'),
        ('de.csv', 'price;n\n1,5;31.01.2024\n2,5;7\n', CsvDialect(delimiter=';', thousands='.', decimal=','), 'n'),
    )
    for name, text, d, left in cases:
        (tmp_path / name).write_text(text)
        df = pd.concat(read_chunks(str(tmp_path / name), dialect=d, declared=cols))
        assert df[left].dtype == object, (name, df.dtypes)  # (text: refused by the type check)
    assert re.fullmatch(number_pattern('.', ','), '-46.112,76e2') and not re.fullmatch(number_pattern('.', ','), '1..2')


def test_number_marks_read_an_apostrophe_or_a_space_but_not_numbers_of_one_length_grouped():
    """Review GM: amounts written `1'234.50` or `1 234,50` were read as text, and init proposed them as identifiers or
    phone numbers. They are read with their marks now, with the file's other numbers' decimal mark; whole numbers all
    of one length written in groups (`612 345 678`, a phone number) stay text for the personal-data detector, and a
    file grouping one column with an apostrophe and another with ',' reads the latter alone, as before."""
    from lifecycle.data.infer import number_marks

    def read(df, delimiter=','):
        return (m.thousands, m.decimal, m.columns) if (m := number_marks(df, delimiter)) else None

    ch = pd.DataFrame({'amount': ["24'353.83", '912.5', "1'204'000"], 'rate': ['0.5', '1.25', '3.0']})
    assert read(ch) == ("'", '.', ('amount',))
    fr = pd.DataFrame({'montant': ['9 153', '182 638', '15'], 'taux': ['0,5', '1,25', '3']})
    assert read(fr) == (' ', ',', ('montant', 'taux'))
    assert read(fr[['montant']], ';') == (' ', ',', ('montant',)) and read(fr[['montant']])[:2] == (' ', '.')
    assert read(pd.DataFrame({'tel': ['612 345 678', '698 111 202', '655 000 999']})) is None
    assert read(pd.DataFrame({'a': ["1'234.5", '7'], 'b': ['1,234.5', '2']})) == (',', '.', ('b',))  # (as before)
    assert read(pd.DataFrame({'a': ["1'234.5", '7'], 'b': ['1,5', '2']})) == (None, ',', ('b',))  # ('.' and ',')


def test_phone_numbers_written_in_groups_of_three_stay_text_for_the_personal_data_detector_whatever_their_length():
    """Review (of GM's fix): a column of phone numbers grouped by threes, some with their country code (`+34 612 345
    678`, `612 345 678`), is not of one length, so `init` read it as numbers written with thousands ' ': proposed as a
    feature, `personal: false`, a phone number written into ingest.yaml as its `max`. Whole numbers the personal-data
    detector takes for phone numbers stay text, as before GM, for it to find; amounts stay numbers."""
    from lifecycle.data.infer import number_marks

    tel = ['+34 612 345 678', '612 345 678', '698 111 202', '+34 655 000 999']
    assert number_marks(pd.DataFrame({'reach': tel})) is None
    m = number_marks(pd.DataFrame({'reach': tel, 'amount': ['9 153', '182 638', '15', '1 204']}))
    assert (m.thousands, m.decimal, m.columns) == (' ', '.', ('amount',)), m
    assert number_marks(pd.DataFrame({'reach': [t.replace(' ', '\u00a0') for t in tel]})) is None  # (no-break)


def test_score_reads_a_csv_as_the_datasets_files_are_read_each_option_saying_otherwise(tmp_path):
    """Review T: `score` read its CSV input as UTF-8 with commas whatever ingest.yaml's `csv` said, and its refusal
    advised setting `csv.encoding` in ingest.yaml, which score never read."""
    import shutil

    from lifecycle.core.params import load_params
    from lifecycle.serve.commands import _score_dialect

    shutil.copytree(Path(__file__).parent.parent / 'params', tmp_path / 'p')
    set_yaml(tmp_path / 'p' / 'ingest.yaml', csv={'encoding': 'latin-1', 'delimiter': ';', 'header': False,
                                                  'names': ['a'], 'thousands': '.', 'decimal': ',',
                                                  'compression': 'gzip', 'trim_whitespace': True})  # fmt: skip
    ps = load_params(tmp_path / 'p')
    got = _score_dialect(ps, {})
    assert (got.encoding, got.delimiter, got.thousands, got.decimal, got.header) == ('latin-1', ';', '.', ',', True)
    assert (got.compression, got.trim_whitespace) == ('infer', False)  # (the dataset's files', not a scoring file's)
    assert _score_dialect(ps, {'delimiter': '|'}).delimiter == '|'
    with pytest.raises(Exception, match=r"--decimal with ingest.yaml's csv .*: key 'csv.thousands' '.' is also the"):
        _score_dialect(ps, {'decimal': '.'})


def test_a_dialect_file_goes_through_the_boundary(tmp_path, monkeypatch):
    monkeypatch.setenv('LIFECYCLE_KEYS_DIR', str(tmp_path / 'keys'))
    (tmp_path / 'settings.ini').write_text('[workspace]\n')
    ws = Workspace.open(tmp_path)
    f = tmp_path / 's.csv'
    f.write_text('region|amount|price\n North |1,234| 2.5\nSüd|7|3\n', encoding='utf-8')
    p = P.model_copy(update={'csv': CsvDialect(delimiter='|', thousands=',', trim_whitespace=True)})
    r = ing.ingest_batch(read_chunks(str(f), dialect=p.csv), p, ws, source='s.csv', fingerprint='fp')
    assert r.status == 'accepted', r.reason
    assert ing.load_snapshot(ws.store, r.snapshot['version']).amount.tolist() == [1234, 7]


@pytest.mark.parametrize('fmt', ['csv', 'parquet'])
def test_whole_numbers_with_a_blank_are_kept_exactly_and_pseudonymised_alike(tmp_path, monkeypatch, fmt):
    """pandas reads a whole-number column with one blank cell as floats: 19-digit ids were stored rounded (399 ids as
    12), a personal id's pseudonym changed with a blank in its batch (`1001.0`, not `1001`) and two ids shared one; a
    boolean column with a blank could never be ingested (review M)."""
    from lifecycle.core.params import PiiRule

    monkeypatch.setenv('LIFECYCLE_KEYS_DIR', str(tmp_path / 'keys'))
    monkeypatch.setenv('LIFECYCLE_PII_KEY', '0123456789abcdef0123456789abcdef')
    (tmp_path / 'settings.ini').write_text('[workspace]\n')
    ws = Workspace.open(tmp_path)
    big = 1234567890123456789
    p = P.model_copy(
        update={
            'columns': {
                **P.columns,
                'customer': ColumnRule(
                    dtype='int', personal=True, pii=PiiRule(method='pseudonymise'), max_null_rate=0.5
                ),
                'order_no': ColumnRule(dtype='int', personal=False, kind='identifier', max_null_rate=0.5),
                'active': ColumnRule(dtype='bool', personal=False, max_null_rate=0.5),
            }
        }
    )

    def ingest(name, rows):
        cols = ['region', 'amount', 'price', 'customer', 'order_no', 'active']
        df = pd.DataFrame({c: pd.Series(v, dtype=object) for c, v in zip(cols, zip(*rows))})  # (no float made)
        f = tmp_path / f'{name}.{fmt}'
        if fmt == 'csv':
            df.to_csv(f, index=False)
        else:
            df.astype({'customer': 'Int64', 'order_no': 'Int64', 'active': 'boolean'}).to_parquet(f)
        r = ing.ingest_batch(
            read_chunks(str(f), dialect=p.csv, declared=p.columns), p, ws, source=name, fingerprint=name
        )
        assert r.status == 'accepted', r.reason
        return ing.load_snapshot(ws.store, r.snapshot['version'])

    whole = ingest('whole', [('North', i, 2.5, 1001, big + 7 * i, True) for i in range(4)])
    blank = ingest(
        'blank',
        [('Süd', 2, 3.0, 1001 if i else None, big + 7 * i if i else None, True if i % 2 else None) for i in range(4)],
    )
    assert blank.order_no.tolist()[1:] == [big + 7, big + 14, big + 21] and whole.order_no.nunique() == 4
    assert blank.customer.tolist()[1] == whole.customer.tolist()[0] and pd.isna(blank.customer.tolist()[0])
    assert blank.active.isna().sum() == 2


@pytest.mark.parametrize(
    'written, read',
    [
        (['1040.0', '1040', None], [1040, 1040, None]),  # (a float's text of a whole number: that number, exactly)
        (['2_5', '3'], ['2_5', '3']),  # (Python's int() takes these; a CSV has no such number: left as text)
        (['٣٤', '1'], ['٣٤', '1']),
        (['3.5', '1'], [3.5, 1.0]),  # (a fraction: floats, as pandas reads them, for the type check to count)
        ([' 12 ', '-3', '+4'], [12, -3, 4]),
    ],
    ids=['float-text', 'underscore', 'arabic-digits', 'fraction', 'signs-and-spaces'],
)
def test_an_int_columns_text_becomes_the_numbers_it_writes_and_nothing_else(written, read):
    "Review N: `_exact_ints` parsed with Python's int(), which took `2_5` and other scripts' digits for numbers."
    from lifecycle.data.pii import pseudonymise
    from lifecycle.data.sources import _exact_ints

    got = _exact_ints(
        pd.DataFrame({'a': pd.Series(written, dtype=object)}), {'a': ColumnRule(dtype='int', personal=False)}
    )
    assert [None if pd.isna(v) else v for v in got.a.tolist()] == read
    if read[0] == 1040:  # (one person's id, with `.0` in one row: one pseudonym)
        assert pseudonymise(got.a, b'k')[0] == pseudonymise(got.a, b'k')[1] == pseudonymise(pd.Series([1040]), b'k')[0]


def test_whole_numbers_beyond_64_bits_are_refused_by_the_type_check(tmp_path, monkeypatch):
    "An unsigned 64-bit value (2**64 - 1) in an int column was a TypeError traceback from the cast (review M)."
    monkeypatch.setenv('LIFECYCLE_KEYS_DIR', str(tmp_path / 'keys'))
    (tmp_path / 'settings.ini').write_text('[workspace]\n')
    ws = Workspace.open(tmp_path)
    f = tmp_path / 's.csv'
    f.write_text(f'region,amount,price\nNorth,{2**64 - 1},1.5\nNorth,{2**63},2.5\n')
    with pytest.raises(ing.BatchRejected, match=r"amount: dtype: expected 'Int64', found integer values \(uint64\)"):
        ing.ingest_batch(read_chunks(str(f), dialect=P.csv, declared=P.columns), P, ws, source='s', fingerprint='s')


def test_a_whole_number_past_a_floats_range_is_refused_by_the_type_check_not_counted_as_a_null(tmp_path, monkeypatch):
    """Review HH: a 400-digit whole number in an int column was read as a null (`to_numeric` coerced it to NaN), so the
    batch was refused for 'nulls: expected no nulls, found 1 null(s)' in a file without an empty cell. It is now read
    as the float it overflows to (inf), as a 23-digit one reads as a float, and the type check counts it."""
    monkeypatch.setenv('LIFECYCLE_KEYS_DIR', str(tmp_path / 'keys'))
    (tmp_path / 'settings.ini').write_text('[workspace]\n')
    ws = Workspace.open(tmp_path)
    f = tmp_path / 's.csv'
    f.write_text(f'region,amount,price\nNorth,{"9" * 400},1.5\nNorth,7,2.5\n')
    read = pd.concat(read_chunks(str(f), dialect=P.csv, declared=P.columns))
    assert read.amount.tolist() == [float('inf'), 7.0], read.amount.tolist()
    with pytest.raises(ing.BatchRejected) as e:
        ing.ingest_batch(read_chunks(str(f), dialect=P.csv, declared=P.columns), P, ws, source='s', fingerprint='s')
    said = str(e.value)
    assert "amount: dtype: expected 'Int64', found floating values (float64)" in said and 'null' not in said, said


def test_a_stray_word_in_a_number_column_is_refused_by_the_type_check_not_as_personal_data(tmp_path, monkeypatch):
    """One word among prices made pandas read the column as text, and the personal-data detector took the prices
    (`55623.98`, mostly distinct) for identifiers: the batch was refused as personal data, with advice to mask a
    feature (review L). Numbers, with thousands separators too, are left to the type check."""
    monkeypatch.setenv('LIFECYCLE_KEYS_DIR', str(tmp_path / 'keys'))
    (tmp_path / 'settings.ini').write_text('[workspace]\n')
    ws = Workspace.open(tmp_path)
    prices = [f'{50000 + i * 37.11:.2f}' for i in range(200)]
    for case, stray in (('word', 'leakword'), ('thousands', '"55,623.98"')):
        f = tmp_path / f'{case}.csv'
        f.write_text('region,amount,price\n' + ''.join(f'North,{i},{v}\n' for i, v in enumerate([stray, *prices])))
        with pytest.raises(ing.BatchRejected) as e:
            ing.ingest_batch(
                read_chunks(str(f), dialect=P.csv, declared=P.columns), P, ws, source=case, fingerprint=case
            )
        said = str(e.value)
        assert 'price: dtype' in said and 'personal' not in said and stray.strip('"') not in said, said


def test_a_duplicated_header_name_is_refused_naming_it(tmp_path):
    f = tmp_path / 'd.csv'
    f.write_text('region,amount,amount\nNorth,1,2\n')
    with pytest.raises(SourceError, match=r"\['amount'\] more than once"):
        list(read_chunks(str(f)))
    f.write_text('region, amount,amount \nNorth,1,2\n')  # equal once trimmed
    with pytest.raises(SourceError, match='more than once'):
        list(read_chunks(str(f), dialect=CsvDialect(trim_whitespace=True)))


def test_a_column_named_twice_that_the_reader_leaves_alone_passes_as_the_header_names_it(tmp_path):
    """`score` reads the model's columns (`only`) and passes the rest as they come; a header naming one of the rest
    twice came out with pandas' `colour.1` for its second (review DA). Its names are the header's, trimmed as said."""
    f = tmp_path / 'd.csv'
    f.write_text('age,colour,colour.1,colour\n30,red,x,blue\n')
    (chunk,) = read_chunks(str(f), only={'age'}, chunk_rows=10)
    assert list(chunk.columns) == ['age', 'colour', 'colour.1', 'colour'] and chunk.iloc[0].tolist()[3] == 'blue'
    f.write_text('age, colour,colour \n30,red,blue\n')
    (chunk,) = read_chunks(str(f), only={'age'}, dialect=CsvDialect(trim_whitespace=True))
    assert list(chunk.columns) == ['age', 'colour', 'colour']


def test_a_malformed_csv_is_said_on_one_line(tmp_path):
    "pandas' tokenizer error ends in a line break: the refusal was two lines, the JSON error ended in `\\n` (DA)."
    f = tmp_path / 'm.csv'
    f.write_text('a,b\n1,2\n3,4,5\n')
    with pytest.raises(SourceError) as e:
        list(read_chunks(str(f)))
    assert str(e.value).endswith('malformed CSV: Error tokenizing data. C error: Expected 2 fields in line 3, saw 3')


def test_rows_wider_than_the_header_are_refused_not_read_one_column_on(tmp_path):
    """Review DA: a first row with two more fields than the header names made them the rows' index, each value read
    two columns on (scored, or ingested, so); refused as malformed, by header or csv.names. One more field is R's
    `write.table` (its row names first: `test_category_columns_are_read_by_position...`), read as before."""
    f = tmp_path / 'w.csv'
    f.write_text('age,checks\n1,x,30,2\n2,y,40,3\n')
    with pytest.raises(SourceError, match=re.escape("w.csv: malformed CSV: its rows have 2 more field(s) than")):
        list(read_chunks(str(f), only={'age', 'checks'}))
    f.write_text('1,x,30,2\n2,y,40,3\n')
    with pytest.raises(SourceError, match=re.escape('2 more field(s) than it names columns (2)')):
        list(read_chunks(str(f), dialect=CsvDialect(header=False, names=['age', 'checks'])))
    f.write_text(',age,checks\n1,30,2\n')  # (an index written with its empty name: a column, as before)
    assert list(next(read_chunks(str(f))).columns) == ['Unnamed: 0', 'age', 'checks']


def test_rows_ending_in_a_delimiter_the_header_does_not_are_read_in_their_columns(tmp_path):
    """Review DF: an export that ends every row in a delimiter (`a,b,c` then `1,2,3,`) was read one column on, each
    row's first field taken for its index and the last column empty: scored and stored so, without a word. Read in
    its columns now, in every chunk; a row that holds a value after its last delimiter, a field more than the header
    names, is refused as malformed. R's `write.table` (row names first) is read as before."""
    f = tmp_path / 't.csv'
    f.write_text('age,checks,colour\n' + ''.join(f'{30 + i},{i % 5},red,\n' for i in range(250)))
    got = pd.concat(read_chunks(str(f), chunk_rows=100))
    assert got.columns.tolist() == ['age', 'checks', 'colour'] and len(got) == 250
    assert got.age.tolist()[:2] == [30, 31] and got.colour.eq('red').all()
    rows = (f'{30 + i},{i % 5},red,{"x" if i == 180 else ""}\n' for i in range(250))  # (a value in the 2nd chunk)
    f.write_text('age,checks,colour\n' + ''.join(rows))
    with pytest.raises(SourceError, match=re.escape('t.csv: malformed CSV: its rows end in a delimiter its header')):
        list(read_chunks(str(f), chunk_rows=100))
    rows = (f'{30 + i},{i % 5},red,{"x" if i == 50 else ""}\n' for i in range(250))  # (among the first rows, DH)
    f.write_text('age,checks,colour\n' + ''.join(rows))
    with pytest.raises(SourceError, match=re.escape('a row holds a value after it')):
        list(read_chunks(str(f), chunk_rows=1000))
    f.write_text('age,checks\n"1",30,2\n"2",40,NA\n')  # (R's write.table)
    assert next(read_chunks(str(f))).age.tolist() == [30, 40]
    f.write_text('age,note\n"1",30,""\n"2",40,""\n')  # (R's, its last column empty text: review DH)
    assert next(read_chunks(str(f))).age.tolist() == [30, 40]
    for text, dialect in (  # (review DI: a quoted line break, lines ending in \r alone, a space after the delimiter)
        ('age,note,checks\n30,"a\nb",2,\n40,"c\nd",3,\n', None),
        ('age,note,checks\r30,a,2,\r40,c,3,\r', None),
        ('age,note,checks\n30,a,2, \n40,c,3, \n', CsvDialect(trim_whitespace=True)),
        ('age,note,checks\n30,a\u2028b,2,\n40,c\x0cd,3,\n', None),  # (no line ends to pandas: review DK)
        ('age,note,checks\n' + '30,a,2,\n' * 20 + '40,"' + 'n\n' * 40000 + '",3,\n', None),  # (cut in the head, DK)
        ('age,note,checks\n30,5" long,2,\n40,c,3,\n', None),  # (a quote within a value is its own: review DL)
    ):
        f.write_bytes(text.encode())
        got = next(read_chunks(str(f), dialect=dialect))
        assert (got.age[0], got.checks[0]) == (30, 2) and got.age.iloc[-1] == 40, text[:80]


def test_a_workbook_or_gzip_file_named_csv_is_named_for_what_it_is(tmp_path):
    gz = tmp_path / 'a.csv'
    gz.write_bytes(gzip.compress(b'region,amount\nNorth,1\n'))
    with pytest.raises(SourceError, match="gzip-compressed file.*name it .csv.gz .or, for a dataset's files, set 'csv"):
        list(read_chunks(str(gz), dialect=CsvDialect()))  # (a dataset's file: ingest.yaml can say so)
    with pytest.raises(SourceError, match=r"gzip-compressed file, not text; name it .csv.gz$"):
        list(read_chunks(str(gz)))  # (no dialect: a caller reading a file of no dataset, no ingest.yaml to change)
    assert len(pd.concat(read_chunks(str(gz), dialect=CsvDialect(compression='gzip')))) == 1
    xlsx = tmp_path / 'b.csv'
    with zipfile.ZipFile(xlsx, 'w') as z:
        z.writestr('[Content_Types].xml', '<Types/>')
    with pytest.raises(SourceError, match=r'zip archive \(an Excel .xlsx workbook'):
        list(read_chunks(str(xlsx)))
    xls = tmp_path / 'c.csv'
    xls.write_bytes(bytes.fromhex('d0cf11e0a1b11ae1') + b'\0' * 100)
    with pytest.raises(SourceError, match='Excel 97-2003 workbook'):
        list(read_chunks(str(xls)))


@pytest.fixture
def arrests_ws(tmp_path, monkeypatch):
    w = make_workspace(tmp_path / 'ws')
    monkeypatch.chdir(w)
    monkeypatch.setenv('LIFECYCLE_KEYS_DIR', str(tmp_path / 'keys'))
    return w


def test_unreadable_files_are_counted_in_ingest_stats(arrests_ws, arrests):
    (arrests_ws / 'empty.csv').write_bytes(b'')
    arrests.head(30).to_csv(arrests_ws / 'ok.csv', index=False)
    assert invoke(commands.ingest, ['empty.csv', '--dataset', 'arrests', '--no-report']).exit_code == 4
    assert invoke(commands.ingest, ['ok.csv', '--dataset', 'arrests', '--no-report']).exit_code == 0
    (arrests_ws / 'packed.csv').write_bytes(gzip.compress(arrests.head(30).to_csv(index=False).encode()))
    r = invoke(commands.ingest, ['packed.csv', '--dataset', 'arrests', '--no-report', '--json'])
    assert r.exit_code == 4 and 'gzip-compressed file' in strict(r.stdout)['error'], r.output
    st = strict(invoke(commands.ingest, ['stats', '--json']).stdout)
    assert (st['batches'], st['accepted'], st['rejected'], st['unreadable']) == (3, 1, 0, 2)
    assert st['success_rate'] == 1 / 3 and st['log'][0]['status'] == 'unreadable'
    log = next((arrests_ws / '.lifecycle').rglob('batches.jsonl'))
    with log.open('a') as f:  # a line that is JSON but no batch of this log: named, exit 4, never a KeyError
        f.write('{"x": 1}\n')
    r = invoke(commands.ingest, ['stats', '--json'])
    assert (
        r.exit_code == 4 and "line 4 is not an entry of this log (no 'dataset', 'status')" in strict(r.stdout)['error']
    )


def test_a_batch_whose_audit_entry_cannot_be_written_is_not_kept(arrests_ws, arrests, monkeypatch):
    "The flags in ingest.yaml changed and the audit log cannot record it: the batch is undone, exit 3, never half kept."
    from lifecycle.core import audit

    arrests.head(30).to_csv(arrests_ws / 'ok.csv', index=False)
    assert invoke(commands.ingest, ['ok.csv', '--dataset', 'arrests', '--no-report']).exit_code == 0
    records = lambda: sorted((arrests_ws / '.lifecycle').rglob('records/datasets/*'))  # noqa: E731
    log = next((arrests_ws / '.lifecycle').rglob('batches.jsonl'))
    before = (records(), log.read_bytes())
    set_yaml(arrests_ws / 'params' / 'ingest.yaml', flags__drift_blocking=True)

    def unwritable(*a, **k):
        raise audit.AuditError('the audit log .lifecycle/audit.log cannot be written (Read-only file system)')

    monkeypatch.setattr(ing.audit, 'append', unwritable)
    arrests.iloc[30:60].to_csv(arrests_ws / 'next.csv', index=False)
    r = invoke(commands.ingest, ['next.csv', '--dataset', 'arrests', '--no-report', '--json'])
    assert r.exit_code == 3 and 'nothing of the batch was kept' in strict(r.stdout)['error'], r.output
    assert (records(), log.read_bytes()) == before


def test_drift_leaves_out_excluded_columns_and_identifiers_and_prints_strict_json(arrests_ws, arrests):
    set_yaml(
        arrests_ws / 'params' / 'ingest.yaml',
        columns__checks={'dtype': 'int', 'personal': False, 'kind': 'identifier'},
    )
    arrests.head(300).to_csv(arrests_ws / 'a.csv', index=False)
    arrests.iloc[300:600].assign(employed=None, nickname='Ann').to_csv(arrests_ws / 'b.csv', index=False)
    r = invoke(commands.drift, ['--reference', 'a.csv', '--current', 'b.csv', '--json'])
    assert r.exit_code == 0, (r.exception, r.stderr)
    out = strict(r.stdout)  # the all-null column's score is null, not NaN
    cols = {c['column']: c for c in out['columns']}
    excluded = {'year': 'drift.exclude', 'checks': 'kind: identifier', 'nickname': 'not in the reference'}
    assert out['excluded'] == excluded and 'Ann' not in r.stdout  # a column the reference lacks: named, never read
    assert 'year' not in cols and 'checks' not in cols and set(cols) >= {'age', 'sex', 'employed'}
    assert (
        cols['employed']['method'] == 'all_null' and cols['employed']['score'] is None and cols['employed']['drifted']
    )


def test_drift_quotes_no_column_name_that_reads_as_personal_data_or_as_a_files_first_row(arrests_ws, arrests):
    """`lifecycle drift` quoted a column the reference lacked by its name, an e-mail address among them, and a
    reference without a header row by its 'names': its first row, whole (a review). Both are withheld now, as
    `ingest` and `init` withhold them (`pii.shown_column_name`)."""
    canary = 'zed.quux@example.org'
    arrests.head(300).to_csv(arrests_ws / 'a.csv', index=False)
    arrests.iloc[300:600].assign(**{canary: 1}).to_csv(arrests_ws / 'b.csv', index=False)
    r = invoke(commands.drift, ['--reference', 'a.csv', '--current', 'b.csv', '--json'])
    assert r.exit_code == 0 and canary not in r.stdout + r.stderr, r.stdout
    said = strict(r.stdout)['excluded']
    assert said['<column 9: name withheld, it looks like personal data>'] == 'not in the reference', said
    first = arrests.head(300).reset_index(drop=True)  # no header row: its first row reads as names
    first.loc[0, ['released', 'colour', 'employed', 'citizen']] = ['Yes', canary, 'No', 'unknown']  # (no name twice)
    first.to_csv(arrests_ws / 'noheader.csv', index=False, header=False)
    for args in (['--json'], []):
        r = invoke(commands.drift, ['--reference', 'noheader.csv', '--current', 'a.csv', *args])
        out = r.stdout + r.stderr
        assert r.exit_code == 2 and canary not in out and 'lacks 8 of the reference' in out, out
        assert 'name withheld, fewer than half of this file' in out and 'its first line may be data' in out, out
    arrests.iloc[600:900].assign(**{canary: 1}).to_csv(arrests_ws / 'c.csv', index=False)  # in both: compared, and
    for args in (['--json'], []):  # its name withheld in the results too (a review)
        r = invoke(commands.drift, ['--reference', 'b.csv', '--current', 'c.csv', *args])
        assert r.exit_code == 0 and canary not in r.stdout + r.stderr, r.stdout
    got = [
        c['column']
        for c in strict(invoke(commands.drift, ['--reference', 'b.csv', '--current', 'c.csv', '--json']).stdout)[
            'columns'
        ]
    ]
    assert '<column 9: name withheld, it looks like personal data>' in got and 'age' in got, got
    r = invoke(commands.drift, ['--reference', 'noheader.csv', '--current', 'noheader.csv', '--json'])  # (the same)
    assert r.exit_code == 0 and canary not in r.stdout and "its first line may be data" in r.stdout, r.stdout
    first.assign(status='employed').to_csv(arrests_ws / 'noheader4.csv', index=False, header=False)  # (a value of
    r = invoke(commands.drift, ['--reference', 'noheader4.csv', '--current', 'noheader4.csv', '--json'])  # its row
    assert canary not in r.stdout and '"Male"' not in r.stdout and 'may be data' in r.stdout, r.stdout  # a name)
    rows = ''.join(f'{50000 + i * 10},flu\n' for i in range(100))  # (the comparison's own refusal names a column)
    (arrests_ws / 'q1.csv').write_text('4915123456789,HIV positive\n' + rows)
    (arrests_ws / 'q2.csv').write_text('4915123456789,HIV positive\n' + rows.replace('50', 'n/a', 5))
    r = invoke(commands.drift, ['--reference', 'q1.csv', '--current', 'q2.csv'])
    assert r.exit_code == 2 and '4915123456789' not in r.stderr and 'non-numeric value' in r.stderr, r.stderr
    wide = pd.DataFrame({'region': ['north', 'south'] * 50, '2019': range(100), '2020': range(100)})
    wide = wide.assign(**{'+4915123456789': 1})  # (a phone number as a name: withheld, Parquet or not)
    wide.to_parquet(arrests_ws / 'wide1.parquet')  # (a Parquet file's names are its schema's: numbers or not, shown)
    wide.assign(**{'2020': range(5, 105)}).to_parquet(arrests_ws / 'wide2.parquet')
    r = invoke(commands.drift, ['--reference', 'wide1.parquet', '--current', 'wide2.parquet', '--json'])
    got = [c['column'] for c in strict(r.stdout)['columns']]
    assert r.exit_code == 0 and got[:3] == ['region', '2019', '2020'] and '4915123456789' not in r.stdout, r.stdout


@pytest.mark.parametrize(
    'first, rows, other',
    [
        ('2002,HIV positive', [f'{2000 + i % 3},flu' for i in range(100)], '2002,diagnosis pending'),  # a shared year
        ('Yes,Maria Gonzalez,11 Elm Street', ['No,a,b'] * 100, 'Yes,Peter Smith,22 Oak Road'),
        ('Yes,diagnosis HIV positive', ['Yes,a', 'No,c'] * 50, None),  # (one export's first line in both)
        ('1e3,Peter Smith', [f'{i}.5,x' for i in range(100)], None),
        ('true,diagnosis HIV positive', ['true,a', 'false,b'] * 50, None),  # (booleans: read as True)
        ('diagnosis HIV positive,case AX-7731', [f'note {i},case {i}' for i in range(100)], None),  # (nothing recurs)
        ('diagnosis HIV positive', [f'x{i}' for i in range(100)], None),  # (one column)
        ('Maria Gonzalez,Maria Gonzalez,12', ['a,b,1'] * 100, None),  # (a value repeated: the reader's refusal)
    ],
    ids=['year', 'text', 'shared', 'exponent', 'booleans', 'unique', 'one-column', 'repeated'],
)
def test_drift_prints_no_value_of_a_first_row_read_as_names(arrests_ws, first, rows, other):
    """Two files without a header row: their first rows are values, which `lifecycle drift` printed as column names
    whenever a heuristic on the values missed them (reviews F, G, H, I found one after another). A text file none of
    whose names is a column of the contract is now judged as ingestion judges a batch: its names withheld, all. Nor
    does the reader's refusal of a repeated name quote it (exit 4)."""
    (arrests_ws / 'r.csv').write_text('\n'.join([first, *rows]) + '\n')
    (arrests_ws / 'c.csv').write_text('\n'.join([other or first, *rows[::-1]]) + '\n')
    for args in ([], ['--json']):
        r = invoke(commands.drift, ['--reference', 'r.csv', '--current', 'c.csv', *args])
        out = r.stdout + r.stderr
        assert r.exit_code in (0, 2, 4) and (not args or 'its first line may be data' in out), out  # (a table wraps it)
        values = [v for v in (first + ',' + (other or '')).split(',') if v]  # (JSON: as a string; text: any longer
        shown = [v for v in values if (json.dumps(v) in out if args else len(v) > 4 and v in out)]  # than `true`)
        assert not shown, out


def test_drift_says_a_file_read_as_one_column_holds_another_delimiter(arrests_ws, arrests):
    """A .tsv compared with a CSV, both read with the params' ',': the file came out as one column, whose whole first
    line is its name, and drift said only that its names were withheld. It now says which file and which separator,
    never the line."""
    arrests.head(300).to_csv(arrests_ws / 'a.csv', index=False)
    arrests.tail(300).to_csv(arrests_ws / 'b.tsv', index=False, sep='\t')
    for ref, cur in (('a.csv', 'b.tsv'), ('b.tsv', 'a.csv')):
        r = invoke(commands.drift, ['--reference', ref, '--current', cur, '--json'])
        said = strict(r.stdout)['error']
        assert r.exit_code == 2 and 'b.tsv was read as a single column: its first line holds tab separators' in said
        assert 'released\t' not in said and "csv.delimiter" in said, said


@pytest.mark.parametrize(
    'text, encoding',
    [
        ('region,amount,email\nNorth,1,ann.example@mail.org\nSouth,2,bob.example@mail.org\n', 'utf-16-le'),  # misread
        ('North;1;ann.example@mail.org;' * 3 + '\n' + 'South;2;bob.example@mail.org\n', 'utf-8'),  # no header
    ],
    ids=['utf-8-read-as-utf-16', 'a-data-row-as-header'],
)
def test_a_file_read_with_the_wrong_dialect_is_refused_without_quoting_its_data_as_column_names(
    tmp_path, text, encoding
):
    "A misread file's whole text can arrive as one column's name: the refusal and the batch log say what was withheld."
    import re

    (tmp_path / 'settings.ini').write_text(f"[workspace]\nkeys_dir = {tmp_path / 'keys'}\n")
    ws = Workspace.open(tmp_path)
    f = tmp_path / 's.csv'
    f.write_bytes(text.encode('utf-8'))
    p = P.model_copy(update={'csv': CsvDialect(encoding=encoding)})
    with pytest.raises(ing.BatchRejected) as e:
        ing.ingest_batch(read_chunks(str(f), dialect=p.csv), p, ws, source='s.csv', fingerprint='fp')
    told = str(e.value) + (ws.state_dir / 'ingest' / 'batches.jsonl').read_text()
    assert 'name withheld' in told and 'North' not in told
    assert not re.search('ann|example|mail', told + told.encode('utf-8').decode('utf-16-le', errors='ignore'))


def test_a_database_sources_password_is_never_shown_or_recorded(arrests_ws):
    url = 'postgresql://ann:s3cret-pw@127.0.0.1:1/db?sslpassword=s3cret-ssl'  # (nothing listens on port 1)
    r = invoke(commands.ingest, [url, '--dataset', 'arrests', '--query', 'select 1', '--no-report', '--json'])
    out = strict(r.stdout)
    shown = 'postgresql://***:***@127.0.0.1:1/db?sslpassword=***'  # (its user too: often a person's name)
    assert r.exit_code == 4 and out['source'] == shown and shown in out['error'], r.output
    st = invoke(commands.ingest, ['stats', '--json'])
    assert st.exit_code == 0 and strict(st.stdout)['log'][0]['source'] == out['source']
    logs = ''.join(p.read_text() for p in (arrests_ws / '.lifecycle').rglob('*.jsonl'))
    assert not re.search('s3cret|//ann', r.output + st.output + logs) and '127.0.0.1:1/db' in logs
    url = 'sqlite+pysqlcipher://:s3cret-phrase@/nosuch.db'  # (SQLCipher: a SQLite URL with a passphrase)
    r = invoke(commands.ingest, [url, '--dataset', 'arrests', '--query', 'select 1', '--no-report', '--json'])
    assert r.exit_code == 4 and strict(r.stdout)['source'] == 'sqlite+pysqlcipher://:***@/nosuch.db', r.output
    logs = ''.join(p.read_text() for p in (arrests_ws / '.lifecycle').rglob('*.jsonl'))
    assert 's3cret' not in r.output + logs and 'nosuch.db' in r.output


def test_a_parquet_column_of_lists_is_refused_naming_it_not_a_crash(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq
    from lifecycle.data.sources import read_table

    f = tmp_path / 'b.parquet'
    pq.write_table(pa.table({'region': ['North', 'South'], 'checks': [[1, 2], [3]]}), f)
    with pytest.raises(SourceError, match=r"column\(s\) \['checks \(list<element: int64>\)'\] hold lists"):
        list(read_chunks(str(f)))
    with pytest.raises(SourceError, match='hold lists, maps or structs'):
        read_table(str(f))
    # a reader of some columns (`score`: the model's) takes a file whose other columns hold lists, as they come
    assert list(read_chunks(str(f), only={'region'}))[0]['checks'].map(list).tolist() == [[1, 2], [3]]
    with pytest.raises(SourceError, match=r"\['checks \(list<element: int64>\)'\] hold lists"):
        list(read_chunks(str(f), only={'region', 'checks'}))
    c = tmp_path / 'twice.csv'
    c.write_text('region,note,note\nNorth,a,b\n')
    assert list(read_chunks(str(c), only={'region'}))[0].columns.tolist() == ['region', 'note', 'note']  # (as named)
    with pytest.raises(SourceError, match=r"names column\(s\) \['note'\] more than once"):
        list(read_chunks(str(c), only={'note'}))


@pytest.mark.parametrize('encoding', ['rot13', 'base64', 'idna'])
def test_an_encoding_that_is_not_one_of_files_is_refused_naming_the_key(encoding):
    with pytest.raises(ValueError, match='not a text encoding of files'):
        CsvDialect(encoding=encoding)


def test_a_file_its_declared_codec_refuses_outright_is_named_not_a_crash(tmp_path):
    f = tmp_path / 'u.csv'
    f.write_bytes('region,amount\nNorth,1\n'.encode('utf-8'))  # UTF-8, declared UTF-16: no byte-order mark
    with pytest.raises(SourceError, match=r"u.csv: (cannot be read as|not valid) utf-16"):
        list(read_chunks(str(f), dialect=CsvDialect(encoding='utf-16')))


def test_a_settings_file_that_is_not_utf8_is_named(tmp_path):
    from lifecycle.core.settings import SettingsError, load_settings

    (tmp_path / 'settings.ini').write_bytes('[workspace]\n# caf\xe9\n'.encode('latin-1'))
    with pytest.raises(SettingsError, match=r'settings.ini: not valid UTF-8 \(byte 0xe9 at offset 17\)'):
        load_settings(tmp_path)


def test_a_sqlite_source_is_read_from_the_workspace_root_and_one_that_does_not_exist_is_named_not_made(
    tmp_path, monkeypatch
):
    import sqlite3

    (tmp_path / 'data').mkdir()
    with contextlib.closing(sqlite3.connect(tmp_path / 'data' / 'b.db')) as c:
        c.execute('create table t (x int)')
        c.execute('insert into t values (7)')
        c.commit()
    (tmp_path / 'nbs').mkdir()
    monkeypatch.chdir(tmp_path / 'nbs')  # (as a stage's kernel runs: the URL is still the workspace's)
    assert pd.concat(read_chunks('sqlite:///data/b.db', tmp_path, query='select x from t')).x.tolist() == [7]
    with pytest.raises(SourceError, match=rf'sqlite:///gone.db: no SQLite database at {tmp_path}/gone.db'):
        list(read_chunks('sqlite:///gone.db', tmp_path, query='select 1'))
    assert not (tmp_path / 'gone.db').exists() and not (tmp_path / 'nbs' / 'gone.db').exists()


def test_a_row_cut_short_is_refused_as_a_longer_one_is_naming_its_line_and_counts_never_a_value(arrests_ws, arrests):
    """A row with fewer fields than the header names was filled with nulls and ingested without a word, where a row
    with more was refused as malformed. Now refused the same way (exit 4, nothing stored), naming the file, its line
    and the counts, never a value; a value quoted over lines, an empty last field and a blank line are no short row."""
    rows = arrests.head(30).to_csv(index=False).splitlines(keepends=True)
    cut = rows[7].rsplit(',', 1)[0] + '\n'  # (the 7th record, line 8, without its last field)
    (arrests_ws / 'cut.csv').write_text(''.join([*rows[:7], cut, *rows[8:]]))
    r = invoke(commands.ingest, ['cut.csv', '--dataset', 'arrests', '--no-report', '--json'])
    out, n = strict(r.stdout), len(rows[0].split(','))
    said = f"cut.csv: malformed CSV: line 8 has {n - 1} field(s), expected {n} (the columns of its header)"
    assert r.exit_code == 4 and said in out['error'], r.output
    told = out['error'].split('cut.csv: ', 1)[1]  # (past the file's path: a temporary folder's may hold `40`)
    assert not any(v in told for v in cut.strip().split(',')[1:]), told  # (no value of the row)
    st = strict(invoke(commands.ingest, ['stats', '--json']).stdout)
    assert (st['accepted'], st['unreadable']) == (0, 1)
    f = arrests_ws / 'fine.csv'
    f.write_text('a,b,c\n1,"x\ny",\n\n2,,3\n')
    assert next(read_chunks(str(f))).shape == (2, 3)
    f.write_text('1,2,3\n4,5\n')
    with pytest.raises(SourceError, match=re.escape('line 2 has 2 field(s), expected 3 (the columns of csv.names)')):
        list(read_chunks(str(f), dialect=CsvDialect(header=False, names=['a', 'b', 'c'])))


def test_a_sqlite_uri_filename_source_is_read_from_the_workspace_root_too(tmp_path, monkeypatch):
    """Found by review (EP): a SQLite source written as a URI filename (`sqlite:///file:data/b.db?mode=ro&uri=true`, a
    read-only open) was left relative to the current folder, where every other SQLite source and setting is the
    workspace's: from a stage's kernel (in nbs/) it failed as 'unable to open database file', naming no path."""
    import sqlite3

    (tmp_path / 'data').mkdir()
    with contextlib.closing(sqlite3.connect(tmp_path / 'data' / 'b.db')) as c:
        c.execute('create table t (x int)')
        c.execute('insert into t values (7)')
        c.commit()
    (tmp_path / 'nbs').mkdir()
    monkeypatch.chdir(tmp_path / 'nbs')
    url = 'sqlite:///file:data/b.db?mode=ro&uri=true'
    assert pd.concat(read_chunks(url, tmp_path, query='select x from t')).x.tolist() == [7]
    with pytest.raises(SourceError, match=rf'no SQLite database at {tmp_path}/data/gone.db'):
        list(read_chunks(url.replace('b.db', 'gone.db').replace('mode=ro', 'mode=rwc'), tmp_path, query='select 1'))
    assert sorted(p.name for p in (tmp_path / 'data').iterdir()) == ['b.db'] and not any((tmp_path / 'nbs').iterdir())


def test_the_short_row_check_reads_a_sound_file_in_c_not_record_by_record_in_python(tmp_path, monkeypatch):
    """The short-row check (a last column with empty values: an optional last column, common) read the whole file
    through Python's csv reader (1.5 s, then 0.75 s, on a 32 MB CSV pandas reads in 0.6 s; 73% of ingest's CPU on a
    1M-row file). It now counts fields with pyarrow's CSV reader in C (7% of the read) and reads record by record only
    when a row may be short; the same refusals, the line named from the csv reader's own count."""
    from lifecycle.data import sources

    lines = []
    real = sources._lines_to_nul

    def counted(*a):
        for line in real(*a):
            lines.append(line)
            yield line

    monkeypatch.setattr(sources, '_lines_to_nul', counted)
    f = tmp_path / 'optional.csv'
    f.write_text('a,b,c\n' + '1,"x\ny",\n\n2,,3\n' * 2000)
    assert sum(len(c) for c in read_chunks(str(f), chunk_rows=1000)) == 4000
    assert len(lines) < 100, len(lines)  # (the header and a row, not the file's 8,000 lines)
    for text, dialect, said in [
        ('\n\na,b,c\n1,"x\ny",\n\n\n4,5\n', None, 'line 8 has 2 field(s), expected 3 (the columns of its header)'),
        ('a,b,c\n1,2,3,\n4,5,,\n6,\n', None, 'line 4 has 2 field(s), expected 3'),  # (an export's last delimiter)
        ('1,2,\n4,5\n', CsvDialect(header=False, names=['a', 'b', 'c']), 'line 2 has 2 field(s), expected 3'),
        ('a,b,c\n1, "2,3",\n4, 5\n', CsvDialect(trim_whitespace=True), 'line 3 has 2 field(s), expected 3'),
    ]:
        f.write_text(text)
        with pytest.raises(SourceError, match=re.escape(said)):
            list(read_chunks(str(f), dialect=dialect))
    g = tmp_path / 'cut.csv.gz'
    g.write_bytes(gzip.compress(b'a,b,c\n1,2,\n4,5\n'))
    with pytest.raises(SourceError, match=re.escape('line 3 has 2 field(s), expected 3')):
        list(read_chunks(str(g)))


def test_a_row_cut_short_in_a_file_with_row_names_is_refused_not_filled_with_a_null(tmp_path):
    """R's `write.table` writes each row's name first, one field more than its header: pandas reads that field as the
    index. A row there one field short (`r2,4,5` under `a,b,c`) has as many fields as the header, so the short-row
    check let it by, and pandas filled its last column with a null, quietly (a row missing its name alone would be read
    one column on). Refused now, naming the line and the counts; a row ending in an empty value is no short row."""
    f = tmp_path / 'r.csv'
    f.write_text('a,b,c\nr1,1,2,3\nr2,4,5\n')
    with pytest.raises(SourceError, match=re.escape('line 3 has 3 field(s), expected 4 (the columns of its header and '
                                                    'its row name')):
        list(read_chunks(str(f)))
    f.write_text('a,b,c\nr1,1,2,3\nr2,4,5,\n')
    assert next(read_chunks(str(f))).shape == (2, 3)
    f.write_text('a,b,c\n1,2,3,\n4,5,,\n')  # (an export ending each row in a delimiter: no row names)
    assert next(read_chunks(str(f))).shape == (2, 3)


def test_a_row_cut_short_is_refused_in_a_file_of_lone_cr_line_ends_or_after_a_field_past_the_csv_readers_limit(
    tmp_path,
):
    """The short-row check's record-by-record pass read lines ended by `\\n` alone: a file of lone `\\r` line ends (an
    old Mac's) was one line, the csv reader refused it, and the check let it by; so did a field longer than the csv
    reader's limit (128 KB) before the short row. pandas read both, the short row's last column filled with a null.
    Now a lone `\\r` ends a line, as pandas reads it, and a short row counted in C is refused where its line is not
    found."""
    f = tmp_path / 'mac.csv'
    for text, said in [
        ('a,b,c\r1,2,3\r4,5\r7,8,9\r', 'line 3 has 2 field(s), expected 3'),
        ('a,b,c\r1,"x\ry",3\r4,5\r', 'line 4 has 2 field(s), expected 3'),
        ('a,b,c\n1,2,3\r4,5\n', 'line 3 has 2 field(s), expected 3'),
        ('a,b,c\n1,' + 'x' * 200_000 + ',3\n4,5\n', 'line 3 has 2 field(s), expected 3'),
        ('a,b,c\n1,"' + 'ab\n' * 70_000 + '",3\n4,5\n', 'a row has fewer fields than the 3 columns of its header'),
    ]:
        f.write_text(text, newline='')
        with pytest.raises(SourceError, match=re.escape(said)):
            list(read_chunks(str(f)))
    f.write_text('a,b,c\r1,2,\r4,5,6\r', newline='')
    assert pd.concat(read_chunks(str(f))).shape == (2, 3)
    f.write_text('a,b,c\n1,' + 'x' * 200_000 + ',\n', newline='')
    assert pd.concat(read_chunks(str(f))).shape == (1, 3)


@pytest.mark.parametrize('dialect', [None, CsvDialect(trim_whitespace=True)])
def test_a_row_a_value_short_in_a_file_whose_rows_end_in_a_delimiter_is_refused_not_filled_with_a_null(
    tmp_path, dialect
):
    """An export ending every row in a delimiter (`1,2,3,` under `a,b,c`) is read without an index; a row there with
    a value too few (`4,5,`) has as many fields as the header names, so the short-row check let it by and pandas filled
    `c` with a null, quietly. Refused now, naming its line; a row ending in an empty value (`7,8,,`) or written
    without the last delimiter (`4,5,6`) is read as before."""
    f = tmp_path / 'trailing.csv'
    f.write_text('a,b,c\n1,2,3,\n7,8,9,\n4,5,\n')
    with pytest.raises(SourceError, match=re.escape("line 4 has 2 value(s) before the delimiter it ends in, as the "
                                                    "file's rows do, expected 3 (the columns of its header)")):
        list(read_chunks(str(f), dialect=dialect))
    f.write_text('a,b,c\n1,2,3,\n7,8,,\n4,5,6\n')
    assert pd.concat(read_chunks(str(f), dialect=dialect)).isna().sum().tolist() == [0, 0, 1]


@pytest.mark.parametrize('block', [1 << 20, 3, 4])
def test_a_nul_byte_in_a_file_of_lone_cr_line_ends_is_located_on_its_line_not_in_the_header(
    tmp_path, monkeypatch, block
):
    """A NUL byte was located by counting `\\n` alone: in a file of lone `\\r` line ends (an old Mac's) every line
    was line 1, so a NUL in a row was said to be in the header row; the csv reader saw one line too, and named no
    column. Lines now end as pandas ends them (`\\n`, `\\r\\n` or a lone `\\r`), a `\\r\\n` split across two blocks
    read one line end."""
    from lifecycle.data import sources

    monkeypatch.setattr(sources, '_BLOCK', block)
    f = tmp_path / 'mac.csv'
    for text in [b'a,b,c\r1,2,3\r4,5\x006,7\r', b'a,b,c\r\n1,2,3\r\n4,5\x006,7\r\n', b'a,b,c\n1,2,3\r4,5\x006,7\n']:
        f.write_bytes(text)
        with pytest.raises(SourceError, match=re.escape('holds a NUL byte at line 3, column b (byte')):
            list(read_chunks(str(f)))
    f.write_bytes('a,b,c\r1,2,3\r4,5\x006,7\r'.encode('utf-16'))
    with pytest.raises(SourceError, match=re.escape('holds a NUL byte at line 3, column b (byte')):
        list(read_chunks(str(f), dialect=CsvDialect(encoding='utf-16')))


@pytest.mark.parametrize('header', [b'"Annual\nincome",c,c', b'"Annual\r\nincome",c,c', b'\n\nc,c', b'a\x0cb,c,c',
                                    'a\x85b,c,c'.encode()])  # fmt: skip
def test_a_header_naming_a_column_twice_is_refused_after_a_quoted_line_break_a_blank_line_or_a_form_feed(
    tmp_path, header
):
    """The header's names were taken from the file's first line as `str.splitlines` cuts it: a name holding a quoted
    line break (a spreadsheet's wrapped heading), blank lines before the header (pandas skips them), or a form feed or
    U+0085 (which `splitlines` ends a line at) left the duplicate unseen, and pandas renamed the second `c.1`,
    quietly. The header is now read as the CSV reader reads its first record."""
    f = tmp_path / 'dup.csv'
    f.write_bytes(header + b'\n' + b','.join([b'1'] * (header.count(b',') + 1)) + b'\n')
    with pytest.raises(SourceError, match=re.escape("the header names column(s) ['c'] more than once")):
        list(read_chunks(str(f)))


def test_a_file_ending_inside_a_quoted_value_is_refused_naming_the_line_its_row_begins_on(tmp_path):
    """A file cut off inside a quoted value (torn while written) was refused in pandas' words, `EOF inside string
    starting at row 4`: a row counted from 0 with the header, blank lines and a quoted value's line breaks aside,
    where the row begins on line 7. Now the line, and what probably happened."""
    f = tmp_path / 'torn.csv'
    for text, line in [(b'a,b,c\n1,2,3\n4,5,"ab', 3), (b'a,b,c\n1,"x\ny\nz",3\n\n\n4,5,"ab', 7),
                       (b'a,b,c\r1,2,3\r4,"5,6\r7,8,9\r', 3)]:  # fmt: skip
        f.write_bytes(text)
        with pytest.raises(SourceError, match=re.escape(f'torn.csv: malformed CSV: it ends inside a quoted value, in '
                                                        f'the row that begins on line {line} (a file cut off')):
            list(read_chunks(str(f)))


@pytest.mark.parametrize('rows', ['1,2,3,\n4,5,\n7,8,9,\n', '1,2,3,\n7,8,9,\n4,5,\n'])
def test_a_row_a_value_short_in_a_headerless_file_whose_rows_end_in_a_delimiter_is_refused(tmp_path, rows):
    """Without a header (`csv.header: false`, `csv.names`), the count in C let the first record of as many fields as
    the names by, as it lets a header by in a file whose rows are one field wider: a row a value short there (`4,5,`
    under `a,b,c`, the rows ending in a delimiter) was filled with a null, quietly. No record is let by without a
    header."""
    f = tmp_path / 'trailing.csv'
    f.write_text(rows)
    names = CsvDialect(header=False, names=['a', 'b', 'c'])
    line = rows.splitlines().index('4,5,') + 1
    with pytest.raises(SourceError, match=re.escape(f"line {line} has 2 value(s) before the delimiter it ends in")):
        list(read_chunks(str(f), dialect=names))
    f.write_text('1,2,3,\n7,8,,\n4,5,6\n')
    assert pd.concat(read_chunks(str(f), dialect=names)).isna().sum().tolist() == [0, 0, 1]


def test_a_trimmed_files_header_of_quoted_names_after_spaces_is_read_as_pandas_reads_it(tmp_path):
    """With `trim_whitespace`, pandas reads `a, "x,y", "x,z"` as the names a, `x,y` and `x,z`; the header check split
    it without skipping the spaces first, so the quotes were no quotes, and `"x` was taken for a name given twice: the
    file was refused as naming a column twice. A name given twice so is still refused."""
    f = tmp_path / 'trim.csv'
    f.write_text('a, "x,y", "x,z"\n1, 2, 3\n')
    trim = CsvDialect(trim_whitespace=True)
    assert next(read_chunks(str(f), dialect=trim)).columns.tolist() == ['a', 'x,y', 'x,z']
    f.write_text('a, "x,y", "x,y"\n1, 2, 3\n')
    with pytest.raises(SourceError, match=re.escape("the header names column(s) ['x,y'] more than once")):
        list(read_chunks(str(f), dialect=trim))


def test_a_row_a_value_short_after_a_field_past_the_csv_readers_limit_is_refused_where_rows_end_in_a_comma(tmp_path):
    """Where the record-by-record pass stops at a field longer than the csv reader's limit (128 KB), the count in C
    that still refuses a short row counted fields against the header alone: in a file whose rows end in a delimiter, a
    row a value short (`4,5,` under `a,b,c`) has as many, and was filled with a null, quietly."""
    f = tmp_path / 'long.csv'
    f.write_text('a,b,c\n1,2,3,\n1,' + 'x' * 200_000 + ',3,\n4,5,\n')
    with pytest.raises(SourceError, match=re.escape('line 4 has 2 value(s) before the delimiter it ends in')):
        list(read_chunks(str(f)))
    f.write_text('a,b,c\n1,2,3,\n1,"z' + 'ab\n' * 70_000 + '",3,\n4,5,\n')  # (a quoted value of lines past it)
    with pytest.raises(SourceError, match=re.escape('a row has fewer values than the 3 columns of its header')):
        list(read_chunks(str(f)))
    f.write_text('a,b,c\n1,2,3,\n1,' + 'x' * 200_000 + ',3,\n4,5,,\n')
    assert pd.concat(read_chunks(str(f))).isna().sum().tolist() == [0, 0, 1]


@pytest.mark.parametrize('end', ['', ','])
def test_a_row_cut_short_after_a_field_past_the_csv_readers_limit_is_refused_in_a_trimmed_file(tmp_path, end):
    """In a file read with `trim_whitespace` (its fields counted by the csv reader: pyarrow has no
    `skipinitialspace`), a field longer than the csv reader's limit (128 KB) before a short row stopped the count and
    the check let the file by: the short row's last column was filled with a null, quietly, whether its rows end in a
    delimiter (`end`) or not. The rows are read again in outline (each field's text cut to a character), so the short
    row is refused naming its line, as in a file not trimmed."""
    f = tmp_path / 'long.csv'
    f.write_text(f'a,b,c\n1,2,3{end}\n1, ' + 'x' * 200_000 + f' ,3{end}\n4,5{end}\n7,8,9{end}\n')
    said = 'line 4 has 2 value(s) before the delimiter it ends in' if end else 'line 4 has 2 field(s), expected 3'
    with pytest.raises(SourceError, match=re.escape(said)):
        list(read_chunks(str(f), dialect=CsvDialect(trim_whitespace=True)))
    f.write_text(f'a,b,c\n1,2,3{end}\n1, ' + 'x' * 200_000 + f' ,3{end}\n4,5, {end}\n')  # (empty: none short)
    df = pd.concat(read_chunks(str(f), dialect=CsvDialect(trim_whitespace=True)))
    assert df.shape == (3, 3) and len(df.loc[1, 'b']) == 200_000 and df['c'].isna().tolist() == [False, False, True]


def test_a_field_past_a_block_of_the_c_count_does_not_refuse_a_file_with_no_row_short(tmp_path):
    """The short-row check counts fields in C (pyarrow, a block of 1 MB at a time), and on a row longer than a block
    it cannot tell, so the csv reader reads the records to find the short one; a field past that reader's limit
    (128 KB) stopped it too, and the file was refused as holding a row cut short, its line not located, though no row
    was: a 3 MB text beside a row whose last value is empty. The records are read again in outline and none is."""
    f = tmp_path / 'long.csv'
    f.write_text('a,b,c\n1,2,3\n1,' + 'x' * 3_000_000 + ',3\n4,5,\n')
    df = pd.concat(read_chunks(str(f)))
    assert df.shape == (3, 3) and df['c'].isna().tolist() == [False, False, True]
    f.write_text('a,b,c\n1,2,3\n1,' + 'x' * 3_000_000 + ',3\n4,5\n')
    with pytest.raises(SourceError, match=re.escape('line 4 has 2 field(s), expected 3')):
        list(read_chunks(str(f)))


def test_rows_ending_in_a_delimiter_are_told_where_the_head_read_ends_after_a_quoted_line_break(tmp_path):
    """Whether a CSV's rows end in a delimiter (`1,2,3,` under `a,b,c`) is judged from its first 64 KB, the last line
    left out when the head cuts it; a head ending just after a line break inside a quoted value kept that line, a
    piece of a value (`1,"yyy`), as a whole row not ending in the delimiter: one of two rows, so the file was taken
    for R's row names, and every value was read one column on (`a` holding `b`'s, `c` all null), quietly. The line
    the head ends in is whole only when the head ends in a line break outside a quoted value."""
    f = tmp_path / 'h.csv'
    start = 'a,b,c\n1,2,3,\n1,"'
    f.write_text(start + 'y' * ((1 << 16) - len(start) - 1) + '\nmore",3,\n4,5,6,\n', newline='')
    df = pd.concat(read_chunks(str(f)))
    assert df['a'].tolist() == [1, 1, 4] and df['c'].tolist() == [3, 3, 6], df.map(lambda v: str(v)[:9])


@pytest.mark.parametrize('trim', [False, True])
@pytest.mark.parametrize('blank', ['\t\t', '\xa0\xa0', ' \t'])
def test_a_row_cut_short_after_a_long_field_is_refused_where_whitespace_comes_before_a_quote(tmp_path, trim, blank):
    """After a field past the csv reader's limit (128 KB) the records are read again in outline, and a run of
    whitespace that is not a space (two tabs, no-break spaces, a space then a tab) was cut to nothing, so a quote
    after it, a character of its field (`4,<tab><tab>"5,6`: three fields), opened a quoted value in the outline:
    it ran over the next lines, and the short row among them (`7,8`) was filled with a null, quietly."""
    f = tmp_path / 'long.csv'
    f.write_text('a,b,c\n1,' + 'Y' * 200_000 + f',3\n4,{blank}"5,6\n7,8\n9,10",11\n', newline='')
    with pytest.raises(SourceError, match=re.escape('line 4 has 2 field(s), expected 3')) as e:
        list(read_chunks(str(f), dialect=CsvDialect(trim_whitespace=trim)))
    assert 'Y' * 9 not in str(e.value)


def test_rows_ending_in_a_delimiter_are_told_in_a_trimmed_file_whose_quoted_values_follow_a_space(tmp_path):
    """Whether a CSV's rows end in a delimiter is judged on its head with quoted values blanked (their line breaks are
    no row's); a trimmed file's quoted value opening after a space (`1, "x<line break>y", 3,`, as pandas reads it with
    trim_whitespace) was not blanked, so half its lines seemed rows not ending in the delimiter, the file was taken
    for R's row names, and every value was read one column on (`a` holding `b`'s, `c` all null), quietly."""
    f = tmp_path / 't.csv'
    trimmed = CsvDialect(trim_whitespace=True)
    f.write_text('a,b,c\n' + '1, "x\ny", 3,\n' * 5, newline='')
    df = pd.concat(read_chunks(str(f), dialect=trimmed))
    assert df.to_dict('list') == {'a': [1] * 5, 'b': ['x\ny'] * 5, 'c': [3] * 5}
    f.write_text('a,b\n' + '"r1", "x\ny", 3\n' * 5, newline='')  # (R's row names: the index, as before)
    df = pd.concat(read_chunks(str(f), dialect=trimmed))
    assert df.to_dict('list') == {'a': ['x\ny'] * 5, 'b': [3] * 5}


@pytest.mark.parametrize('trim', [False, True])
def test_a_byte_order_mark_before_a_quoted_first_name_does_not_make_a_row_short(tmp_path, trim):
    """Excel's 'CSV UTF-8' writes a byte-order mark, and quotes a name holding the delimiter (`"a,x",b,c`); the
    short-row check read the file's lines with the mark before that quote, so the quote opened no value, the header
    counted four fields, and a file whose last value is empty (`4,5,`) was refused as 'line 2 has 3 field(s),
    expected 4', where pandas reads three columns; a row cut short was said on the wrong line. The mark is taken off
    the first line, as pandas takes it."""
    f = tmp_path / 'excel.csv'
    dialect = CsvDialect(trim_whitespace=trim)
    f.write_bytes('\ufeff"a,x",b,c\n1,2,3\n4,5,\n'.encode())
    df = pd.concat(read_chunks(str(f), dialect=dialect))
    assert list(df.columns) == ['a,x', 'b', 'c'] and df['c'].isna().tolist() == [False, True]
    f.write_bytes('\ufeff"a,x",b,c\n1,2,3\n4,5\n'.encode())
    with pytest.raises(SourceError, match=re.escape('line 3 has 2 field(s), expected 3')):
        list(read_chunks(str(f), dialect=dialect))


def test_rows_ending_in_a_delimiter_are_told_after_a_byte_order_mark_before_a_quoted_line_break(tmp_path):
    """Whether rows end in a delimiter is judged on the head with quoted values blanked, each from a field's start; a
    byte-order mark (Excel's 'CSV UTF-8') before the first quote kept it from being one, so the quoted line break of
    the first name (`"a<line break>x",b,c`) made a line of its own not ending in the delimiter: with one row
    (`1,2,3,`), half the lines, the file was taken for R's row names and read one column on (`a` 2, `c` null)."""
    f = tmp_path / 'excel.csv'
    f.write_bytes('\ufeff"a\nx",b,c\n1,2,3,\n'.encode())
    df = pd.concat(read_chunks(str(f)))
    assert df.to_dict('list') == {'a\nx': [1], 'b': [2], 'c': [3]}


@pytest.mark.parametrize('lead', ['\n', '\ufeff\n', ' \r\n', '\n\n'])
def test_rows_ending_in_a_delimiter_are_told_after_a_blank_first_line(tmp_path, lead):
    """pandas skips blank lines before the header (a line holding only a byte-order mark, as some exports write, is
    one); whether rows end in a delimiter took the head's first line for the header all the same, so the header was
    counted as a row not ending in one: with one row (`1,2,3,`), half the lines, the file was taken for R's row names
    and read one column on (`a` 2, `c` null), silently."""
    f = tmp_path / 'lead.csv'
    f.write_bytes(f'{lead}a,b,c\n1,2,3,\n'.encode())
    df = pd.concat(read_chunks(str(f)))
    assert df.to_dict('list') == {'a': [1], 'b': [2], 'c': [3]}


def test_whole_amounts_of_millions_grouped_with_an_apostrophe_are_numbers_not_phone_numbers():
    """Review HA: whole amounts of a million or more written `1'234'567` were taken for phone numbers (179 of 200 such
    amounts) and left text, proposed personal. No phone number is written with apostrophes: they are amounts."""
    import numpy as np
    from lifecycle.data.infer import number_marks

    amounts = [f"{n:,}".replace(',', "'") for n in np.random.default_rng(8).integers(1_000_000, 9_999_999, 200)]
    amounts[0] = '950'  # (lengths vary, as amounts' do)
    marks = number_marks(pd.DataFrame({'betrag': amounts}))
    assert marks is not None and (marks.thousands, marks.columns) == ("'", ('betrag',))
