"""The prediction log on PostgreSQL (`prediction_log_url = postgresql+psycopg://...`), against a real server
(`tests/postgres.py`: a private cluster on a Unix socket): rows committed before their answer goes, from a writer
thread and from a writer process, read back and joined with feedback; old raw targeting keys replaced by their
pseudonyms once; a server answering, logging and taking feedback with its log there; a database that cannot be
reached refused by name, with no traceback and no password."""

from __future__ import annotations
import os
import time
import pytest
from sqlalchemy import create_engine, text
from postgres import Cluster, missing

REQUIRED = os.environ.get('LIFECYCLE_REQUIRE_POSTGRES') == '1'  # (.ci/run, where it installed PostgreSQL)
# A PostgreSQL server of its own (initdb, pg_ctl start) for the module: a server process, so the slow tier's, as the
# README's tiers say (`make test-fast` starts no server process).
pytestmark = [pytest.mark.skipif(bool(missing()) and not REQUIRED, reason=missing() or 'runs'), pytest.mark.slow]

REC = {'age': 30, 'checks': 2, 'employed': 'Yes', 'citizen': 'No'}


@pytest.fixture(scope='module')
def cluster():
    if missing():  # (required here: skipped otherwise)
        pytest.fail(f"LIFECYCLE_REQUIRE_POSTGRES=1, and {missing()}")
    c = Cluster().start()
    yield c
    c.stop()


def row(i: int, key: str | None = None) -> dict:
    return dict(
        request_id=f'{i:032x}', ts=time.time(), route='predict', variant='control', model_version='1', model='m',
        shadow=False, inputs={'age': [30]}, output=[0.5], decision=[1], threshold=0.5, latency_ms=1.0, status=200,
        targeting_key=key,
    )  # fmt: skip


def held(url: str, r: dict, records: int = 1):
    "Insert row `r` (of `records` records) in a transaction left open, its ID taken: the connection, the transaction."
    import json

    c = create_engine(url).connect()
    tx = c.begin()
    c.execute(
        text(
            'INSERT INTO predictions (request_id, ts, route, variant, model_version, model, shadow, inputs, status) '
            'VALUES (:request_id, :ts, :route, :variant, :model_version, :model, false, :inputs, 200)'
        ),
        dict(r, inputs=json.dumps({'age': [30] * records})),
    )
    return c, tx


def stored(url: str) -> dict[str, str | None]:
    "request_id -> targeting_key, read with the driver itself (no reader of ours in between)."
    with create_engine(url).connect() as c:
        return dict(c.execute(text('SELECT request_id, targeting_key FROM predictions')).all())


@pytest.mark.parametrize('process', [False, True], ids=['writer-thread', 'writer-process'])
def test_each_row_is_committed_before_it_settles_and_reads_back_with_its_feedback(cluster, process):
    from lifecycle.serve.predlog import PredictionLog, add_feedback, read_log

    url = cluster.database()
    log = PredictionLog(url, process=process)
    try:
        pending = log.log_many([row(i) for i in range(5)]) + [log.log(**row(5))]
        for p in pending:
            p.wait(10)  # settled: committed (durable), else it raises
        assert set(stored(url)) == {f'{i:032x}' for i in range(6)}  # another connection sees them: committed
        assert add_feedback(log, f'{3:032x}', 1, actor='t') == {'request_id': f'{3:032x}', 'recorded': True}
        assert log.errors == 0 and log.problem == ''
    finally:
        log.close()
    df = read_log(url).set_index('request_id')
    assert len(df) == 6 and df.loc[f'{3:032x}', 'outcome'] == 1 and df.drop(f'{3:032x}').outcome.isna().all()


def test_raw_targeting_keys_of_an_earlier_version_get_their_pseudonyms_once(cluster, caplog):
    "The PostgreSQL branch of `pseudonymise_old_keys`: each raw key replaced, once (the marker row), later rows too."
    from lifecycle.serve.predlog import PredictionLog, key_pseudonym, pseudonymise_old_keys

    url, hide = cluster.database(), key_pseudonym(b'salt' * 8)
    old = PredictionLog(url)  # a server of an earlier version: keys as sent
    keys = ['ann@example.org', 'ann@example.org', 'k:0123456789abcdef', None, 'ACC-7731', '']
    old.log_many([row(i, k) for i, k in enumerate(keys)])
    assert old.flush()
    old.close()
    PredictionLog(url, pseudonym=hide).close()
    got = stored(url)
    assert [got[f'{i:032x}'] for i in range(6)] == [
        hide('ann@example.org'), hide('ann@example.org'), 'k:0123456789abcdef', None, hide('ACC-7731'), None
    ]  # fmt: skip
    assert '4 rows logged with their targeting key as sent hold its pseudonym (an empty key: none)' in caplog.text
    assert pseudonymise_old_keys(create_engine(url), hide) == (0, '')  # nothing new since the marker
    late = PredictionLog(url)  # an earlier version's server still writing (a rolling upgrade)
    late.log(**row(9, 'bo@example.org'))
    assert late.flush()
    late.close()
    assert pseudonymise_old_keys(create_engine(url), hide) == (1, '')
    assert stored(url)[f'{9:032x}'] == hide('bo@example.org')


@pytest.fixture
def pg_ws(tiny_template, tmp_path, cluster, monkeypatch):
    "The tiny workspace, copied, its prediction log a new PostgreSQL database (by `LIFECYCLE_PREDICTION_LOG_URL`)."
    from conftest import copy_workspace

    ws = copy_workspace(tiny_template, tmp_path / 'ws')
    url = cluster.database()
    monkeypatch.setenv('LIFECYCLE_PREDICTION_LOG_URL', url)
    return ws, url


def test_a_server_with_its_log_on_postgresql_answers_logs_and_takes_feedback(pg_ws):
    from starlette.testclient import TestClient
    from conftest import cli_json
    from lifecycle.core.workspace import Workspace
    from lifecycle.serve.predlog import read_log
    from lifecycle.serve.server import Server
    from lifecycle.serve.serving import create_app

    ws, url = pg_ws
    s = Workspace.open(ws)
    sent = 'jane.doe@example.com'
    with TestClient(create_app(Server(s))) as client:
        assert client.get('/ready').json()['ready'] is True
        inv = client.post('/invocations', json={'dataframe_records': [REC]})
        pred = client.post('/predict', json={'records': [REC], 'context': {'targetingKey': sent}})
        assert inv.status_code == pred.status_code == 200, (inv.text, pred.text)
        ids = [inv.headers['x-request-id'], pred.json()['request_id']]
        assert set(ids) <= set(stored(url))  # answered: committed there, not only queued
        fb = client.post('/feedback', json={'request_id': ids[1], 'outcome': 1})
        assert fb.status_code == 200, fb.text
    keys = stored(url)
    assert keys[ids[1]] and keys[ids[1]] != sent and sent not in str(keys)  # its pseudonym, never as sent
    df = read_log(url).set_index('request_id')
    assert (
        df.loc[ids[1], 'outcome'] == 'Yes' and (ws / '.lifecycle' / 'predictions.db').exists() is False
    )  # 1: the positive label
    env = {'LIFECYCLE_PREDICTION_LOG_URL': url}  # the commands that read the log, on PostgreSQL
    r, out = cli_json(ws, 'trace', ids[1], env=env)
    assert r.returncode == 0 and [x['request_id'] for x in out['rows']] == [ids[1]], (r.stdout, r.stderr)
    for args in (['monitor', 'run'], ['retrain', 'status']):
        r, out = cli_json(ws, *args, env=env)
        assert r.returncode == 0 and out['ok'] is True, (args, r.stdout, r.stderr)


def test_a_database_that_cannot_be_reached_is_named_without_its_password(tiny_template, tmp_path, cluster):
    "Readers (the monitor) and a server starting refuse with one line naming the database, exit 4, no traceback."
    import json
    import shutil
    import socket
    from conftest import ROOT, cli, copy_workspace

    ws = copy_workspace(tiny_template, tmp_path / 'ws')
    env = {'LIFECYCLE_PREDICTION_LOG_URL': cluster.url('no_such_database').replace('lifecycle@', 'lifecycle:s3cret@')}
    r = cli(ws, 'monitor', 'run', '--json', env=env)
    out = json.loads(r.stdout)
    assert r.returncode == 4 and out['ok'] is False and 'Traceback' not in r.stderr, r.stdout + r.stderr
    assert 'the prediction log at postgresql+psycopg://***:***@/no_such_database' in out['error'], out
    assert 'does not exist' in out['error'] and 's3cret' not in r.stdout + r.stderr
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        port = str(s.getsockname()[1])
    r = cli(ws, 'monitor', 'report', env=env)
    assert r.returncode == 2 and 'report notebook not found' in r.stderr, r.stderr  # (the tiny workspace has none)
    shutil.copytree(ROOT / 'nbs/stages', ws / 'nbs/stages')
    r = cli(ws, 'monitor', 'report', env=env)  # its notebook reads the log: the same line, not papermill's traceback
    assert r.returncode == 4 and r.stderr.startswith('error: report 09_monitor.ipynb failed: LogUnreadable:'), r.stderr
    assert 'Traceback' not in r.stderr and 's3cret' not in r.stdout + r.stderr
    r = cli(ws, 'serve', '--port', port, env=env, own_process=True, timeout=120)  # refused before it listens
    assert r.returncode == 4 and 'cannot be opened' in r.stderr and 'Traceback' not in r.stderr, r.stderr
    assert 's3cret' not in r.stdout + r.stderr


def test_a_watcher_says_each_look_it_could_not_take_and_looks_again(tiny_template, tmp_path, cluster):
    "`monitor run --every` outlives a database that is down (a restart): each missed look is a line, not the end."
    import json
    from conftest import cli, copy_workspace

    ws = copy_workspace(tiny_template, tmp_path / 'ws')
    env = {'LIFECYCLE_PREDICTION_LOG_URL': cluster.url('no_such_database')}
    r = cli(ws, 'monitor', 'run', '--every', '0.1', '--times', '3', '--json', env=env)
    looks = [json.loads(line) for line in r.stdout.splitlines()]
    assert r.returncode == 4 and len(looks) == 4 and 'Traceback' not in r.stderr, (r.stdout, r.stderr)  # (its last
    assert all(x['ok'] is False and 'does not exist' in x['error'] for x in looks), looks  # look failed: so did it)
    r = cli(ws, 'monitor', 'run', '--every', '0.1', '--json', env={'LIFECYCLE_PREDICTION_LOG_URL': 'postgres://x/y'})
    assert r.returncode == 2 and 'names no database' in r.stdout, r.stdout  # settings: no watcher waits for them


def test_urls_a_driver_would_quote_or_cannot_use_are_refused_by_name(tiny_template, tmp_path, cluster):
    "A password as a parameter or with an unescaped '@', a driver not installed, a role that may not create tables."
    import json
    import psycopg
    from conftest import cli, copy_workspace

    ws = copy_workspace(tiny_template, tmp_path / 'ws')
    sock = cluster.socket
    for url, said, code in (
        (f'postgresql+psycopg://lifecycle@/nodb?host={sock}&password=s3@cret', 'password=***', 4),
        ('postgresql+psycopg://lifecycle:p@s3cret@127.0.0.1:1/db', "unescaped '@'", 2),
        ('postgresql+psycopg://lifecycle:p@s3cret@[::1]:1/db', "unescaped '@'", 2),  # (was: "not a URL ... can parse")
        (f'postgresql+psycopg2://lifecycle:s3cret@/db?host={sock}', 'psycopg2 is not installed', 2),
        ('postgres://lifecycle:s3cret@localhost/db', 'names no database SQLAlchemy knows', 2),
    ):
        r = cli(ws, 'monitor', 'run', '--json', env={'LIFECYCLE_PREDICTION_LOG_URL': url})
        error = json.loads(r.stdout)['error']
        assert r.returncode == code and said in error, (url, r.stdout, r.stderr)
        assert 's3cret' not in r.stdout + r.stderr and 'lifecycle:' not in error, (url, error)
    url = cluster.database()  # owned by the cluster's superuser: a reader role may connect, not create tables
    with psycopg.connect(host=str(sock), user='lifecycle', dbname='postgres', autocommit=True) as c:
        c.execute('CREATE ROLE reader LOGIN')
    r = cli(ws, 'serve', '--port', '1', env={'LIFECYCLE_PREDICTION_LOG_URL': url.replace('lifecycle@', 'reader@')})
    assert r.returncode == 4 and 'cannot be opened' in r.stderr and 'permission denied' in r.stderr, r.stderr


def test_feedback_for_a_request_id_holding_nul_is_no_such_request_not_a_503(cluster):
    """PostgreSQL's text holds no NUL: a /feedback request_id with one failed in the driver, answered 503 ("feedback
    cannot be recorded") where SQLite answered 404. No answer has such an ID: 404, as on SQLite; the log works on."""
    from lifecycle.serve.predlog import FeedbackError, PredictionLog, add_feedback

    log = PredictionLog(cluster.database())
    try:
        log.log(**row(1)).wait(10)
        for rid in (f'{1:032x}\x00', '\x00', '\ud800'):
            with pytest.raises(FeedbackError) as e:
                add_feedback(log, rid, 1)
            assert e.value.status == 404 and 'no such request' in str(e.value), str(e.value)
        assert add_feedback(log, f'{1:032x}', 1)['recorded']
    finally:
        log.close()


def test_a_connection_a_database_restart_ended_is_replaced_not_failed(cluster):
    "Pooled connections are checked before use: the first feedback after a restart of PostgreSQL goes through."
    from lifecycle.serve.predlog import PredictionLog, add_feedback

    url = cluster.database()
    log = PredictionLog(url)
    try:
        for p in log.log_many([row(1), row(2)]):
            p.wait(10)
        assert add_feedback(log, f'{1:032x}', 0)['recorded']  # (a pooled connection now)
        cluster.restart()
        assert add_feedback(log, f'{2:032x}', 1)['recorded']  # the pool's first use since
    finally:
        log.close()


def test_writers_probing_at_once_each_write_a_row_of_their_own(cluster):
    "Workers probing a database that came back at once (one row each: a shared row made one fail the other)."
    from concurrent.futures import ThreadPoolExecutor
    import psycopg
    from sqlalchemy.engine import make_url
    from lifecycle.serve.predlog import _Store

    url = cluster.database()
    stores = [_Store(url) for _ in range(2)]
    try:
        with psycopg.connect(host=str(cluster.socket), user='lifecycle', dbname=make_url(url).database) as c:
            c.execute('BEGIN')
            c.execute('LOCK TABLE prediction_log_probe IN SHARE ROW EXCLUSIVE MODE')  # both probes wait here ...
            with ThreadPoolExecutor(2) as pool:
                got = [pool.submit(s.probe) for s in stores]
                time.sleep(0.3)
                c.execute('COMMIT')  # ... then go at once
                assert [g.result(10) for g in got] == ['', '']
        with create_engine(url).connect() as c:
            assert c.execute(text('SELECT COUNT(DISTINCT id) FROM prediction_log_probe')).scalar() == 2
    finally:
        for s in stores:
            s.close()


def test_what_ready_and_a_refusal_quote_holds_no_piece_of_the_urls_user_or_password(cluster):
    "A driver's message may name the role (often a person's name) or echo the URL: /ready and 503s show neither."
    from lifecycle.serve.predlog import PredictionLog, _Batch

    url = cluster.database().replace('lifecycle@', 'lifecycle:s3cret-pw@')  # (trust: any password is taken)
    log = PredictionLog(url)
    try:
        log.problem = 'FATAL: password authentication failed for user "lifecycle" (s3cret-pw)'
        assert log.problem == 'FATAL: password authentication failed for user "***" (***)', log.problem
        b = _Batch()
        log._settled(b, 2, None, {1: 'role "lifecycle" is not permitted to log in'})
        assert b.failed == {1: 'role "***" is not permitted to log in'}
        log.problem = ''
    finally:
        log.close()


def test_a_tracking_database_server_that_is_down_is_named_in_seconds(tiny_template, tmp_path, cluster):
    "MLflow's own ten connection attempts took about 100 s: one connection first (psycopg: 5 s at most)."
    import json
    from conftest import cli, copy_workspace

    ws = copy_workspace(tiny_template, tmp_path / 'ws')
    url = cluster.url('no_such_database').replace('lifecycle@', 'lifecycle:s3cret@')
    t = time.monotonic()
    r = cli(ws, 'status', '--json', env={'LIFECYCLE_TRACKING_URI': url})
    error = json.loads(r.stdout)['error']
    assert r.returncode == 4 and time.monotonic() - t < 30, (r.stdout, r.stderr)
    assert error.startswith('the MLflow tracking database at postgresql+psycopg://***:***@/no_such_database'), error
    assert 'does not exist' in error and 's3cret' not in r.stdout + r.stderr


def test_the_monitor_reads_the_end_of_a_log_on_postgresql_as_every_row_says(cluster):
    from tail_logs import T0, WINDOWS, fill, same

    url = cluster.database()
    fill(url, n=300)
    for window in WINDOWS:
        for lookback in (1, 10_000):
            same(url, window, lookback, now=T0 + 2_000)


def test_each_window_read_alone_on_postgresql_is_that_window_of_every_row(cluster):
    """`monitor explain`'s read of one window (its first record's row found by counting in SQL) on PostgreSQL, whose
    server may round the floats it sends."""
    from sqlalchemy import create_engine, text
    from tail_logs import WINDOWS, fill
    from lifecycle.operate.windows import _window_from_all, assign_windows, records, window_records
    from lifecycle.serve.predlog import read_log

    url = cluster.database()
    fill(url, n=300)
    engine = create_engine(url)
    with engine.begin() as c:  # (times of today's size, and a server that rounds the floats it sends to 15 digits)
        c.execute(text('UPDATE predictions SET ts = ts + 1764000000.123456'))
        c.execute(text(f"ALTER DATABASE {url.split('@/')[1].split('?')[0]} SET extra_float_digits = 0"))
    engine.dispose()
    rows = read_log(url, shadow=False, model='m')
    for window in WINDOWS:
        cut = assign_windows(records(rows, 'Yes'), window)
        for (version, variant), g in cut.groupby(['model_version', 'variant']):
            have = sorted(g['window'].unique())
            for number in {have[0], have[len(have) // 3], have[2 * len(have) // 3], have[-1]}:
                want = _window_from_all(rows, 'Yes', window, version, variant, number)
                assert window_records(url, 'm', 'Yes', window, version, variant, number).equals(want), (window, number)


def test_a_look_at_the_logs_end_is_one_snapshot_though_ids_commit_out_of_order(cluster):
    """A row whose ID was taken before another's but committed after it, during a look: in none of its reads (the
    tallies said N records; a tail of them all must hold N, or the windows' numbers shift)."""
    from tail_logs import fill
    from lifecycle.serve.logtail import LogTail
    from lifecycle.serve.predlog import PredictionLog

    url = cluster.database()
    fill(url, n=40)
    slow, tx = held(url, row(10_000))  # (its ID taken, not committed)
    fast = PredictionLog(url)
    fast.log(**row(10_001)).wait()  # a later ID, committed first
    fast.close()
    try:
        with LogTail(url, 'm') as t:
            series = t.series()
            tx.commit()
            assert series and all(t.tail(s)[1] == s.records for s in series)
    finally:
        slow.close()


def test_a_tally_kept_across_looks_sees_a_row_whose_id_committed_after_a_later_ones(cluster):
    """On PostgreSQL an ID taken before another's can commit after it: a look sees the later row, and the next the
    earlier one too (among the rows of the last minute, which each look counts; below the tally's mark, the next test's
    case, it counts afresh), never passing it by for ever."""
    from tail_logs import fill, more
    from lifecycle.serve.logtail import LogTail, Tally
    from lifecycle.serve.predlog import PredictionLog

    url, tally = cluster.database(), Tally()
    fill(url, n=40)

    def look(t=None):
        with LogTail(url, 'm') as tail:
            return sorted(tail.series(None, t), key=lambda s: (s.model_version, s.variant))

    assert look(tally) == look()
    slow, tx = held(url, row(10_000), records=4)  # (its ID taken, not committed)
    fast = PredictionLog(url)
    fast.log(**row(10_001)).wait()  # a later ID, committed first
    fast.close()
    try:
        assert look(tally) == look()  # (the later ID's row in, the earlier's not yet)
        tx.commit()
    finally:
        slow.close()
    more(url, 0, 30)
    assert look(tally) == look() and tally.rows == 41 + 2 + 30  # (fill's 40 requests and one logged twice, 2, 30)


def test_a_tally_stops_short_of_rows_whose_ids_may_yet_commit_out_of_order_and_carries_on_past_them(
    cluster, monkeypatch
):
    """Under load, some writer's ID is always taken and not yet committed: a tally up to the newest ID would be passed
    by it at nearly every look and count afresh. It stops at the rows logged a minute before the newest; those after
    are counted each look; a lower ID committed late among them is counted, and the tally carries on."""
    from lifecycle.serve import logtail
    from lifecycle.serve.logtail import LogTail, Tally
    from lifecycle.serve.predlog import PredictionLog

    url, tally, now = cluster.database(), Tally(), time.time()
    log = PredictionLog(url)
    for p in log.log_many([dict(row(i), ts=now - 300 + i) for i in range(40)] + [row(100 + i) for i in range(5)]):
        p.wait()
    log.close()
    counted, real = [], logtail.LogTail._count

    def spy(self, out, edge, after=None, upto=None):
        counted.append(after)
        return real(self, out, edge, after, upto)

    monkeypatch.setattr(logtail.LogTail, '_count', spy)

    def look(t=None, edge=None):
        with LogTail(url, 'm') as tail:
            return sorted((s.model_version, s.variant, s.records, s.last_before) for s in tail.series(edge, t))

    assert look(tally) == look() == [('1', 'control', 45, None)] and tally.upto == 40  # (the 40 rows of 5 minutes ago)
    slow, tx = held(url, dict(row(0), request_id='slow'), records=4)  # (its ID taken, not committed)
    fast = PredictionLog(url)
    fast.log(**row(200)).wait()  # a later ID, committed first
    fast.close()
    try:
        counted.clear()
        assert look(tally) == look() == [('1', 'control', 46, None)] and None not in counted[:2]  # (carried on)
        tx.commit()
    finally:
        slow.close()
    counted.clear()
    assert (
        look(tally) == look() == [('1', 'control', 50, None)] and None not in counted[:2]
    )  # the late one in, carried on
    edge = time.time() - 100  # windows by time: an edge between the old rows and the new
    assert look(tally, edge) == look(None, edge)
    late = PredictionLog(url)
    late.log(**dict(row(300), variant='treatment')).wait()  # a series first met among the rows not settled
    late.close()
    counted.clear()
    edge = time.time() + 1  # the edge moves on past them
    assert look(tally, edge) == look(None, edge) and None not in counted[:2] and len(look(None, edge)) == 2


def test_a_tally_counts_afresh_when_an_id_below_its_mark_commits_late_and_a_row_stamped_ahead_moves_it_no_further(
    cluster,
):
    """A writer holding an ID while rows of higher IDs and older times are committed (a minute old, so settled): the
    tally's mark passes the held ID, and when it commits the next look sees a row more below the mark and counts
    afresh. A row stamped ahead of this clock does not stop the tally from settling."""
    from lifecycle.serve.logtail import LogTail, Tally
    from lifecycle.serve.predlog import PredictionLog

    url, tally, now = cluster.database(), Tally(), time.time()
    PredictionLog(url).close()  # (its tables)
    slow, tx = held(url, dict(row(0), request_id='slow', ts=now - 400), records=4)  # (its ID taken, not committed)
    log = PredictionLog(url)
    for p in log.log_many([dict(row(i), ts=now - 300 + i) for i in range(10)] + [dict(row(50), ts=now + 3600)]):
        p.wait()  # ten rows of five minutes ago, and one stamped an hour ahead
    log.log(**row(60)).wait()  # and one of now
    log.close()

    def look(t=None):
        with LogTail(url, 'm') as tail:
            return sorted((s.model_version, s.variant, s.records) for s in tail.series(None, t))

    try:
        assert look(tally) == look() == [('1', 'control', 12)]
        assert tally.upto > 0 and tally.rows == 10  # (settled at the ten: the row ahead makes the row of now none)
        tx.commit()
    finally:
        slow.close()
    assert look(tally) == look() == [('1', 'control', 16)] and tally.rows == 11


def test_an_ab_report_from_postgresql_is_the_analysis_of_every_row(cluster):
    from tail_logs import irregular_ab_log
    from lifecycle.core.params import ExperimentParams
    from lifecycle.deliver.experiment import analyse, analyse_stats
    from lifecycle.deliver.rollout import arm_stats_in_log
    from lifecycle.serve.predlog import read_log

    url, ep = cluster.database(), ExperimentParams()
    irregular_ab_log(url)
    want = analyse(read_log(url, shadow=False, model='m'), 'Yes', ep)
    got = analyse_stats(*arm_stats_in_log(url, 'Yes', ('control', 'challenger'), None, 'm'), ep)
    assert want['set_aside'] and {k: v for k, v in got.items() if k != 'created'} == {
        k: v for k, v in want.items() if k != 'created'
    }


def test_an_ab_report_from_postgresql_is_of_one_moment_while_the_server_logs_on(cluster, monkeypatch):
    from tail_logs import ab_rows_logged_meanwhile
    from lifecycle.deliver.rollout import arm_stats_in_log

    url = cluster.database()
    before = ab_rows_logged_meanwhile(url, monkeypatch)
    stats, aside = arm_stats_in_log(url, 'Yes', model='m')
    assert (stats['control']['versions'], stats['control']['requests'], aside) == before


def test_a_database_or_role_named_with_an_address_is_withheld_in_the_servers_refusal(cluster):
    """PostgreSQL's own refusals quote the database and the role a URL names: `database "bob@corp.example" does not
    exist` reached the tracking URI's and the prediction log's refusals whole (`without_secrets` replaced the user
    and password only). Against a real server: each says `"***"` now, and the refusal of a plain name as before."""
    from lifecycle.core.tracking import TrackingUnavailable, _unavailable
    from lifecycle.serve.predlog import LogUnreadable, log_errors

    base = cluster.url()
    for url, said in (
        (base.replace('/postgres?', '/bob%40corp.example?'), 'database "***" does not exist'),
        (base.replace('lifecycle@', 'ann%40corp.example@'), 'role "***" does not exist'),
        (base + '&options=-c%20work_mem%3Dann%40corp.example', 'invalid value for parameter "work_mem": "***"'),
        (base.replace('/postgres?', '/no_such_database?'), 'database "no_such_database" does not exist'),
    ):
        for catch, raised in ((_unavailable, TrackingUnavailable), (log_errors, LogUnreadable)):
            engine = create_engine(url)
            with pytest.raises(raised) as e:
                with catch(url), engine.connect():
                    pass
            engine.dispose()
            assert said in str(e.value) and '@corp' not in str(e.value), str(e.value)
