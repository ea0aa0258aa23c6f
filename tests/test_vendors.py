"""No vendor telemetry: onnxruntime and MLflow record and upload usage by default; a process that imports `lifecycle`
leaves no trace of either (each checked against the same library run without `lifecycle`, which does record)."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from lifecycle.core.vendors import NO_TELEMETRY

# the variables with which the libraries themselves stay quiet (CI, test runners), so that the control records
_QUIETING = {
    'PYTEST_CURRENT_TEST', 'GITHUB_ACTIONS', 'CI', 'CIRCLECI', 'GITLAB_CI', 'JENKINS_URL', 'TRAVIS', 'TF_BUILD',
    'BITBUCKET_BUILD_NUMBER', 'CODEBUILD_BUILD_ARN', 'BUILDKITE', 'TEAMCITY_VERSION', 'CLOUD_RUN_EXECUTION',
    *NO_TELEMETRY,
}  # fmt: skip

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


def _run(home: Path, code: str, env_extra: dict | None = None) -> None:
    env = {k: v for k, v in os.environ.items() if k not in _QUIETING and not k.startswith('XDG_')}
    env.update(HOME=str(home), **(env_extra or {}))
    r = subprocess.run([sys.executable, '-c', code], cwd=home, env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]


@pytest.mark.parametrize('vendor', sorted(_VENDORS))
def test_importing_lifecycle_keeps_vendor_telemetry_off(tmp_path, vendor):
    code, trace = _VENDORS[vendor]
    control, ours = tmp_path / 'control', tmp_path / 'ours'
    control.mkdir(), ours.mkdir()
    _run(control, code)
    if not (control / trace).exists():  # a version of the library that records nothing: nothing to keep off
        pytest.skip(f"{vendor} records no usage here (nothing under ~/{trace})")
    _run(ours, 'import lifecycle\n' + code)
    assert not (ours / trace).exists(), f"{vendor} recorded usage under ~/{trace} though lifecycle was imported"


def test_a_users_own_setting_wins(tmp_path):
    "Someone who lets onnxruntime report (ORT_DISABLE_TELEMETRY=0) is not overruled by the import."
    code, trace = _VENDORS['onnxruntime']
    _run(tmp_path, 'import lifecycle, os\nassert os.environ["ORT_DISABLE_TELEMETRY"] == "0"\n' + code,
         {'ORT_DISABLE_TELEMETRY': '0'})  # fmt: skip
    if not (tmp_path / trace).exists():
        pytest.skip('onnxruntime records no usage here')
    assert (tmp_path / trace).exists()
