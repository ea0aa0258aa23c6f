"""A feedback outcome is read as the positive class the way training reads the target (`positive_mask`), by every
reader of live accuracy: the monitor's windows, the retraining loop's shadow, a rollout's guard and the A/B report.
They compared the outcome the server keeps with `positive_class` by equality, and any number 1 as positive: an int
target whose labels are declared (`allowed: ['0', '1']`, kept as the label '1') had every outcome read as negative,
and one whose positive class is not 1 (`positive_class: 2`) had its negative outcome 1 read as positive."""

from __future__ import annotations
import pandas as pd
import pytest
from lifecycle.deliver.rollout import scored
from lifecycle.loop.shadow import shadow_pairs
from lifecycle.model.train import positive_mask
from lifecycle.operate.windows import records
from lifecycle.serve.models import InputError
from lifecycle.serve.scoring import check_outcome

# (labels declared, positive_class, dtype, the classes as the client sends them: negative, positive)
TARGETS = [
    (['0', '1'], 1, 'int', (0, 1)),
    (['0', '1'], 1.0, 'int', (0, 1)),
    (['0', '1'], '1', 'str', ('0', '1')),
    (None, 2, 'int', (1, 2)),
    (None, 0, 'int', (1, 0)),
    (['No', 'Yes'], 'Yes', 'str', ('No', 'Yes')),
    (None, True, 'bool', (False, True)),
    (['0', '1'], 0, 'int', (1, 0)),
    (['1', '2'], 2, 'int', (1, 2)),
    (['0', '1', '2'], 2, 'int', (0, 2)),
]


def log(outcomes: list) -> pd.DataFrame:
    "One answered request per outcome, each decided positive, with the challenger's shadow row scoring it positive."
    rows = []
    for i, y in enumerate(outcomes):
        common = dict(request_id=f'r{i}', status=200, threshold=0.5, ts=float(i), latency_ms=1.0, inputs={'a': [1]})
        rows.append(dict(common, shadow=False, variant='control', model_version='1', output=[0.9], decision=[1],
                         outcome=y, feedback_ts=float(i) + 1))
        rows.append(dict(common, shadow=True, variant='challenger', model_version='2', output=[0.9], decision=None,
                         outcome=None, feedback_ts=None))  # fmt: skip
    return pd.DataFrame(rows)


@pytest.mark.parametrize('labels,positive,dtype,classes', TARGETS)
def test_every_reader_of_live_accuracy_reads_a_feedback_outcome_as_training_reads_the_target(
    labels, positive, dtype, classes
):
    kept = [check_outcome(c, labels, positive, dtype) for c in classes]  # (as /feedback keeps them)
    truth = positive_mask(pd.Series(list(classes)), positive).tolist()
    assert truth == [False, True]  # (training: the second class is the positive one)
    d = log(kept)
    assert records(d, positive)['label'].tolist() == [0.0, 1.0]  # monitor status: realised accuracy
    assert shadow_pairs(d, '2', positive)['y'].tolist() == [0.0, 1.0]  # retraining's shadow
    assert scored(zip(d[~d['shadow']]['decision'], kept), positive) == (2, 1)  # guard, A/B report: 1 of 2 right


def test_a_number_that_names_a_declared_label_is_that_label_not_a_stand_in_for_the_positive_class():
    """An int target's labels declared (`allowed: ['0', '1']`, `positive_class: 0`): the outcome 0 was kept as '1', the
    label 0/1 stand for when the target's labels are text, so a true outcome went into the log, the monitor and the
    labelled batches inverted; 2 of labels ['1', '2'] was refused and 1 kept as '2'."""
    assert check_outcome(0, ['0', '1'], 0, 'int') == '0' and check_outcome(1, ['0', '1'], 0, 'int') == '1'
    assert check_outcome(1, ['1', '2'], 2, 'int') == '1' and check_outcome(2, ['1', '2'], 2, 'int') == '2'
    assert check_outcome([2, 0, 1], ['0', '1', '2'], 2, 'int') == ['2', '0', '1']
    assert check_outcome(1.5, ['0.5', '1.5'], 1.5, 'float') == '1.5'
    assert check_outcome(True, ['0', '1'], 0, 'int') == '0'  # (a boolean still stands for the positive class)
    assert check_outcome(1, ['No', 'Yes'], 'Yes', 'str') == 'Yes'  # (0/1 still stand for text labels)
    with pytest.raises(InputError) as e:
        check_outcome(7, ['1', '2'], 2, 'int')  # (no stand-in either: the labels are numbers)
    assert "field 'outcome'" in str(e.value) and "['1', '2']" in str(e.value) and '7' not in str(e.value)


@pytest.mark.parametrize('outcome,labels', [(['Yes', 'No', 'Yes'], 0), (['Yes'], 2), ('Yes', 2), (['No', 'Yes'], 2)])
def test_every_reader_labels_the_same_records_of_an_old_list_of_outcomes(outcome, labels):
    """A list of outcomes of another length than its request's records (taken by a server before they were refused)
    labels none of them in the labelled batch, but the monitor counted each record as a negative label, and the guard
    and the A/B report judged as many records as the shorter of the two lists; a list of one, one outcome for all,
    was judged for the first record only by the guard and as no positive by the shadow."""
    from lifecycle.loop.feedback import labelled_rows

    d = log([outcome])
    for c in ('inputs', 'output', 'decision'):
        d[c] = [v if c != 'inputs' else {'a': [1, 2]} for v in d[c]]
    d['output'], d['decision'] = [[0.9, 0.9]] * 2, [[1, 1], None]
    assert len(labelled_rows(d, ['a'], 'y')) == labels
    assert records(d, 'Yes')['label'].notna().sum() == labels
    assert scored(zip(d[~d['shadow']]['decision'], [outcome]), 'Yes')[0] == labels
    assert len(shadow_pairs(d, '2', 'Yes')) == labels
    right = scored(zip(d[~d['shadow']]['decision'], [outcome]), 'Yes')[1]
    assert right == (records(d, 'Yes')['label'] == 1).sum() == shadow_pairs(d, '2', 'Yes')['y'].sum()


@pytest.mark.parametrize('target,positive', [(['0', '1'], 1), ([0, 1], 1.0), ([False, True], 'yes'), ([1, 2], 2)])
def test_a_simulation_counts_an_answer_right_as_training_reads_its_target(target, positive):
    """`lifecycle simulate`'s timeline counted an answer right when it equalled `y == positive_class`: a text target
    '1' with `positive_class: 1`, or a boolean one with `positive_class: yes`, had every positive answer counted wrong
    and every negative one right, so its accuracy was the opposite of the monitor's."""
    from types import SimpleNamespace
    from lifecycle.loop.simulation import send_window

    class Client:  # (answers every record positive, takes every outcome)
        def post(self, path, json):
            body = {'request_id': 'r', 'model_version': '1', 'variant': 'control', 'predictions': [{'prediction': 1}]}
            return SimpleNamespace(status_code=200, json=lambda: body)

    rows = pd.DataFrame({'a': [1, 2], 'y': target})
    got = send_window(Client(), rows, ['a'], 'y', positive, 's')
    assert (got['labelled'], got['right']) == (2, 1), got


BOOLEAN_POSITIVE = [(['Yes', 'No'], True), (['no', 'yes'], True), (['true', 'false'], True), (['0', '1'], True),
                    (['Yes', 'No'], False), (['0', '1'], False)]  # fmt: skip


@pytest.mark.parametrize('labels,positive', BOOLEAN_POSITIVE)
def test_a_boolean_or_0_1_outcome_stands_for_the_label_training_reads_as_a_boolean_positive_class(labels, positive):
    """Text labels with `positive_class: true` (or false): training reads the label 'Yes', 'true' or '1' as true
    (`positive_mask`, by `bool_label`), but `/feedback` looked for the label 'True' only, found none, and refused
    every 0/1 and boolean outcome the README offers for a two-label target."""
    truth = positive_mask(pd.Series(labels, dtype=object), positive)
    pos, neg = labels[int(truth.argmax())], labels[int(truth.argmin())]
    assert truth.sum() == 1
    assert check_outcome(True, labels, positive, 'str') == pos and check_outcome(False, labels, positive, 'str') == neg
    if not any(x in ('0', '1') for x in labels):  # (0/1 are labels themselves otherwise)
        assert check_outcome([1, 0], labels, positive, 'str') == [pos, neg]


def test_a_simulation_judges_a_regressions_answer_within_its_tolerance_as_the_guard_does():
    """A regression's answers in `lifecycle simulate`'s timeline were counted right only when they equalled 0 or 1
    (`y == positive_class`, then the outcome read as a positive class), so a model answering every label exactly had
    an accuracy of 0; they are judged as the guard and the shadow judge them, within the declared tolerance."""
    from types import SimpleNamespace
    from lifecycle.deliver.rollout import Within
    from lifecycle.loop.simulation import send_window

    class Client:  # (answers 2.5 for every record, takes every outcome)
        def post(self, path, json):
            body = {'request_id': 'r', 'model_version': '1', 'variant': 'control', 'predictions': [{'prediction': 2.5}]}
            return SimpleNamespace(status_code=200, json=lambda: body)

    rows = pd.DataFrame({'a': [1, 2, 3], 'y': [2.5, 2.8, 9.0]})
    got = send_window(Client(), rows, ['a'], 'y', Within(0.5), 's')
    assert (got['labelled'], got['right']) == (3, 2), got
    got = send_window(Client(), rows, ['a'], 'y', Within(None), 's')  # (no tolerance declared: nothing judged)
    assert (got['labelled'], got['right']) == (0, 0), got


def test_a_number_naming_two_declared_labels_is_the_one_written_so_or_refused():
    """Declared labels that are one number written two ways ('1' and '1.0', '01' and ' 1'): the outcome 1.0 was kept as
    whichever came first, '1' and not the label '1.0' it is written as, and training reads those two as two classes
    (`positive_class: 1` names '1' only), so the positive outcome went into the log as the other label."""
    labels = ['1', '1.0', '2']
    assert check_outcome(1.0, labels, 1, 'str') == '1.0' and check_outcome(1, labels, 1, 'str') == '1'
    assert check_outcome(2, ['1', '1.0', '2'], 1, 'str') == '2' and check_outcome(1, ['01', '02'], '01', 'str') == '01'
    with pytest.raises(InputError) as e:
        check_outcome(1, ['01', ' 1'], '01', 'str')
    assert "field 'outcome'" in str(e.value) and 'more than one label' in str(e.value), e.value
    with pytest.raises(InputError, match='a number that is not a label'):
        check_outcome(3, ['01', ' 1'], '01', 'str')


SERIES = {  # (the target's dtype and declared labels, its values as training reads them)
    ('bool', None): [True, False],
    ('int', None): [0, 1, 2, -1],
    ('float', None): [0.0, 1.0, 1.5, -1.0],
    ('str', ('0', '1')): ['0', '1'],
    ('str', ('1', '2')): ['1', '2'],
    ('str', ('yes', 'no')): ['yes', 'no'],
    ('str', ('Yes', 'No')): ['Yes', 'No'],
    ('str', ('True', 'False')): ['True', 'False'],
    ('str', ('1.0', '2.5', 'a')): ['1.0', '2.5', 'a'],
}
CLASSES = [True, False, 0, 1, 2, -1, 0.0, 1.0, 1.5, 2.5, '0', '1', '2', '1.0', '2.5', 'yes', 'no', 'Yes', 'True', 'a']


@pytest.mark.parametrize('kind', list(SERIES), ids=str)
def test_is_positive_reads_every_value_and_every_kept_outcome_as_positive_mask_reads_the_target(kind):
    """Property over every positive class the params accept for a target (`params._no_positive`): `_is_positive` of one
    value, and of the outcome `/feedback` keeps for it (`check_outcome`), is what `positive_mask` says of that value in
    the target's column, so the monitor, the shadow, the guard and the A/B report count as training labels."""
    from lifecycle.core.params import ColumnRule, _no_positive
    from lifecycle.model.train import _is_positive

    (dtype, labels), values = kind, SERIES[kind]
    rule = ColumnRule(dtype=dtype, personal=False, allowed=list(labels) if labels else None)
    column = pd.Series(values, dtype=object if dtype == 'str' else None)
    tried = 0
    for positive in CLASSES:
        if _no_positive(positive, rule):
            continue
        tried += 1
        for v, want in zip(values, positive_mask(column, positive).tolist()):
            kept = check_outcome(v, rule.allowed, positive, dtype)
            assert (_is_positive(v, positive), _is_positive(kept, positive)) == (want, want), (positive, v, kept)
    assert tried >= 3


@pytest.mark.parametrize(
    'first, again, records',
    [(1, 1.0, 1), (1, True, 1), (1.0, [1], 1), ('Yes', ['Yes', 'Yes'], 2), (['No', 'No'], 'No', 2)],
)
def test_feedback_sent_again_with_its_outcome_written_another_way_is_the_same_outcome(tmp_path, first, again, records):
    """The 409 for feedback sent again compared the outcomes' JSON text: 1 then 1.0 or true, or 'Yes' then
    ['Yes', 'Yes'] for a request of two records, was 'another outcome, which stands' (a client told its outcome was
    dropped retried or alerted for nothing); they are compared as every reader of feedback takes them, per record."""
    from lifecycle.serve.predlog import FeedbackError, PredictionLog, add_feedback

    log = PredictionLog(f'sqlite:///{tmp_path}/p.db')
    row = dict(ts=1.0, route='predict', variant='control', model_version='1', model='m', status=200)
    try:
        log.log(request_id='r', inputs={'a': [1.0] * records}, **row).wait()
        add_feedback(log, 'r', check_outcome(first, None, None, None))
        with pytest.raises(FeedbackError, match='with this same outcome: nothing changed'):
            add_feedback(log, 'r', check_outcome(again, None, None, None))
        with pytest.raises(FeedbackError, match='with another outcome, which stands'):
            add_feedback(log, 'r', check_outcome(0 if 1 in [first] else 'Maybe', None, None, None))
    finally:
        log.close()
