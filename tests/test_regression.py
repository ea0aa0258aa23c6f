"""Regression end to end, on a second dataset that ships with scikit-learn (diabetes): the same pipeline, stages and
gates, with RMSE, MAE and R² in place of the classification metrics."""

from __future__ import annotations
from pathlib import Path
import numpy as np
import pytest
import yaml
from conftest import cli, cli_json, make_workspace

pytestmark = pytest.mark.slow  # pipeline runs on a second dataset

COLUMNS = {
    c: {'dtype': 'float', 'personal': False, 'min': 0}
    for c in ('age', 'sex', 'bmi', 'bp', 's1', 's2', 's3', 's4', 's5', 's6')
}


def diabetes_params(ws: Path) -> None:
    p = ws / 'params'

    def w(name, d):
        (p / name).write_text(yaml.safe_dump(d, sort_keys=False))

    w(
        'ingest.yaml',
        dict(
            dataset='diabetes',
            source='sklearn:diabetes',
            target='target',
            max_duplicate_rate=0.0,
            drift={'reference': 'champion'},
            columns={**COLUMNS, 'target': {'dtype': 'float', 'personal': False, 'min': 0, 'max': 400}},
        ),
    )
    w(
        'features.yaml',
        dict(
            task='regression',
            target='target',
            features=[{'name': c, 'kind': 'numeric', 'transform': 'standardize'} for c in COLUMNS],
        ),
    )
    w(
        'train.yaml',
        dict(
            experiment='diabetes',
            seed=7,
            holdout_fraction=0.25,
            model={'family': 'ridge', 'params': {'alpha': 1.0}},
            sweep={'grid': {'alpha': [0.1, 1.0, 10.0]}, 'metric': 'r2', 'folds': 3},
        ),
    )
    w(
        'validate.yaml',
        dict(gates={'r2': {'min': 0.3}, 'rmse': {'max': 70}}, protected_attributes=[], champion_metrics=['r2']),
    )
    w('register.yaml', dict(model_name='diabetes-progression'))
    policy = yaml.safe_load((p / 'policy.yaml').read_text())
    policy.update(thresholds={'r2': {'min': 0.3}}, protected_attributes=[], require_bias_evaluation=False)
    w('policy.yaml', policy)


def test_a_regression_model_runs_through_every_stage(tmp_path):
    ws = make_workspace(tmp_path / 'ws')
    diabetes_params(ws)
    r, out = cli_json(ws, 'run', '--no-site')
    assert r.returncode == 0, out
    outs = {k: v for s in out['stages'] for k, v in s['outputs'].items()}
    assert outs['rows'] == 442 and outs['future_batches'] == {}
    assert 0.3 < outs['r2'] < 1 and 0 < outs['mae'] < outs['rmse'] < 70 and outs['model_version'] == '1'
    assert {g['gate'] for g in outs['gates']} == {'r2', 'rmse'}
    from lifecycle.core.audit import read
    from lifecycle.core.workspace import Workspace
    from lifecycle.registry import load_by_alias
    from sklearn.datasets import load_diabetes

    w = Workspace.open(ws)
    ml = w.mlflow
    v, model = load_by_alias(w, 'diabetes-progression', 'dev')
    X = load_diabetes(as_frame=True, scaled=False).frame.drop(columns='target').head(10)
    pred = np.asarray(model.predict(X), dtype=float)
    assert pred.shape == (10,) and 25 < pred.mean() < 346  # a quantity, not a class
    run = ml.get_run(ml.MlflowClient().get_model_version('diabetes-progression', '1').run_id)
    assert {'holdout_r2', 'holdout_rmse', 'holdout_mae', 'train_r2'} <= set(run.data.metrics)
    assert run.data.tags['serving_form'] == 'sklearn'
    card = (Path(out['run_dir']) / '06_model_card.ipynb').read_text()
    assert 'rmse' in card and 'scikit-learn only' in card
    r, check = cli_json(ws, 'govern', 'check', 'diabetes-progression', '1')
    assert r.returncode == 0 and check['ok']
    X.to_csv(tmp_path / 'in.csv', index=False)  # helper F2: `score --threshold` was ignored, the summary said null
    files = ('--input', str(tmp_path / 'in.csv'), '--output', str(tmp_path / 'out.csv'))
    r = cli(ws, 'score', *files, '--threshold', '0.3')
    assert r.returncode == 2 and not (tmp_path / 'out.csv').exists(), r.stderr
    assert "--threshold 0.3: diabetes-progression version 1 is a regression: its score is its prediction" in r.stderr
    r, scored = cli_json(ws, 'score', *files)
    assert r.returncode == 0 and scored['rows'] == 10 and scored['threshold'] is None, scored
    assert cli(ws, 'flags', 'init').returncode == 0  # review AM: a threshold switch was written and audited as a change
    for args in (('threshold', 'default'), ('set', 'threshold.default=strict')):
        r = cli(ws, 'flags', *args)
        assert r.returncode == 2 and 'diabetes-progression is a regression' in r.stderr, (args, r.stderr)
    assert not [e for e in read(w.audit_path) if e['action'] == 'flags.change']


def test_a_classification_family_for_a_regression_task_is_refused(tmp_path):
    ws = make_workspace(tmp_path / 'ws')
    diabetes_params(ws)
    t = ws / 'params/train.yaml'
    d = yaml.safe_load(t.read_text())
    d['model'] = {'family': 'logistic_regression'}
    d.pop('sweep')
    t.write_text(yaml.safe_dump(d))
    r = cli(ws, 'run')
    assert r.returncode == 2 and "key 'model.family'" in r.stderr and 'regression' in r.stderr
