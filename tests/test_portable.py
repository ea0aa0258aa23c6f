"""ONNX export of the model pipelines on the arrests data: parity with scikit-learn on the holdout, a clear reason
for a family that cannot be converted, a parity check that catches the wrong model, and a one-record fast path
that scores like the batch path."""

from __future__ import annotations
import warnings
import numpy as np
import pandas as pd
import pytest
from lifecycle.features import build_transformer, input_columns
from lifecycle.params import TrainParams, load_params
from lifecycle.portable import Conversion, OnnxScorer, check_parity, onnx_predict_proba, to_onnx
from lifecycle.train import make_pipeline, split_holdout, xy
from conftest import ROOT

FAMILIES = {'logistic_regression': {'C': 1.0, 'max_iter': 500}, 'random_forest': {}, 'hist_gradient_boosting': {}}


@pytest.fixture(scope='module')
def data():
    from sklego.datasets import load_arrests

    fp = load_params(ROOT / 'params')['features']
    train, holdout = split_holdout(load_arrests(as_frame=True), fp.target, 0.25, 42)
    inputs = input_columns(fp)
    return dict(fp=fp, train=xy(train, inputs, fp), holdout=xy(holdout, inputs, fp)[0], inputs=inputs)


@pytest.fixture(scope='module')
def models(data):
    "family -> (fitted pipeline, Conversion), built exactly as the training stage builds them."
    out = {}
    X, y = data['train']
    for family, params in FAMILIES.items():
        tp = TrainParams(experiment='t', model={'family': family, 'params': params})
        with warnings.catch_warnings():
            warnings.simplefilter('ignore')
            pipe = make_pipeline(build_transformer(data['fp']), tp).fit(X, y)
        out[family] = (pipe, to_onnx(pipe, X.head(100)))
    return out


def test_logistic_regression_matches_within_1e5(models, data):
    pipe, conv = models['logistic_regression']
    assert conv.ok and conv.reason == '' and isinstance(conv.onnx, bytes)
    par = check_parity(pipe, conv.onnx, data['holdout'], tolerance=1e-5)
    assert par['passed'] and par['max_abs_diff'] <= 1e-5 and par['decision_agreement'] == 1.0, par
    p = onnx_predict_proba(conv.onnx, data['holdout'])
    assert p.shape == (len(data['holdout']), 2)
    assert np.abs(p[:, 1] - pipe.predict_proba(data['holdout'])[:, 1]).max() <= 1e-5


@pytest.mark.parametrize('family', list(FAMILIES))
def test_each_family_converts_with_parity_or_says_why(models, data, family):
    pipe, conv = models[family]
    assert isinstance(conv, Conversion)
    if not conv.ok:
        assert conv.onnx is None and type(pipe[-1]).__name__ in conv.reason and 'skl2onnx' in conv.reason
        return
    par = check_parity(pipe, conv.onnx, data['holdout'], tolerance=1e-5)
    assert np.isfinite(par['max_abs_diff']) and par['rows'] == len(data['holdout'])
    # the export feeds trees float32 exactly as scikit-learn does, so no family that converts may differ
    assert par['passed'] and par['disagree_off_ties'] == 0, (family, par)


def test_forest_parity_holds_on_every_threshold_tie(models, data):
    "Every integer age and count of checks, including those that fall exactly on a forest threshold once scaled."
    pipe, conv = models['random_forest']
    grid = pd.DataFrame(
        [(a, c, e, z) for a in range(10, 101) for c in range(11) for e in ('Yes', 'No') for z in ('Yes', 'No')],
        columns=data['inputs'],
    )
    par = check_parity(pipe, conv.onnx, grid, tolerance=1e-6)
    assert par['passed'], par


def test_parity_fails_for_another_models_onnx(models, data):
    lr, _ = models['logistic_regression']
    _, rf = models['random_forest']
    par = check_parity(lr, rf.onnx, data['holdout'])
    assert not par['passed'] and par['max_abs_diff'] > 0.01 and 'tolerance' in par['reason']


def test_single_record_fast_path_equals_batch(models, data):
    X = data['holdout'].head(200)
    for family, (pipe, conv) in models.items():
        if not conv.ok:
            continue
        sc = OnnxScorer(conv.onnx)
        batch = sc.predict_proba(X)
        one = np.vstack([sc.predict_proba(rec) for rec in X.to_dict('records')])
        np.testing.assert_allclose(one, batch, rtol=0, atol=1e-12, err_msg=family)


def test_record_with_unseen_category_and_extra_fields_scores_like_sklearn(models, data):
    pipe, conv = models['logistic_regression']
    rec = {'age': 23, 'checks': 3, 'employed': 'Maybe', 'citizen': 'Yes', 'colour': 'White'}
    want = pipe.predict_proba(pd.DataFrame([rec]))
    np.testing.assert_allclose(OnnxScorer(conv.onnx).predict_proba(rec), want, rtol=0, atol=1e-9)
    with pytest.raises(ValueError, match="'checks'"):
        OnnxScorer(conv.onnx).predict_proba({'age': 23, 'employed': 'No', 'citizen': 'Yes'})


@pytest.mark.parametrize('family', list(FAMILIES))
def test_a_category_listed_first_still_converts(models, data, family):
    """Found by review: `lifecycle init` lists features in the file's order, so a category often comes first; skl2onnx
    types the transformation's joined output by its first part (a one-hot encoder's: float), and every classifier of a
    file whose first input was a category lost its ONNX form ('NormalizerNorm ... tensor(float)')."""
    from lifecycle.params import FeaturesParams

    fp = data['fp']
    first = sorted(fp.features, key=lambda f: f.transform != 'onehot')  # (categories first)
    assert first[0].transform == 'onehot' and first[-1].transform == 'standardize'
    fp2 = FeaturesParams(**{**fp.model_dump(), 'features': [f.model_dump() for f in first]})
    X, y = data['train']
    tp = TrainParams(experiment='t', model={'family': family, 'params': FAMILIES[family]})
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        pipe = make_pipeline(build_transformer(fp2), tp).fit(X[input_columns(fp2)], y)
    conv = to_onnx(pipe, X[input_columns(fp2)].head(100))
    assert conv.ok == models[family][1].ok, conv.reason  # (as the file's own order does: a family skl2onnx can convert)
    assert not conv.ok or check_parity(pipe, conv.onnx, data['holdout'][input_columns(fp2)], tolerance=1e-5)['passed']


def test_a_category_first_definition_gets_a_feature_set_version_of_its_own(data):
    """A feature set registered before numbers came first in the transformation keeps its stored layout (immutable);
    a definition whose category comes first is versioned apart from it, so a workspace that ran it before gets the new
    layout, and its ONNX form, on its next run. Definitions already numbers-first (the default's) keep their version."""
    from lifecycle.core.store import hash_obj
    from lifecycle.features import feature_set_version
    from lifecycle.params import FeaturesParams

    fp = data['fp']
    before = 'fs-' + hash_obj(fp.model_dump(exclude={'tolerance'}))[:16]
    assert feature_set_version(fp) == before  # (numbers first already: the default's version is unchanged)
    first = sorted(fp.features, key=lambda f: f.transform != 'onehot')
    fp2 = FeaturesParams(**{**fp.model_dump(), 'features': [f.model_dump() for f in first]})
    assert feature_set_version(fp2) != 'fs-' + hash_obj(fp2.model_dump(exclude={'tolerance'}))[:16]
