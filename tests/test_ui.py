"""`lifecycle ui`: MLflow's UI really starts on the workspace's tracking store, answers on the port it printed, and
stops with its whole process group on SIGTERM; a taken port is refused before anything starts."""

from __future__ import annotations
import json
import os
import signal
import socket
import subprocess
import time
import httpx
import pytest
from conftest import LIFECYCLE, ROOT, clean_env
from lifecycle.core.cli_support import scratch_workspace
from lifecycle.core.workspace import Workspace
from lifecycle.core.commands import port_free


def free_port() -> int:
    with socket.socket() as so:
        so.bind(('127.0.0.1', 0))
        return so.getsockname()[1]


@pytest.mark.slow  # mlflow ui takes a few seconds to start
def test_ui_serves_the_workspace_tracking_store_and_stops_on_sigterm(tmp_path):
    ws = scratch_workspace(tmp_path / 'ws', ROOT)
    Workspace.open(ws).mlflow.create_experiment('ui-probe')  # something only this workspace's store holds
    port = free_port()
    proc = subprocess.Popen(
        [LIFECYCLE, 'ui', '--port', str(port), '--json'],
        cwd=ws,
        env=clean_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,  # MLflow's start-up log: a pipe nobody reads could fill
        text=True,
        start_new_session=True,
    )
    try:
        said = json.loads(proc.stdout.readline())
        assert said['url'] == f'http://127.0.0.1:{port}' and said['tracking_uri'] == Workspace.open(ws).tracking_uri
        end, answer = time.monotonic() + 90, None
        while time.monotonic() < end and proc.poll() is None:
            try:
                answer = httpx.get(
                    said['url'] + '/api/2.0/mlflow/experiments/get-by-name',
                    params={'experiment_name': 'ui-probe'},
                    timeout=5,
                )
                break
            except httpx.HTTPError:
                time.sleep(0.3)
        assert answer is not None and answer.status_code == 200, (answer, proc.poll())
        assert answer.json()['experiment']['name'] == 'ui-probe'
        assert httpx.get(said['url'] + '/', timeout=10).status_code == 200  # the UI page itself
        taken = subprocess.run(
            [LIFECYCLE, 'ui', '--port', str(port)], cwd=ws, env=clean_env(), capture_output=True, text=True, timeout=60
        )
        assert taken.returncode == 2 and f'127.0.0.1:{port} is taken' in taken.stderr, taken.stderr
        assert 'Traceback' not in taken.stderr
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
        end = time.monotonic() + 15
        while time.monotonic() < end and not port_free(port):  # the UI's own server went with it
            time.sleep(0.2)
        assert port_free(port)
    finally:
        if proc.poll() is None:  # SIGTERM first: `lifecycle ui` stops the MLflow group it started
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()


def test_a_tracking_server_is_refused_without_printing_its_password(tmp_path):
    """Review U: with a tracking server's URI, `mlflow ui` (which takes a store) exited printing the URI whole, its
    password too. Refused before anything starts, the URI shown masked."""
    ws = scratch_workspace(tmp_path / 'ws')
    env = {**clean_env(), 'LIFECYCLE_TRACKING_URI': 'https://alice:TrkS3cretPW@mlflow.example.invalid',
           'LIFECYCLE_KEYS_DIR': str(tmp_path / 'keys')}
    r = subprocess.run([LIFECYCLE, 'ui', '--port', str(free_port())], cwd=ws, env=env, capture_output=True,
                       text=True, timeout=60)  # fmt: skip
    assert r.returncode == 2 and 'is a tracking server, which serves MLflow' in r.stderr, r.stderr
    assert 'TrkS3cretPW' not in r.stdout + r.stderr and 'Traceback' not in r.stderr
