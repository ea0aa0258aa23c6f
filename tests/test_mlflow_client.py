"""Drop-in for MLflow users: MLflow's own `ScoringServerClient` (and its CSV form) against a running `lifecycle serve`:
ping, version, a DataFrame, a CSV body, and columns the model does not read (ignored, their values never logged)."""

from __future__ import annotations
import time
import httpx
import pandas as pd
import pytest
from conftest import clean_env, copy_workspace
from lifecycle.serve.local import LocalServer
from lifecycle.serve.predlog import read_log

pytestmark = pytest.mark.slow  # a server process

REC = {'age': 30, 'checks': 2, 'employed': 'Yes', 'citizen': 'No'}
MARK = 'Zz-undeclared-9931'  # a value of a column the model does not read: must reach no log, message or answer


def test_mlflow_scoring_client_works_unchanged(tiny_template, tmp_path):
    from mlflow.pyfunc.scoring_server.client import ScoringServerClient

    ws = copy_workspace(tiny_template, tmp_path / 'ws')  # (the session's tiny workspace, a copy)
    with open(tmp_path / 'server.log', 'w') as out, LocalServer(ws, env=clean_env(), log=out) as srv:
        client = ScoringServerClient('127.0.0.1', srv.port)
        client.wait_server_ready(timeout=30)  # pings /ping until it answers 200
        client.ping()
        assert client.get_version() == __import__('mlflow').__version__
        frame = pd.DataFrame([REC, {**REC, 'age': 61, 'checks': 0}])
        plain = client.invoke(frame)['predictions']
        assert len(plain) == 2 and set(plain) <= {0, 1}
        extra = frame.assign(note=MARK, zip=['0042', '0043'])[['note', *REC, 'zip']]  # unread columns, any order
        assert client.invoke(extra)['predictions'] == plain
        with httpx.Client(base_url=srv.url, timeout=10) as http:
            csv = http.post(
                '/invocations', content=extra.to_csv(index=False), headers={'content-type': 'text/csv; charset=utf-8'}
            )
            assert csv.status_code == 200 and csv.json()['predictions'] == plain, csv.text
            bad = http.post(
                '/invocations',
                content=frame.assign(age=MARK).to_csv(index=False),
                headers={'content-type': 'text/csv'},
            )
            assert bad.status_code == 422 and "column 'age' row 0: expected a number" in bad.json()['error']
            missing = http.post(
                '/invocations',
                content=frame.drop(columns='age').to_csv(index=False),
                headers={'content-type': 'text/csv'},
            )
            assert missing.status_code == 422 and "missing column(s) ['age']" in missing.json()['error']
            assert MARK not in bad.text + missing.text
        with pytest.raises(Exception, match='error code 422'):  # a column the model reads is still checked
            client.invoke(frame.assign(checks='many'))
        db = f"sqlite:///{ws / '.lifecycle/predictions.db'}"
        end = time.monotonic() + 10
        while time.monotonic() < end and len(read_log(db)) < 3:
            time.sleep(0.05)
        rows = read_log(db)
    assert len(rows) >= 3 and all(set(i) == set(REC) for i in rows['inputs'])  # the model's inputs, nothing else
    leaked = [f for f in ws.rglob('*') if f.is_file() and MARK.encode() in f.read_bytes()]
    assert leaked == [] and MARK not in (tmp_path / 'server.log').read_text()


@pytest.mark.parametrize(
    'uri, found',
    [
        ('ftp://x', "scheme 'ftp:'"),
        ('file:///tmp/m', "scheme 'file:'"),
        ('databricks', 'no scheme'),
        ('SQLITE:///x.db', "scheme 'SQLITE:'"),
    ],
)
def test_a_tracking_uri_of_no_store_this_workspace_can_use_is_refused_naming_it_not_a_traceback(tmp_path, uri, found):
    "MLflow refused these with a traceback (a registry of no such scheme, its file store in maintenance) or a login."
    from conftest import cli

    (tmp_path / 'settings.ini').write_text('[workspace]\n')
    r = cli(tmp_path, 'status', env={'LIFECYCLE_TRACKING_URI': uri})
    said = ' '.join(r.stderr.split())
    assert r.returncode == 2 and 'Traceback' not in r.stderr and f'tracking URI {uri} cannot be used' in said, said
    assert found in said and 'LIFECYCLE_TRACKING_URI' in said
