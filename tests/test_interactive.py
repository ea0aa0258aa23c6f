"""The stage notebooks run top to bottom as a person would run them in JupyterLab: no parameters injected,
params read from params/, upstream IDs from the interactive run's manifest."""

from __future__ import annotations
import json
import os
import pytest

pytestmark = pytest.mark.slow  # every stage notebook, executed by papermill


def test_stage_notebooks_run_in_order_with_their_defaults(workspace, tmp_path, monkeypatch):
    for k in list(os.environ):
        if k.startswith(('LIFECYCLE_', 'MLFLOW_')):
            monkeypatch.delenv(k)
    from lifecycle.app.kernel import StageKernel
    from lifecycle.app.pipeline import STAGES

    stages = workspace / 'nbs/stages'
    # one kernel put back between notebooks (names, folder, environment), as `lifecycle run` does: each notebook sees
    # what it would in a kernel of its own in JupyterLab, and the heavy imports are paid once
    with StageKernel(stages) as kernel:
        for nb in [stages / st.notebook for st in STAGES]:  # the pipeline's stages; 07/08 are on-demand reports
            kernel.execute(nb, tmp_path / nb.name, {})  # no parameters: nothing injected
    m = json.loads((workspace / 'reports/runs/interactive/manifest.json').read_text())
    assert m['mode'] == 'interactive'
    assert list(m['stages']) == ['ingest', 'features', 'train', 'validate', 'register', 'model_card']
    assert m['stages']['register']['outputs']['model_version'] == '1'
    assert (workspace / '.lifecycle/mlflow.db').is_file()
