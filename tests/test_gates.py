"""Validation gates failing on purpose, on the default dataset: a biased model, a model worse than the champion.
And determinism: the same seed on the same snapshot gives identical metrics and predictions."""

from __future__ import annotations
import json
from pathlib import Path
import numpy as np
import pytest
import yaml
from conftest import cli, cli_json, make_workspace


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


@pytest.fixture
def champion_ws(trained):
    "This test's copy of the session's trained workspace: version 1 is the champion."
    return trained


def versions(ws: Path) -> list[int]:
    r, st = cli_json(ws, 'status')
    return st['models'][0]['versions'] if st['models'] else []


def test_a_biased_model_is_stopped_by_the_fairness_gates(champion_ws):
    p = features_with(champion_ws, 'biased', add={'name': 'colour', 'kind': 'categorical', 'transform': 'onehot'})
    r = cli(champion_ws, 'run', '--no-site', '--params', str(p))
    msg = ' '.join(r.stderr.split())
    assert r.returncode == 1 and "stage 'validate' failed" in msg
    assert 'demographic_parity_difference[colour]' in msg and 'equalized_odds_difference[colour]' in msg
    assert '[sex]' not in msg  # only the attribute the model now leans on fails
    assert versions(champion_ws) == [1]  # not registered


def test_a_model_worse_than_the_champion_is_not_promoted(champion_ws):
    p = features_with(champion_ws, 'weaker', keep=['age', 'employed', 'citizen'])
    r = cli(champion_ws, 'run', '--no-site', '--params', str(p))
    msg = ' '.join(r.stderr.split())
    assert r.returncode == 1 and 'roc_auc vs champion v1' in msg
    assert 'roc_auc = ' not in msg  # the absolute threshold passed; the champion gate did not
    runs = sorted((champion_ws / 'reports/runs').iterdir())
    m = json.loads((runs[-1] / 'manifest.json').read_text())
    gates = m['stages']['validate']['outputs']['gates']
    assert {g['kind'] for g in gates} == {'threshold', 'fairness', 'champion'}
    assert [g['verdict'] for g in gates if g['kind'] == 'champion'] == ['fail']
    assert versions(champion_ws) == [1]


@pytest.mark.slow  # two cold runs of their own: determinism is what is tested
def test_same_seed_same_snapshot_gives_identical_metrics_and_predictions(tmp_path):
    ws = make_workspace(tmp_path / 'ws')
    t = ws / 'params/train.yaml'
    d = yaml.safe_load(t.read_text())
    d['model'] = {'family': 'random_forest', 'params': {'n_estimators': 50, 'min_samples_leaf': 5}}
    d['sweep'] = {'grid': {'max_depth': [4, 8]}, 'folds': 2}
    t.write_text(yaml.safe_dump(d, sort_keys=False))
    for args in (('run', '--no-site'), ('run', '--no-site', '--force')):
        r = cli(ws, *args)
        assert r.returncode == 0, r.stderr
    from lifecycle.tracking import configure_mlflow
    from lifecycle.store import Store
    from lifecycle.signing import verified_path
    from sklego.datasets import load_arrests

    ml = configure_mlflow(f"sqlite:///{ws / '.lifecycle/mlflow.db'}", ws / '.lifecycle')
    client = ml.MlflowClient()
    v1, v2 = (client.get_model_version('arrests-release', v) for v in ('1', '2'))
    assert v1.run_id != v2.run_id  # two separate training runs
    m1, m2 = (client.get_run(v.run_id).data.metrics for v in (v1, v2))
    assert {k: v for k, v in m1.items() if k.startswith(('holdout_', 'train_'))} == {
        k: v for k, v in m2.items() if k.startswith(('holdout_', 'train_'))
    }
    X = load_arrests(as_frame=True)
    store, keys = Store(ws / '.lifecycle/store'), ws / '.lifecycle/keys'
    p1, p2 = (
        ml.sklearn.load_model(
            str(verified_path(ml, store, 'arrests-release', v, keys, dst=tmp_path / f'v{v}'))
        ).predict_proba(X[['age', 'checks', 'employed', 'citizen']])[:, 1]
        for v in ('1', '2')
    )
    assert np.array_equal(p1, p2)
