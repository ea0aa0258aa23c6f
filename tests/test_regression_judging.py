"""Review AG: a regression's live predictions were judged as a classification's (each compared with its label for
equality), so every prediction was wrong in both arms and the retraining loop's shadow, a rollout's guard and the A/B
report found no difference and passed any challenger. A regression is judged within features.yaml's `tolerance`."""

from __future__ import annotations
import numpy as np
import pandas as pd
import pytest
from lifecycle.core.params import FeaturesParams
from lifecycle.data.features import definition_hash
from lifecycle.deliver.experiment import analyse_stats, metric_of
from lifecycle.deliver.rollout import Within, judged_by, scored
from lifecycle.loop.schema import ShadowSpec
from lifecycle.loop.shadow import compare, shadow_pairs

FEATURES = dict(task='regression', target='price', features=[dict(name='rooms', kind='numeric')])


def shadow_log(n: int, champion_error: float, challenger_error: float, seed: int = 0) -> pd.DataFrame:
    "A prediction log of `n` answered, labelled requests each scored by challenger version 2 in the shadow."
    rng = np.random.default_rng(seed)
    y = rng.uniform(100_000, 500_000, n)
    rows = []
    for i in range(n):
        live = float(y[i] + rng.normal(0, champion_error))
        rows.append(dict(request_id=f'r{i}', shadow=False, variant='control', status=200, model_version='1',
                         decision=[live], output=[live], outcome=float(y[i]), threshold=None, ts=float(i)))
        rows.append(dict(request_id=f'r{i}', shadow=True, variant='challenger', status=200, model_version='2',
                         decision=None, output=[float(y[i] + rng.normal(0, challenger_error))], outcome=None,
                         threshold=None, ts=float(i)))  # fmt: skip
    return pd.DataFrame(rows)


def test_the_shadow_fails_a_much_worse_regression_challenger_and_passes_an_equal_one():
    spec, within = ShadowSpec(min_labelled=200), judged_by(FeaturesParams(**FEATURES, tolerance=20_000))
    worse = compare(shadow_pairs(shadow_log(400, 10_000, 200_000), '2', within), spec, within.tolerance)
    assert worse.verdict == 'fail' and worse.challenger_accuracy < 0.2 < 0.9 < worse.champion_accuracy, worse
    assert 'within 20000 of the label' in worse.reason
    equal = compare(shadow_pairs(shadow_log(400, 10_000, 10_000), '2', within), spec, within.tolerance)
    assert equal.verdict == 'pass', equal


def test_a_regression_arm_counts_the_predictions_within_its_tolerance_and_none_without_one():
    pairs = [([100.0, 200.0], [104.0, 260.0]), ([50.0], 49.0), (None, 3.0), ([1.0], None), ([7.0], True)]
    pairs.append(([2.0], float('nan')))  # (no label, as the shadow counts it: review AJ)
    assert scored(pairs, Within(5.0)) == (3, 2)  # (the boolean label is no number: not judged)
    assert scored(pairs, Within(None)) == (0, 0)
    assert scored([([1], 1), ([0], 1)], 1) == (2, 1)  # a classification as before


def test_the_ab_report_of_a_regression_names_what_it_compares():
    stats = {
        a: dict(requests=100, errors=0, feedback=100, correct=c, error_rate=0.0, accuracy=c / 100, p50_ms=1.0,
                p95_ms=2.0, versions=[v])
        for a, c, v in (('control', 80, '1'), ('challenger', 40, '2'))
    }  # fmt: skip
    from lifecycle.core.params import ExperimentParams

    a = analyse_stats(stats, {}, ExperimentParams(), metric=metric_of(Within(20_000.0)))
    assert a['metric'] == 'share of predictions within 20000 of the label, from feedback'
    assert a['frequentist']['difference'] == pytest.approx(-0.4)
    assert metric_of('yes') == 'accuracy from feedback'


def test_the_tolerance_is_a_regressions_and_defines_no_feature():
    assert definition_hash(FeaturesParams(**FEATURES)) == definition_hash(FeaturesParams(**FEATURES, tolerance=5.0))
    with pytest.raises(ValueError, match="'tolerance' is a regression's"):
        FeaturesParams(**{**FEATURES, 'task': 'classification'}, positive_class=1, tolerance=1.0)
    with pytest.raises(ValueError):
        FeaturesParams(**FEATURES, tolerance=0)


def test_init_proposes_a_tolerance_for_a_regression():
    from lifecycle.data.infer import propose_params

    rng = np.random.default_rng(1)
    df = pd.DataFrame({'rooms': rng.integers(1, 8, 300), 'price': rng.uniform(100_000, 500_000, 300).round(2)})
    pr = propose_params(df, target='price', source='houses.csv')
    import yaml

    fp = FeaturesParams(**yaml.safe_load(pr.files['features.yaml']))
    median = float(df.price.median())
    assert fp.task == 'regression' and fp.tolerance == float(f'{0.1 * median:.2g}')
    assert '# tolerance: a live prediction within it' in pr.files['features.yaml']
