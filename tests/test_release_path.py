"""One release path: a model that fails a validation gate is refused registration from every entry point (the
library's register stage, the simulation behind `lifecycle rollout demo` and the tutorial, and `lifecycle run`), the
refusal names the gate, and the registry holds no new version."""

from __future__ import annotations
import json
import re
import shutil
from dataclasses import replace
from pathlib import Path
import pytest
import yaml
from conftest import cli

NAME = 'arrests-release'


@pytest.fixture
def ws(trained) -> Path:
    "This test's copy of the session's trained workspace: version 1 is registered and champion."
    return trained


def impossible(ws: Path, where: Path) -> Path:
    "A copy of the workspace's params whose accuracy gate no model can meet."
    dst = where / 'params-impossible'
    shutil.copytree(ws / 'params', dst)
    d = yaml.safe_load((dst / 'validate.yaml').read_text())
    d['gates']['accuracy'] = {'min': 0.999}
    (dst / 'validate.yaml').write_text(yaml.safe_dump(d, sort_keys=False))
    return dst


def versions(ws: Path) -> list[int]:
    from lifecycle.core.workspace import Workspace
    from lifecycle.model.registry import describe_models

    return next(m['versions'] for m in describe_models(Workspace.open(ws)) if m['name'] == NAME)


def audit_actions(ws: Path) -> list[str]:
    from lifecycle.core.audit import read

    return [e['action'] for e in read(ws / '.lifecycle/audit.log')]


def test_the_register_stage_refuses_a_model_that_failed_a_gate(ws, tmp_path):
    from lifecycle.core.workspace import Workspace
    from lifecycle.model import stages
    from lifecycle.model.registry import NotValidated, register_version

    w = Workspace.open(ws, params_dir=impossible(ws, tmp_path))
    tp, fp, vp, rp = (
        w.params['train'].model_copy(update={'sweep': None}),
        w.params['features'],
        w.params['validate'],
        w.params['register'],
    )
    before, registered = versions(ws), audit_actions(ws).count('model.register')
    lineage = w.client.get_run(w.client.get_model_version(NAME, '1').run_id).data.tags
    t = stages.train(w, tp, fp, lineage['dataset_version'], lineage['feature_set_version'])
    fs = w.store.get_record('features', lineage['feature_set_version'])
    assert list(w.store.get_frame(t.known_inputs).columns) == fs['inputs']  # (evidence: no column it does not read)
    v = stages.validate(w, vp, fp, rp, t.mlflow_run_id, t.model_uri, t.holdout_id)
    assert not v.passed and 'accuracy' in set(v.failed.gate)
    for given in (v, v.validation_id, replace(v, passed=True)):  # the result, its id, or a result claiming a pass
        with pytest.raises(NotValidated, match=r'accuracy = 0\.\d{4}, needs >= 0\.999'):
            stages.register(w, rp, fp, given, known_inputs=t.known_inputs, known_outputs=t.known_outputs)
    with pytest.raises(NotValidated, match=r'accuracy = 0\.\d{4}, needs >= 0\.999'):  # nor by the registry's own door
        register_version(w, v.validation_id, NAME, alias='dev', tags={}, reason='bypass')
    with pytest.raises(NotValidated, match='the model was not validated'):
        stages.register(w, rp, fp, 'val-0123456789abcdef')
    with pytest.raises(NotValidated, match='validate it first'):
        stages.register(w, rp, fp, None)
    p = w.store.record_path('validations', v.validation_id)  # a failing record edited into a pass
    p.write_text(
        p.read_text().replace('"verdict": "fail"', '"verdict": "pass"').replace('"passed": false', '"passed": true')
    )
    with pytest.raises(NotValidated, match='was altered after it was written'):
        stages.register(w, rp, fp, v)
    assert versions(ws) == before and audit_actions(ws).count('model.register') == registered


def test_the_validate_stage_refuses_a_holdout_model_or_run_that_are_not_one_training(ws):
    """`stages.validate` (and the stage notebook, whose upstream IDs are parameters) judged whatever it was given: the
    rows the model trained on as its "holdout", or one run's model under another run's lineage; and it recorded a
    passing validation before it found a run that does not exist."""
    from lifecycle.core.workspace import Workspace
    from lifecycle.model import stages

    w = Workspace.open(ws)
    fp, vp, rp = w.params['features'], w.params['validate'], w.params['register']
    mv = w.client.get_model_version(NAME, '1')
    run, uri = mv.run_id, mv.source
    lineage = w.client.get_run(run).data.tags
    trained_on = w.store.put_frame(w.store.get_frame(lineage['holdout_id']).head(50))  # rows that are not its holdout
    before = len(w.store.records('validations'))
    with pytest.raises(ValueError, match=rf"holdout_id: expected the holdout MLflow run {run} set aside"):
        stages.validate(w, vp, fp, rp, run, uri, trained_on)
    with pytest.raises(ValueError, match=r"mlflow_run_id: .* found '0123abcd', which is no run"):
        stages.validate(w, vp, fp, rp, '0123abcd', uri, lineage['holdout_id'])
    with pytest.raises(ValueError, match=rf"model_uri: expected the model MLflow run {run} logged, found 'models:/m-0"):
        stages.validate(w, vp, fp, rp, run, 'models:/m-0123456789', lineage['holdout_id'])
    assert len(w.store.records('validations')) == before  # nothing recorded


def test_the_model_card_refuses_upstream_ids_that_are_not_the_versions_own(ws):
    """`stages.model_card` (and the card notebook, whose upstream IDs are parameters) wrote the card of version 1 with
    the facts of whatever run, snapshot and feature set it was given: evidence of another model, for the approvers."""
    from lifecycle.core.workspace import Workspace
    from lifecycle.model import stages

    w = Workspace.open(ws)
    mv = w.client.get_model_version(NAME, '1')
    tags = w.client.get_run(mv.run_id).data.tags
    ids = dict(
        mlflow_run_id=mv.run_id,
        dataset_version=tags['dataset_version'],
        feature_set_version=tags['feature_set_version'],
    )
    for key, other in (
        ('mlflow_run_id', '0123abcd'),
        ('dataset_version', 'arrests-0123456789abcdef'),
        ('feature_set_version', 'fs-0123456789abcdef'),
    ):
        with pytest.raises(
            ValueError,
            match=rf"{key}: expected '{ids[key]}', the one {NAME} v1 was trained with .* "
            rf"found '{other}'",
        ):
            stages.model_card(
                w,
                w.params['card'],
                w.params['validate'],
                w.params['ingest'],
                model_name=NAME,
                model_version='1',
                **{**ids, key: other},
                metrics={'rows': 1},
                gates=[],
                groups=[],
                importance=[],
            )


def test_the_validate_stage_applies_the_policy_floors_when_no_policy_is_passed(ws, tmp_path):
    """`stages.validate` without `policy=` skipped policy.yaml's floors (the CLI and the notebooks pass it): given
    validate params loosened in code (`model_copy` does not validate them against policy.yaml, as loading them does), a
    model below the floors passed, and the register stage would give it the dev alias."""
    from lifecycle.core.params import Gate
    from lifecycle.core.workspace import Workspace
    from lifecycle.model import stages

    w = Workspace.open(ws, params_dir=impossible(ws, tmp_path))
    policy = w.params_dir / 'policy.yaml'
    d = yaml.safe_load(policy.read_text())
    d['thresholds']['accuracy'] = {'min': 0.999}
    policy.write_text(yaml.safe_dump(d, sort_keys=False))
    w = Workspace.open(ws, params_dir=w.params_dir)
    vp = w.params['validate']
    loose = vp.model_copy(update={'gates': {**vp.gates, 'accuracy': Gate(min=0.5)}})
    mv = w.client.get_model_version(NAME, '1')
    holdout = w.client.get_run(mv.run_id).data.tags['holdout_id']
    v = stages.validate(w, loose, w.params['features'], w.params['register'], mv.run_id, mv.source, holdout)
    assert not v.passed and 'accuracy' in set(v.failed.gate)


def test_simulate_refuses_a_candidate_that_failed_a_gate(ws, tmp_path):
    from lifecycle.core.workspace import Workspace
    from lifecycle.deliver import simulate
    from lifecycle.model.registry import NotValidated

    w = Workspace.open(ws, params_dir=impossible(ws, tmp_path))
    before = versions(ws)
    with pytest.raises(NotValidated, match=r'accuracy = 0\.\d{4}, needs >= 0\.999'):
        simulate.train_candidate(w, params={'C': 0.5, 'max_iter': 500}, reason='must not get in')
    assert versions(ws) == before


def test_lifecycle_run_stops_before_register_when_a_gate_cannot_pass(ws, tmp_path):
    before, registered = versions(ws), audit_actions(ws).count('model.register')
    r = cli(ws, 'run', '--no-site', '--json', '--params', str(impossible(ws, tmp_path)))
    out = json.loads(r.stdout)
    assert r.returncode == 1 and not out['ok'], r.stderr
    assert (
        "stage 'validate' failed" in out['error'] and 'accuracy = ' in out['error'] and 'needs >= 0.999' in out['error']
    )
    run_id = re.search(r'The run (\S+) stopped there', out['error']).group(1)
    m = json.loads((ws / 'reports/runs' / run_id / 'manifest.json').read_text())
    assert m['status'] == 'failed' and m['stages']['validate']['status'] == 'failed' and 'register' not in m['stages']
    assert versions(ws) == before and audit_actions(ws).count('model.register') == registered
    assert 'validation.fail' in audit_actions(ws)


def test_the_rollout_demo_refuses_a_candidate_that_failed_a_gate(ws, tmp_path):
    before = versions(ws)
    r = cli(ws, 'rollout', 'demo', '--json', env={'LIFECYCLE_PARAMS_DIR': str(impossible(ws, tmp_path))})
    out = json.loads(r.stdout)
    assert r.returncode == 1 and not out['ok'] and 'Traceback' not in r.stderr
    assert 'candidate was not registered' in out['error'] and 'needs >= 0.999' in out['error']
    assert versions(ws) == before and not (ws / '.lifecycle/rollout.json').exists()
    from lifecycle.core.audit import read

    log = read(ws / '.lifecycle/audit.log')  # the demo acts as demo identities, registered (and said so) first
    demo = {e['subject']: e for e in log if e['action'] in ('trust.init', 'trust.add')}
    assert set(demo) == {'demo-admin', 'demo-trainer', 'demo-approver', 'demo-production-approver'}
    assert all(e['details']['demo_identity'] and 'a demo identity' in e['reason'] for e in demo.values())
    assert [e['actor'] for e in log if e['action'] == 'validation.fail'] == ['demo-trainer']


def test_the_rollout_demo_refuses_flags_no_rollout_can_start_from_before_it_trains(ws, monkeypatch):
    """Reviews BA and BB: `rollout demo` trained and registered a candidate, gave approvals and started a server, and
    only then was its rollout refused: a challenger deployed already, the kill switch on, damaged flags. Refused
    before anything is trained."""
    from lifecycle.core.params import FlagsParams
    from lifecycle.core.workspace import Workspace
    from lifecycle.deliver import demo, rollout as ro, simulate as sim
    from lifecycle.serve import flags as fl

    def trains(*args, **kwargs):
        raise AssertionError('a candidate was trained')

    monkeypatch.setattr(sim, 'train_candidate', trains)
    s = Workspace.open(ws)
    name = s.params['register'].model_name
    for spec, said in (
        (FlagsParams(control='1', safe='1', challenger='1', shadow=True), 'version 1 is deployed as the challenger'),
        (FlagsParams(control='1', safe='1', kill=True), 'the kill switch is on'),
    ):
        fl.write_spec(s, spec, name)
        with pytest.raises(ro.RolloutError, match=said):
            demo.play(s, s.params, 'sound', None, 10, say=lambda t: None)
    fl.spec_path(s).write_text(fl.spec_path(s).read_text().replace('"percentage": 0.0', '"percentage": 150.0'))
    with pytest.raises(fl.FlagsDamaged):
        demo.play(s, s.params, 'sound', None, 10, say=lambda t: None)


def test_the_features_and_train_stages_refuse_a_quarantine_snapshot(workspace, arrests):
    """`stages.features` and `stages.train` (and their notebooks, whose `dataset_version` is a parameter) took the
    quarantine snapshot of a fail-open batch, the rows the ingestion boundary turned away, as training data."""
    from conftest import cli_json, set_yaml
    from lifecycle.core.workspace import Workspace
    from lifecycle.data import stages as data_stages
    from lifecycle.model import stages

    set_yaml(workspace / 'params/ingest.yaml', policy='fail_open')
    p = workspace / 'b.csv'
    arrests.head(200).assign(age=[999] * 7 + [30] * 193).to_csv(p, index=False)
    r, out = cli_json(workspace, 'ingest', str(p), '--dataset', 'arrests')
    assert r.returncode == 0 and out['quarantine'], r.stderr
    w = Workspace.open(workspace)
    said = rf"dataset_version: expected a snapshot that passed ingestion, found '{out['quarantine']}', the quarantine"
    with pytest.raises(ValueError, match=said):
        data_stages.features(w, w.params['features'], out['quarantine'])
    fs = data_stages.features(w, w.params['features'], out['snapshot']).feature_set_version
    with pytest.raises(ValueError, match=said):
        stages.train(w, w.params['train'], w.params['features'], out['quarantine'], fs)
