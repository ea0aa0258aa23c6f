"""The monitor reads only the end of the prediction log (`kept_records` through `LogTail`), and gets what reading
every row gets: the same records in the same windows, and each series' times; the monitor's windows and the loop's
counts from a look, not the log's length; a database whose SQL reads no JSON still read whole; `monitor explain`
names the inputs a window lacks instead of raising."""

from __future__ import annotations
import json
from pathlib import Path
import pytest
from tail_logs import T0, WINDOWS, fill, same
from lifecycle.operate.windows import kept_records


@pytest.fixture(scope='module')
def url(tmp_path_factory) -> str:
    u = f"sqlite:///{tmp_path_factory.mktemp('log')}/p.db"
    fill(u)
    return u


def test_a_windows_inputs_are_those_its_requests_were_sent_with_null_ones_too(url):
    rec, _ = kept_records(url, 'm', 'Yes', WINDOWS[1], 1, T0 + 2_000)  # (each series' last 7 records)
    assert 'input:note' in rec and rec['input:note'].isna().all() and 'input:dropped' not in rec
    old, _ = kept_records(url, 'm', 'Yes', WINDOWS[1], 10_000, T0 + 2_000)  # (windows far back: sent then)
    assert old['input:dropped'].notna().any()


@pytest.mark.parametrize('window', WINDOWS, ids=str)
@pytest.mark.parametrize('lookback', [1, 3, 10_000])
def test_the_windows_kept_from_the_end_are_those_from_every_row(url, window, lookback):
    same(url, window, lookback, now=T0 + 2_000)


def test_windows_closed_by_time_count_from_the_last_closed_one_however_old(url):
    same(url, WINDOWS[2], 2, now=T0 + 10**6)  # every window closed long ago
    same(url, WINDOWS[2], 2, now=T0 + 450)  # the log's later rows in windows still open


def test_no_log_yet_is_no_records(tmp_path):
    rec, times = kept_records(f'sqlite:///{tmp_path}/none.db', 'm', 'Yes', WINDOWS[0], 3, T0)
    assert len(rec) == 0 and times == []


def test_the_window_clock_starts_from_the_databases_tallies_and_reads_on_from_there(tmp_path):
    from lifecycle.operate.monitor import WindowClock
    from lifecycle.operate.schema import Window
    from lifecycle.operate.windows import records
    from lifecycle.serve.predlog import PredictionLog, read_log

    url = f'sqlite:///{tmp_path}/p.db'
    fill(url, n=200)

    def counted() -> dict:
        rec = records(read_log(url, shadow=False, model='m'), 'Yes')
        return {k: len(g) // 7 for k, g in rec.groupby(['model_version', 'variant'])}

    clock = WindowClock(url, Window(rows=7), model='m')
    assert clock.position() == counted() and clock.after > 0
    log = PredictionLog(url)
    row = dict(ts=T0, route='predict', variant='control', model_version='1', model='m', status=200)
    log.log_many([dict(row, request_id=f'late{i}', inputs={'age': [1.0] * 5}) for i in range(3)])[-1].wait()
    log.close()
    assert clock.position() == counted()


def test_the_loop_reads_only_labelled_rows_and_counts_the_rest_as_reading_every_row_does(url):
    from lifecycle.loop.feedback import labelled_rows
    from lifecycle.serve.predlog import count_unlabelled, read_log

    every = read_log(url, shadow=False, model='m')
    times = sorted(every['feedback_ts'].dropna())
    for since, until in [(None, None), (times[len(times) // 3], None), (times[5], times[-8])]:
        want = labelled_rows(every, ['age', 'employed'], 'y', since, until)
        got = labelled_rows(
            read_log(url, shadow=False, model='m', labelled=(since, until)), ['age', 'employed'], 'y', since, until
        )
        assert len(want) and got.equals(want)
    for since in (None, T0 + 300):
        answered = every[every['status'] == 200]
        answered = answered if since is None else answered[answered['ts'] >= since]
        assert count_unlabelled(url, 'm', since) == int(answered['outcome'].isna().sum()) > 0
        mid = times[len(times) // 2]  # (as of then: rows whose feedback came later were unlabelled)
        later = answered['outcome'].isna() | (answered['feedback_ts'] >= mid)
        assert count_unlabelled(url, 'm', since, before=mid) == int(later.sum()) > count_unlabelled(url, 'm', since)


@pytest.mark.parametrize(  # every series' windows read both ways: one kind in the fast tier, the others slow
    'window', [pytest.param(w, marks=[] if w == WINDOWS[3] else pytest.mark.slow) for w in WINDOWS], ids=str
)
def test_one_window_read_from_the_nearer_end_is_that_window_of_every_row(url, window):
    from lifecycle.operate.windows import _window_from_all, assign_windows, records, window_records
    from lifecycle.serve.predlog import read_log

    rows = read_log(url, shadow=False, model='m')
    cut = assign_windows(records(rows, 'Yes'), window)
    for (version, variant), g in cut.groupby(['model_version', 'variant']):
        have = sorted(g['window'].unique())
        for number in sorted({*have[:2], have[len(have) // 2], *have[-2:], have[-1] + 1, -1, have[0] - 2}):
            try:
                want = _window_from_all(rows, 'Yes', window, version, variant, number)
            except LookupError as e:
                with pytest.raises(LookupError) as got:
                    window_records(url, 'm', 'Yes', window, version, variant, number)
                assert str(got.value) == str(e) and 'found windows' in str(e)
                continue
            got = window_records(url, 'm', 'Yes', window, version, variant, number)
            assert len(want) and got.equals(want)
    with pytest.raises(LookupError, match=r"no records in the prediction log; it holds version 1 variant 'control'"):
        window_records(url, 'm', 'Yes', window, '7', 'control', 0)


def test_a_window_in_the_middle_of_a_series_is_read_alone(url, monkeypatch):
    """`monitor explain` of an old window: its first record's row is found by counting in SQL, and only the rows from
    there to the window's end are decoded, not half the series."""
    from lifecycle.operate.schema import Window
    from lifecycle.operate.windows import _window_from_all, window_records
    from lifecycle.serve import logtail
    from lifecycle.serve.predlog import read_log

    decoded, real = [], logtail.decoded
    monkeypatch.setattr(logtail, 'decoded', lambda rows: decoded.append(len(rows)) or real(rows))
    window, whole = Window(rows=7), read_log(url, shadow=False, model='m')
    with logtail.LogTail(url, 'm') as t:
        s = max((s for s in t.series() if s.variant is not None), key=lambda s: s.records)
    middle = s.records // 7 // 2
    got = window_records(url, 'm', 'Yes', window, s.model_version, s.variant, middle)
    assert got.equals(_window_from_all(whole, 'Yes', window, s.model_version, s.variant, middle))
    assert s.records > 200 and sum(decoded) <= 2 * 7  # (its rows, and any of no records among them)


def test_a_look_reads_the_end_of_each_series_not_the_whole_log(url, monkeypatch):
    from lifecycle.operate.schema import Window
    from lifecycle.serve import logtail, predlog

    read, real = [], logtail.LogTail._read

    def spy(self, *a, **kw):
        rows, held = real(self, *a, **kw)
        read.append(len(rows))
        return rows, held

    monkeypatch.setattr(logtail.LogTail, '_read', spy)
    monkeypatch.setattr(predlog, 'read_log', lambda *a, **kw: pytest.fail('the whole log was read'))
    rec, _ = kept_records(url, 'm', 'Yes', Window(rows=7), 2, T0 + 2_000)
    assert len(rec) and len(read) >= 4 and max(read) <= 3 * 7 + 2  # (3 windows' records, a request more, none-rows)


def test_a_look_is_one_snapshot_feedback_given_during_it_is_the_next_looks(tmp_path):
    from lifecycle.serve.logtail import LogTail
    from lifecycle.serve.predlog import PredictionLog, add_feedback

    url = f'sqlite:///{tmp_path}/p.db'
    log = PredictionLog(url)
    row = dict(ts=T0, route='predict', variant='control', model_version='1', model='m', status=200)
    log.log(request_id='r', inputs={'age': [1.0]}, **row).wait()
    try:
        with LogTail(url, 'm') as t:
            add_feedback(log, 'r', 'Yes')  # (committed while the look reads)
            (s,) = t.series()
            assert t.tail(s)[0].outcome.isna().all() and t.last_feedback() == {}
        with LogTail(url, 'm') as t:
            assert list(t.last_feedback()) == [('1', 'control')]
    finally:
        log.close()


@pytest.mark.parametrize('sent', [False, True], ids=['input-not-sent', 'input-sent-null'])
def test_a_regression_window_without_an_inputs_values_is_still_measured(tmp_path, sent):
    import numpy as np
    import pandas as pd
    from lifecycle.data import drift
    from lifecycle.operate.schema import Window
    from lifecycle.operate.windows import Baseline, window_metrics
    from lifecycle.serve.predlog import PredictionLog

    rng = np.random.default_rng(0)
    url = f'sqlite:///{tmp_path}/p.db'
    log = PredictionLog(url)
    row = dict(route='predict', variant='control', model_version='1', model='m', status=200, decision=[None])
    for p in log.log_many(
        [
            dict(row, request_id=f'r{i}', ts=1_000.0 + i, output=[float(rng.random())],
                 inputs={'age': [float(rng.integers(20, 60))]} | ({'checks': [None]} if sent else {}))
            for i in range(40)
        ]
    ):  # fmt: skip
        p.wait()
    log.close()
    rec, _ = kept_records(url, 'm', None, Window(rows=10), 2, 2_000.0)
    assert ('input:checks' in rec) is sent
    x = pd.DataFrame({'age': rng.integers(20, 60, 500).astype(float), 'checks': rng.integers(0, 6, 500).astype(float)})
    s = rng.random(500)
    b = Baseline.from_holdout(drift.profile(x), s, s + rng.normal(0, 0.1, 500), task='regression', inputs=x)
    m = window_metrics(rec, {'1': b}, task='regression')  # (KeyError on the loss estimator's columns, before)
    assert len(m) == 2 and np.isfinite(m['estimated_mae']).all()
    heat = m.attrs['drift']
    checks = heat[heat['column'] == 'checks']
    assert len(checks) == (2 if sent else 0) and (checks['method'] == 'all_null').all()  # (not sent: not measured)


def test_an_sqlite_without_its_json_functions_is_read_whole_with_the_same_answer(url, monkeypatch):
    import pandas as pd
    from lifecycle.serve import logtail, predlog

    want = kept_records(url, 'm', 'Yes', WINDOWS[0], 3, T0 + 2_000)
    whole, real = [], predlog.read_log
    monkeypatch.setattr(logtail, '_reads_json', lambda c: False)
    monkeypatch.setattr(predlog, 'read_log', lambda *a, **kw: whole.append(1) or real(*a, **kw))
    got = kept_records(url, 'm', 'Yes', WINDOWS[0], 3, T0 + 2_000)
    assert whole and got[1] == want[1]
    pd.testing.assert_frame_equal(got[0].reset_index(drop=True), want[0].reset_index(drop=True), check_dtype=False)


@pytest.mark.parametrize('how', ['not-sent', 'sent-null'])
def test_monitor_explain_names_inputs_a_window_lacks_and_never_raises(tiny_template, tmp_path, monkeypatch, how):
    from conftest import copy_workspace
    from lifecycle.core.cli_support import EXIT_INPUT, invoke
    from lifecycle.core.workspace import Workspace
    from lifecycle.model.signing import verified_sklearn
    from lifecycle.operate.commands import monitor_explain
    from lifecycle.serve.predlog import PredictionLog, add_feedback, default_url

    ws_dir = copy_workspace(tiny_template, tmp_path / 'ws')
    monkeypatch.chdir(ws_dir)
    ws = Workspace.open(ws_dir)
    rp = ws.params['register']
    cols = list(verified_sklearn(ws.mlflow, ws.store, rp.model_name, '1', ws.key_dir).feature_names_in_)
    val = ws.store.get_record('validations', ws.client.get_model_version(rp.model_name, '1').tags['validation_id'])
    holdout = ws.store.get_frame(val['holdout_id']).head(20).reset_index(drop=True)
    gone = cols[0]
    log = PredictionLog(default_url(ws))
    row = dict(route='predict', variant='control', model_version='1', model=rp.model_name, status=200)
    sent = []
    for i, r in holdout.iterrows():
        x = {c: [None if c == gone else r[c].item() if hasattr(r[c], 'item') else r[c]] for c in cols}
        if how == 'not-sent':
            del x[gone]
        sent.append(dict(row, request_id=f'{i:032x}', ts=1_000.0 + i, inputs=x, output=[0.5], decision=[1]))
    for p in log.log_many(sent):
        p.wait()
    for i in range(len(sent)):
        add_feedback(log, f'{i:032x}', ['Yes', 'No'][i % 2])
    log.close()
    r = invoke(monitor_explain, ['--version', '1', '--window', '0', '--json'])
    err = json.loads(r.stdout)['error']
    assert r.exit_code == EXIT_INPUT and gone in err, r.output
    assert ("were not sent the model's input(s)" if how == 'not-sent' else f'{gone} (20 of 20)') in err


@pytest.mark.parametrize('moving', [False, True], ids=['no-edge', 'edge-moving-on'])
def test_a_tally_kept_across_looks_counts_only_new_rows_and_answers_as_a_fresh_count(tmp_path, moving):
    "`monitor run --every` keeps a `Tally`: each look then counts the rows logged since the last, not the whole log."
    import sqlite3
    from tail_logs import more
    from lifecycle.serve.logtail import LogTail, Tally

    url, tally = f'sqlite:///{tmp_path}/p.db', Tally()

    def look(edge, t=None):
        with LogTail(url, 'm') as tail:
            return sorted(tail.series(edge, t), key=lambda s: (s.model_version, s.variant))

    for step in range(5):
        more(url, 60 * step, 60)
        edge = T0 + 10 * (45 * step + 20) if moving else None
        got, upto = look(edge, tally), tally.upto
        assert got == look(edge) and len(got) >= 6 and tally.edge == edge
    assert tally.rows == 300 and tally.model == 'm' and any(s.last_before for s in got) == moving
    with sqlite3.connect(f'{tmp_path}/p.db') as c:  # an old row changed in place: a tally reads old rows no more
        c.execute("UPDATE predictions SET inputs = ? WHERE request_id = 'more1'", (json.dumps({'age': [1.0] * 5}),))
    edge = None if edge is None else edge + 100
    assert tally.upto == upto and look(edge, tally) != look(edge)  # (its count stands; a fresh one reads the row)
    with sqlite3.connect(f'{tmp_path}/p.db') as c:  # a row gone (nothing here deletes one: its owner might)
        c.execute("DELETE FROM predictions WHERE request_id = 'more7'")
    assert look(edge, tally) == look(edge) and tally.rows == 299  # counted afresh
    back = None if edge is None else edge - 200  # an edge before the last look's: counted afresh too
    assert look(back, tally) == look(back) and tally.edge == back


def test_a_tally_of_another_model_or_without_an_edge_is_not_carried_on(tmp_path):
    from tail_logs import more
    from lifecycle.serve.logtail import LogTail, Tally

    url, tally = f'sqlite:///{tmp_path}/p.db', Tally()
    more(url, 0, 120)

    def look(model, edge, t=None):
        with LogTail(url, model) as tail:
            return sorted(tail.series(edge, t), key=lambda s: (s.model_version, s.variant))

    assert look('m', None, tally) == look('m', None) and tally.model == 'm'
    assert look('other', None, tally) == look('other', None) != look('m', None) and tally.model == 'other'
    edge = T0 + 600
    assert look('other', edge, tally) == look('other', edge) and any(s.last_before for s in look('other', edge))


@pytest.mark.parametrize('window', WINDOWS, ids=str)
def test_looks_that_keep_a_tally_keep_the_windows_a_whole_read_keeps(tmp_path, window):
    "`monitor run --every`'s looks: its window clock's first read and each look share one tally; the windows stand."
    import pandas as pd
    from tail_logs import from_every_row, more
    from lifecycle.operate.monitor import WindowClock
    from lifecycle.serve.logtail import LogTail, Tally

    url, tally = f'sqlite:///{tmp_path}/p.db', Tally()
    fill(url, n=300)
    clock = WindowClock(url, window, model='m', tally=tally)
    clock.position()
    with LogTail(url, 'm') as t:
        first = t.upto
    assert tally.upto == (first if window.rows else 0)  # (the clock's first read; one of time windows reads none)
    for step in range(3):
        more(url, 1000 + 40 * step, 40)
        now = T0 + 10 * (1000 + 40 * step + 30)
        got, times = kept_records(url, 'm', 'Yes', window, 3, now, tally)
        want, want_times = from_every_row(url, window, 3, now)
        assert len(want) and times == want_times and tally.upto == first + 40 * (step + 1)
        pd.testing.assert_frame_equal(got.reset_index(drop=True), want.reset_index(drop=True), check_dtype=False)


def test_monitor_run_every_counts_the_whole_log_once_then_only_what_each_look_adds(
    tiny_template, tmp_path, monkeypatch
):
    from conftest import copy_workspace
    from tail_logs import more
    from lifecycle.core.cli_support import invoke
    from lifecycle.core.workspace import Workspace
    from lifecycle.operate.commands import monitor_run
    from lifecycle.serve import logtail
    from lifecycle.serve.predlog import default_url

    ws_dir = copy_workspace(tiny_template, tmp_path / 'ws')
    monkeypatch.chdir(ws_dir)
    more(default_url(Workspace.open(ws_dir)), 0, 50)
    counted, real = [], logtail.LogTail._count

    def spy(self, out, edge, after=None, upto=None):
        counted.append(after)
        return real(self, out, edge, after, upto)

    monkeypatch.setattr(logtail.LogTail, '_count', spy)
    r = invoke(monitor_run, ['--every', '0.05', '--times', '3', '--json'])
    assert r.exit_code == 0, r.output
    assert len(counted) >= 3 and counted[0] is None and None not in counted[1:], counted  # (the whole log once)


@pytest.mark.parametrize('change', ['ids-given-again', 'log-begun-again', 'series-changed-in-place'])
def test_a_tally_is_not_carried_on_to_another_log_or_to_ids_given_again(tmp_path, change):
    """SQLite gives the IDs of the newest rows deleted to the next rows; a log removed and begun again (or a backup put
    back) can grow past the mark with other rows: the tally's last row is then not the same row, and all is counted.
    A series met only among rows counted before (an edge moving on) means the log changed: counted afresh too."""
    import copy
    import sqlite3
    from tail_logs import more
    from lifecycle.serve.logtail import LogTail, Tally

    db, tally = tmp_path / 'p.db', Tally()
    url = f'sqlite:///{db}'
    more(url, 0, 60)
    edge = T0 + 300

    def look(edge, t=None):
        with LogTail(url, 'm') as tail:
            return sorted(tail.series(edge, t), key=lambda s: (s.model_version, s.variant))

    before = look(edge, tally)
    if change == 'ids-given-again':
        with sqlite3.connect(db) as c:
            c.execute('DELETE FROM predictions WHERE id > 50')
        more(url, 500, 10)  # (10 rows of IDs 51-60, as the deleted ones)
    elif change == 'log-begun-again':
        db.unlink()
        between = copy.deepcopy(tally)
        assert look(edge, between) == [] and between.upto == 0  # (a look at no log: the next counts from its start)
        more(url, 700, 60)  # (IDs 1-60 again)
    else:
        with sqlite3.connect(db) as c:  # an old row's variant changed in place, to one no row had
            c.execute("UPDATE predictions SET variant = 'new' WHERE request_id = 'more31'")  # (logged at T0 + 310)
        edge = T0 + 590
    assert look(edge, tally) == look(edge) != before


def test_a_monitor_run_takes_the_tally_the_last_kept_and_a_damaged_or_another_logs_is_counted_afresh(
    tiny_template, tmp_path, monkeypatch
):
    "Looks run one process each (cron): the last look's tally is kept in the monitor's folder for the next."
    import pandas as pd
    from conftest import copy_workspace
    from lifecycle.core.cli_support import invoke
    from lifecycle.core.workspace import Workspace
    from lifecycle.data.pii import finding_salt
    from lifecycle.operate.commands import monitor_run
    from lifecycle.operate.monitor import load_tally
    from lifecycle.serve import logtail
    from lifecycle.serve.predlog import PredictionLog, default_url

    ws_dir = copy_workspace(tiny_template, tmp_path / 'ws')
    monkeypatch.chdir(ws_dir)
    ws = Workspace.open(ws_dir)
    finding_salt(ws.digest_salt_path)  # (as the server makes it)
    url, kept = default_url(ws), ws.state_dir / 'monitor' / 'tally.json'
    counted, real = [], logtail.LogTail._count

    def spy(self, out, edge, after=None, upto=None):
        counted.append(after)
        return real(self, out, edge, after, upto)

    def look() -> pd.DataFrame:
        assert (r := invoke(monitor_run, ['--json'])).exit_code == 0, r.output
        return pd.read_parquet(ws.state_dir / 'monitor' / 'windows.parquet')

    def served(start: int, n: int) -> None:  # requests of the workspace's model: 500 records close a window
        log, model = PredictionLog(url), ws.params['register'].model_name
        row = dict(route='predict', variant='control', model_version='1', model=model, status=200, output=[0.5])
        for p in log.log_many(
            [
                dict(row, request_id=f'req{i}', ts=T0 + i, inputs={'age': [30.0 + i % 7]})
                for i in range(start, start + n)
            ]
        ):
            p.wait()
        log.close()

    monkeypatch.setattr(logtail.LogTail, '_count', spy)
    served(0, 2000)
    look()
    assert counted == [None] and load_tally(ws, url).upto == 2000 and 'req' not in kept.read_text()  # (a digest)
    served(2000, 1000)
    windows = look()
    assert counted == [None, 2000] and load_tally(ws, url).upto == 3000  # only the rows logged since
    assert len(windows) and load_tally(ws, url + '?other').upto == 0  # (another log's: none)
    kept.write_text('{"log": ')  # damaged: counted afresh, and kept anew
    pd.testing.assert_frame_equal(look(), windows)
    assert counted[-1] is None and load_tally(ws, url).upto == 3000


BAD_TALLIES = [
    {'format': 1, 'model': None, 'upto': 1e400, 'mark': None, 'rows': 1, 'edge': None, 'series': []},
    {'format': 1, 'model': None, 'upto': True, 'mark': None, 'rows': 1, 'edge': None, 'series': []},
    {'format': 1, 'model': None, 'upto': 5, 'mark': None, 'rows': 5, 'edge': 'soon', 'series': []},
    {'format': 1, 'model': None, 'upto': 5, 'mark': None, 'rows': 5, 'edge': float('nan'), 'series': []},
    {'format': 1, 'model': None, 'upto': 5, 'mark': None, 'rows': 5, 'edge': None, 'series': {}},
    {'format': 1, 'model': None, 'upto': 5, 'mark': None, 'rows': 5, 'edge': None, 'series': ''},
    {'format': 1, 'model': [1], 'upto': 5, 'mark': None, 'rows': 5, 'edge': None, 'series': []},
    {'format': 2, 'model': None, 'upto': 5, 'mark': None, 'rows': 5, 'edge': None, 'series': []},
    {'format': 1, 'model': None, 'upto': 5, 'mark': None, 'rows': 5, 'edge': None, 'series': [
        {'model_version': ['1'], 'variant': 'a', 'records': 1, 'first_ts': 1, 'last_ts': 1, 'last_before': None}]},
    {'format': 1, 'model': None, 'upto': 5, 'mark': None, 'rows': 5, 'edge': None, 'series': [
        {'model_version': '1', 'variant': 'a', 'records': '1', 'first_ts': 1, 'last_ts': 1, 'last_before': None}]},
    {'format': 1, 'model': None, 'upto': 5, 'mark': None, 'rows': 5, 'edge': None, 'series': [
        {'model_version': '1', 'variant': 'a', 'records': 1, 'first_ts': 1, 'last_ts': 1}]},
    [1, 2],
]  # fmt: skip


@pytest.mark.parametrize('bad', BAD_TALLIES, ids=range(len(BAD_TALLIES)))
def test_a_kept_tally_of_another_shape_is_refused_by_name_and_taken_for_none(tmp_path, bad):
    from lifecycle.core.workspace import Workspace
    from conftest import make_workspace
    from lifecycle.data.pii import finding_salt
    from lifecycle.operate.monitor import _log_digest, _tally_key, _tally_path, load_tally
    from lifecycle.serve.logtail import Tally

    with pytest.raises(ValueError, match='not a tally'):
        Tally.from_data(bad)
    ws = Workspace.open(make_workspace(tmp_path / 'ws'))
    finding_salt(ws.digest_salt_path)  # (as the server makes it)
    _tally_path(ws).parent.mkdir(parents=True, exist_ok=True)
    log = 'sqlite:///x.db'
    _tally_path(ws).write_text(
        json.dumps(dict(bad, log=_log_digest(log, _tally_key(ws))) if isinstance(bad, dict) else bad)
    )
    assert load_tally(ws, log) == Tally()  # (a cache: none, and the look counts every row)


def test_a_kept_tally_holds_a_keyed_digest_of_its_last_row_and_follows_the_log_begun_again(tmp_path):
    """No request ID in the file, nor one a guess could find without the workspace's secret salt; a log begun again
    with the same requests at the same times but another version is not the one counted."""
    import hashlib
    import hmac
    import sqlite3
    from conftest import make_workspace
    from lifecycle.core.workspace import Workspace
    from lifecycle.data.pii import finding_salt
    from lifecycle.operate.monitor import _tally_key, _tally_path, load_tally, save_tally
    from lifecycle.serve.logtail import LogTail
    from lifecycle.serve.predlog import PredictionLog

    ws = Workspace.open(make_workspace(tmp_path / 'ws'))
    finding_salt(ws.digest_salt_path)  # (as the server makes it)
    db = tmp_path / 'p.db'
    url = f'sqlite:///{db}'

    def served(version: str) -> None:
        log = PredictionLog(url)
        row = dict(route='predict', variant='control', model_version=version, model='m', status=200, output=[0.5])
        for p in log.log_many([dict(row, request_id=f'r{i}', ts=T0 + i, inputs={'age': [1.0]}) for i in range(40)]):
            p.wait()
        log.close()

    def look(t=None):
        with LogTail(url, 'm') as tail:
            return [(s.model_version, s.records) for s in tail.series(None, t)]

    served('1')
    tally = load_tally(ws, url)
    assert look(tally) == [('1', 40)]
    save_tally(ws, url, tally)
    kept = _tally_path(ws).read_text()
    with sqlite3.connect(db) as c:
        row = c.execute(
            "SELECT request_id, ts, model_version, variant, model, LENGTH(inputs) FROM predictions "
            "WHERE request_id = 'r39'"
        ).fetchone()
    said = json.dumps(list(row)).encode()
    assert row[0] == 'r39' and 'r39' not in kept  # (counts and times; the mark a digest)
    assert json.loads(kept)['mark'] == hmac.new(_tally_key(ws), said, hashlib.sha256).hexdigest()[:32]
    assert json.loads(kept)['mark'] != hmac.new(b'', said, hashlib.sha256).hexdigest()[:32]
    db.unlink()
    served('2')  # (the same IDs and times: another version)
    assert look(load_tally(ws, url)) == look() == [('2', 40)]
    db.unlink()
    empty = load_tally(ws, url)
    assert look(empty) == [] and empty.upto == 0
    save_tally(ws, url, empty)
    assert not _tally_path(ws).exists()  # (a log begun again: none kept)
    _tally_path(ws).mkdir()  # a folder in its place: a cache that cannot be kept, never a failed look
    assert load_tally(ws, url).upto == 0 and tally.upto == 40
    save_tally(ws, url, tally)
    assert _tally_path(ws).is_dir()


@pytest.mark.parametrize('salt', ['none', 'unreadable'])
def test_without_a_salt_it_can_read_the_monitor_makes_none_and_keeps_no_tally_but_looks(
    tiny_template, tmp_path, monkeypatch, salt
):
    """The monitor may run as another user than the server: it never makes the workspace's salt (which would then be
    its own, not the server's), and with none it can read it keeps no tally and looks all the same."""
    from conftest import copy_workspace
    from lifecycle.core.cli_support import invoke
    from lifecycle.core.workspace import Workspace
    from lifecycle.operate.commands import monitor_run

    ws_dir = copy_workspace(tiny_template, tmp_path / 'ws')
    monkeypatch.chdir(ws_dir)
    ws = Workspace.open(ws_dir)
    path = Path(ws.digest_salt_path)
    path.unlink(missing_ok=True)
    if salt == 'unreadable':
        path.mkdir(parents=True)  # (a folder in its place: as a file private to another user)
    for args in (['--json'], ['--every', '0.05', '--times', '2', '--json']):
        assert (r := invoke(monitor_run, args)).exit_code == 0, r.output
    assert path.is_dir() if salt == 'unreadable' else not path.exists()
    assert not (ws.state_dir / 'monitor' / 'tally.json').exists()


def test_a_tally_of_a_log_without_the_model_column_counts_as_a_fresh_look(tmp_path):
    "A log no writer opened since it came may lack the `model` column: a tally's mark does without it."
    import sqlite3
    from tail_logs import more
    from lifecycle.serve.logtail import LogTail, Tally

    db, tally = tmp_path / 'p.db', Tally()
    url = f'sqlite:///{db}'
    more(url, 0, 60)
    with sqlite3.connect(db) as c:
        c.execute('ALTER TABLE predictions DROP COLUMN model')
    for _ in range(2):
        with LogTail(url, 'm') as t:
            assert t.series(None, tally) == t.series() and tally.upto == 60


def test_a_look_that_fails_part_way_leaves_the_tally_as_it_was(tmp_path, monkeypatch):
    "`monitor run --every` looks again with the same tally after a look the database failed: none half-updated."
    import copy
    from tail_logs import more
    from lifecycle.serve import logtail
    from lifecycle.serve.logtail import LogTail, Tally

    url, tally = f'sqlite:///{tmp_path}/p.db', Tally()
    more(url, 0, 60)
    with LogTail(url, 'm') as t:
        t.series(T0 + 200, tally)
    before, real = copy.deepcopy(tally), logtail.LogTail._newer
    more(url, 60, 30)

    calls = []

    def fails(self, upto):  # (the look's last query: once the rows are counted)
        calls.append(upto)
        if len(calls) == 2:
            raise RuntimeError('the database went away')
        return real(self, upto)

    monkeypatch.setattr(logtail.LogTail, '_newer', fails)
    with LogTail(url, 'm') as t, pytest.raises(RuntimeError):
        t.series(T0 + 600, tally)
    assert tally == before and len(calls) == 2
    monkeypatch.setattr(logtail.LogTail, '_newer', real)
    with LogTail(url, 'm') as t:
        assert t.series(T0 + 600, tally) == t.series(T0 + 600)
