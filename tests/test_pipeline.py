"""`lifecycle run` end to end on the default dataset, then the cache: unchanged stages are reused, a changed
parameter re-runs its stage and everything after it. The cold run is the session's template run (`trained_template`,
trained as alice); each test that changes a workspace gets its own copy of it (`trained`)."""

from __future__ import annotations
import os
import json
import re
from pathlib import Path
import pytest
from conftest import cli, cli_json

STAGES = ['ingest', 'features', 'train', 'validate', 'register', 'model_card']


@pytest.fixture
def ran(trained_template):
    "The template workspace after its one cold run, and the run's JSON output (read only)."
    return trained_template


def test_every_stage_runs_and_leaves_its_outputs(ran):
    ws, out = ran
    assert [s['name'] for s in out['stages']] == STAGES and {s['status'] for s in out['stages']} == {'ok'}
    run_dir = Path(out['run_dir'])
    assert run_dir.parent == ws / 'reports' / 'runs'
    manifest = json.loads((run_dir / 'manifest.json').read_text())
    assert manifest['status'] == 'ok'
    for name, st in manifest['stages'].items():
        nb = json.loads((run_dir / st['notebook']).read_text())
        assert nb['metadata']['papermill']['exception'] is None, name
    outs = {k: v for s in out['stages'] for k, v in s['outputs'].items()}
    ds = json.loads((ws / '.lifecycle/store/records/datasets' / f"{outs['dataset_version']}.json").read_text())
    assert ds['rows'] == outs['rows'] == 3738 and ds['role'] == 'train'  # 1997-2000 only
    obj = ws / '.lifecycle/store/objects' / ds['object'][:2] / ds['object']
    assert obj.read_bytes()[:4] == b'PAR1'  # an actual Parquet snapshot
    assert len(outs['future_batches']) == 2  # 2001 and 2002 kept for later
    assert outs['validation_passed'] is True and 0.5 < outs['roc_auc'] <= 1
    assert outs['model_version'] == '1' and outs['aliases'] == ['dev']  # the first environment's alias: gates passed
    assert len(outs['known_outputs']) == 20 and outs['release_bundle'].endswith(
        'arrests-release-1'
    )  # reloaded and re-checked
    card = (ws / '.lifecycle/store/objects' / outs['card'][:2] / outs['card']).read_text()
    created = re.search(r'\*\*created\*\*: (\S+)', card).group(1)  # (the version's registration: not the snapshot's)
    assert created != ds['created'] and created >= ds['created'], (created, ds['created'])


def test_the_model_loads_from_the_registry_by_alias_and_predicts(trained):
    ws = trained
    import pandas as pd
    from sklego.datasets import load_arrests
    from lifecycle.core.workspace import Workspace
    from lifecycle.registry import load_by_alias

    w = Workspace.open(ws)
    mlflow = w.mlflow
    version, model = load_by_alias(w, 'arrests-release', 'dev')
    assert version == '1'
    X = load_arrests(as_frame=True).head(20)
    pred = model.predict(X)
    assert len(pred) == 20 and set(pd.Series(pred).unique()) <= {0, 1}
    run = mlflow.get_run(mlflow.MlflowClient().get_model_version_by_alias('arrests-release', 'dev').run_id)
    for tag in ('dataset_version', 'feature_set_version', 'feature_definition_hash', 'code_version', 'git_commit'):
        assert tag in run.data.tags
    assert run.data.params['seed'] == '42' and 'holdout_roc_auc' in run.data.metrics
    trials = mlflow.search_runs([run.info.experiment_id], f"tags.mlflow.parentRunId = '{run.info.run_id}'")
    assert len(trials) == 3 and set(trials['params.model.C']) == {'0.1', '1.0', '10.0'}  # the sweep's child runs
    best = trials.loc[trials['metrics.cv_roc_auc'].idxmax(), 'params.model.C']
    assert run.data.params['model.C'] == best and run.data.params['sweep_trials'] == '3'


def test_the_site_links_every_stage_of_the_run(ran):
    ws, out = ran
    assert f"{out['run_id']}/index.html" in (ws / 'reports/site/runs/index.html').read_text()
    run_page = (ws / 'reports/site/runs' / out['run_id'] / 'index.html').read_text()
    for nb in sorted((Path(out['run_dir'])).glob('*.ipynb')):
        page = ws / 'reports/site/runs' / out['run_id'] / nb.with_suffix('.html').name
        assert f'href="{page.name}"' in run_page and page.stat().st_size > 10_000


def test_a_second_run_with_nothing_changed_reruns_no_stage(ran, trained):
    (_, first), ws = ran, trained
    r, out = cli_json(ws, 'run')
    assert r.returncode == 0, r.stderr
    assert [s['status'] for s in out['stages']] == ['cached'] * 6
    assert {s['cached_from'] for s in out['stages']} == {first['run_id']}
    index = (ws / 'reports/site/runs/index.html').read_text()
    assert index.index(out['run_id']) < index.index(first['run_id'])  # newest first


def test_changing_one_parameter_reruns_that_stage_and_those_after(trained):
    ws = trained
    train = ws / 'params/train.yaml'
    train.write_text(train.read_text().replace('C: 1.0', 'C: 0.3'))
    r, out = cli_json(ws, 'run', '--no-site')  # a rerun's site: test_a_second_run_with_nothing_changed_...
    assert r.returncode == 0, r.stderr
    assert [s['status'] for s in out['stages']] == ['cached', 'cached', 'ok', 'ok', 'ok', 'ok']
    reg = out['stages'][4]['outputs']
    assert reg['model_version'] == '2' and reg['aliases'] == [] and reg['champion_version'] == '1'  # dev stays at 1
    r, st = cli_json(ws, 'status')
    assert r.returncode == 0
    assert st['models'] == [{'name': 'arrests-release', 'aliases': {'dev': '1'}, 'versions': [1, 2]}]
    assert len(st['runs']) == 2 and st['tracking_uri'] == f"sqlite:///{ws.resolve() / '.lifecycle/mlflow.db'}"


def test_every_upstream_id_a_stage_notebook_reads_is_part_of_its_cache_key():
    """Review: the register notebook reads the validation record (`validation_id`) from the run's manifest, and the
    record was not among the register stage's inputs, so after a change to validate.yaml or policy.yaml (validation
    re-run, its gates new, still passing) registration was reused: the version kept the old validation record and
    the run's card and validation notebook described another one. Every ID a stage reads upstream is in its key."""
    from lifecycle.app.pipeline import STAGES

    for st in STAGES:
        nb = json.loads((Path(__file__).parent.parent / 'nbs/stages' / st.notebook).read_text())
        code = '\n'.join(''.join(c['source']) for c in nb['cells'] if c['cell_type'] == 'code')
        read = set(re.findall(r"ctx\.input\('(\w+)'", code))
        assert read <= set(st.inputs), (st.name, read - set(st.inputs))


@pytest.mark.slow  # a run in a copy of the trained workspace
def test_a_changed_validation_reregisters_so_the_version_names_the_validation_of_its_run(trained):
    from conftest import set_yaml

    set_yaml(trained / 'params/validate.yaml', decision_threshold=0.45)
    r, out = cli_json(trained, 'run', '--no-site')
    assert r.returncode == 0, r.stderr
    assert [s['status'] for s in out['stages']] == ['cached', 'cached', 'cached', 'ok', 'ok', 'ok']
    manifest = json.loads((Path(out['run_dir']) / 'manifest.json').read_text())
    vid = manifest['stages']['validate']['outputs']['validation_id']
    from lifecycle.core.workspace import Workspace

    ws = Workspace.open(trained)
    version = out['stages'][4]['outputs']['model_version']
    assert ws.client.get_model_version('arrests-release', version).tags['validation_id'] == vid


@pytest.mark.slow  # runs in a copy of the trained workspace
def test_a_version_or_training_run_deleted_from_the_tracking_store_is_made_again_not_reused_from_the_cache(trained):
    """A model version deleted from the registry (MLflow's UI, its client) left the register stage reused: the run said
    it registered that version, which was gone; so for a training run deleted, or a tracking database moved away
    (review GZ). What train and register made in the tracking store is looked for there: not found, they run again. A
    tracking server named in settings.ini is part of the train stage's key: one recorded on another is not reused."""
    import dataclasses
    from lifecycle.core.settings import load_settings
    from lifecycle.core.workspace import Workspace

    client = Workspace.open(trained).client
    client.delete_model_version('arrests-release', '1')
    r, out = cli_json(trained, 'run', '--no-site')
    assert r.returncode == 0, r.stderr
    assert [s['status'] for s in out['stages']] == ['cached'] * 4 + ['ok'] * 2
    assert out['stages'][4]['outputs']['model_version'] == '2'
    r, st = cli_json(trained, 'status')
    assert [(m['name'], m['versions']) for m in st['models']] == [('arrests-release', [2])], st['models']
    client.delete_run(out['stages'][2]['outputs']['mlflow_run_id'])
    r, out = cli_json(trained, 'run', '--no-site')
    assert r.returncode == 0, r.stderr
    assert [s['status'] for s in out['stages']] == ['cached'] * 2 + ['ok'] * 4
    r, again = cli_json(trained, 'run', '--no-site')  # (there: reused)
    assert [s['status'] for s in again['stages']] == ['cached'] * 6, again
    from lifecycle.app.pipeline import _tracking_server

    s = load_settings(trained)
    assert _tracking_server(s, {}, {}) == {}  # (the workspace's own SQLite file: a moved workspace keeps its cache)
    server = dataclasses.replace(s, tracking_uri='http://mlflow.example:5000')
    assert _tracking_server(server, {}, {}) == {'tracking_server': 'http://mlflow.example:5000'}
    (trained / '.lifecycle/mlflow.db').rename(trained / 'mlflow-before.db')  # (moved away: nothing there to reuse)
    from lifecycle.app.pipeline import STAGES, cache_get

    records = {p.name.split('-', 1)[0]: p.stem.split('-', 1)[1] for p in s.cache_dir.glob('*.json')}
    assert cache_get(s, STAGES[1], records['features']) is not None
    assert cache_get(s, STAGES[2], records['train']) is None and cache_get(s, STAGES[4], records['register']) is None


def test_force_reruns_everything(trained):
    r, out = cli_json(trained, 'run', '--force', '--no-site')
    assert r.returncode == 0 and [s['status'] for s in out['stages']] == ['ok'] * 6
    reg = out['stages'][4]['outputs']
    assert reg['model_version'] == '2' and reg['aliases'] == []  # a new version, the champion (dev) kept


def test_the_audit_log_records_the_run_and_detects_tampering(trained):
    ws = trained
    log, payloads = ws / '.lifecycle/audit.log', ws / '.lifecycle/audit.payloads.jsonl'
    actions = [json.loads(line)['action'] for line in log.read_text().splitlines()]  # the template's one run
    r, v = cli_json(ws, 'audit', 'verify')
    assert r.returncode == 0 and v['ok'] and v['entries'] == len(actions)
    assert actions.count('model.register') == 1 and actions.count('dataset.snapshot') == 1
    seq = actions.index('model.register') + 1
    text = payloads.read_text()
    line = next(x for x in text.splitlines() if json.loads(x)['seq'] == seq)  # who registered it, and why
    assert 'all validation gates passed' in line
    payloads.write_text(text.replace(line, line.replace('all validation gates passed', 'approved by nobody')))
    r = cli(ws, 'audit', 'verify')
    assert (
        r.returncode == 3
        and f"entry {seq}'s payload (actor, reason, details) in audit.payloads.jsonl was altered" in r.stderr
    )
    payloads.write_text(text)
    chain = log.read_text()
    lines = chain.splitlines(keepends=True)
    lines[seq - 1] = lines[seq - 1].replace('"action":"model.register"', '"action":"model.retire"')
    log.write_text(''.join(lines))  # the chain line itself
    r = cli(ws, 'audit', 'verify')
    assert r.returncode == 3 and f"entry {seq} (line {seq}) was altered" in r.stderr
    log.write_text(chain)
    assert cli(ws, 'audit', 'verify').returncode == 0


def test_a_tampered_registered_model_is_refused(trained):
    ws = trained
    from lifecycle.core.workspace import Workspace
    from lifecycle.registry import load_by_alias
    from lifecycle.signing import SignatureError

    w = Workspace.open(ws)
    mlflow = w.mlflow
    model_id = mlflow.MlflowClient().get_model_version('arrests-release', '1').source.removeprefix('models:/')
    (skops,) = [p for p in (ws / '.lifecycle/mlartifacts').rglob('model.skops') if p.parent.parent.name == model_id]
    data = bytearray(skops.read_bytes())
    data[len(data) // 2] ^= 0x01
    skops.write_bytes(bytes(data))  # in this test's own copy of the workspace
    with pytest.raises(SignatureError, match='model.skops'):
        load_by_alias(w, 'arrests-release', 'dev')


def _raise(e: BaseException):
    raise e


def test_an_interrupted_report_leaves_no_folder_behind_and_a_failed_one_keeps_its_evidence(tmp_path, monkeypatch):
    "A report folder the runner made is removed when interrupted (Ctrl-C) or left empty; a failed notebook stays."
    from lifecycle.app import pipeline
    from lifecycle.core.cli_support import CommandError

    s = type('S', (), {'stages_dir': tmp_path / 'stages', 'root': tmp_path})()
    s.stages_dir.mkdir()
    for name in ('09_monitor.ipynb', '10_simulate.ipynb'):
        (s.stages_dir / name).write_text('{}')

    def interrupted(src, dst, parameters, cwd):
        dst.write_text('{"cells": [')  # half written when the interrupt came
        raise KeyboardInterrupt

    def failing(src, dst, parameters, cwd):
        dst.write_text('{}')  # the executed notebook, up to its failing cell
        raise RuntimeError('cell 3 failed')

    for execute, error, kept in ((interrupted, KeyboardInterrupt, False), (failing, RuntimeError, True)):
        monkeypatch.setattr(pipeline, '_execute', execute)
        out = tmp_path / 'reports' / execute.__name__
        with pytest.raises(error):
            pipeline.run_report(s, '09_monitor.ipynb', out, {})
        assert out.exists() is kept
    cell = RuntimeError('cell 3 failed')  # as papermill raises it: the failing cell's error by name and value
    cell.ename, cell.evalue = 'LogUnreadable', 'the prediction log at sqlite:///p.db cannot be read: DatabaseError: x'
    monkeypatch.setattr(pipeline, '_execute', lambda src, dst, parameters, cwd: (dst.write_text('{}'), _raise(cell)))
    with pytest.raises(CommandError) as e:  # one line, the exit code the log's readers give
        pipeline.run_report(s, '09_monitor.ipynb', tmp_path / 'reports' / 'cell', {})
    assert e.value.code == 4 and str(e.value).startswith('report 09_monitor.ipynb failed: LogUnreadable: the predic')
    (s.stages_dir / '10_simulate.ipynb').unlink()
    with pytest.raises(CommandError, match='10_simulate.ipynb: report notebook not found'):
        pipeline.run_report(s, '10_simulate.ipynb', tmp_path / 'reports' / 'none', {})
    (s.stages_dir / '10_simulate.ipynb').write_text('{}')
    existing = tmp_path / 'reports' / 'run-1'  # a folder that was there before (a simulation's run folder) stays
    existing.mkdir()
    monkeypatch.setattr(pipeline, '_execute', interrupted)
    with pytest.raises(KeyboardInterrupt):
        pipeline.run_report(s, '10_simulate.ipynb', existing, {})
    assert existing.is_dir()


def test_an_interrupted_run_is_recorded_as_failed_interrupted_not_left_running(workspace, monkeypatch):
    "Ctrl-C during a stage: the run's record says it failed, interrupted, and names the stage; the audit log too."
    from lifecycle.app import pipeline
    from lifecycle.core import audit
    from lifecycle.core.manifest import RunManifest
    from lifecycle.core.workspace import Workspace

    ws = Workspace.open(workspace)

    def interrupted(ws_, st, m, *args):
        m.update_stage(st.name, status='running')
        raise KeyboardInterrupt

    monkeypatch.setattr(pipeline, '_run_stage', interrupted)
    with pytest.raises(KeyboardInterrupt):
        pipeline.run_pipeline(ws)
    (run_dir,) = ws.runs_dir.iterdir()
    m = RunManifest.load(run_dir)
    assert m.data['status'] == 'failed' and m.data['error'] == 'interrupted'
    assert m.data['stages']['ingest']['status'] == 'failed' and m.data['stages']['ingest']['error'] == 'interrupted'
    assert [e['reason'] for e in audit.read(ws.audit_path) if e['action'] == 'run.fail'] == ['interrupted']


@pytest.mark.parametrize('damage', ['{"x', '[1, 2]', '{"run_id": 7, "notebook": "01_ingest.ipynb", "outputs": {}}'])
def test_a_damaged_stage_cache_record_is_a_miss_and_the_stages_result_replaces_it(tmp_path, damage):
    "A cache record cut short (or edited) made `lifecycle run` end in a JSONDecodeError traceback (found by review)."
    from lifecycle.app.pipeline import STAGES, cache_get, cache_put
    from lifecycle.core.settings import load_settings

    (tmp_path / 'settings.ini').write_text('[workspace]\n')
    s = load_settings(tmp_path)
    (s.runs_dir / 'r1').mkdir(parents=True)
    (s.runs_dir / 'r1' / '01_ingest.ipynb').write_text('{}')
    cache_put(s, STAGES[0], 'k', 'r1', '01_ingest.ipynb', {'rows': 3})
    assert cache_get(s, STAGES[0], 'k')['outputs'] == {'rows': 3}
    (s.cache_dir / f'{STAGES[0].name}-k.json').write_text(damage)
    assert cache_get(s, STAGES[0], 'k') is None
    cache_put(s, STAGES[0], 'k', 'r1', '01_ingest.ipynb', {'rows': 4})
    assert cache_get(s, STAGES[0], 'k')['outputs'] == {'rows': 4}


@pytest.mark.parametrize(
    'damage', [b'{"cells": [', b'\xff\xfe{}', b'[1, 2]', b'{"cells": [{"source": "x"}]}', b'{"cells": 7}']
)
def test_a_damaged_stage_notebook_is_refused_naming_it_before_any_stage_runs(workspace, damage):
    """A stage notebook cut short or edited into something else (a merge left half of it, an editor saved it as
    other text) made `lifecycle run` end in an internal error and a JSONDecodeError traceback after two stages ran,
    the run recorded as stopped (review GZ). It is refused as a missing one is: named, exit 2, no stage run."""
    (workspace / 'nbs/stages/03_train.ipynb').write_bytes(damage)
    r, out = cli_json(workspace, 'run', '--no-site')
    assert r.returncode == 2 and 'Traceback' not in r.stderr and 'internal error' not in out['error'], (r, out)
    assert 'nbs/stages/03_train.ipynb' in out['error'] and 'no stage ran' in out['error'], out
    runs = workspace / 'reports' / 'runs'
    assert not runs.is_dir() or not any(runs.iterdir())  # (refused before a run began: none recorded)


def test_a_database_source_is_read_again_at_every_run_and_a_file_only_when_it_changes(workspace):
    """A SQL source's cache key was its URL and query: rows rewritten in the table left every stage reused, its old
    snapshot shown as current (review L). Its ingest stage now runs every time; a file's is reused while its hash is."""
    from lifecycle.app.pipeline import _ingest_source
    from lifecycle.core.workspace import Workspace

    s = Workspace.open(workspace)
    sql = {'ingest': {'source': 'sqlite:///data/c.db', 'query': 'SELECT * FROM customers'}}
    assert _ingest_source(s, sql, {}) is None  # (never reused: nor a cache record written that no run finds again)
    (workspace / 'b.csv').write_text('a\n1\n')
    csv = {'ingest': {'source': 'b.csv'}}
    assert _ingest_source(s, csv, {}) == _ingest_source(s, csv, {})
    before = _ingest_source(s, csv, {})
    (workspace / 'b.csv').write_text('a\n2\n')
    assert _ingest_source(s, csv, {}) != before


def test_a_contract_that_pseudonymises_is_keyed_by_its_pii_key_too(workspace, monkeypatch):
    "Review AB: a snapshot pseudonymised with another key was reused (`cached`), its pseudonyms not this key's."
    from lifecycle.app.pipeline import _ingest_source
    from lifecycle.core.workspace import Workspace

    s = Workspace.open(workspace)
    (workspace / 'b.csv').write_text('a\n1\n')
    plain = {'ingest': {'source': 'b.csv', 'columns': {'a': {'dtype': 'str', 'personal': False}}}}
    masked = {'ingest': {'source': 'b.csv', 'columns': {'a': {'pii': {'method': 'pseudonymise'}}}}}
    keyed = {}
    for key in ('one-key-0123456789abcdef', 'another-key-0123456789ab'):
        monkeypatch.setenv('LIFECYCLE_PII_KEY', key)
        keyed[key] = _ingest_source(s, masked, {})
        assert set(_ingest_source(s, plain, {})) == {'source_fingerprint'}  # (no key in play: none in the key)
    one, other = keyed.values()
    assert one['source_fingerprint'] == other['source_fingerprint'] and one['pii_key_id'] != other['pii_key_id']
    assert 'one-key' not in str(one) and _ingest_source(s, masked, {}) == other


def test_validation_is_keyed_by_the_champion_a_promotion_made_and_only_of_its_own_model(workspace):
    """`lifecycle promote` to the environment's alias left validation's cache key at no champion (its audit entry names
    no run), so a run reused evidence saying "no champion yet"; another model's registration under the alias changed
    the key (review L). The champion is the version the audited alias moves of this model name; its run, its register
    entry's."""
    from lifecycle.app.pipeline import _champion_run
    from lifecycle.core import audit
    from lifecycle.core.workspace import Workspace

    s = Workspace.open(workspace)
    params = {'register': {'model_name': 'm'}}

    def key():
        return _champion_run(s, params, {'mlflow_run_id': 'candidate'})['champion_run']

    assert key() is None
    audit.append(s.audit_path, 'model.register', 'm/1', aliases=['dev'], mlflow_run_id='r1')
    audit.append(s.audit_path, 'model.register', 'm/2', aliases=[], mlflow_run_id='r2')
    assert key() == 'r1'
    audit.append(s.audit_path, 'model.register', 'other/1', aliases=['dev'], mlflow_run_id='x1')
    assert key() == 'r1'
    audit.append(s.audit_path, 'model.promote', 'm/2', alias='dev', previous_version='1')
    assert key() == 'r2'
    assert _champion_run(s, params, {'mlflow_run_id': 'r2'})['champion_run'] is None  # (the model under test)


@pytest.mark.slow
def test_a_stage_kernel_killed_mid_cell_fails_its_stage_instead_of_holding_the_run(tmp_path):
    """Review U: a stage's kernel killed mid-cell (out of memory, a native crash) left `lifecycle run` waiting for a
    reply for good, holding the pipeline lock: nbclient's own check that the kernel lives never ran through the shared
    kernel's blocking client. The stage now fails at once, and the next notebook gets a kernel of its own."""
    import threading

    import nbformat
    from nbclient.exceptions import DeadKernelError
    from lifecycle.app.kernel import StageKernel

    def notebook(name: str, *cells: str) -> Path:
        nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in cells])
        nb.metadata['kernelspec'] = {'name': 'python3', 'display_name': 'Python 3', 'language': 'python'}
        nbformat.write(nb, tmp_path / name)
        return tmp_path / name

    dies = notebook('dies.ipynb', 'x = 1', 'import os, signal\nos.kill(os.getpid(), signal.SIGKILL)', 'y = 2')
    fine = notebook('fine.ipynb', 'assert 1 + 1 == 2')
    with StageKernel(tmp_path) as kernel:
        said = []

        def run():
            try:
                kernel.execute(dies, tmp_path / 'out.ipynb', {})
            except BaseException as e:  # (what papermill raised, looked at below)
                said.append(e)

        t = threading.Thread(target=run, daemon=True)
        t.start()
        t.join(60)
        assert not t.is_alive(), 'the run waited on a dead kernel'
        assert said and (isinstance(said[0], DeadKernelError) or 'DeadKernelError' in repr(said[0])), said
        kernel.execute(fine, tmp_path / 'fine-out.ipynb', {})
        assert kernel.started == 2
    out = nbformat.read(tmp_path / 'fine-out.ipynb', as_version=4)
    assert out.cells and not list(tmp_path.glob('.*.tmp*'))
    assert out.metadata.papermill.output_path == str(tmp_path / 'fine-out.ipynb')  # (its own name: review X)


@pytest.mark.slow
def test_a_stage_kernel_that_dies_as_it_starts_is_started_again(tmp_path, monkeypatch):
    """Clean-clone CI met it: a port jupyter_client picked for a stage kernel was taken before the kernel bound it
    ("Address already in use"), the kernel died before replying, and the run failed at its first stage. A kernel that
    dies as it starts is started again (new ports); here the first one is given an argument it cannot parse."""
    import nbformat
    from lifecycle.app.kernel import StageKernel

    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell('assert 1 + 1 == 2')])
    nb.metadata['kernelspec'] = {'name': 'python3', 'display_name': 'Python 3', 'language': 'python'}
    nbformat.write(nb, tmp_path / 'fine.ipynb')
    real, calls = StageKernel._start, []

    def start(self):
        calls.append(1)
        kept = self.extra_arguments
        self.extra_arguments = [*kept, '--Nope'] if len(calls) == 1 else kept
        try:
            real(self)
        finally:
            self.extra_arguments = kept

    monkeypatch.setattr(StageKernel, '_start', start)
    with StageKernel(tmp_path) as kernel:
        kernel.execute(tmp_path / 'fine.ipynb', tmp_path / 'out.ipynb', {})
        assert kernel.started == 2
    assert nbformat.read(tmp_path / 'out.ipynb', as_version=4).cells


def test_an_executed_notebook_a_full_disk_cut_short_is_not_kept_under_its_name(tmp_path):
    "Review U: papermill wrote straight to the run's notebook, and a full disk left 1.5 MB of invalid JSON there."
    import nbformat
    from lifecycle.app.kernel import _keep_whole

    whole = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell('1 + 1')])
    text = nbformat.writes(whole)
    (tmp_path / '.cut.tmp.ipynb').write_text(text[: len(text) // 2])
    _keep_whole(tmp_path / '.cut.tmp.ipynb', tmp_path / 'cut.ipynb')
    assert list(tmp_path.iterdir()) == []
    (tmp_path / '.whole.tmp.ipynb').write_text(text)
    _keep_whole(tmp_path / '.whole.tmp.ipynb', tmp_path / 'whole.ipynb')
    assert [p.name for p in tmp_path.iterdir()] == ['whole.ipynb']


def test_a_regression_runs_key_outputs_and_its_site_show_its_own_metrics(workspace, capsys):
    """Review AG: a regression run's summary showed blank key outputs for validate (only roc_auc and accuracy were
    shown, and a regression has neither) although the manifest had r2 and rmse; the site kept roc_auc alone. Each
    shows the task's metrics, as present."""
    from lifecycle.app.commands import RunOutcome
    from lifecycle.app.pipeline import StageResult
    from lifecycle.app.site import _runs, runs_pages
    from lifecycle.core.manifest import RunManifest
    from lifecycle.core.workspace import Workspace

    regression = dict(validation_passed=True, r2=0.8123, rmse=20123.456, mae=15987.0, metrics={'r2': 0.8123})
    classification = dict(validation_passed=True, roc_auc=0.9012, accuracy=0.85, metrics={'roc_auc': 0.9012})
    for outputs, says in ((regression, 'r2=0.812, rmse=20123.456, mae=15987.000'),
                          (classification, 'roc_auc=0.901, accuracy=0.850')):  # fmt: skip
        RunOutcome('r1', '/tmp/r1', [StageResult('validate', 'ok', 1.0, outputs)]).show()
        assert says in capsys.readouterr().out
    s = Workspace.open(workspace)
    m = RunManifest.create(s.runs_dir, run_id='20261206T000000Z-regr00', mode='pipeline')
    m.update_stage('validate', status='ok', notebook='04_validate.ipynb')
    m.record_outputs('validate', regression)
    [run] = _runs(s)
    assert run['stages']['validate']['outputs'] == dict(validation_passed=True, r2=0.8123, rmse=20123.456, mae=15987.0)
    page = next(p for p in runs_pages({'runs': [run]}, s.runs_dir) if p.path.endswith('regr00/index.md'))
    assert 'validation_passed=True, r2=0.812, rmse=20123.456, mae=15987.000' in page.text


@pytest.mark.slow  # a run in staging from its validate stage on
def test_a_run_in_staging_registers_without_a_bundle_and_lifecycle_bundle_writes_one_where_it_may_serve(trained):
    """Review BF: in staging the register stage failed after registering the version (its release bundle asked for a
    staging approval no new version has), so the run never finished and the version had no card for good; and no
    command made a bundle for staging or production. The run goes through, saying how to bundle the version once it
    may serve there; `lifecycle bundle` makes it then, and dev's at any time."""
    from conftest import set_yaml

    staging = {'LIFECYCLE_ENVIRONMENT': 'staging'}
    # validate.yaml changed (its champion tolerance: staging has no champion to judge it against), so validate,
    # register and model_card run again, in staging, and ingest, features and train are reused: a forced run made the
    # snapshot, features and model again first, 10 CPU s more, for no stage this test is about
    set_yaml(trained / 'params/validate.yaml', champion_tolerance=0.02)
    r, out = cli_json(trained, 'run', '--no-site', env=staging)
    assert r.returncode == 0, r.stdout + r.stderr
    assert [s['status'] for s in out['stages']] == ['cached'] * 3 + ['ok'] * 3
    outs = {k: v for s in out['stages'] for k, v in s['outputs'].items()}
    assert outs['model_version'] == '2' and outs['release_bundle'] is None
    r, out = cli_json(trained, 'bundle', 'arrests-release', '2', env=staging)
    assert r.returncode == 2 and out['error'].startswith('no release bundle yet: arrests-release version 2'), out
    assert out['error'].endswith('once it may, `lifecycle bundle arrests-release 2`')
    r, out = cli_json(trained, 'bundle', 'arrests-release', '1')  # (registration wrote it: review BJ)
    assert r.returncode == 2 and 'is there already' in out['error'] and '`--force`' in out['error'], out
    r, out = cli_json(trained, 'bundle', 'arrests-release', '1', '--force')
    assert r.returncode == 0 and out['path'].endswith('releases/arrests-release-1'), r.stdout + r.stderr
    assert out['release']['policy'] == {'environment': 'dev', 'exposure': 'dev'}


def test_stage_parameters_are_recorded_with_the_source_withheld():
    """Review GM: the executed stage notebooks (reports/runs, and the evidence site built from them) recorded the
    ingest params as passed, so a database source's password and a file named with an e-mail address were written
    whole into the injected cell and papermill's metadata, though the manifest and messages withhold them."""
    from lifecycle.app.pipeline import _shown_parameters

    def given(source):
        return {'run_id': 'r', 'params': {'ingest': {'source': source, 'dataset': 'd'}, 'register': {'m': 1}}}

    shown = _shown_parameters(given('postgresql+psycopg://alice:S3cretPW@db.example/crm'))
    assert 'S3cretPW' not in json.dumps(shown) and 'alice' not in json.dumps(shown)
    assert shown['params']['register'] == {'m': 1} and shown['params']['ingest']['dataset'] == 'd'
    assert 'bob@corp.example' not in json.dumps(_shown_parameters(given('/data/bob@corp.example.csv')))
    assert _shown_parameters(given('data/customers.csv')) is None and _shown_parameters({'run_id': 'r'}) is None


@pytest.mark.slow
def test_stage_kernel_runs_with_the_parameters_and_records_the_shown_ones(tmp_path, monkeypatch):
    """The notebook runs with the real parameters; the file it leaves records `shown` alone (review GM). Papermill
    writes it, parameters and all, before it is given its name: in the scratch folder, so that a kill between the two
    leaves the password there, never beside the reports; a notebook a dead process left in scratch is removed."""
    import nbformat
    from lifecycle.app import kernel as stage_kernel
    from lifecycle.app.kernel import StageKernel

    reports, scratch = tmp_path / 'reports', tmp_path / 'state' / 'stages-running'
    reports.mkdir()
    scratch.mkdir(parents=True)
    (scratch / '999999999-r0-out.ipynb').write_text('{"left": "S3cretPW"}')  # (a stage killed by a process now gone)
    params = nbformat.v4.new_code_cell("source = None")
    params.metadata['tags'] = ['parameters']
    nb = nbformat.v4.new_notebook(cells=[params, nbformat.v4.new_code_cell("print('ran with', len(source))")])
    nb.metadata['kernelspec'] = {'name': 'python3', 'display_name': 'Python 3', 'language': 'python'}
    nbformat.write(nb, tmp_path / 'stage.ipynb')
    given, shown = {'source': 'pg://u:S3cretPW@h/d'}, {'source': 'pg://***'}
    with StageKernel(tmp_path) as kernel:
        kernel.execute(tmp_path / 'stage.ipynb', reports / 'out.ipynb', given, shown, scratch)
        text = (reports / 'out.ipynb').read_text()
        assert 'S3cretPW' not in text and 'ran with 19' in text and 'pg://***' in text
        out = nbformat.read(reports / 'out.ipynb', as_version=4)
        assert out.metadata.papermill.parameters == shown
        assert [p.name for p in reports.iterdir()] == ['out.ipynb'] and not list(scratch.iterdir())
        monkeypatch.setattr(stage_kernel, '_keep_whole', lambda *a: None)  # (killed once papermill wrote it)
        kernel.execute(tmp_path / 'stage.ipynb', reports / 'again.ipynb', given, shown, scratch)
    assert not [p.name for p in reports.iterdir() if 'S3cretPW' in p.read_text()]
    assert [p.name for p in scratch.iterdir() if 'S3cretPW' in p.read_text()] == [f'{os.getpid()}-reports-again.ipynb']
    monkeypatch.undo()
    (scratch / '999999999-r1-out.ipynb').write_text('{"left": "S3cretPW"}')
    with StageKernel(tmp_path) as kernel:  # (a stage with nothing to withhold sweeps what dead processes left: GS)
        kernel.execute(tmp_path / 'stage.ipynb', reports / 'plain.ipynb', {'source': 'data.csv'}, None, scratch)
    assert [p.name for p in scratch.iterdir()] == [f'{os.getpid()}-reports-again.ipynb']


@pytest.mark.slow  # a cold pipeline run
def test_a_workspace_in_a_folder_named_with_an_e_mail_address_publishes_no_such_name(tmp_path):
    """The register stage's executed notebook showed the release bundle's absolute path, and so the workspace's folder
    `ws-bob@corp.example` (its output, the run's manifest, the site's page and search index), and papermill's metadata
    of every executed notebook named it (`input_path`, `output_path`). The bundle is recorded relative to the workspace,
    papermill's paths as `shown_path` shows them (a name holding a contact withheld)."""
    from conftest import TRAINER, make_workspace

    ws = make_workspace(tmp_path / 'ws-bob@corp.example')
    r, out = cli_json(ws, 'run', env=TRAINER)
    assert r.returncode == 0, r.stderr
    outs = {k: v for s in out['stages'] for k, v in s['outputs'].items()}
    assert outs['release_bundle'] == '.lifecycle/releases/arrests-release-1' and (ws / outs['release_bundle']).is_dir()
    published = [*(ws / 'reports' / 'runs').rglob('*'), *(ws / 'reports' / 'site').rglob('*')]
    leaks = [str(p.relative_to(ws)) for p in published if p.is_file() and b'bob@corp.example' in p.read_bytes()]
    assert not leaks and (ws / 'reports' / 'site' / 'search' / 'search_index.json').is_file()
