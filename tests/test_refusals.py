"""What the workspace refuses, and how: a batch that breaks its contract stops the run at ingest with nothing
stored; bad params are refused before any stage runs, naming the file and key."""

from __future__ import annotations
import json
import pytest
from conftest import cli, cli_json


@pytest.mark.slow  # the ingest stage notebook runs, the site renders
def test_a_batch_missing_a_required_column_stops_the_run_at_ingest(workspace):
    from sklego.datasets import load_arrests

    (workspace / 'data').mkdir()
    load_arrests(as_frame=True).drop(columns=['age']).to_csv(workspace / 'data/batch.csv', index=False)
    ingest = workspace / 'params/ingest.yaml'
    ingest.write_text(ingest.read_text().replace('source: "sklego:arrests"', 'source: data/batch.csv'))
    r = cli(workspace, 'run')
    assert r.returncode == 1
    msg = ' '.join(r.stderr.split())
    assert "stage 'ingest' failed" in msg and "required column 'age' is missing" in msg and 'data/batch.csv' in msg
    assert not (workspace / '.lifecycle/store/records/datasets').exists()  # no snapshot written
    assert not (workspace / '.lifecycle/mlflow.db').exists()  # nothing trained or registered
    (run_dir,) = (workspace / 'reports/runs').iterdir()
    m = json.loads((run_dir / 'manifest.json').read_text())
    assert m['status'] == 'failed' and list(m['stages']) == ['ingest'] and m['stages']['ingest']['status'] == 'failed'
    assert (run_dir / '01_ingest.ipynb').is_file()  # the evidence of where it stopped
    assert 'failed' in (workspace / 'reports/site/runs/index.html').read_text()


@pytest.mark.parametrize(
    'edit, expected',
    [
        (
            lambda p: (p / 'train.yaml').write_text((p / 'train.yaml').read_text() + 'learning_rate: 0.1\n'),
            ["train.yaml: key 'learning_rate': unknown key"],
        ),
        (
            lambda p: (p / 'train.yaml').write_text(
                (p / 'train.yaml').read_text().replace('seed: 42', 'seed: forty-two')
            ),
            ["train.yaml: key 'seed'", "'forty-two' (str)"],
        ),
        (lambda p: (p / 'validate.yaml').unlink(), ["validate.yaml: params file is missing"]),
        (
            lambda p: (p / 'train.yaml').write_text((p / 'train.yaml').read_text().replace('C: 1.0', 'Cee: 1.0')),
            ["train.yaml: key 'model.params.Cee': not a hyperparameter of logistic_regression"],
        ),
        (
            lambda p: (p / 'ingest.yaml').write_text(
                (p / 'ingest.yaml')
                .read_text()
                .replace('dtype: int, personal: false, min: 10', 'dtype: integer, personal: false, min: 10')
            ),
            ["ingest.yaml: key 'columns.age.dtype'", "'integer'"],
        ),
        (
            lambda p: (p / 'ingest.yaml').write_text(
                (p / 'ingest.yaml').read_text().replace('source: "sklego:arrests"', 'source: data/nowhere.csv')
            ),
            ["ingest.yaml: key 'source': no file at", "data/nowhere.csv"],
        ),
    ],
    ids=['unknown-key', 'wrong-type', 'missing-file', 'unknown-hyperparameter', 'bad-dtype', 'missing-source'],
)
def test_bad_params_are_refused_before_any_stage_runs(workspace, edit, expected):
    edit(workspace / 'params')
    r = cli(workspace, 'run')
    assert r.returncode == 2, r.stderr
    msg = ' '.join(r.stderr.split())
    assert 'no stage ran' in msg
    for e in expected:
        assert e in msg, msg
    assert not (workspace / 'reports/runs').exists() and not (workspace / '.lifecycle/mlflow.db').exists()


def test_params_from_another_folder(trained, tmp_path):
    import shutil

    other = tmp_path / 'other-params'
    shutil.copytree(trained / 'params', other)
    (other / 'validate.yaml').write_text((other / 'validate.yaml').read_text().replace('min: 0.60', 'min: 0.99'))
    before = set((trained / 'reports/runs').iterdir())
    r = cli(trained, 'run', '--params', str(other), '--no-site')
    assert r.returncode == 1  # the impossible AUC gate stops the run at validate
    msg = ' '.join(r.stderr.split())
    assert "stage 'validate' failed" in msg and 'GateFailed' in msg and 'roc_auc' in msg and '>= 0.99' in msg
    (run_dir,) = set((trained / 'reports/runs').iterdir()) - before
    m = json.loads((run_dir / 'manifest.json').read_text())
    assert m['params_dir'] == str(other) and 'register' not in m['stages']
    assert [m['stages'][s]['status'] for s in ('ingest', 'features', 'train')] == ['cached'] * 3
    _, st = cli_json(trained, 'status')
    assert st['models'][0]['versions'] == [1]  # nothing new was registered


@pytest.mark.parametrize('args', [[], ['run'], ['status'], ['site'], ['audit'], ['audit', 'verify'], ['audit', 'show']])
def test_every_command_has_help(workspace, args):
    r = cli(workspace, *args, '--help')
    assert r.returncode == 0 and 'Usage' in r.stdout


@pytest.mark.parametrize(
    'args, said',
    [
        (['trust', 'revoke', 'bob', '--as', 'carol', '--reason', ' '], '--reason: expected some text'),
        (['audit', 'erase', '1', '--reason', ''], '--reason: expected some text'),
        (['approve', 'm', '1', '--as', 'carol', '--reason', ''], '--reason: expected some text'),  # (was exit 1)
        (['keys', 'new', '--as', 'a' * 300], 'person name of 300 characters: expected at most 200'),
        (['store', 'purge', '--expired', '--as-of', ''], "--as-of '': expected an ISO date"),
        # review DM: a date to come deleted data still retained, audited as 'retention expired' (a what-if: --dry-run)
        (['store', 'purge', '--expired', '--as-of', '2999-01-01'], '--as-of 2999-01-01: a date still to come'),
        (['monitor', 'explain', '--version', '1', '--window', '1', '--repeats', '101'], '--repeats: expected 1 to 100'),
        (['retrain', 'run', '--every', 'inf', '--times', '2'], '--every: expected a number of seconds above 0'),
        (['experiment', 'report', '--since', 'nan'], "--since 'nan': expected an ISO time or epoch seconds"),
        # a version past what the registry's database holds: its driver's overflow was a traceback, or exit 1
        (['approve', 'm', '9' * 23, '--as', 'carol', '--reason', 'x'], "VERSION: a number out of the registry's range"),
        (['govern', 'check', 'm', '9' * 23], "VERSION: a number out of the registry's range"),
        (['promote', 'm', '9' * 23, '--to', 'staging'], "VERSION: a number out of the registry's range"),
        (['rollout', 'start', '--challenger', '9' * 23], "--challenger: a number out of the registry's range"),
        (
            ['monitor', 'explain', '--version', '9' * 23, '--window', '1'],
            "--version: a number out of the registry's range",
        ),
        # review DD: '+1' and '\uff11' (a full-width 1) were version 1 to the registry and to promote, and 'unsigned'
        (['bundle', 'm', '+1'], "VERSION: expected a version number in the digits 0-9, found '+1'"),
        (['promote', 'm', '\uff11', '--to', 'staging'], "VERSION: expected a version number in the digits 0-9"),
    ],
)
def test_an_empty_or_unbounded_option_is_a_usage_error_before_anything_runs(workspace, args, said):
    "Exit 2 naming the option (an empty --as-of was read as now; a 300-character name failed as an errno, exit 1)."
    r = cli(workspace, *args)
    assert r.returncode == 2 and said in r.stderr and 'Errno' not in r.stderr, r.stderr


def test_a_purge_as_of_a_date_to_come_is_a_what_if_with_dry_run(workspace):
    "Review DX: the refusal of a date to come without --dry-run leaves the what-if it is for (with it) as it was."
    r = cli(workspace, 'store', 'purge', '--expired', '--as-of', '2999-01-01', '--dry-run')
    assert r.returncode == 0 and 'nothing has expired' in r.stdout, r.stderr


def test_damaged_state_a_status_reads_is_named_exit_4_never_a_traceback(trained):
    """A run's manifest, a sealed dataset record, the remembered params folder and a retraining record, each damaged:
    `status` (and the commands that read them) named the file with exit 4 where they raised JSONDecodeError,
    AttributeError, a raw RecordError, a file-name errno, or took the workspace root for the params folder."""
    (run,) = (trained / 'reports/runs').iterdir()
    manifest = run / 'manifest.json'
    good = manifest.read_text()
    for text, said in (
        (good[:200], 'expected an object of state, found damaged JSON'),
        (json.dumps({**json.loads(good), 'stages': [1]}), "expected a run's manifest"),
        (json.dumps({**json.loads(good), 'started': 7}), "found keys of another kind (started)"),
        (json.dumps({**json.loads(good), 'stages': {'train': {'outputs': []}}}), 'another kind (stages.train)'),
        (json.dumps({**json.loads(good), 'stages': {'train': {'status': 7}}}), 'another kind (stages.train)'),
    ):
        manifest.write_text(text)
        r = cli(trained, 'status', '--json')
        assert r.returncode == 4 and said in json.loads(r.stdout)['error'] and str(manifest) in r.stdout, r.stdout
    manifest.write_text(good)
    record = sorted((trained / '.lifecycle/store/records/datasets').glob('*.json'))[0]
    sealed = record.read_text()
    record.write_text(sealed.replace('"rows": ', '"rows": 1'))
    for args in (['status'], ['store', 'purge', '--expired', '--dry-run']):  # (purge said 2, as drift did)
        r = cli(trained, *args)
        assert r.returncode == 4 and 'does not match its seal' in r.stderr and record.name in r.stderr, (args, r.stderr)
    from lifecycle.core.store import RecordError
    from lifecycle.core.workspace import Workspace
    from lifecycle.loop.trace import _snapshot

    with pytest.raises(RecordError, match='does not match its seal'):  # (trace said the snapshot was missing, exit 0)
        _snapshot(Workspace.open(trained), record.stem)
    record.write_text(sealed)
    remembered = trained / '.lifecycle' / 'params_dir'
    for text in ('', 'x' * 300):
        remembered.write_text(text)
        r = cli(trained, 'status')
        assert r.returncode == 4 and 'params_dir: expected the params folder the last run used' in r.stderr, r.stderr
    remembered.unlink()
    it = trained / '.lifecycle/retrain/iterations/x1.json'
    it.parent.mkdir(parents=True, exist_ok=True)
    it.write_text(json.dumps(dict(id='x1', status='promoted', started=1.0, history=[], decision='oops')))
    for args in (['retrain', 'status'], ['retrain', 'history']):
        r = cli(trained, *args)
        assert r.returncode == 4 and 'x1.json: not a readable retraining record' in r.stderr, (args, r.stderr)
        assert 'wrong kind: decision' in r.stderr
    it.unlink()
    assert cli(trained, 'status').returncode == 0


def test_an_audit_log_that_is_a_folder_is_not_an_empty_log(trained):
    "`audit show` said ok with no entries; the folder is named, exit 3 as for a damaged log (`audit verify` too)."
    log = trained / '.lifecycle' / 'audit.log'
    log.unlink(missing_ok=True)
    log.mkdir(parents=True)
    for args in (['audit', 'show'], ['audit', 'verify']):
        r = cli(trained, *args)
        assert r.returncode == 3 and 'audit.log' in r.stderr + r.stdout, (args, r.stdout, r.stderr)
    assert 'expected a JSON-lines log, found a folder' in cli(trained, 'audit', 'show').stderr


def test_outside_a_workspace_the_cli_says_so(tmp_path):
    r = cli(tmp_path, 'status')
    assert r.returncode == 2 and 'no settings.ini found' in r.stderr


@pytest.mark.parametrize(
    'db, commands, said',
    [
        ('predictions.db', [['monitor', 'run'], ['retrain', 'status']], 'the prediction log at sqlite:///'),
        ('mlflow.db', [['status'], ['promote', 'm', '1', '--to', 'staging', '--reason', 'r']], 'the MLflow tracking'),
    ],
    ids=['prediction-log', 'tracking-database'],
)
def test_a_damaged_database_is_named_by_the_commands_that_open_it_not_a_traceback(workspace, db, commands, said):
    "A database file that is not one (a disk fault, a file copied over it): exit 4, one line naming it."
    from lifecycle.core.workspace import Workspace

    Workspace.open(workspace)  # (its state folder, of this version's format)
    (workspace / '.lifecycle' / db).write_bytes(b'not a database, ' * 400)
    for args in commands:
        r = cli(workspace, *args, '--json')
        assert r.returncode == 4 and 'Traceback' not in r.stdout + r.stderr, (args, r.stdout, r.stderr)
        error = json.loads(r.stdout)['error']
        assert error.startswith(said) and f'{db} cannot be' in error and 'not a database' in error, error


def test_a_tracking_server_that_does_not_answer_is_named_in_seconds(workspace):
    "A tracking server that is down: exit 4 after one retry, its password hidden (MLflow's retries took minutes)."
    import socket
    import time

    with socket.socket() as s:  # a port nothing listens on
        s.bind(('127.0.0.1', 0))
        port = s.getsockname()[1]
    t = time.monotonic()
    r = cli(workspace, 'status', '--json', env={'LIFECYCLE_TRACKING_URI': f'http://bob:s3cret@127.0.0.1:{port}/'})
    assert r.returncode == 4 and time.monotonic() - t < 30, (r.stdout, r.stderr)
    error = json.loads(r.stdout)['error']
    assert f'the MLflow tracking server at http://***:***@127.0.0.1:{port}/ cannot be used' in error, error
    assert 's3cret' not in r.stdout + r.stderr


def test_a_tracking_server_that_answers_is_asked_once_per_process(tmp_path, monkeypatch):
    "The probe is one request MLflow's own client makes; a server that answers it is not asked again by this process."
    import http.server
    import threading
    from lifecycle.core import tracking

    asked = []

    class Tracking(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            asked.append(self.path)
            body = b'{"experiments": []}'
            self.send_response(200)
            self.send_header('Content-Type', 'application/json')
            self.send_header('Content-Length', str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        do_POST = do_GET

        def log_message(self, *args):
            pass

    with http.server.ThreadingHTTPServer(('127.0.0.1', 0), Tracking) as srv:
        threading.Thread(target=srv.serve_forever, daemon=True).start()
        uri = f'http://127.0.0.1:{srv.server_address[1]}'
        monkeypatch.setattr(tracking, '_READY', set())
        for _ in range(2):
            tracking.configure_mlflow(uri, tmp_path)
        srv.shutdown()
    assert len(asked) == 1 and 'experiments/search' in asked[0], asked


def test_trace_does_not_repeat_what_is_not_a_request_id(workspace):
    "Something pasted in place of a request ID (an e-mail address): refused without quoting it; an ID is quoted."
    r = cli(workspace, 'trace', 'jane.doe@example.com')
    assert r.returncode == 2 and 'the request_id (not repeated): no such request' in r.stderr, r.stderr
    assert 'jane' not in r.stdout + r.stderr
    r = cli(workspace, 'trace', 'a' * 32)
    assert r.returncode == 2 and f"request_id '{'a' * 32}': no such request" in r.stderr, r.stderr


def test_trace_of_an_unanswered_request_does_not_repeat_what_is_not_a_request_id(workspace):
    """A request in the log that no version answered (status 500), under an ID not of the servers' shape (an e-mail
    address): the refusal repeated it (`request_id 'jane.doe@...'`), where a request not found never does."""
    import time
    from lifecycle.core.workspace import Workspace
    from lifecycle.serve.predlog import PredictionLog, default_url

    log = PredictionLog(default_url(Workspace.open(workspace)))
    try:
        for rid in ('jane.doe@example.com', 'b' * 32):
            log.log(
                request_id=rid,
                ts=time.time(),
                route='predict',
                variant='control',
                model_version=None,
                decision=None,
                latency_ms=1.0,
                status=500,
            )
        log.flush()
    finally:
        log.close()
    r = cli(workspace, 'trace', 'jane.doe@example.com')
    assert r.returncode == 2 and 'the request_id (not repeated): answered with status 500' in r.stderr, r.stderr
    assert 'jane' not in r.stdout + r.stderr
    r = cli(workspace, 'trace', 'b' * 32)
    assert r.returncode == 2 and f"request_id '{'b' * 32}': answered with status 500" in r.stderr, r.stderr


def test_a_tracking_uri_that_cannot_be_used_names_the_variable_it_may_come_from(workspace):
    "Found by review (DZ): a bad LIFECYCLE_TRACKING_URI was refused as `(tracking_uri, settings.ini)`: no file line."
    r = cli(workspace, 'status', '--json', env={'LIFECYCLE_TRACKING_URI': 'postgresql+psycopg://bob:s3cr%%t@db/mlflow'})
    error = json.loads(r.stdout)['error']
    assert r.returncode == 2 and "(tracking_uri in settings.ini, or LIFECYCLE_TRACKING_URI)" in error, error
    assert 's3cr' not in r.stdout + r.stderr
