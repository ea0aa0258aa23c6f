"""Governance: the release policy is evaluated over a registered version's facts and blocks approval when any rule
fails; each promotion step needs sign-off by the role the policy names, never by whoever trained the version, and in
path order; a promotion moves an alias to a fixed version only after that sign-off; and every approval, refusal and
promotion is in the audit log with the sha256 of the evidence the reviewer read."""

from __future__ import annotations
import hashlib
import warnings
from pathlib import Path
from types import SimpleNamespace
import pytest
import yaml
from lifecycle import audit, governance
from lifecycle.governance import (
    ApprovalRefused,
    GovernanceError,
    PolicyFailed,
    PromotionRefused,
    REQUIRED_EVIDENCE,
    approvals,
    approve,
    enforce_policy,
    evaluate_policy,
    gather_facts,
    governance_report_markdown,
    load_policy,
    load_roles,
    promote,
)
from lifecycle.params import Gate, ParamsError
from lifecycle.release.governance import ApprovalMisnamed, PromotionMisnamed
from lifecycle.registry import alias_version
from lifecycle.settings import load_settings
from lifecycle.signing import ensure_keypair, sign_model_version
from lifecycle.store import Store, StoreError, hash_obj
from lifecycle.tracking import configure_mlflow, ensure_experiment

ROOT = Path(__file__).resolve().parents[1]
# params/policy.yaml once the params loader knows it; until then the example beside the notebook
POLICY_FILE = next(
    p for p in (ROOT / 'params' / 'policy.yaml', ROOT / 'nbs' / 'api' / 'policy.example.yaml') if p.is_file()
)
NAME = 'toy'
SETTINGS = """[workspace]
state_dir = .lifecycle

[roles]
data_scientist = alice, bob
# alice trained the model and also holds the approving role: only separation of duties stops her
ml_engineer = carol, alice, erin
compliance_officer = dave
"""
CARD = yaml.safe_load((ROOT / 'params' / 'card.yaml').read_text())
GROUPS = [
    dict(attribute=a, group=g, rows=50, selection_rate=0.8)
    for a, gs in (('colour', ('Black', 'White')), ('sex', ('Female', 'Male')))
    for g in gs
]
LINEAGE = dict(
    dataset_version='arrests-0123456789abcdef',
    feature_set_version='fs-fedcba9876543210',
    dataset_source='sklego:arrests@scikit-lego==0.9.5',
    pipeline_run_id='run-1',
)


@pytest.fixture(scope='module')
def reg(tmp_path_factory):
    """A tiny model logged to a throw-away SQLite tracking store with holdout metrics and lineage tags, trained by
    alice, registered twice: version 1 signed, version 2 not."""
    import mlflow as _mlflow
    import pandas as pd
    from sklearn.linear_model import LogisticRegression

    before = _mlflow.get_tracking_uri()
    d = tmp_path_factory.mktemp('governance')
    ml = configure_mlflow(f'sqlite:///{d}/mlflow.db', d)
    X = pd.DataFrame({'a': [0.0, 1.0, 2.0, 3.0]})
    y = [0, 0, 1, 1]
    with warnings.catch_warnings(), ml.start_run(experiment_id=ensure_experiment(ml, 'toy', d)):
        warnings.simplefilter('ignore')
        uri = ml.sklearn.log_model(
            LogisticRegression().fit(X, y), name='model', pip_requirements=['scikit-learn']
        ).model_uri
        ml.log_metrics({'holdout_roc_auc': 0.74, 'holdout_accuracy': 0.78, 'train_roc_auc': 0.9})
        ml.set_tags({'trained_by': 'alice', **LINEAGE})
    for _ in range(2):
        ml.register_model(uri, NAME)
    keys, store = d / 'keys', Store(d / 'store')
    ensure_keypair(keys)
    signed = sign_model_version(ml, store, NAME, 1, keys)
    yield dict(ml=ml, keys=keys, signed=signed)
    _mlflow.set_tracking_uri(before)
    _mlflow.set_registry_uri(before)


@pytest.fixture
def ws(reg, tmp_path):
    "A fresh workspace (settings with roles, store holding version 1's signature, audit log) and evidence files."
    (tmp_path / 'settings.ini').write_text(SETTINGS)
    s = load_settings(tmp_path)
    store = Store(s.store_dir)
    store.put_record('signatures', f'{NAME}-1', reg['signed'])
    evidence = {k: tmp_path / f'{k}.html' for k in REQUIRED_EVIDENCE}
    for k, p in evidence.items():
        p.write_text(f'<h1>{k}</h1> as the reviewer read it')
    return dict(
        s=s,
        store=store,
        roles=load_roles(tmp_path / 'settings.ini'),
        policy=load_policy(POLICY_FILE),
        evidence=evidence,
        ml=reg['ml'],
    )


def facts(ws, version=1, **kw) -> dict:
    return gather_facts(
        ws['ml'],
        ws['store'],
        NAME,
        version,
        **{**dict(card=CARD, groups=GROUPS, protected_attributes=['colour', 'sex']), **kw},
    )


def do_approve(ws, user, step, version=1, **kw):
    f = kw.pop('facts', None) or facts(ws, version)
    return approve(
        ws['s'],
        ws['store'],
        ws['roles'],
        ws['policy'],
        NAME,
        version,
        user,
        kw.pop('reason', 'read the evidence'),
        step,
        f['trained_by'],
        kw.pop('evidence', ws['evidence']),
        facts=f,
        experiment_report_sha256=kw.pop('ab', 'ab' * 32 if step == 'production' else None),  # the A/B report read
    )


def sha(p: Path) -> str:
    return hashlib.sha256(p.read_bytes()).hexdigest()


def last(ws) -> dict:
    return audit.read(ws['s'].audit_path)[-1]


# --- the policy file and roles ---


def test_the_default_policy_is_valid_and_fits_the_workspace():
    p = load_policy(POLICY_FILE)
    assert p.environments == ['dev', 'staging', 'production']
    assert {k: v.approver_role for k, v in p.promotion.items()} == {
        'staging': 'ml_engineer',
        'production': 'compliance_officer',
    }
    assert p.require_bias_evaluation and p.require_signature
    columns = yaml.safe_load((ROOT / 'params' / 'ingest.yaml').read_text())['columns']
    assert set(p.protected_attributes) <= set(columns)
    assert set(p.required_card_fields) <= set(CARD)  # the card fields the card stage writes
    from lifecycle.validate import classification_metrics  # thresholds name metrics validation logs
    import numpy as np

    assert set(p.thresholds) <= set(classification_metrics(np.array([0, 1, 1, 0]), np.array([0.1, 0.9, 0.6, 0.4])))


@pytest.mark.parametrize(
    'change, expect',
    [
        (dict(approvers='carol'), "key 'approvers': unknown key"),
        (dict(promotion={'staging': {'approver_role': 'ml_engineer'}}), "['production'] have no approver_role"),
        (
            dict(
                promotion={
                    'staging': {'approver_role': 'ml_engineer'},
                    'production': {'approver_role': 'compliance_officer'},
                    'prod': {'approver_role': 'x'},
                }
            ),
            "['prod'] are not among the environments",
        ),
        (
            dict(
                environments=['dev', 'staging', 'latest'],
                promotion={'staging': {'approver_role': 'a'}, 'latest': {'approver_role': 'b'}},
            ),
            "'latest'",
        ),
        (dict(environments=['dev', 'staging', 'staging']), 'each name once'),
        (dict(thresholds={'roc_auc': {}}), 'thresholds.roc_auc: set min, max or both'),
        # review DD: a NaN bound passed every version ('>= nan': pass); an infinite one no version, or none at all
        (dict(thresholds={'roc_auc': {'min': float('nan')}}), "key 'thresholds.roc_auc.min': Input should be a finite"),
        (dict(thresholds={'roc_auc': {'max': float('inf')}}), "key 'thresholds.roc_auc.max': Input should be a finite"),
        (
            dict(
                promotion={
                    'staging': {'approver_role': 'ML Engineer'},
                    'production': {'approver_role': 'compliance_officer'},
                }
            ),
            "key 'promotion.staging.approver_role'",
        ),
        (dict(require_signature='sometimes'), "key 'require_signature'"),
    ],
)
def test_a_wrong_policy_is_refused_naming_the_key(tmp_path, change, expect):
    doc = {**yaml.safe_load(POLICY_FILE.read_text()), **change}
    (tmp_path / 'policy.yaml').write_text(yaml.safe_dump(doc))
    with pytest.raises(ParamsError) as e:
        load_policy(tmp_path / 'policy.yaml')
    assert expect in str(e.value) and 'policy.yaml' in str(e.value)


def test_roles_come_from_the_settings_file(tmp_path):
    (tmp_path / 'settings.ini').write_text(SETTINGS)
    assert load_roles(tmp_path / 'settings.ini') == {
        'data_scientist': {'alice', 'bob'},
        'ml_engineer': {'carol', 'alice', 'erin'},
        'compliance_officer': {'dave'},
    }
    (tmp_path / 'settings.ini').write_text('[workspace]\n')
    assert load_roles(tmp_path) == {}


# --- facts and the policy rules ---


def test_facts_come_from_the_registry_and_the_store(ws, reg):
    ws['store'].put_record(
        'datasets', LINEAGE['dataset_version'], {'source': 'sha256:' + 'e' * 64, 'parent': 'arrests-prev'}
    )
    f = facts(ws, key_dir=reg['keys'])  # key_dir: the files verify too, not only the record
    assert f['metrics'] == {'roc_auc': 0.74, 'accuracy': 0.78} and f['trained_by'] == 'alice'
    assert f['signed'] and f['signature']['manifest_sha256'] == reg['signed']['manifest']['manifest_hash']
    lin = f['lineage']
    assert (
        lin['source_fingerprint'] == 'sha256:' + 'e' * 64 and lin['dataset_parent'] == 'arrests-prev'
    )  # from the snapshot record
    assert (lin['dataset_version'], lin['feature_set_version'], lin['model_version']) == (
        LINEAGE['dataset_version'],
        LINEAGE['feature_set_version'],
        f'models:/{NAME}/1',
    )
    assert lin['mlflow_run_id'] == f['run_id'] and len(f['run_id']) == 32
    assert not facts(ws, 2)['signed'] and facts(ws, 2)['signature'] is None
    with pytest.raises(GovernanceError, match='fixed version number'):
        facts(ws, 'latest')
    with pytest.raises(GovernanceError, match='no version 9'):
        facts(ws, 9)


def test_complete_facts_pass_every_rule(ws):
    res = evaluate_policy(ws['policy'], facts(ws))
    assert list(res.rule) == [
        *(f'card.{c}' for c in ws['policy'].required_card_fields),
        'metric.roc_auc',
        'metric.accuracy',
        'bias_evaluation.colour',
        'bias_evaluation.sex',
        'signature',
    ]
    assert set(res.verdict) == {'pass'}, res
    enforce_policy(res)


def _without(d: dict, key: str) -> dict:
    return {k: v for k, v in d.items() if k != key}


@pytest.mark.parametrize(
    'change, failed, words',
    [
        (
            lambda f: f.update(card=_without(CARD, 'limitations')),
            ['card.limitations'],
            "'limitations' is missing or empty",
        ),
        (lambda f: f.update(card={**CARD, 'intended_use': '  '}), ['card.intended_use'], 'missing or empty'),
        (lambda f: f.update(card={**CARD, 'owners': []}), ['card.owners'], 'missing or empty'),
        (
            lambda f: f.update(metrics={**f['metrics'], 'roc_auc': 0.55}),
            ['metric.roc_auc'],
            'roc_auc 0.55 is below the minimum 0.6',
        ),
        (
            lambda f: f.update(metrics=_without(f['metrics'], 'accuracy')),
            ['metric.accuracy'],
            'was not logged (holdout_accuracy)',
        ),
        (
            lambda f: f.update(groups=[g for g in GROUPS if g['attribute'] != 'sex']),
            ['bias_evaluation.sex'],
            "cover 0 group(s)",
        ),
        (
            lambda f: f.update(groups=[g for g in GROUPS if g['group'] != 'White']),
            ['bias_evaluation.colour'],
            'cover 1 group(s): Black',
        ),
        (
            lambda f: f.update(protected_attributes=['colour', 'sex', 'age'], groups=GROUPS),
            ['bias_evaluation.age'],
            "for 'age'",
        ),
        (  # groups too small to publish: counted, never evaluated (found by review: "62 groups", each unpublished)
            lambda f: f.update(groups=[{**g, 'published': False} if g['attribute'] == 'sex' else g for g in GROUPS]),
            ['bias_evaluation.sex'],
            "cover 0 group(s)",
        ),
        (lambda f: f.update(signed=False, signature=None), ['signature'], 'unsigned'),
    ],
)
def test_each_rule_fails_on_its_own(ws, change, failed, words):
    f = facts(ws)
    change(f)
    res = evaluate_policy(ws['policy'], f)
    assert list(res[res.verdict == 'fail'].rule) == failed
    with pytest.raises(PolicyFailed) as e:
        enforce_policy(res, f'{NAME}/1')
    assert words in str(e.value) and failed[0] in str(e.value) and list(e.value.failed.rule) == failed


def test_an_unsigned_version_fails_from_the_real_record_and_a_max_threshold_binds(ws):
    res = evaluate_policy(ws['policy'], facts(ws, 2))
    assert list(res[res.verdict == 'fail'].rule) == ['signature']
    strict = ws['policy'].model_copy(
        update=dict(
            thresholds={'roc_auc': Gate(min=0.5, max=0.7)}, require_signature=False, require_bias_evaluation=False
        )
    )
    res = evaluate_policy(strict, facts(ws, 2, card=None))
    assert dict(zip(res.rule, res.verdict)) == {
        **{f'card.{c}': 'fail' for c in strict.required_card_fields},
        'metric.roc_auc': 'fail',
        'bias_evaluation': 'not required',
        'signature': 'not required',
    }
    assert 'above the maximum 0.7' in res.set_index('rule').loc['metric.roc_auc', 'reason']


# --- approvals: roles, separation of duties, order, policy, evidence ---


def assert_refused(ws, e, user, step, *, reasons_with: list[str]):
    "The refusal names exactly these reasons, nothing was recorded, and the audit log says so with evidence hashes."
    assert len(e.reasons) == len(reasons_with) and all(w in r for w, r in zip(reasons_with, e.reasons)), e.reasons
    assert not ws['store'].record_path('approvals', f'{NAME}-1-{step}').exists()
    entry = last(ws)
    assert (entry['action'], entry['actor'], entry['subject'], entry['details']['step']) == (
        'approval.refused',
        user,
        f'{NAME}/1',
        step,
    )
    assert entry['details']['refused_because'] == e.reasons
    assert entry['details']['evidence'] == {k: sha(p) for k, p in ws['evidence'].items()}


def test_whoever_trained_a_version_cannot_approve_it(ws):
    with pytest.raises(ApprovalRefused) as e:
        do_approve(ws, 'alice', 'staging')  # alice holds ml_engineer
    assert_refused(ws, e.value, 'alice', 'staging', reasons_with=["separation of duties: 'alice' trained toy/1"])
    with pytest.raises(ApprovalRefused) as e:
        do_approve(ws, 'ALICE', 'staging')  # not by another spelling either
    assert 'separation of duties' in str(e.value)


def test_only_the_approving_role_can_approve(ws):
    for user, step in (('bob', 'staging'), ('dave', 'staging'), ('mallory', 'staging')):
        with pytest.raises(ApprovalRefused) as e:
            do_approve(ws, user, step)
        assert_refused(ws, e.value, user, step, reasons_with=[f"{user!r} does not hold the role 'ml_engineer'"])
    ws['roles'] = {**ws['roles'], 'ml_engineer': set()}
    with pytest.raises(ApprovalRefused) as e:
        do_approve(ws, 'carol', 'staging')
    assert_refused(
        ws,
        e.value,
        'carol',
        'staging',
        reasons_with=[
            "role 'ml_engineer' has no one in the trust registry: an administrator registers its people with "
            "`lifecycle trust add <user> --role ml_engineer"
        ],
    )


def test_production_cannot_be_approved_before_staging(ws):
    with pytest.raises(ApprovalRefused) as e:
        do_approve(ws, 'dave', 'production')
    assert_refused(ws, e.value, 'dave', 'production', reasons_with=['staging has not been approved for toy/1 yet'])
    with pytest.raises(ApprovalRefused) as e:
        do_approve(ws, 'carol', 'dev')
    assert "'dev' is not a promotion step" in str(e.value)
    with pytest.raises(ApprovalRefused) as e:
        do_approve(ws, 'carol', 'staging', version='latest', facts=facts(ws))
    assert (
        "never 'latest'" in str(e.value)
        and last(ws)['subject'] == 'toy/latest'
        and last(ws)['action'] == 'approval.refused'
    )


def test_a_failing_policy_blocks_approval(ws):
    f = facts(ws)
    f['metrics'] = {**f['metrics'], 'accuracy': 0.5}
    with pytest.raises(ApprovalRefused) as e:
        do_approve(ws, 'carol', 'staging', facts=f)
    assert_refused(
        ws,
        e.value,
        'carol',
        'staging',
        reasons_with=['policy failed: metric.accuracy: accuracy 0.5 is below the minimum 0.7'],
    )
    assert last(ws)['details']['failed_rules'] == ['metric.accuracy']
    with pytest.raises(ApprovalRefused) as e:
        do_approve(ws, 'carol', 'staging', version=2)  # unsigned, from its real facts
    assert e.value.reasons == [
        'policy failed: signature: the model version is unsigned: there is no signature record for it'
    ]


def test_evidence_and_a_reason_are_required(ws):
    with pytest.raises(ApprovalRefused) as e:
        do_approve(ws, 'carol', 'staging', evidence=_without(ws['evidence'], 'governance_report'), reason=' ')
    assert e.value.reasons == [
        'a reason is required',
        "evidence missing: ['governance_report']; expected files for "
        "['validation_report', 'model_card', 'governance_report']",
    ]
    gone = {**ws['evidence'], 'model_card': ws['evidence']['model_card'].with_name('nowhere.html')}
    with pytest.raises(ApprovalRefused) as e:
        do_approve(ws, 'carol', 'staging', evidence=gone)
    assert "evidence 'model_card': cannot read" in str(e.value) and 'nowhere.html' in str(e.value)
    assert [x['action'] for x in audit.read(ws['s'].audit_path)] == ['approval.refused'] * 2


# --- the full path ---


def test_a_step_or_version_that_does_not_exist_is_refused_as_misnamed_and_a_refusal_on_the_merits_is_not(ws):
    "The CLI exits 2 for the misnamed (refused before anything ran) and 1 on the merits; both are audited."
    ml, s, store, pol = ws['ml'], ws['s'], ws['store'], ws['policy']
    with pytest.raises(ApprovalMisnamed, match="'stagin' is not a promotion step .*; did you mean 'staging'"):
        do_approve(ws, 'carol', 'stagin')
    assert last(ws)['action'] == 'approval.refused'
    with pytest.raises(ApprovalMisnamed, match="'dev' is not a promotion step") as e:
        do_approve(ws, 'carol', 'dev')  # an environment, but one that takes no sign-off: nothing to suggest
    assert 'did you mean' not in str(e.value)
    with pytest.raises(ApprovalRefused) as e:
        do_approve(ws, 'bob', 'staging')
    assert type(e.value) is ApprovalRefused
    for version, step, words in (
        (1, 'stagin', "not an environment of the policy .*; did you mean 'staging'"),
        (7, 'staging', "model 'toy' has no version 7 in the registry \\(its versions: 1"),
        ('latest', 'staging', "never 'latest'"),
    ):
        with pytest.raises(PromotionMisnamed, match=words):
            promote(ml, s, store, NAME, version, step, 'carol', policy=pol)
        assert last(ws)['action'] == 'promotion.refused'
    # review DD: a name the registry cannot hold ('/' in it) was "no version 1 the registry could return now", exit 1
    with pytest.raises(PromotionMisnamed, match=r"model '\[/x\]' is not in the registry \(did you mean|holds 'toy'"):
        promote(ml, s, store, '[/x]', 1, 'staging', 'carol', policy=pol)
    with pytest.raises(PromotionRefused, match='no approval of toy/1 for staging') as e:
        promote(ml, s, store, NAME, 1, 'staging', 'carol', policy=pol)
    assert type(e.value) is PromotionRefused


def test_a_damaged_approval_record_is_named_by_promote_not_taken_for_no_approval(ws):
    """An approval record that cannot be read was no approval to `promote`: "run `lifecycle approve` first", which
    then refused, naming the record as damaged. Promotion names it too (StoreError: exit 4), audits the refusal and
    moves nothing; so does an approval of the next step, where the step before read as never approved (review GP)."""
    ml, s, store, pol = ws['ml'], ws['s'], ws['store'], ws['policy']
    client = ml.MlflowClient()
    before = alias_version(client, NAME, 'staging')
    do_approve(ws, 'carol', 'staging')
    path = store.record_path('approvals', f'{NAME}-1-staging')
    path.write_text('{"approver": "carol", ')  # damaged (a torn copy, an edit)
    with pytest.raises(StoreError, match='not valid JSON') as e:
        promote(ml, s, store, NAME, 1, 'staging', 'carol', policy=pol)
    assert str(path) in str(e.value) and 'run `lifecycle approve` first' not in str(e.value)
    assert alias_version(client, NAME, 'staging') == before and last(ws)['action'] == 'promotion.refused'
    with pytest.raises(StoreError, match='not valid JSON'):
        do_approve(ws, 'dave', 'production')


def test_staging_then_production_with_promotion_to_fixed_versions(ws, tmp_path):
    ml, s, store, pol = ws['ml'], ws['s'], ws['store'], ws['policy']
    client = ml.MlflowClient()
    before = {e: alias_version(client, NAME, e) for e in ('staging', 'production')}
    with pytest.raises(PromotionRefused, match='no approval of toy/1 for staging'):
        promote(ml, s, store, NAME, 1, 'staging', 'carol', policy=pol)
    assert {e: alias_version(client, NAME, e) for e in ('staging', 'production')} == before and last(ws)[
        'action'
    ] == 'promotion.refused'

    f = facts(ws)
    report = ws['evidence']['governance_report']
    report.write_text(governance_report_markdown(f, evaluate_policy(pol, f), approvals(store, NAME, 1, pol), pol))
    staged = do_approve(ws, 'carol', 'staging', reason='metrics, groups and card read')
    assert staged['evidence']['governance_report']['sha256'] == sha(report) and staged['trained_by'] == 'alice'
    assert store.get_record('approvals', f'{NAME}-1-staging') == staged
    out = promote(ml, s, store, NAME, 1, 'staging', 'carol', policy=pol)
    assert alias_version(client, NAME, 'staging') == '1' and out['previous_version'] == before['staging']
    with pytest.raises(PromotionRefused, match='no approval of toy/1 for production'):
        promote(ml, s, store, NAME, 1, 'production', 'carol', policy=pol)

    report.write_text(governance_report_markdown(f, evaluate_policy(pol, f), approvals(store, NAME, 1, pol), pol))
    produced = do_approve(ws, 'dave', 'production', reason='bias evaluation read; release approved')
    assert produced['previous_approval_sha256'] == hash_obj(staged) and produced['role'] == 'compliance_officer'
    promote(ml, s, store, NAME, 1, 'production', 'dave', policy=pol)
    assert alias_version(client, NAME, 'production') == '1' and alias_version(client, NAME, 'staging') == '1'
    with pytest.raises(PromotionRefused, match="never 'latest'"):
        promote(ml, s, store, NAME, 'latest', 'production', 'dave')
    assert [a['step'] for a in approvals(store, NAME, 1, pol)] == ['staging', 'production']

    log = audit.read(s.audit_path)
    assert [e['action'] for e in log] == [
        'promotion.refused',
        'approval.granted',
        'model.promote',
        'promotion.refused',
        'approval.granted',
        'model.promote',
        'promotion.refused',
    ]
    granted = [e for e in log if e['action'] == 'approval.granted']
    assert [(e['actor'], e['details']['step'], e['details']['role']) for e in granted] == [
        ('carol', 'staging', 'ml_engineer'),
        ('dave', 'production', 'compliance_officer'),
    ]
    assert granted[1]['details']['evidence'] == {k: sha(p) for k, p in ws['evidence'].items()}  # what dave read
    assert (
        granted[0]['details']['evidence']['governance_report'] != granted[1]['details']['evidence']['governance_report']
    )
    assert granted[0]['details']['record_sha256'] == hash_obj(staged)
    promoted = [e for e in log if e['action'] == 'model.promote']
    assert [(e['subject'], e['details']['alias'], e['details']['approver']) for e in promoted] == [
        ('toy/1', 'staging', 'carol'),
        ('toy/1', 'production', 'dave'),
    ]
    assert promoted[1]['details']['evidence'] == {k: e['sha256'] for k, e in produced['evidence'].items()}
    assert audit.verify(s.audit_path).ok

    text = governance_report_markdown(f, evaluate_policy(pol, f), approvals(store, NAME, 1, pol), pol)
    assert 'Policy verdict: **pass**' in text and 'Trained by `alice`' in text
    # (these records were written without a signer: shown so, their steps pending; signed ones read plain: test_trust)
    assert '| staging | carol (unsigned) | ml_engineer |' in text and '- production: awaits approval' in text
    assert (
        f"raw batch `{LINEAGE['dataset_source']}` → dataset `{LINEAGE['dataset_version']}` → feature set "
        f"`{LINEAGE['feature_set_version']}` → MLflow run `{f['run_id']}` → model `models:/{NAME}/1`"
    ) in text


def test_an_approval_record_cannot_be_overwritten(ws, monkeypatch):
    first = do_approve(ws, 'carol', 'staging', reason='first sign-off')
    path = ws['store'].record_path('approvals', f'{NAME}-1-staging')
    text = path.read_text()
    with pytest.raises(ApprovalRefused) as e:
        do_approve(ws, 'erin', 'staging', reason='second sign-off')
    assert e.value.reasons == [
        f"staging was already approved for toy/1 by carol at {first['time']}; approvals are immutable"
    ]
    with pytest.raises(StoreError, match='immutable'):
        ws['store'].put_record('approvals', f'{NAME}-1-staging', {**first, 'approver': 'erin'})
    # two approvers racing: both pass the checks, only the first record is created, the second is refused and audited
    f = facts(ws)
    monkeypatch.setattr(governance, '_record', lambda *a: None)
    with pytest.raises(ApprovalRefused, match='by someone else meanwhile'):
        do_approve(ws, 'erin', 'staging', reason='raced', facts=f)
    assert path.read_text() == text and ws['store'].get_record('approvals', f'{NAME}-1-staging')['approver'] == 'carol'
    assert [x['action'] for x in audit.read(ws['s'].audit_path)] == [
        'approval.granted',
        'approval.refused',
        'approval.refused',
    ]
    assert not list(path.parent.glob('.*.tmp'))


def test_an_approval_recorded_by_a_killed_command_is_audited_before_it_is_used(ws, monkeypatch):
    """Review U: `approve` killed between creating its record and auditing it left an approval no audit entry
    names, which `promote` then used, and `approve` could never record again (approvals are immutable). The
    promotion that uses it audits it first (after verifying it: review W), saying so; once."""
    real = audit.append

    def killed(path, action, *a, **k):
        if action == 'approval.granted':
            raise KeyboardInterrupt  # (the command killed after its record was created)
        return real(path, action, *a, **k)

    monkeypatch.setattr(audit, 'append', killed)
    with pytest.raises(KeyboardInterrupt):
        do_approve(ws, 'carol', 'staging')
    monkeypatch.setattr(audit, 'append', real)
    assert [e['action'] for e in audit.read(ws['s'].audit_path)] == []
    with pytest.raises(ApprovalRefused, match='already approved'):  # (an unverified record is not audited: W)
        do_approve(ws, 'carol', 'staging')
    assert [e['action'] for e in audit.read(ws['s'].audit_path)].count('approval.granted') == 0
    promote(ws['ml'], ws['s'], ws['store'], NAME, 1, 'staging', 'erin', policy=ws['policy'])
    granted = [e for e in audit.read(ws['s'].audit_path) if e['action'] == 'approval.granted']
    assert len(granted) == 1 and (granted[0]['actor'], granted[0]['details']['approver']) == ('erin', 'carol')
    assert 'killed' in granted[0]['details']['audited_late']
    promote(ws['ml'], ws['s'], ws['store'], NAME, 1, 'staging', 'erin', policy=ws['policy'])
    assert [e['action'] for e in audit.read(ws['s'].audit_path)].count('approval.granted') == 1


def test_model_files_that_cannot_be_fetched_are_one_line_naming_the_error_not_a_traceback(ws, reg, monkeypatch):
    """Review U: a full disk while `approve` or `govern check` fetched the version's files to verify them printed
    MLflow's traceback, and `--json` printed nothing."""
    from mlflow.exceptions import MlflowException
    from lifecycle.model import signing
    from lifecycle.release.governance import GovernanceError

    def full(*a, **k):
        try:
            raise OSError(27, 'File too large')
        except OSError as e:
            raise MlflowException('Failed to download artifacts: ' + 'x' * 2000) from e

    monkeypatch.setattr(signing, 'verified_path', full)
    with pytest.raises(GovernanceError, match=r"toy v1: its model files could not be fetched .*\(OSError: \[Errno 27\] "
                       r"File too large\)$"):  # fmt: skip
        facts(ws, key_dir=reg['keys'])


def test_a_damaged_trust_pin_in_settings_is_said_as_that_not_as_model_files_not_fetched(ws, reg, monkeypatch):
    """Found by review DD: with settings.ini's [trust] administrator pin damaged, `approve` said the model files
    'could not be fetched to check their signature (SettingsError: ...)', exit 1: the settings error (exit 2) now."""
    from lifecycle.core.settings import SettingsError
    from lifecycle.model import signing

    def damaged(*a, **k):
        raise SettingsError("settings.ini: [trust] administrator: key 1 is not a public key as `lifecycle keys` writes")

    monkeypatch.setattr(signing, 'verified_path', damaged)
    with pytest.raises(SettingsError, match=r"\[trust\] administrator: key 1 is not a public key"):
        facts(ws, key_dir=reg['keys'])


def test_the_report_shows_failures_and_pending_steps(ws):
    f = facts(ws, 2, groups=GROUPS[:1])
    text = governance_report_markdown(f, evaluate_policy(ws['policy'], f), [], ws['policy'])
    assert '**fail**: 3 of 10 rules failed (bias_evaluation.colour, bias_evaluation.sex, signature)' in text
    assert (
        '- staging: awaits approval by role `ml_engineer`' in text
        and '- production: awaits approval by role `compliance_officer`' in text
    )
    assert 'No approvals yet.' in text and '# Governance report: toy version 2' in text


def test_a_policy_check_prints_rule_names_and_the_model_as_written_never_as_markup(capsys):
    """Review CZ: the table read each rule's name (built from policy.yaml's card fields and protected columns) and its
    title the model's name as Rich markup: a card field `[/x]` ended `govern check` in a traceback, and a model named
    `credit[bold]v2` was shown as `creditv2`."""
    from lifecycle.release.commands import PolicyCheck

    rows = [
        dict(rule='card.[/x]', value='missing', limit='present', verdict='fail', reason='no such field [/x]'),
        dict(rule='bias_evaluation.sex[/]', value='0.1', limit='<= 0.2', verdict='pass'),
        dict(rule='card.owner\\', value='x', limit='present', verdict='pass'),
    ]
    PolicyCheck(ok=False, model='credit[bold]v2', version='1', report='r.html', results=rows).show()
    out = capsys.readouterr()
    assert 'policy check: credit[bold]v2 v1' in out.out and 'card.[/x]' in out.out and 'sex[/]' in out.out, out.out
    assert 'card.owner\\ ' in out.out and 'owner\\\\' not in out.out  # (one backslash: review CZ)
    assert 'card.[/x] (no such field [/x])' in out.err, out.err


def _params_ws(root: Path, folder: str, lax: bool = False):
    "A workspace-like object whose params folder is `root/folder`, a copy of params/ (its policy loosened when `lax`)."
    import shutil
    from types import SimpleNamespace
    from lifecycle.core.params import PolicyParams, load_file

    d = root / folder
    shutil.copytree(Path(__file__).parents[1] / 'params', d)
    if lax:
        pol = d / 'policy.yaml'
        pol.write_text(pol.read_text().replace('ab_evidence: true', 'ab_evidence: false'))
    return SimpleNamespace(root=root, params_dir=d, params={'policy': load_file(d / 'policy.yaml', PolicyParams)})


def test_only_the_registering_folder_or_its_moved_copy_or_its_policy_judges_a_version(tmp_path):
    """Review HJ: the 'same path inside the workspace' rule matched the end of the recorded path only, so a laxer copy
    of params/ at `proj/proj/params` (its end reads as the registering `/…/proj/params`, which is still there) judged
    the version; and a params folder named with an e-mail address, recorded withheld by the run, judged nothing."""
    from lifecycle.release.review import _same_folder

    root = tmp_path / 'proj'
    root.mkdir()
    own = _params_ws(root, 'params')
    assert _same_folder(own, root / 'params')
    assert _same_folder(own, tmp_path / 'moved-from' / 'proj' / 'params')  # (the workspace moved: the old path gone)
    assert not _same_folder(_params_ws(root, 'proj/params', lax=True), root / 'params')
    from lifecycle.core.names import shown_path

    mailed = _params_ws(root, 'bob@corp.example')
    assert _same_folder(mailed, Path(shown_path(mailed.params_dir, 'folder')))


def test_a_refusal_for_another_params_folder_withholds_a_folder_name_holding_personal_data(tmp_path, monkeypatch):
    "Review HJ: the refusal named the params folder at hand as it is, a folder named `bob@corp.example` with it."
    from lifecycle.release import exposure, review

    ws = _params_ws(tmp_path, 'bob@corp.example', lax=True)
    ws.params['register'] = SimpleNamespace(model_name='m')
    monkeypatch.setattr(review, '_registered_with', lambda *a: tmp_path / 'params')
    with pytest.raises(review.ContextError) as e:
        review._own_params(ws, 'm', '1')
    assert 'bob@corp.example' not in str(e.value) and 'registered by a run with the params folder' in str(e.value)
    said = exposure._policy_elsewhere(ws, 'm', '1')
    assert said and 'bob@corp.example' not in said
