"""The evidence site: one page structure, a Quarto project that lists every page, an MkDocs build that works offline
with code folded and parameter cells dropped, and incremental rendering (nothing when nothing changed, only new pages
when a run is added). The browser checks are in test_site_browser.py."""

from __future__ import annotations
import contextlib
import json
from pathlib import Path
import re
import shutil
import subprocess
import nbformat
import pytest
import yaml
from conftest import ROOT, cli, cli_json


def test_quarto_config_is_valid_and_has_its_sections():
    cfg = yaml.safe_load((ROOT / 'nbs/_quarto.yml').read_text())
    assert cfg['project']['type'] == 'website' and cfg['execute']['enabled'] is False
    sections = [c['section'] for c in cfg['website']['sidebar']['contents'] if isinstance(c, dict)]
    assert sections == ['Library', 'Stages', 'Tutorials', 'Reports']
    for pattern in cfg['project']['render']:
        assert list((ROOT / 'nbs').glob(pattern)), f"{pattern} in _quarto.yml matches no file"


def add_run(s, run_id: str, started: str, cached_from: str | None = None):
    "A run record with one ingest stage: executed (a notebook with papermill's parameter cells) or cached."
    from lifecycle.core.manifest import RunManifest

    m = RunManifest.create(s.runs_dir, run_id, mode='pipeline')
    if cached_from is None:
        nb = nbformat.v4.new_notebook(
            cells=[
                nbformat.v4.new_markdown_cell('# Ingest\n\nWhat this stage decides.'),
                nbformat.v4.new_code_cell('alpha = 1', metadata={'tags': ['parameters']}),
                nbformat.v4.new_code_cell('alpha = 2', metadata={'tags': ['injected-parameters']}),
                nbformat.v4.new_code_cell(
                    'alpha * 21',
                    outputs=[nbformat.v4.new_output('execute_result', {'text/plain': '42'}, execution_count=3)],
                ),
            ]
        )
        nbformat.write(nb, m.run_dir / '01_ingest.ipynb')
        m.update_stage('ingest', status='ok', notebook='01_ingest.ipynb', duration=0.5)
    else:
        m.update_stage('ingest', status='cached', notebook='01_ingest.ipynb', cached_from=cached_from, duration=0.0)
    m.data.update(status='ok', started=started)
    m.save()


def test_the_quarto_project_lists_every_page_and_folds_code(workspace):
    from lifecycle.core.workspace import Workspace
    from lifecycle.app import site

    s = Workspace.open(workspace)
    add_run(s, 'r1', '2026-01-01T00:00:00+00:00')
    pages, assets = site.plan_pages(site.site_facts(s), s.runs_dir)
    src = s.reports_dir / 'site-src'
    site.write_sources(src, pages, assets, {})
    cfg = yaml.safe_load((src / 'pages/_quarto.yml').read_text())
    assert cfg['project']['type'] == 'website' and cfg['execute']['enabled'] is False
    assert cfg['format']['html']['code-fold'] is True
    assert cfg['project']['resources'] == ['assets/evidently/*', 'batches/_evidently/*']  # what reports load unlinked
    listed = {c['href'] for c in cfg['website']['sidebar']['contents']}
    listed |= {p for c in cfg['website']['sidebar']['contents'] for p in c['contents']}
    on_disk = {
        p.relative_to(src / 'pages').as_posix() for p in (src / 'pages').rglob('*') if p.suffix in ('.md', '.ipynb')
    }
    assert listed == set(cfg['project']['render']) == on_disk
    assert 'runs/r1/01_ingest.ipynb' in on_disk and 'runs/r1/index.md' in on_disk
    front = yaml.safe_load((src / 'pages/runs/index.md').read_text().split('---')[1])
    assert front['listing']['contents'] == '*/index.md'
    copied = json.loads((src / 'pages/runs/r1/01_ingest.ipynb').read_text())
    assert [''.join(c['source']) for c in copied['cells'] if c['cell_type'] == 'code'] == ['alpha * 21']
    mk = yaml.safe_load((src / 'mkdocs.yml').read_text())
    assert mk['theme']['font'] is False and mk['nav'][0] == {'Environments': 'index.md'}
    if shutil.which('quarto'):  # render the same project with Quarto where it is installed
        subprocess.run(['quarto', 'render', str(src / 'pages')], check=True, capture_output=True)
        assert (src / 'pages/_site/runs/r1/01_ingest.html').is_file()


def test_the_site_renders_offline_and_only_what_changed(workspace):
    from lifecycle.core.workspace import Workspace
    from lifecycle.app import site

    s = Workspace.open(workspace)
    add_run(s, 'r1', '2026-01-01T00:00:00+00:00')
    index = site.render_site(s, 'mkdocs')
    page = s.site_dir / 'runs/r1/01_ingest.html'
    text = page.read_text()
    assert '42' in text and 'alpha * 21' in text and 'alpha = 2' not in text and 'alpha = 1' not in text
    assert 'assets/fold.js' in text and 'jp-CodeCell' in text
    for f in s.site_dir.rglob('*.html'):
        outside = re.findall(r'''(?:src|href)=["']?(?:https?:)?//[^"'\s>]+''', f.read_text())
        assert not outside, f'{f}: {outside[:3]}'
        assert 'cdnjs' not in f.read_text() and 'fonts.googleapis' not in f.read_text(), f
    times = {p: p.stat().st_mtime_ns for p in (index, page)}
    assert site.render_site(s, 'mkdocs') == index
    assert {p: p.stat().st_mtime_ns for p in times} == times  # nothing changed: nothing rendered
    add_run(s, 'r2', '2026-01-02T00:00:00+00:00', cached_from='r1')
    site.render_site(s, 'mkdocs')
    assert page.stat().st_mtime_ns == times[page]  # the unchanged notebook page was not rendered again
    runs = (s.site_dir / 'runs/index.html').read_text()
    assert runs.index('r2/index.html') < runs.index('r1/index.html')  # newest first
    assert "01_ingest.ipynb" in (s.site_dir / 'runs/r2/index.html').read_text()
    assert 'href="../r1/01_ingest.html"' in (s.site_dir / 'runs/r2/index.html').read_text()  # the run that executed it
    docs = json.loads((s.site_dir / 'search/search_index.json').read_text())['docs']
    located = {d['location'].split('#')[0] for d in docs}
    assert {'runs/r1/01_ingest.html', 'runs/r2/index.html', 'runs/r1/index.html'} <= located  # search keeps all
    script = (s.site_dir / 'search/search_index.js').read_text()  # what a page opened from disk searches
    assert json.loads(script.removeprefix('var __index = '))['docs'] == docs


PNG = (
    'iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=='
)  # (one pixel)


def test_notebook_pages_give_plots_an_alt_text_one_h1_and_their_run_in_the_title(workspace):
    """Review AI: the site's notebook plots had nbconvert's "No description has been provided for this image", a model
    card stage page had three H1s (the stage's, the card's, the datasheet's), and every run's page of a stage had one
    title ("Stage 6: model card") whatever the run."""
    from lifecycle.core.manifest import RunManifest
    from lifecycle.core.workspace import Workspace
    from lifecycle.app import site

    s = Workspace.open(workspace)
    nb = nbformat.v4.new_notebook(
        cells=[
            nbformat.v4.new_markdown_cell('# Stage 6: model card\n\nThe card of the registered version.'),
            nbformat.v4.new_code_cell(
                "display(Markdown(card))\nsns.histplot(x='age').set(title='age at arrest')",
                outputs=[
                    nbformat.v4.new_output('display_data', {'text/markdown': '# Model card: m v1\n\n## Model details'}),
                    nbformat.v4.new_output('display_data', {'image/png': PNG, 'text/plain': '<Figure size 6x4>'}),
                ],
            ),
        ]
    )
    for run_id in ('r1', 'r2'):
        m = RunManifest.create(s.runs_dir, run_id, mode='pipeline')
        nbformat.write(nb, m.run_dir / '06_model_card.ipynb')
        m.update_stage('model_card', status='ok', notebook='06_model_card.ipynb', duration=0.5)
        m.data.update(status='ok', started=f'2026-01-0{run_id[1]}T00:00:00+00:00')
        m.save()
    site.render_site(s, 'mkdocs')
    titles = set()
    for run_id in ('r1', 'r2'):
        text = (s.site_dir / f'runs/{run_id}/06_model_card.html').read_text()
        assert 'No description has been provided' not in text
        assert 'alt="Plot: age at arrest (section “Model details”)"' in text
        assert len(re.findall(r'<h1\b', text)) == 1 and 'Model card: m v1' in text  # (nested, not dropped)
        title = re.search(r'<title>(.*?)</title>', text).group(1)
        assert run_id in title, title
        titles.add(title)
    assert len(titles) == 2


def test_a_removed_run_leaves_the_site_and_its_search_on_the_next_incremental_render(workspace, tmp_path):
    "Moving a run's folder away and rendering again removes its pages, their search entries and its folder."
    from lifecycle.core.workspace import Workspace
    from lifecycle.app import site

    s = Workspace.open(workspace)
    add_run(s, 'r1', '2026-01-01T00:00:00+00:00')
    add_run(s, 'r2', '2026-01-02T00:00:00+00:00')
    site.render_site(s, 'mkdocs')
    assert (s.site_dir / 'runs/r1/01_ingest.html').is_file() and (s.site_dir / 'runs/r1/index.html').is_file()
    kept = (s.site_dir / 'runs/r2/01_ingest.html').stat().st_mtime_ns
    shutil.move(s.runs_dir / 'r1', tmp_path / 'r1')
    site.render_site(s, 'mkdocs')
    assert not (s.site_dir / 'runs/r1').exists()  # its pages, then its emptied folder
    assert (s.site_dir / 'runs/r2/01_ingest.html').stat().st_mtime_ns == kept  # still incremental
    docs = json.loads((s.site_dir / 'search/search_index.json').read_text())['docs']
    located = {d['location'].split('#')[0] for d in docs}
    assert 'runs/r2/01_ingest.html' in located and not {x for x in located if x.startswith('runs/r1/')}
    script = (s.site_dir / 'search/search_index.js').read_text()
    assert 'runs/r1/' not in script and 'runs/r2/01_ingest.html' in script
    assert 'r1/index.html' not in (s.site_dir / 'runs/index.html').read_text()


def test_the_landing_page_says_who_serves_where():
    from lifecycle.app import site
    from lifecycle.app.site import landing_page

    version = dict(
        created=0, aliases=[], trained_by='alice', metrics={}, signed=True, lineage={}, governance_report=None,
        validation_passed=True, validation_id='v',
        gates=[dict(gate='roc_auc', value=0.7, limit='>= 0.6', verdict='pass')],
    )  # fmt: skip
    approvals = [dict(step='staging', approver='bob', time='t', reason='ok', evidence={})]
    facts = dict(
        models=[
            dict(
                name='m',
                aliases={'dev': '1', 'staging': '2'},
                environments=['dev', 'staging', 'production'],
                versions=[
                    dict(version='1', approvals=[], **version),
                    dict(version='2', approvals=approvals, **version),
                ],
            )
        ],
        flags=dict(model_name='m', control='1', challenger='2', safe='1', percentage=10, kill=False, shadow=True),
        rollout={'status': 'running', 'share': 10, 'started': 1_796_000_000.0},
        runs=[],
    )
    text = landing_page(facts).text
    assert '| running | 10 | 2026-11-30T' in text and '1.796e+09' not in text  # its times as dates
    history = [dict(time=1_796_000_000.0, action='start', percentage=5.0, actor='ops', reason='canary')]
    deliver = site.deliver_pages(dict(rollout={**facts['rollout'], 'history': history}))[0].text
    assert '| 2026-11-30T00:53:20Z | start | 5% | ops | canary |' in deliver and '1.796e+09' not in deliver
    assert 'Champion (the `dev` alias): **version 1** (1/1 passed, signed)' in text
    rows = {line.split('|')[1].strip(): line for line in text.splitlines() if line.startswith('| ')}
    assert 'control (90% of keys), kill-switch target' in rows['dev']
    assert 'challenger (10% of keys, shadow)' in rows['staging'] and 'staging by bob' in rows['staging']
    assert 'not set' in rows['production'] and '| running | 10 |' in text
    facts['flags'].update(kill=True)
    rows = {line.split('|')[1].strip(): line for line in landing_page(facts).text.splitlines() if line.startswith('| ')}
    assert 'kill switch on' in rows['dev'] and 'killed' in rows['staging']


@pytest.mark.slow  # a full MkDocs build
def test_a_corrupt_executed_notebook_is_named_and_its_page_says_so_while_the_others_render(workspace):
    """Papermill writes an executed notebook in place, so a run killed meanwhile leaves it cut short; that one file
    stopped every later `lifecycle site` and made `lifecycle run` fail after its stages went through (found by
    review). It is named in a warning, its page says it could not be read, and the site renders."""
    from lifecycle.core.workspace import Workspace

    s = Workspace.open(workspace)
    add_run(s, 'r1', '2026-01-01T00:00:00+00:00')
    (s.runs_dir / 'r1/01_ingest.ipynb').write_text('{"cells": [')
    for _ in range(2):  # (said at every render, the page kept as it is at the second)
        r = cli(workspace, 'site')
        assert r.returncode == 0 and 'Traceback' not in r.stderr, r.stderr
        assert 'runs/r1/01_ingest.ipynb: its executed notebook could not be read' in ' '.join(r.stderr.split())
    assert (workspace / 'reports/site/index.html').exists()
    page = next((workspace / 'reports/site').rglob('01_ingest*/index.html'), None) or next(
        p for p in (workspace / 'reports/site').rglob('*.html') if '01_ingest' in str(p)
    )
    text = page.read_text()
    assert 'This executed notebook could not be read' in text and str(workspace) not in text  # (no machine's folder)


@pytest.mark.slow  # a full MkDocs build
def test_site_command_on_an_empty_workspace(workspace):
    r = cli(workspace, 'site')
    assert r.returncode == 0 and 'mkdocs' in r.stdout, r.stderr
    r, out = cli_json(workspace, 'site')  # (review AX: no --json, where every other reporting command has one)
    assert r.returncode == 0 and out == {'ok': True, 'index': str(workspace / 'reports/site/index.html'),
                                         'renderer': 'mkdocs'}, out  # fmt: skip
    assert 'No runs yet' in (workspace / 'reports/site/runs/index.html').read_text()
    assert 'No registered model yet' in (workspace / 'reports/site/index.html').read_text()


def log_window(ws, rng, t0: float, start: int, n: int, shift: float = 0.0, flip: bool = False) -> None:
    "Log n one-row requests of version 1 (ages shifted by `shift`) and their feedback (labels flipped if `flip`)."
    from lifecycle.serve.predlog import PredictionLog, add_feedback, default_url

    log, truth = PredictionLog(default_url(ws)), {}
    for i in range(start, start + n):
        s = float(rng.uniform())
        log.log(
            request_id=f'r{i}',
            ts=t0 + i,
            route='predict',
            variant='control',
            model_version='1',
            inputs={'age': [round(float(rng.normal(30 + shift, 8)), 1)], 'employed': [str(rng.choice(['Yes', 'No']))]},
            output=[s],
            decision=[int(s >= 0.5)],
            threshold=0.5,
            latency_ms=2.0,
            status=200,
        )
        truth[f'r{i}'] = 'Yes' if (rng.uniform() < s) != flip else 'No'
    assert log.flush()
    for rid, outcome in truth.items():
        add_feedback(log, rid, outcome)
    log.close()


@pytest.mark.slow  # five MkDocs builds of the site (1.5 CPU s)
def test_the_landing_page_shows_monitoring_health_and_open_alerts_and_rerenders_on_a_new_alert(workspace):
    "Monitor state written by the monitor itself (no server): never monitored, ok, alerting with counts, closed."
    import time
    import numpy as np
    import pandas as pd
    from conftest import set_yaml
    from lifecycle.app import site
    from lifecycle.core.workspace import Workspace
    from lifecycle.data import drift
    from lifecycle.operate.monitor import beat, run_once
    from lifecycle.operate.schema import load_monitor_params
    from lifecycle.operate.windows import Baseline

    set_yaml(workspace / 'params' / 'monitor.yaml', window={'rows': 200, 'seconds': None})
    ws = Workspace.open(workspace)
    mp = load_monitor_params(ws.params_dir)
    model = dict(
        name='m', aliases={'production': '1', 'staging': '2'}, environments=['production'], serving_alias='production',
        versions=[dict(version=v, approvals=[], gates=[], signed=True) for v in ('1', '2')],
    )  # fmt: skip

    def landing() -> tuple[str, dict[str, str]]:
        "The landing page of the workspace's facts with model m registered: its table rows by their first cell."
        text = site.landing_page(dict(site.site_facts(ws), models=[model])).text
        return text, {r.split(' | ')[0].strip('| '): r for r in text.splitlines() if r.startswith('| ')}

    V1, V2 = '[version 1](models/m/v1.md)', '[version 2](models/m/v2.md)'
    text, rows = landing()
    assert 'The monitor has never run here' in text and rows['production'].endswith('| never monitored |')
    assert '| never monitored | 0 | 0 | 0 | 0 |' in rows[V1] and 'never monitored' in rows[V2]

    rng = np.random.default_rng(3)
    n = 3000
    prof = drift.profile(pd.DataFrame({'age': rng.normal(30, 8, n).round(1), 'employed': rng.choice(['Yes', 'No'], n)}))
    s = rng.uniform(size=n)
    base = {'1': Baseline.from_holdout(prof, s, (rng.uniform(size=n) < s).astype(int))}
    t0 = time.time() - 1000
    log_window(ws, rng, t0, 0, 200)  # a window as trained
    assert run_once(ws, mp, baselines=base, sample=False).alerts == []
    text, rows = landing()
    assert rows['production'].endswith('| ok |') and 'Watchers: monitor alive.' in text
    assert '| production, flags' not in text and '| production | control |' in rows[V1]
    assert rows[V1].endswith('| ok | 0 | 0 | 0 | 0 |')
    assert rows[V2].endswith('| staging | — | — | never monitored | 0 | 0 | 0 | 0 |')

    index = site.render_site(ws, 'mkdocs')
    runs = ws.site_dir / 'runs/index.html'
    times = {p: p.stat().st_mtime_ns for p in (index, runs)}
    assert site.render_site(ws, 'mkdocs') == index and {p: p.stat().st_mtime_ns for p in times} == times
    assert run_once(ws, mp, baselines=base, sample=False).alerts == []  # another look, nothing new
    site.render_site(ws, 'mkdocs')
    assert {p: p.stat().st_mtime_ns for p in times} == times  # nothing changed: nothing rendered

    log_window(ws, rng, t0, 200, 200, shift=15, flip=True)  # inputs shift, labels flip
    raised = run_once(ws, mp, baselines=base, sample=False).alerts
    assert {(a['rule'], a['severity']) for a in raised} == {('input_drift', 'high'), ('accuracy_drop', 'critical')}
    text, rows = landing()
    assert rows['production'].endswith('| alerting (1 critical, 1 high open) |')
    assert rows[V1].endswith('| alerting | 0 | 0 | 1 | 1 |')
    latest = {r.split(' | ')[3]: r for r in text.splitlines() if '| control |' in r and r.endswith('| open |')}
    assert (
        set(latest) == {'input_drift', 'accuracy_drop'} and '| drift_psi_max | high | open |' in latest['input_drift']
    )
    assert not any(str(round(a['value'], 4)) in text for a in raised)  # the rule, metric, severity and time only

    site.render_site(ws, 'mkdocs')  # the new alerts re-render the landing page, and only it
    assert index.stat().st_mtime_ns != times[index] and runs.stat().st_mtime_ns == times[runs]
    html = index.read_text()
    assert 'alerting' in html and 'accuracy_drop' in html and 'Monitoring health' in html

    log_window(ws, rng, t0, 400, 200)  # back to normal: the alerts close
    assert run_once(ws, mp, baselines=base, sample=False).alerts == []
    text, rows = landing()
    assert rows[V1].endswith('| ok | 0 | 0 | 0 | 0 |')
    assert sum(r.endswith('| closed |') for r in text.splitlines()) == 2

    ws.audit('alert', 'flags_tampered', 'flags.json does not verify', actor='server')  # as the server raises it
    assert [a['rule'] for a in run_once(ws, mp, baselines=base, sample=False).alerts] == ['flags_tampered']
    text, rows = landing()
    assert '## Alerts of the server, the rollout guard, the prediction log and the watchers' in text
    assert rows['server'].startswith('| server | flags_tampered | alerting | 0 | 0 | 0 | 1 |')
    assert rows[V1].endswith('| ok | 0 | 0 | 0 | 0 |')  # not a model version's alert

    before = index.stat().st_mtime_ns
    beat(ws.state_dir, 'monitor', now=time.time() - 10 * mp.heartbeat_max_age_s)  # the monitor died
    site.render_site(ws, 'mkdocs')
    assert index.stat().st_mtime_ns != before and 'stale heartbeat' in index.read_text()


def test_a_wrong_monitor_yaml_is_said_on_the_landing_page_and_the_site_still_renders(workspace):
    from conftest import set_yaml
    from lifecycle.app import site
    from lifecycle.core.workspace import Workspace
    from lifecycle.operate.heartbeats import beat

    ws = Workspace.open(workspace)
    beat(ws.state_dir, 'monitor')
    set_yaml(workspace / 'params' / 'monitor.yaml', heartbeat_max_age_s=0)
    index = site.render_site(ws, 'mkdocs')
    text = index.read_text()
    assert 'Monitoring health cannot be read: params/monitor.yaml: key' in text and 'heartbeat_max_age_s' in text
    assert str(workspace) not in text  # the published page names the file relative to the workspace
    set_yaml(workspace / 'params' / 'monitor.yaml', heartbeat_max_age_s=300)
    site.render_site(ws, 'mkdocs')  # the file mended: the page says so without any other change
    assert 'cannot be read' not in index.read_text() and 'No registered model yet' in index.read_text()


def test_drift_reports_bring_the_shared_evidently_scripts_they_link_to(tmp_path):
    from lifecycle.app.site import batches_page

    ingest = tmp_path / 'reports/ingest'
    (ingest / '_evidently').mkdir(parents=True)
    (ingest / '_evidently/evidently-0.7.js').write_text('lib')
    (ingest / '_evidently/evidently-0.7-icons.woff2').write_bytes(b'font')
    reports = []
    for ds, b in (('arrests', 'b1'), ('arrests', 'b2'), ('loans', 'b3')):
        (ingest / ds).mkdir(exist_ok=True)
        (ingest / ds / f'{b}-drift.html').write_text('<script src="../_evidently/evidently-0.7.js"></script>')
        reports.append(dict(batch_id=b, dataset=ds, drift_report=ingest / ds / f'{b}-drift.html'))
    _, assets = batches_page({'batches': [*reports, dict(batch_id='b4', dataset='loans', drift_report=None)]})
    rels = [rel for rel, _ in assets]
    assert rels == [
        'batches/arrests/b1-drift.html',
        'batches/arrests/b2-drift.html',
        'batches/loans/b3-drift.html',
        'batches/_evidently/evidently-0.7-icons.woff2',
        'batches/_evidently/evidently-0.7.js',
    ]  # once each, at the relative path the pages link to


def test_retraining_records_are_pages_and_rerender_only_when_a_record_changes(workspace):
    from lifecycle.core.workspace import Workspace
    from lifecycle.app import site
    from lifecycle.loop import iteration, triggers

    s = Workspace.open(workspace)
    verdict = triggers.TriggerResult(
        True,
        1.7e9,
        [
            triggers.TriggerHit('new_labels', True, '412 labelled rows (min_rows 300)', dict(rows=412, min_rows=300)),
            triggers.TriggerHit('schedule', False, 'champion 2 h old (every_s 86400)'),
        ],
    )
    it = dict(
        id='20260101T000000-abc123',
        status='promoted',
        started=1.7e9,
        finished=1.7e9 + 600,
        trigger=verdict.to_dict(),
        champion=dict(version='1', dataset_version='ds1', feature_set_version='fs1', leaked='RAW-SECRET-9'),
        data=dict(mode='append', new_rows=412, datasets_in=['ds1', 'ds2'], training_rows=1412, sample=['RAW-ROW-7']),
        changes=dict(params=dict(max_depth=dict(champion='3', challenger='5')), code={}),
        metrics=dict(before=dict(accuracy=0.81), after=dict(accuracy=0.84), on='champion holdout'),
        validation=dict(
            gates=[
                dict(
                    gate='accuracy vs champion',
                    value=0.84,
                    limit='-0.01',
                    verdict='pass',
                    note='advantage +0.0300, 95% interval [+0.0100, +0.0500] on 200 holdout rows',
                )
            ]
        ),
        registration=dict(model_name='m', model_version='2'),
        shadow=dict(
            version='2',
            started=1.7e9 + 60,
            verdict=dict(verdict='pass', pairs=320, difference=0.02, interval=[0.001, 0.04], reason='no worse'),
        ),
        canary=dict(rollout_id='ro-1', steps=[10, 50, 100], status='completed', percentage=100),
        decision=dict(
            outcome='promoted', reason='v2 passed every gate', at='canary', by='alice', champion='2', ts=1.7e9 + 600
        ),
        authorised=dict(
            loop_actor='alice',
            guard='guard',
            environment='production',
            policy_needs=['approve'],
            approvals=[dict(step='approve', approver='bob', role='owner', time='t', reason='looks good')],
        ),
        history=[dict(ts=1.7e9, status='triggered', note=verdict.summary())],
        artifacts=dict(record='x.json', model_version='m v2'),
        interruptions=[dict(pid=4242, at='shadow', resumed=1.7e9 + 300, note='killed or crashed; resumed')],
    )
    iteration.save(s.state_dir, it)
    site.render_site(s, 'mkdocs')
    listing = (s.site_dir / 'retrain/index.html').read_text()
    assert '20260101T000000-abc123.html' in listing and 'new_labels' in listing and 'promoted' in listing
    page = s.site_dir / 'retrain/20260101T000000-abc123.html'
    text = page.read_text()
    for shown in (
        '412 labelled rows',
        'ds2',
        'max_depth',
        '0.84',
        '[+0.0100, +0.0500]',
        '[+0.0010, +0.0400]',
        'ro-1',
        'v2 passed every gate',
        'bob',
        'looks good',
        'v1 → v2',
        'm v2',
        'Interrupted passes',
        '4242',
    ):
        assert shown in text, shown
    assert 'RAW-SECRET-9' not in text and 'RAW-ROW-7' not in text  # only the record's known fields reach a page
    pages = yaml.safe_load((s.reports_dir / 'site-src/pages/_quarto.yml').read_text())['project']['render']
    assert {'retrain/index.md', 'retrain/20260101T000000-abc123.md'} <= set(pages)
    times = {p: p.stat().st_mtime_ns for p in (page, s.site_dir / 'retrain/index.html', s.site_dir / 'index.html')}
    site.render_site(s, 'mkdocs')
    assert {p: p.stat().st_mtime_ns for p in times} == times  # nothing changed: nothing rendered
    it2 = dict(
        it,
        id='20260102T000000-def456',
        status='shadow',
        started=1.7e9 + 86400,
        finished=None,
        decision=None,
        authorised=None,
        canary=None,
    )
    iteration.save(s.state_dir, it2)
    site.render_site(s, 'mkdocs')
    assert page.stat().st_mtime_ns == times[page]  # the unchanged record's page was not rendered again
    listing = (s.site_dir / 'retrain/index.html').read_text()
    assert listing.index('def456') < listing.index('abc123')  # newest first
    assert 'Not decided yet' in (s.site_dir / 'retrain/20260102T000000-def456.html').read_text()
    iteration.save(s.state_dir, dict(it2, status='reverted', decision=dict(outcome='reverted', reason='shadow: worse')))
    site.render_site(s, 'mkdocs')
    assert 'shadow: worse' in (s.site_dir / 'retrain/20260102T000000-def456.html').read_text()
    (iteration.iterations_dir(s.state_dir) / 'broken.json').write_text('{')
    with pytest.raises(site.SiteError, match=r'broken\.json: not a readable retraining record'):
        site.render_site(s, 'mkdocs')
    (iteration.iterations_dir(s.state_dir) / 'broken.json').write_text(json.dumps(dict(it2, started='soon')))
    with pytest.raises(site.SiteError, match=r'broken\.json: .*keys missing or of the wrong kind: started'):
        site.render_site(s, 'mkdocs')  # whole JSON, a value of the wrong kind: named, not a TypeError
    with pytest.raises(iteration.RetrainError, match=r'broken\.json: not a readable retraining record \(keys'):
        iteration.history(s.state_dir)  # (what retrain run, status and history read)


@pytest.mark.slow  # four MkDocs builds of the site (1.0 CPU s)
def test_a_render_with_no_notebook_page_to_render_skips_mkdocs_jupyter_and_links_as_a_full_render(workspace):
    from lifecycle.core.workspace import Workspace
    from lifecycle.app import site

    s = Workspace.open(workspace)
    add_run(s, 'r1', '2026-01-01T00:00:00+00:00')
    site.render_site(s, 'mkdocs')
    light, real = [], site._build_light

    def site_light(src, dst):
        light.append(real(src, dst))
        return light[-1]

    add_run(s, 'r2', '2026-01-02T00:00:00+00:00', cached_from='r1')  # a run whose stage came from the cache
    import unittest.mock as mock

    with mock.patch.object(site, '_build_light', site_light):
        site.render_site(s, 'mkdocs')
    assert light == [True]  # rendered without mkdocs-jupyter
    pages = {p: (s.site_dir / p).read_text() for p in ('runs/r2/index.html', 'runs/index.html', 'index.html')}
    assert 'href="../r1/01_ingest.html"' in pages['runs/r2/index.html']
    shutil.rmtree(s.site_dir)  # a deleted site: rendered again, whole, with mkdocs-jupyter
    site.render_site(s, 'mkdocs')
    assert {p: (s.site_dir / p).read_text() for p in pages} == pages  # the light render gave the same pages
    (s.site_dir / 'runs/r1/01_ingest.html').unlink()  # a damaged site: the notebook page is missing
    add_run(s, 'r3', '2026-01-03T00:00:00+00:00', cached_from='r1')
    with mock.patch.object(site, '_build_light', site_light):
        site.render_site(s, 'mkdocs')
    assert light == [True, False]  # the light build stopped before writing; mkdocs-jupyter rendered the page
    page = (s.site_dir / 'runs/r1/01_ingest.html').read_text()
    assert (
        '42' in page
        and 'cdnjs' not in page
        and 'href="../r1/01_ingest.html"' in (s.site_dir / 'runs/r3/index.html').read_text()
    )


def _models_counted(s, monkeypatch) -> tuple:
    """Workspace `s`'s tracking store (SQLite in its state folder) as a file of made-up bytes, and the site's reads of
    the models' facts counted, each giving one model with no version: (the database file, the list of reads)."""
    from lifecycle.app import site

    db = s.state_dir / 'mlflow.db'  # the default tracking store: SQLite in the state folder
    assert s.tracking_uri == f'sqlite:///{db}'
    db.parent.mkdir(parents=True, exist_ok=True)
    db.write_bytes(b'registry v1')
    reads = []

    def models(ws):
        reads.append(1)
        return [dict(name='m', aliases={}, environments=(), serving_alias='dev', versions=[])]

    monkeypatch.setattr(site, '_models', models)
    return db, reads


def test_the_models_facts_are_read_again_only_when_what_they_are_read_from_changed(workspace, monkeypatch):
    import dataclasses
    from lifecycle.core.workspace import Workspace
    from lifecycle.app import site

    s = Workspace.open(workspace)
    db, reads = _models_counted(s, monkeypatch)
    add_run(s, 'r1', '2026-01-01T00:00:00+00:00')
    site.render_site(s, 'mkdocs')
    add_run(s, 'r2', '2026-01-02T00:00:00+00:00', cached_from='r1')
    site.render_site(s, 'mkdocs')
    assert len(reads) == 1  # a new run re-renders the site, but the registry's files did not change
    assert 'r2/index.html' in (s.site_dir / 'runs/index.html').read_text()
    changes = [
        lambda: db.write_bytes(b'registry v2'),  # a promotion, a new version, a tag
        lambda: (s.params_dir / 'policy.yaml').write_text((s.params_dir / 'policy.yaml').read_text() + '\n'),
        lambda: (s.reports_dir / 'governance').mkdir() or (s.reports_dir / 'governance/m-1.md').write_text('# m'),
        lambda: (
            (s.store_dir / 'records/approvals').mkdir(parents=True)
            or (s.state_dir / 'store/records/approvals/a.json').write_text('{}')
        ),
    ]
    for i, change in enumerate(changes, 2):
        change()
        site.render_site(s, 'mkdocs')
        assert len(reads) == i, i
    site.render_site(s, 'mkdocs')
    assert len(reads) == len(changes) + 1  # nothing changed since: neither read nor rendered
    server = dataclasses.replace(s, tracking_uri='http://127.0.0.1:9')  # a tracking server can change unseen
    assert site._models_key(server) is None and site.input_fingerprint(server) != site.input_fingerprint(server)


def test_the_models_facts_are_read_again_when_the_evidence_an_approval_was_verified_against_changes(
    workspace, monkeypatch
):
    """A version page says whether each approval verifies, and promotion refuses one whose executed validation report
    or model card changed since it was signed, or whose A/B evidence a newer experiment report replaced. The models'
    facts were cached on the registry's files alone: with the model card edited after carol's sign-off, `promote`
    refused her approval while the site, rendered again, still said it verified (review GP)."""
    from lifecycle.core.workspace import Workspace
    from lifecycle.app import site

    s = Workspace.open(workspace)
    db, reads = _models_counted(s, monkeypatch)
    add_run(s, 'r1', '2026-01-01T00:00:00+00:00')
    site.render_site(s, 'mkdocs')
    assert len(reads) == 1
    card = s.runs_dir / 'r1' / '06_model_card.ipynb'  # the evidence an approver read, edited after the sign-off
    card.write_text(json.dumps(nbformat.v4.new_notebook()))
    site.render_site(s, 'mkdocs')
    assert len(reads) == 2
    card.write_text(card.read_text() + ' ')
    site.render_site(s, 'mkdocs')
    assert len(reads) == 3
    report = s.reports_dir / 'experiments' / '20260102T000000' / 'analysis.json'  # newer A/B evidence
    report.parent.mkdir(parents=True)
    report.write_text('{}')
    site.render_site(s, 'mkdocs')
    assert len(reads) == 4
    site.render_site(s, 'mkdocs')
    assert len(reads) == 4  # nothing changed since: not read again


def _with_inline_report(nb_path, report) -> None:
    """Append to the notebook at `nb_path` a cell whose output is an inline Evidently report, in its iframe as Evidently
    displays one: `report`, its HTML, or an `EvidentlyBundle`, for a report embedding that bundle and nothing else."""
    import html

    if not isinstance(report, str):
        report = f'<html><body><div id="root_r"></div><script>{report.js}</script></body></html>'
    out = f'<iframe class="evidently-ui-iframe" srcdoc="{html.escape(report)}"></iframe>'
    nb = nbformat.read(nb_path, as_version=4)
    nb.cells.append(nbformat.v4.new_code_cell('display(HTML(report))', outputs=[
        nbformat.v4.new_output('display_data', {'text/html': out, 'text/plain': '<IPython.core.display.HTML>'})
    ]))  # fmt: skip
    nbformat.write(nb, nb_path)


def test_an_inline_evidently_report_links_the_sites_one_copy_of_the_bundle_and_the_prerender_still_matches(
    workspace, monkeypatch
):
    """A stage notebook's inline Evidently report embeds the 3.5 MB script bundle in its iframe; the site's page of it
    links one copy under assets/evidently instead (the evidence notebook keeps its own), and the page the stages'
    prerender converted is still the page the render writes."""
    import html
    from lifecycle.core.workspace import Workspace
    from lifecycle.app import site
    from mkdocs_jupyter import convert

    bundle = site.evidently_bundle()
    assert bundle is not None and len(bundle.js) > 1_000_000  # read from the installed Evidently, not imported
    inline = (
        "<html><head><style>@font-face {src: url(data:font/ttf;base64,aWNvbnM=);}</style></head><body>"
        f'<div id="root_r"></div><script>{bundle.js}</script>'
        '<script>window.drawDashboard(d, new Map(), "root_r");</script></body></html>'
    )
    s = Workspace.open(workspace)
    add_run(s, 'r1', '2026-01-01T00:00:00+00:00')
    nb_path = s.runs_dir / 'r1/01_ingest.ipynb'
    _with_inline_report(nb_path, inline)
    evidence = nb_path.read_bytes()
    pre = site.NotebookPrerender(s)
    pre.submit(nb_path)
    assert pre.wait() == 1
    calls, real = [], convert.nb2html
    monkeypatch.setattr(convert, 'nb2html', lambda *a, **k: calls.append(a) or real(*a, **k))
    site.render_site(s, 'mkdocs')
    assert calls == []  # the render found the page converted: the prerender linked the bundle the same way
    assert nb_path.read_bytes() == evidence  # the evidence keeps its report whole
    for folder in (s.reports_dir / 'site-src/pages', s.site_dir):
        assert [p.name for p in (folder / 'assets/evidently').iterdir()] == [bundle.name]
        assert (folder / 'assets/evidently' / bundle.name).read_text() == bundle.js
    source = nbformat.read(s.reports_dir / 'site-src/pages/runs/r1/01_ingest.ipynb', as_version=4)
    (linked,) = [o['data']['text/html'] for c in source.cells for o in c.get('outputs', []) if 'text/html' in o['data']]
    assert html.escape(bundle.js[:2000]) not in linked and len(linked) < 10_000
    assert html.escape(f'<script src="../../assets/evidently/{bundle.name}"></script>') in linked
    page = (s.site_dir / 'runs/r1/01_ingest.html').read_text()
    assert len(page) < 1_000_000  # (the bundle is 3.5 MB)
    srcdoc = html.unescape(page)  # (the renderer may quote the attribute its own way)
    assert bundle.js[:2000] not in srcdoc and f'<script src="../../assets/evidently/{bundle.name}"></script>' in srcdoc
    assert 'base64,aWNvbnM=' in page  # the icon font stays embedded (a font from another file is refused from disk)
    assert 'window.drawDashboard(d, new Map(), "root_r")' in srcdoc  # the rest of the report is kept


@pytest.mark.slow  # six MkDocs builds and Evidently's bundle (2.4 CPU s)
def test_the_sites_copy_of_the_evidently_bundle_comes_back_when_deleted_and_goes_when_no_page_links_it(workspace):
    """The bundle the pages link is one of the site's files: deleted by hand, the next render writes it again (in the
    pages folder and the site) though no page that links it changed; once no page links it, it goes from both."""
    from lifecycle.core.workspace import Workspace
    from lifecycle.app import site

    bundle = site.evidently_bundle()
    assert bundle is not None  # (Evidently is installed: its bundle is read from the package)
    s = Workspace.open(workspace)
    add_run(s, 'r1', '2026-01-01T00:00:00+00:00')
    nb_path = s.runs_dir / 'r1/01_ingest.ipynb'
    _with_inline_report(nb_path, bundle)
    site.render_site(s, 'mkdocs')
    rel = f'assets/evidently/{bundle.name}'
    copies = [s.reports_dir / 'site-src/pages' / rel, s.site_dir / rel]
    manifest = lambda: json.loads((s.reports_dir / 'site-src/manifest.json').read_text())  # noqa: E731
    assert all(c.read_text() == bundle.js for c in copies)
    assert manifest()['shared'] == ['runs/r1/01_ingest.ipynb'] and rel in manifest()['pages']
    for c in copies:
        c.unlink()
    add_run(s, 'r2', '2026-01-02T00:00:00+00:00')  # a change elsewhere: r1's page is not written again
    site.render_site(s, 'mkdocs')
    assert all(c.read_text() == bundle.js for c in copies)
    copies[0].write_text('cut short')  # a copy that is not the bundle (its size tells)
    add_run(s, 'r3', '2026-01-03T00:00:00+00:00')
    site.render_site(s, 'mkdocs')
    assert all(c.read_text() == bundle.js for c in copies)
    assert manifest()['shared'] == ['runs/r1/01_ingest.ipynb']
    nb = nbformat.read(nb_path, as_version=4)
    nb.cells.pop()  # r1's page no longer holds the report
    nbformat.write(nb, nb_path)
    site.render_site(s, 'mkdocs')
    assert not any(c.exists() for c in copies) and manifest()['shared'] == [] and rel not in manifest()['pages']
    _with_inline_report(s.runs_dir / 'r2/01_ingest.ipynb', bundle)
    site.render_site(s, 'mkdocs')
    assert all(c.read_text() == bundle.js for c in copies) and manifest()['shared'] == ['runs/r2/01_ingest.ipynb']
    shutil.rmtree(s.runs_dir / 'r2')  # the run, and the page that linked the bundle, gone
    site.render_site(s, 'mkdocs')
    assert not any(c.exists() for c in copies) and manifest()['shared'] == []


@pytest.mark.slow  # eight MkDocs builds and Evidently's bundle (2.0 CPU s)
def test_drift_reports_link_the_sites_one_copy_of_the_bundle_instead_of_bringing_their_own(workspace, monkeypatch):
    """The drift reports' own copy of Evidently's bundle is the one the notebook pages link: the site keeps one copy,
    under assets/evidently, and the reports link it; it stays while a report links it (no notebook page does here)
    and goes with the last one. A report's copy that is another bundle (an older Evidently's) is kept and linked, and
    so is theirs once Evidently is upgraded."""
    from lifecycle.core.workspace import Workspace
    from lifecycle.app import site

    bundle = site.evidently_bundle()
    assert bundle is not None
    s = Workspace.open(workspace)
    ingest = s.reports_dir / 'ingest'
    (ingest / '_evidently').mkdir(parents=True)
    (ingest / '_evidently/evidently-0.7.js').write_bytes(bundle.data[:-1])  # cut short: not the bundle (yet)
    (ingest / '_evidently/evidently-0.6.js').write_text('an older bundle')
    (ingest / '_evidently/evidently-0.7-icons.woff2').write_bytes(b'font')
    (ingest / 'arrests').mkdir()
    for b, lib in (('b1', 'evidently-0.7.js'), ('b2', 'evidently-0.6.js'), ('b3', 'evidently-0.7.js')):
        (ingest / f'arrests/{b}-drift.html').write_text(
            f'<script src="../_evidently/{lib}"></script><style>src: url(../_evidently/evidently-0.7-icons.woff2)'
        )
    batches = [dict(batch_id=b, dataset='arrests', status='accepted', rows=10) for b in ('b1', 'b2', 'b3')]
    s.ingest_dir.mkdir(parents=True, exist_ok=True)
    (s.ingest_dir / 'batches.jsonl').write_text(''.join(json.dumps(b) + '\n' for b in batches))
    add_run(s, 'r1', '2026-01-01T00:00:00+00:00')  # (its ingest page holds no report)
    site.render_site(s, 'mkdocs')
    pages = s.reports_dir / 'site-src/pages'
    manifest = lambda: json.loads((s.reports_dir / 'site-src/manifest.json').read_text())  # noqa: E731
    assert (s.site_dir / 'batches/arrests/b1-drift.html').read_text().startswith('<script src="../_evidently/')
    assert (s.site_dir / 'batches/_evidently/evidently-0.7.js').is_file() and manifest()['shared'] == []
    (ingest / '_evidently/evidently-0.7.js').write_bytes(bundle.data)  # mended (as the next drift report would)
    site.render_site(s, 'mkdocs')
    linked = f'<script src="../../assets/evidently/{bundle.name}"></script>'
    for root in (pages, s.site_dir):
        for b in ('b1', 'b3'):
            text = (root / f'batches/arrests/{b}-drift.html').read_text()
            assert text.startswith(linked) and 'url(../_evidently/evidently-0.7-icons.woff2)' in text
        assert (
            (root / 'batches/arrests/b2-drift.html').read_text().startswith('<script src="../_evidently/evidently-0.6')
        )
        assert sorted(f.name for f in (root / 'batches/_evidently').iterdir()) == [
            'evidently-0.6.js',
            'evidently-0.7-icons.woff2',
        ]  # no second copy of the bundle
        assert (root / 'assets/evidently' / bundle.name).read_bytes() == bundle.data
    assert manifest()['shared'] == ['batches/arrests/b1-drift.html', 'batches/arrests/b3-drift.html']
    with monkeypatch.context() as m:
        new = site.EvidentlyBundle(bundle.js + '\n// another version')
        m.setattr(site, 'evidently_bundle', lambda: new)  # another Evidently, whose reports' copy has the same name
        (ingest / '_evidently/evidently-0.7.js').write_bytes(new.data)
        site.render_site(s, 'mkdocs')
        assert (
            (s.site_dir / 'batches/arrests/b1-drift.html').read_text().startswith(linked.replace(bundle.name, new.name))
        )
        assert (s.site_dir / 'assets/evidently' / new.name).read_bytes() == new.data
        assert not (s.site_dir / 'assets/evidently' / bundle.name).exists()
        assert not (s.site_dir / 'batches/_evidently/evidently-0.7.js').exists()
        (ingest / '_evidently/evidently-0.7.js').write_bytes(bundle.data)  # the reports' copy no longer its bundle
        site.render_site(s, 'mkdocs')
        assert (s.site_dir / 'batches/arrests/b1-drift.html').read_text().startswith('<script src="../_evidently/')
        assert (s.site_dir / 'batches/_evidently/evidently-0.7.js').read_bytes() == bundle.data
        assert manifest()['shared'] == [] and not list((s.site_dir / 'assets/evidently').glob('*.js'))
        m.setattr(site, 'evidently_bundle', lambda: None)  # no Evidently: the reports as they are, with their copy
        add_run(s, 'r2', '2026-01-02T00:00:00+00:00')  # (a render is due)
        site.render_site(s, 'mkdocs')
        assert (s.site_dir / 'batches/arrests/b1-drift.html').read_text().startswith('<script src="../_evidently/')
        assert (s.site_dir / 'batches/_evidently/evidently-0.7.js').read_bytes() == bundle.data
        assert manifest()['shared'] == []
    add_run(s, 'r3', '2026-01-03T00:00:00+00:00')
    site.render_site(s, 'mkdocs')  # back to this Evidently
    assert manifest()['shared'] == ['batches/arrests/b1-drift.html', 'batches/arrests/b3-drift.html']
    assert not (s.site_dir / 'batches/_evidently/evidently-0.7.js').exists()
    (ingest / 'arrests/b1-drift.html').unlink()
    site.render_site(s, 'mkdocs')
    assert (s.site_dir / 'assets/evidently' / bundle.name).is_file()  # b3's report still links it
    assert manifest()['shared'] == ['batches/arrests/b3-drift.html']
    (ingest / 'arrests/b3-drift.html').unlink()
    site.render_site(s, 'mkdocs')
    assert not (pages / 'assets/evidently' / bundle.name).exists()
    assert not (s.site_dir / 'assets/evidently' / bundle.name).exists() and manifest()['shared'] == []
    assert (s.site_dir / 'batches/arrests/b2-drift.html').is_file()


@pytest.mark.slow  # MkDocs builds and every page redone for another Evidently (1.5 CPU s)
def test_another_evidently_redoes_the_pages_so_none_links_a_bundle_the_site_no_longer_has(workspace, monkeypatch):
    """Evidently upgraded (another bundle, under another name): the pages are redone against it, so that no page links
    the old bundle, which goes."""
    from lifecycle.core.workspace import Workspace
    from lifecycle.app import site

    old = site.evidently_bundle()
    assert old is not None
    s = Workspace.open(workspace)
    add_run(s, 'r1', '2026-01-01T00:00:00+00:00')
    _with_inline_report(s.runs_dir / 'r1/01_ingest.ipynb', old)
    site.render_site(s, 'mkdocs')
    pages, page = s.reports_dir / 'site-src/pages', s.reports_dir / 'site-src/pages/runs/r1/01_ingest.ipynb'
    assert old.name in page.read_text() and (pages / 'assets/evidently' / old.name).is_file()
    new = site.EvidentlyBundle(old.js + '\n// another version')
    monkeypatch.setattr(site, 'evidently_bundle', lambda: new)
    add_run(s, 'r2', '2026-01-02T00:00:00+00:00')  # (a render is due)
    site.render_site(s, 'mkdocs')
    assert old.name not in page.read_text() and not (pages / 'assets/evidently' / old.name).exists()
    assert not (s.site_dir / 'assets/evidently' / old.name).exists()
    assert page.stat().st_size > len(old.js)  # the report embeds what the new bundle is not: kept whole


def test_notebooks_converted_while_the_stages_run_are_what_the_render_would_convert(workspace, monkeypatch):
    from lifecycle.core.workspace import Workspace
    from lifecycle.app import site
    from mkdocs_jupyter import convert

    s = Workspace.open(workspace)
    add_run(s, 'r1', '2026-01-01T00:00:00+00:00')
    pre = site.NotebookPrerender(s)
    pre.submit(s.runs_dir / 'r1/01_ingest.ipynb')
    pre.submit(s.runs_dir / 'r1/missing.ipynb')  # a notebook it cannot read is left to the render
    assert pre.wait() == 1
    calls, real = [], convert.nb2html
    monkeypatch.setattr(convert, 'nb2html', lambda *a, **k: calls.append(a) or real(*a, **k))
    site.render_site(s, 'mkdocs')
    assert calls == []  # the render found the page converted
    page = (s.site_dir / 'runs/r1/01_ingest.html').read_text()
    assert '42' in page and 'alpha = 2' not in page
    shutil.rmtree(s.site_dir)
    shutil.rmtree(s.reports_dir / 'site-src')
    site.render_site(s, 'mkdocs')
    assert len(calls) == 1 and (s.site_dir / 'runs/r1/01_ingest.html').read_text() == page  # the same page


def test_the_site_says_a_run_killed_outright_was_interrupted_as_status_does(workspace):
    """A run killed by SIGKILL could not record its end: `lifecycle status` said interrupted, the site's runs page said
    running, forever (review L)."""
    from lifecycle.app.site import _runs
    from lifecycle.app.status import dead_runs
    from lifecycle.core.manifest import RunManifest
    from lifecycle.core.workspace import Workspace

    s = Workspace.open(workspace)
    m = RunManifest.create(s.runs_dir, run_id='20261205T000000Z-dead00', mode='pipeline')
    m.update_stage('ingest', status='ok', notebook='01_ingest.ipynb')
    m.update_stage('features', status='running', notebook='02_features.ipynb')
    [run] = _runs(s)
    assert run['status'] == 'interrupted' and run['stages']['features']['status'] == 'interrupted', run
    assert run['stages']['ingest']['status'] == 'ok' and dead_runs(s, [run | {'status': 'running'}]) == {run['run_id']}


def test_values_reaching_a_page_are_shown_as_text_not_rendered_as_links_or_html():
    """A model name, a trainer, an approver and an approval's reason come from whoever runs a command; on the site they
    were Markdown (a reason `[details](javascript:...)` became a live link) or raw HTML (a model named `<img onerror>`
    ran its script in every reader's browser)."""
    import markdown

    from lifecycle.app.site import landing_page, md_table, models_page, version_page

    link, tag = '[details](javascript:alert(1))', '<img src=x onerror=alert(1)>'
    v = dict(
        version='1',
        lineage={},
        created=0,
        gates=[],
        signed=True,
        trained_by=link,
        approvals=[dict(step='dev', approver=tag, time='t', reason=link, verified=True)],
        governance_report=None,
    )
    model = dict(name=f'm{tag}', aliases={'dev': '1'}, environments=['dev'], versions=[v])
    facts = dict(models=[model], flags=None, rollout=None)
    pages = [version_page(model, v, {}).text, landing_page(facts).text, models_page(facts).text]
    pages.append(md_table([dict(column=link)], ['column']))
    for text in pages:  # (the front matter as MkDocs leaves it out)
        body = text.split('\n---\n', 1)[1] if text.startswith('---') else text
        out = markdown.markdown(body, extensions=['tables', 'attr_list', 'md_in_html'])
        assert '<a href="javascript' not in out and '<img' not in out, out
    out = markdown.markdown(pages[0].split('\n---\n', 1)[1], extensions=['tables'])
    assert 'trained by [details](javascript:alert(1))' in out and '&lt;img src=x onerror=alert(1)&gt;' in out
    title = yaml.safe_load(pages[0].split('---')[1])['title']  # (Material writes it into the page unescaped)
    assert title == 'm&lt;img src=x onerror=alert(1)&gt; version 1'


def test_a_governance_report_shown_on_a_version_page_renders_no_html_or_link_from_what_people_typed():
    """The version page shows the release's governance report as it was written; its approvals table and its trainer
    held an approver's name and reason as typed, so a reason `<img src=x onerror=...>` ran in every reader's browser
    and a trainer with a backtick closed its code span."""
    import markdown
    import pandas as pd

    from lifecycle.app.site import version_page
    from lifecycle.release.governance import governance_report_markdown

    tag = '<img src=x onerror=alert(1)>'
    facts = dict(model_name='m', model_version='1', lineage={'mlflow_run_id': f'r`{tag}`'}, trained_by=f'a` {tag} `')
    approvals = [dict(step='staging', approver=tag, role='r', time='t', reason='[x](javascript:alert(1))', signed=True)]
    results = pd.DataFrame([dict(rule='card', value=1, limit=1, verdict='pass', reason=tag)])
    report = governance_report_markdown(facts, results, approvals)
    v = dict(version='1', lineage={}, created=0, gates=[], signed=True, trained_by='a', approvals=[])
    page = version_page(dict(name='m', aliases={}), dict(v, governance_report=report), {}).text
    out = markdown.markdown(page.split('\n---\n', 1)[1], extensions=['tables', 'attr_list', 'md_in_html'])
    assert '<img' not in out and '<a href="javascript' not in out, out
    assert 'Trained by `alice`' in governance_report_markdown(dict(facts, trained_by='alice'), results, [])


def test_a_retraining_page_shows_its_decision_reason_and_trigger_as_text():
    """A retraining record's decision reason quotes a rollout's reason as someone typed it (`canary paused: ...`); the
    page wrote it, the trigger's summary and the waiting message as Markdown, so `<img onerror>` or a `javascript:`
    link in them acted in the reader's browser."""
    import markdown

    from lifecycle.app.site import iteration_page

    link, tag = '[x](javascript:alert(1))', '<img src=x onerror=alert(1)>'
    it = dict(id='20260101T000000-abc123', status=f'reverted{tag}', decision=dict(reason=f'canary paused: {link}'),
              trigger=dict(summary=tag, hits=[dict(name=link, fired=True, evidence={'a': 1})]))  # fmt: skip
    for it in (it, {**it, 'decision': None, 'waiting': {'message': link}}):
        out = markdown.markdown(iteration_page(it, None, {}).text, extensions=['tables', 'attr_list', 'md_in_html'])
        assert '<img' not in out and '<a href="javascript' not in out, out


def test_a_file_where_the_site_or_its_swap_folders_go_is_replaced_not_left_to_fail_every_render(workspace):
    """A full render builds into `reports/site.tmp` and swaps it in through `reports/site.old`; a file at one of those
    names (a `reports/site` replaced by a file becomes `site.old` at the swap) was left by `rmtree(ignore_errors)`, so
    the build or the swap failed with NotADirectoryError at every full render after."""
    from lifecycle.app import site
    from lifecycle.core.workspace import Workspace

    s = Workspace.open(workspace)
    reports = s.site_dir.parent
    reports.mkdir(parents=True, exist_ok=True)
    for name in ('site', 'site.tmp', 'site.old'):
        (reports / name).write_text('not a folder')
    assert site.render_site(s, 'mkdocs').is_file()
    assert sorted(p.name for p in reports.iterdir()) == ['site', 'site-src']


def test_a_link_to_a_models_page_cannot_be_closed_by_its_name():
    """A model name may hold `)` and `[` (the params allow any but a slash); the tables' links put it in the target as
    it was, so a model named `m)[z](javascript:alert(1)` closed the link to its version page and opened its own."""
    import markdown

    from lifecycle.app.site import landing_page, models_page

    name = 'm x)[z](javascript:alert(1)'
    v = dict(version='1', lineage={}, created=0, gates=[], signed=True, trained_by='a', approvals=[])
    facts = dict(models=[dict(name=name, aliases={'dev': '1'}, environments=['dev'], versions=[v])], flags=None)
    for page in (models_page(facts), landing_page(dict(facts, rollout=None))):
        out = markdown.markdown(page.text, extensions=['tables'])
        assert 'href="javascript' not in out and out.count('<a href=') == 1, out
        assert '%20x%29%5Bz%5D%28javascript%3Aalert%281%29/v1.md' in out  # (its own page, as MkDocs unquotes it)


def test_a_name_with_a_backtick_is_shown_as_typed_not_closing_a_code_span_into_html():
    """Review DT: a model name may hold a backtick (the params and MLflow allow it); the version page without a
    governance report wrote it inside a code span (`lifecycle govern check NAME V`), so a model named
    ``m`<img src=x onerror=alert(1)>`` closed the span and its tag ran; and a value with a backtick in a table cell
    opened a code span, which showed its escaped `<` as `&lt;` (escaped twice)."""
    import markdown

    from lifecycle.app.site import md_table, version_page

    tag = '<img src=x onerror=alert(1)>'
    v = dict(version='1', lineage={}, created=0, gates=[], signed=True, trained_by='a', approvals=[])
    page = version_page(dict(name=f'm`{tag}', aliases={}), dict(v, governance_report=None), {}).text
    out = markdown.markdown(page.split('\n---\n', 1)[1], extensions=['tables'])
    assert '<img' not in out and f'lifecycle govern check m`{tag.replace("<", "&lt;").replace(">", "&gt;")} 1' in out
    out = markdown.markdown(md_table([dict(reason='a `b<c` d')], ['reason']), extensions=['tables'])
    assert '<td>a `b&lt;c` d</td>' in out, out


def test_a_link_to_a_models_page_keeps_a_hash_in_its_name_as_part_of_the_path():
    """Review DT: the tables' link targets were percent-encoded all but `/` and `#`, so a model named `a#b` (the params
    and MLflow allow it) linked `models/a#b/v1.md`: the page `models/a`, fragment `b/v1.md`, a broken link."""
    from lifecycle.app.site import md_table

    out = md_table([dict(version='version 1')], ['version'], {'version': lambda r: 'models/a#b 50%/v1.md'})
    assert '(models/a%23b%2050%25/v1.md)' in out, out


def test_a_front_matter_title_with_a_character_beyond_the_bmp_is_read_by_mkdocs():
    """Review DT: the front-matter title was a JSON string, which writes 😀 as the surrogate pair \\ud83d\\ude00; YAML
    reads two lone surrogates, MkDocs' loader refuses them and drops the front matter: the version page of a model
    named `m😀` (the params allow it) lost its title and showed `title: "m\\ud83d\\ude00 version 1"` as its text."""
    from html import escape

    from mkdocs.utils.meta import get_data

    from lifecycle.app.site import version_page

    v = dict(version='1', lineage={}, created=0, gates=[], signed=True, trained_by='a', approvals=[])
    for name in ('m😀', 'm "q": \x7f\x85 <b>'):
        doc, meta = get_data(version_page(dict(name=name, aliases={}), dict(v, governance_report=None), {}).text)
        assert meta.get('title') == escape(f'{name} version 1') and not doc.startswith('---'), (meta, doc[:80])


def test_the_site_and_the_bundle_remove_a_path_with_one_core_helper_not_the_release_packages(tmp_path):
    """Review DT: the site's swap imported `release.container._remove`, a private helper of another layer (the site
    rendering pulled in the bundle code); it lives in `core.store`, beside `atomic_write`, for both: a folder, a file or
    a link (not what it points to) is removed, a missing path is no error."""
    import lifecycle.app.site as site
    import lifecycle.release.container as container
    from lifecycle.core import store

    assert site._remove is store._remove and container._remove is store._remove
    (tmp_path / 'd').mkdir()
    (tmp_path / 'd/x').write_text('x')
    (tmp_path / 'f').write_text('f')
    (tmp_path / 'l').symlink_to(tmp_path / 'd')
    store._remove(tmp_path / 'l')
    assert (tmp_path / 'd/x').is_file()
    for name in ('d', 'f', 'missing'):
        store._remove(tmp_path / name)
    assert list(tmp_path.iterdir()) == []


def test_a_carriage_return_in_a_value_makes_no_row_of_a_table():
    """Review DT: `markdown_text` turned a newline into a space but left a carriage return, which Markdown (and MkDocs,
    reading the page with universal newlines) takes as a line break: an approval's reason `ok\\rprod` added a row whose
    step read `prod` to the version page's approvals and to the governance report."""
    import markdown
    import pandas as pd

    from lifecycle.app.site import md_table
    from lifecycle.release.governance import governance_report_markdown

    reason = 'ok\rprod\r\nstaging'
    out = markdown.markdown(md_table([dict(step='dev', reason=reason)], ['step', 'reason']), extensions=['tables'])
    assert out.count('<tr>') == 2 and '<td>ok prod staging</td>' in out, out
    facts = dict(model_name='m', model_version='1', lineage={'mlflow_run_id': 'r\r1'}, trained_by='a\rb')
    approvals = [dict(step='dev', approver='a', role='r', time='t', reason=reason, signed=True)]
    results = pd.DataFrame([dict(rule='card', value=1, limit=1, verdict='pass', reason='x')])
    report = governance_report_markdown(facts, results, approvals)
    assert '\r' not in report, repr(report)


@contextlib.contextmanager
def _killed_writing(module, target: Path, torn):
    """A kill (KeyboardInterrupt) while `target` is written, expected: by `module`'s own `open` (which writes
    `torn(data)` of its first write, then dies) or by the rename of a copy written aside over it (`os.replace`)."""
    import builtins
    import os

    real_open, real_replace = builtins.open, os.replace

    class Torn:  # a file killed during its first write
        def __init__(self, f):
            self.f = f

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.f.close()

        def write(self, data):
            self.f.write(torn(data))
            self.f.flush()
            raise KeyboardInterrupt

    def killed_open(path, mode='r', *a, **k):
        f = real_open(path, mode, *a, **k)
        return Torn(f) if os.fspath(path) == str(target) and 'w' in mode else f

    def killed_replace(src, dst, *a, **k):
        if os.fspath(dst) == str(target):
            raise KeyboardInterrupt
        return real_replace(src, dst, *a, **k)

    with pytest.MonkeyPatch.context() as m, pytest.raises(KeyboardInterrupt):
        m.setattr(module, 'open', killed_open, raising=False)
        m.setattr(os, 'replace', killed_replace)
        yield


@pytest.mark.slow  # three MkDocs builds, one full
def test_an_incremental_render_killed_mid_page_leaves_the_page_before_it_whole(workspace):
    """An incremental render builds into the site in place: MkDocs wrote each page with open('wb'), so a render killed
    while writing one left it torn (half a page) until the next render. Each page is written aside and renamed in."""
    from mkdocs import utils
    from lifecycle.app import site
    from lifecycle.core.workspace import Workspace

    s = Workspace.open(workspace)
    add_run(s, 'r1', '2026-01-01T00:00:00+00:00')
    site.render_site(s, 'mkdocs')
    target = s.site_dir / 'runs' / 'index.html'
    before = target.read_bytes()
    add_run(s, 'r2', '2026-01-02T00:00:00+00:00', cached_from='r1')
    with _killed_writing(utils, target, lambda data: data[: len(data) // 2]):  # (MkDocs's own write, before the fix)
        site.render_site(s, 'mkdocs')
    assert target.read_bytes() == before  # the page before it, whole
    assert not [p for p in target.parent.iterdir() if p.name.startswith('.')]  # (no temporary file left)
    site.render_site(s, 'mkdocs')  # the next render finishes it
    assert 'r2' in target.read_text()


@pytest.mark.slow  # two complete MkDocs builds
def test_a_complete_render_cut_short_between_its_two_renames_keeps_the_site_it_was_replacing(workspace, monkeypatch):
    """A complete render swaps `site.tmp` in through `site.old` with two renames: one that failed (or was killed)
    between them left no `reports/site` at all, and the next render deleted `site.old` instead of putting it back.
    A failed swap now puts the old site back, and a render finds a killed swap's `site.old` and puts it back first."""
    from lifecycle.app import site
    from lifecycle.core.workspace import Workspace

    s = Workspace.open(workspace)
    add_run(s, 'r1', '2026-01-01T00:00:00+00:00')
    site.render_site(s, 'mkdocs')
    page = s.site_dir / 'runs' / 'index.html'
    before = page.read_bytes()
    add_run(s, 'r2', '2026-01-02T00:00:00+00:00', cached_from='r1')
    mpath = s.reports_dir / 'site-src' / 'manifest.json'
    mpath.write_text(json.dumps({**json.loads(mpath.read_text()), 'building': True}))  # (a complete render next)
    rename = Path.rename

    def full_disk(self, target):
        if Path(target) == s.site_dir and self.name == 'site.tmp':  # (the second rename)
            raise OSError(28, 'No space left on device')
        return rename(self, target)

    with monkeypatch.context() as m, pytest.raises(site.SiteError, match='No space left on device'):
        m.setattr(Path, 'rename', full_disk)
        site.render_site(s, 'mkdocs')
    assert page.read_bytes() == before  # the site it was replacing, in its place
    s.site_dir.rename(s.site_dir.with_name('site.old'))  # what a kill between the two renames leaves
    seen = []
    monkeypatch.setattr(site, 'build_mkdocs', lambda *a, **k: seen.append(page.read_bytes()))
    site.render_site(s, 'mkdocs')
    assert seen == [before] and page.read_bytes() == before  # put back before the render, not deleted by it
    assert not s.site_dir.with_name('site.old').exists()


@pytest.mark.slow  # three MkDocs builds, one full
def test_an_incremental_render_killed_writing_the_sitemap_leaves_the_one_before_it_whole(workspace):
    """`_published_writes` sent MkDocs's `write_file` and `copy_file` through `publish`, but MkDocs writes the site's
    `sitemap.xml.gz` (at every build, dirty too) and any generated file with its own `open(..., 'wb')`: a render killed
    there left a torn gzip file in the live site. Those writes are written aside and renamed in too."""
    import gzip
    from mkdocs.commands import build
    from lifecycle.app import site
    from lifecycle.core.workspace import Workspace

    s = Workspace.open(workspace)
    add_run(s, 'r1', '2026-01-01T00:00:00+00:00')
    site.render_site(s, 'mkdocs')
    target = s.site_dir / 'sitemap.xml.gz'
    before = target.read_bytes()
    add_run(s, 'r2', '2026-01-02T00:00:00+00:00', cached_from='r1')
    with _killed_writing(build, target, lambda data: data):  # (MkDocs's own write, before the fix)
        site.render_site(s, 'mkdocs')
    assert target.read_bytes() == before and gzip.decompress(before)  # the sitemap before it, whole
    assert not [p for p in target.parent.iterdir() if p.name.startswith('.')]  # (no temporary file left)
    assert 'open' not in vars(build)  # (MkDocs's own open given back)


def test_a_retraining_record_with_no_permission_is_not_called_damaged_by_the_site(tmp_path, monkeypatch):
    """A retraining record `chmod 000` stopped the site as "not a readable retraining record (PermissionError: expected
    a JSON object)": damage, where `retrain run` and `retrain status` say it is a permissions problem. The site
    now says it as they do: the system's error naming the file, saying to check its permissions (exit 1); damage:
    as before."""
    from types import SimpleNamespace
    from lifecycle.app import site
    from lifecycle.core.cli_support import COMMON_ERRORS, _said, exit_code_for
    from lifecycle.loop import iteration

    d = iteration.iterations_dir(tmp_path)
    d.mkdir(parents=True)
    (d / 'a.json').write_text('{}')
    real = Path.read_text

    def denied(self, *a, **k):  # (as chmod 000 does for anyone but root, who runs these tests here)
        if self.name == 'a.json':
            raise PermissionError(13, 'Permission denied', str(self))
        return real(self, *a, **k)

    monkeypatch.setattr(Path, 'read_text', denied)
    with pytest.raises(PermissionError) as e:
        site._iterations(SimpleNamespace(state_dir=tmp_path))
    assert not isinstance(e.value, site.SiteError) and e.value.filename == str(d / 'a.json')
    assert exit_code_for(e.value, COMMON_ERRORS)[0] == 1
    said = _said(e.value)
    assert 'Permission denied' in said and 'check its permissions' in said and 'a.json' in said, said
    assert 'expected a JSON object' not in said and 'not a readable' not in said, said
    with pytest.raises(PermissionError) as by_loop:
        iteration.history(tmp_path)
    assert _said(by_loop.value) == said  # (as `retrain status` says it)
    monkeypatch.setattr(Path, 'read_text', real)
    with pytest.raises(site.SiteError, match=r'a\.json: not a readable retraining record'):  # (damage: as before)
        site._iterations(SimpleNamespace(state_dir=tmp_path))


@pytest.mark.slow  # a copy of the tiny workspace and two MkDocs builds
def test_a_damaged_approval_record_is_shown_as_damaged_and_the_site_still_renders(tiny_template, tmp_path):
    """An approval record edited into something that does not parse, or into JSON that is no object, stopped the
    site (and so `lifecycle run` after stages that all went through) with exit 4, where `promote` names it as damaged.
    The version page now says the record is damaged, naming its file but none of its content; another version's
    approvals are read as before, and its own (promote, govern check) still refuse it (review GW)."""
    from conftest import copy_workspace
    from lifecycle.core.store import StoreError
    from lifecycle.core.workspace import Workspace
    from lifecycle.release import governance as gov

    ws = copy_workspace(tiny_template, tmp_path / 'ws')
    s = Workspace.open(ws)
    name, policy = 'arrests-release', s.params['policy']
    for version, step in (('1', 'staging'), ('1', 'production'), ('2', 'staging')):
        rec = dict(model_name=name, model_version=version, step=step, approver='carol', time='t', reason='read it')
        s.store.put_record('approvals', f'{name}-{version}-{step}', rec)
    torn = s.store.record_path('approvals', f'{name}-1-staging')
    torn.write_text('{"approver": "carol", "reason": "torn-secret-words", ')
    s.store.record_path('approvals', f'{name}-1-production').write_text('["edited-secret-words"]')
    r = cli(ws, 'site')
    assert r.returncode == 0, r.stderr
    page = (ws / 'reports/site/models' / name / 'v1.html').read_text()
    assert page.count('damaged') >= 2 and 'arrests-release-1-staging.json' in page, page
    assert 'secret-words' not in page and 'secret-words' not in (ws / 'reports/site/index.html').read_text()
    assert 'staging (damaged record)' in (ws / 'reports/site/index.html').read_text()
    assert [a['step'] for a in gov.approvals(s.store, name, '2', policy)] == ['staging']  # (not v1's damage)
    with pytest.raises(StoreError, match='arrests-release-1-staging.json: not valid JSON'):
        gov.approvals(s.store, name, '1', policy)
