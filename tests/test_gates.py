"""Validation gates failing on purpose, on the default dataset: a biased model, a model worse than the champion (trained
and validated through the stage functions the stage notebooks call; the CLI path of a failed gate is in test_refusals
and test_release_path).
And determinism: the same seed on the same snapshot gives identical metrics and predictions."""

from __future__ import annotations
import json
from pathlib import Path
import numpy as np
import pytest
import yaml
from conftest import cli_json


def features_with(ws: Path, name: str, keep: list[str] | None = None, add: dict | None = None) -> Path:
    import shutil

    dst = ws / name
    shutil.copytree(ws / 'params', dst)
    d = yaml.safe_load((dst / 'features.yaml').read_text())
    if keep is not None:
        d['features'] = [f for f in d['features'] if f['name'] in keep]
    if add:
        d['features'].append(add)
    (dst / 'features.yaml').write_text(yaml.safe_dump(d, sort_keys=False))
    return dst


def candidate(ws_path: Path, params_dir: Path, dataset_version: str, add: dict | None = None):
    """A candidate trained on the champion's snapshot with the params in `params_dir`, through the same stage functions
    the stage notebooks call (features, train, validate), in this process: the validation result. `add`: a model input
    given to the stage functions directly, past the params check (which refuses a protected attribute as an input),
    as another entry point might: the fairness gates must still stop what it does."""
    from lifecycle.core.params import FeaturesParams
    from lifecycle.core.workspace import Workspace
    from lifecycle.data import stages as data_stages
    from lifecycle.model import stages

    ws = Workspace.open(ws_path, params_dir=params_dir)
    p = ws.params
    fp = p['features']
    if add:
        fp = FeaturesParams.model_validate({**fp.model_dump(), 'features': [*fp.model_dump()['features'], add]})
    f = data_stages.features(ws, fp, dataset_version)
    t = stages.train(ws, p['train'], fp, dataset_version, f.feature_set_version)
    return stages.validate(
        ws, p['validate'], fp, p['register'], t.mlflow_run_id, t.model_uri, t.holdout_id, policy=p['policy']
    )


def failed_gates(result) -> str:
    from lifecycle.model.validate import GateFailed

    with pytest.raises(GateFailed) as e:
        result.enforce()
    return ' '.join(str(e.value).split())


def versions(ws: Path) -> list[int]:
    r, st = cli_json(ws, 'status')
    return st['models'][0]['versions'] if st['models'] else []


def test_a_biased_model_is_stopped_by_the_fairness_gates(trained_template, trained):
    dv = {s['name']: s['outputs'] for s in trained_template[1]['stages']}['ingest']['dataset_version']
    with pytest.raises(Exception, match="feature 'colour' is a protected attribute"):  # refused as params ...
        features_with(trained, 'refused', add={'name': 'colour', 'kind': 'categorical', 'transform': 'onehot'})
        candidate(trained, trained / 'refused', dv)
    result = candidate(  # ... and, given to the stage functions past that check, stopped by the fairness gates
        trained, trained / 'params', dv, add={'name': 'colour', 'kind': 'categorical', 'transform': 'onehot'}
    )
    msg = failed_gates(result)
    assert not result.passed
    assert 'demographic_parity_difference[colour]' in msg and 'equalized_odds_difference[colour]' in msg
    assert '[sex]' not in msg  # only the attribute the model now leans on fails
    assert versions(trained) == [1]  # not registered


def test_a_model_worse_than_the_champion_is_not_promoted(trained_template, trained):
    dv = {s['name']: s['outputs'] for s in trained_template[1]['stages']}['ingest']['dataset_version']
    p = features_with(trained, 'weaker', keep=['age', 'employed', 'citizen'])
    result = candidate(trained, p, dv)
    msg = failed_gates(result)
    assert 'roc_auc vs champion v1' in msg
    assert 'roc_auc = ' not in msg  # the absolute threshold passed; the champion gate did not
    gates = result.gates
    assert set(gates['kind']) == {'threshold', 'fairness', 'champion'}
    assert gates[gates['kind'] == 'champion'].verdict.tolist() == ['fail']
    assert versions(trained) == [1]


TRAIN_ONCE = """
import json, sys
from lifecycle.core.params import TrainParams
from lifecycle.core.workspace import Workspace
from lifecycle.model import stages

ws = Workspace.open('.')
spec = json.loads(sys.argv[1])
tp = TrainParams.model_validate({**ws.params['train'].model_dump(), **spec['train']})
r = stages.train(ws, tp, ws.params['features'], spec['dataset_version'], spec['feature_set_version'])
print(json.dumps(dict(run=r.mlflow_run_id, uri=r.model_uri, holdout=r.holdout_id, metrics=r.metrics, trials=r.trials)))
"""


def test_same_seed_same_snapshot_gives_identical_metrics_and_predictions(trained_template, trained):
    """A random forest with a swept grid, trained twice on the template's snapshot and feature set, in two processes
    with different hash seeds (so set and dict ordering cannot hide behind one process): identical cross-validation
    scores, training metrics, holdout split and predictions, in two separate tracked runs."""
    import subprocess
    import sys
    from conftest import TRAINER, clean_env
    from lifecycle.core.workspace import Workspace

    out = {s['name']: s['outputs'] for s in trained_template[1]['stages']}
    spec = dict(
        dataset_version=out['ingest']['dataset_version'],
        feature_set_version=out['features']['feature_set_version'],
        train={
            'model': {'family': 'random_forest', 'params': {'n_estimators': 50, 'min_samples_leaf': 5}},
            'sweep': {'grid': {'max_depth': [4, 8]}, 'folds': 2},
        },
    )
    runs = []
    for seed in ('1', '2'):
        r = subprocess.run(
            [sys.executable, '-c', TRAIN_ONCE, json.dumps(spec)],
            cwd=trained,
            env={**clean_env(), **TRAINER, 'PYTHONHASHSEED': seed},
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert r.returncode == 0, r.stderr[-3000:]
        runs.append(json.loads(r.stdout.splitlines()[-1]))
    first, second = runs
    assert first['run'] != second['run']  # two separate training runs
    assert first['trials'] == second['trials'] and len(first['trials']) == 2
    assert first['metrics'] == second['metrics'] and first['holdout'] == second['holdout']
    ws = Workspace.open(trained)
    holdout = ws.store.get_frame(first['holdout'])
    p1, p2 = (ws.mlflow.sklearn.load_model(r['uri']).predict_proba(holdout)[:, 1] for r in runs)
    assert np.array_equal(p1, p2) and len(p1) == len(holdout) > 500


def test_a_feature_too_large_to_standardise_is_refused_by_the_features_stage_naming_it(workspace, arrests, monkeypatch):
    """Values near a float's limits (1e300) pass a contract whose range init widened around them, but their variance
    overflows: every standardised value was NaN, and training failed in scikit-learn's words, naming no column (and
    before it, the features notebook's density plot). The features stage now refuses it, naming the feature."""
    from lifecycle.core.workspace import Workspace
    from lifecycle.data import stages as data_stages
    from lifecycle.data.features import FeatureError, plot_densities

    snapshot = arrests.head(200).assign(checks=np.resize([0.0, 1e300, -1e300, 5e299], 200))
    monkeypatch.setattr(data_stages, 'load_snapshot', lambda store, version: snapshot)
    monkeypatch.setattr(data_stages, '_training_record', lambda store, version: {'version': version, 'role': 'clean'})
    ws = Workspace.open(workspace)
    fp = ws.params['features']
    with pytest.raises(FeatureError, match=r"feature\(s\) \['checks'\] \(transform: standardize\)"):
        data_stages.features(ws, fp, 'arrests-any')
    _, shown = plot_densities(snapshot, ['age', 'checks'], fp.target)  # (the evidence still draws it, scaled)
    assert shown == ['age', 'checks']
    monkeypatch.setattr(data_stages, 'load_snapshot', lambda store, version: arrests.head(200))
    assert data_stages.features(ws, fp, 'arrests-any').inputs == ['age', 'checks', 'employed', 'citizen']


def test_fairness_metrics_of_any_protected_column_name_are_keys_mlflow_takes():
    """A protected attribute named as a survey exports it (`Gender (self-described)?`, or a question of 300
    characters, which init now takes as a header) made `validate` fail in MLflow ('Invalid value ... Names may only
    contain alphanumerics ...', or over 250 characters) after the validation was recorded. Such a column's metric key
    is made one MLflow takes, one per column; a plain name keeps the key it always had."""
    import pandas as pd
    from mlflow.utils.validation import _validate_length_limit, _validate_metric_name, MAX_ENTITY_KEY_LENGTH

    from lifecycle.model.stages import _fairness_metrics
    from lifecycle.model.validate import fairness_metrics

    long = 'How would you describe your ethnic background, ' * 6 + '?'
    names = ['sex', 'Gender (self-described)?', 'Gender (self-described)!', long, 'a//b', 'x: y']
    groups = pd.DataFrame({n: ['x', 'y'] * 20 for n in names})
    y, proba = np.array([0, 1, 1, 0] * 10), np.linspace(0, 1, 40)
    out = _fairness_metrics(fairness_metrics(groups, y, proba))
    assert len(out) == 2 * len(names) and 'demographic_parity_difference.sex' in out, list(out)
    assert 'equalized_odds_difference.x: y' in out, list(out)  # (a key MLflow took before: kept)
    for key in out:
        _validate_metric_name(key)
        _validate_length_limit('Metric name', MAX_ENTITY_KEY_LENGTH, key)
