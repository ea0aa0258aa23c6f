"""An end-to-end release: train (as alice), check the policy, approvals with separation of duties, promotion from
dev to staging to production; every step in the audit log with the hashes of the evidence a reviewer read."""

from __future__ import annotations
import json
from conftest import cli, cli_json
from lifecycle.core import audit


def test_release_from_training_to_production_with_approvals(trained):
    workspace = trained  # version 1, trained by alice in the session's template run
    r, check = cli_json(workspace, 'govern', 'check', 'arrests-release', '1')
    assert r.returncode == 0 and check['ok'], check
    rules = {x['rule']: x['verdict'] for x in check['results']}
    assert (
        rules['signature'] == 'pass' and rules['bias_evaluation.colour'] == 'pass' and rules['metric.roc_auc'] == 'pass'
    )
    report = (workspace / 'reports/governance/arrests-release-1.md').read_text()
    assert 'arrests-release' in report and 'sklego:arrests' in report  # lineage from the raw batch

    def approve(user, step, reason='reviewed the validation report and model card'):
        return cli_json(workspace, 'approve', 'arrests-release', '1', '--as', user, '--reason', reason, '--to', step)

    r, out = approve('alice', 'staging')  # the trainer: separation of duties
    assert r.returncode == 1 and 'alice' in out['error'] and 'trained' in out['error']
    r, out = approve('dave', 'staging')  # not an ml_engineer
    assert r.returncode == 1 and 'ml_engineer' in out['error']
    r, out = approve('dave', 'production')  # out of order
    assert r.returncode == 1 and 'staging' in out['error']
    r, out = cli_json(workspace, 'promote', 'arrests-release', '1', '--to', 'staging')
    assert r.returncode == 1  # no approval yet
    r, out = approve('carol', 'staging')
    assert r.returncode == 0, out
    r, out = cli_json(workspace, 'promote', 'arrests-release', '1', '--to', 'staging')
    assert r.returncode == 0, out
    r, out = approve('dave', 'production')
    assert r.returncode == 0, out
    r, out = cli_json(workspace, 'promote', 'arrests-release', '1', '--to', 'production')
    assert r.returncode == 0, out
    r, st = cli_json(workspace, 'status')
    assert st['models'][0]['aliases'] == {'challenger': '1', 'champion': '1', 'staging': '1', 'production': '1'}
    log = audit.read(workspace / '.lifecycle/audit.log')
    actions = [e['action'] for e in log]
    assert actions.count('approval.refused') == 3 and actions.count('approval.granted') == 2
    assert actions.count('model.promote') == 2 and 'promotion.refused' in actions
    granted = [e for e in log if e['action'] == 'approval.granted']
    for e in granted:
        hashes = json.dumps(e['details'])
        assert all(k in hashes for k in ('validation_report', 'model_card', 'governance_report'))
    assert cli(workspace, 'audit', 'verify').returncode == 0
