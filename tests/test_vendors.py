"""No vendor telemetry: onnxruntime and MLflow record and upload usage by default; a process that imports `lifecycle`
leaves no trace of either (each checked against the same library run without `lifecycle`, which does record). Every
run here goes through a proxy that is not there, so a control run that records uploads nothing."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from lifecycle.core.vendors import NO_TELEMETRY

pytestmark = pytest.mark.slow  # six interpreters that import onnxruntime or MLflow

# variables with which the libraries keep quiet by themselves (CI services, test runners), so the control records
_QUIETING = {
    'PYTEST_CURRENT_TEST', 'GITHUB_ACTIONS', 'CI', 'CIRCLECI', 'GITLAB_CI', 'JENKINS_URL', 'TRAVIS', 'TF_BUILD',
    'BITBUCKET_BUILD_NUMBER', 'CODEBUILD_BUILD_ARN', 'CODEBUILD_BUILD_ID', 'BUILDKITE', 'TEAMCITY_VERSION',
    'CLOUD_RUN_EXECUTION', 'APPVEYOR', 'SYSTEM_TEAMFOUNDATIONCOLLECTIONURI', 'ORT_RUNNING_UNIT_TESTS',
    'RUNBOT_HOST_URL', 'RUNBOT_BUILD_NAME', 'RUNBOT_WORKER_ID',
    'DO_NOT_TRACK',  # (MLflow reads it too)
    *NO_TELEMETRY,
}  # fmt: skip
_NO_NETWORK = {k: 'http://127.0.0.1:9' for k in ('HTTPS_PROXY', 'https_proxy', 'HTTP_PROXY', 'http_proxy')}
_PROXY_EXEMPT = {'NO_PROXY', 'no_proxy'}

_ORT = """
import numpy as np, onnx, onnx.helper as h
x = h.make_tensor_value_info('x', onnx.TensorProto.FLOAT, [1])
y = h.make_tensor_value_info('y', onnx.TensorProto.FLOAT, [1])
g = h.make_graph([h.make_node('Identity', ['x'], ['y'])], 'g', [x], [y])
m = h.make_model(g, opset_imports=[h.make_opsetid('', 17)])
import onnxruntime as ort
s = ort.InferenceSession(m.SerializeToString(), providers=['CPUExecutionProvider'])
assert s.run(None, {'x': np.ones(1, np.float32)})[0][0] == 1
"""
_MLFLOW = """
import mlflow
mlflow.set_tracking_uri('sqlite:///' + __import__('os').path.abspath('t.db'))
mlflow.search_experiments()
"""
_VENDORS = {  # library: (a use of it, where it records that use under the home folder)
    'onnxruntime': (_ORT, '.cache/Microsoft'),
    'mlflow': (_MLFLOW, '.config/mlflow'),
}


def _run(home: Path, code: str, **env_extra: str) -> None:
    home.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in _QUIETING | _PROXY_EXEMPT and not k.startswith('XDG_')}
    env.update(HOME=str(home), **_NO_NETWORK, **env_extra)
    r = subprocess.run([sys.executable, '-c', code], cwd=home, env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]


def _control(tmp_path: Path, vendor: str) -> None:
    "The library alone records its use here (else there is nothing to keep off: skip)."
    code, trace = _VENDORS[vendor]
    _run(tmp_path / 'control', code)
    if not (tmp_path / 'control' / trace).exists():
        pytest.skip(f"{vendor} records no usage here (nothing under ~/{trace})")


@pytest.mark.parametrize('vendor', sorted(_VENDORS))
def test_importing_lifecycle_keeps_vendor_telemetry_off(tmp_path, vendor):
    _control(tmp_path, vendor)
    code, trace = _VENDORS[vendor]
    _run(tmp_path / 'ours', 'import lifecycle\n' + code)
    assert not (tmp_path / 'ours' / trace).exists(), f"{vendor} recorded usage though lifecycle was imported"


def test_a_users_own_setting_wins(tmp_path):
    "Someone who lets onnxruntime report (ORT_DISABLE_TELEMETRY=0) is not overruled by the import."
    _control(tmp_path, 'onnxruntime')
    code, trace = _VENDORS['onnxruntime']
    _run(tmp_path / 'user', 'import lifecycle, os\nassert os.environ["ORT_DISABLE_TELEMETRY"] == "0"\n' + code,
         ORT_DISABLE_TELEMETRY='0')  # fmt: skip
    assert (tmp_path / 'user' / trace).exists()


def test_the_makefile_sets_the_same_switches(tmp_path):
    """The Makefile exports the switches for the notebook tests (which import onnxruntime and MLflow without lifecycle):
    make itself is asked for their values, which must be `NO_TELEMETRY`'s (a user's own setting still wins there)."""
    root = Path(__file__).resolve().parents[1]
    printer = tmp_path / 'print.mk'
    printer.write_text('print-%:\n\t@printenv $* || echo unset\n')  # (what a recipe's processes inherit)
    env = {k: v for k, v in os.environ.items() if k not in NO_TELEMETRY and not k.startswith('MAKE')}

    def ask(**extra) -> dict[str, str]:
        cmd = ['make', '-s', '--no-print-directory', '-f', 'Makefile', '-f', str(printer)]
        cmd += [f'print-{k}' for k in NO_TELEMETRY]
        r = subprocess.run(cmd, cwd=root, env={**env, **extra}, capture_output=True, text=True, timeout=60)
        assert r.returncode == 0, r.stderr
        return dict(zip(NO_TELEMETRY, r.stdout.split()))

    assert ask() == NO_TELEMETRY
    assert ask(ORT_DISABLE_TELEMETRY='0')['ORT_DISABLE_TELEMETRY'] == '0'
