"""The report site: `_quarto.yml` stays valid for Quarto, and the nbconvert fallback renders a site on its own."""

from __future__ import annotations
import yaml
from conftest import ROOT, cli


def test_quarto_config_is_valid_and_has_its_sections():
    cfg = yaml.safe_load((ROOT / 'nbs/_quarto.yml').read_text())
    assert cfg['project']['type'] == 'website' and cfg['execute']['enabled'] is False
    sections = [c['section'] for c in cfg['website']['sidebar']['contents'] if isinstance(c, dict)]
    assert sections == ['Library', 'Stages', 'Tutorials', 'Reports']
    for pattern in cfg['project']['render']:
        assert list((ROOT / 'nbs').glob(pattern)), f"{pattern} in _quarto.yml matches no file"


def test_without_quarto_the_site_renders_with_nbconvert(workspace, monkeypatch):
    import nbformat
    from lifecycle.settings import load_settings
    from lifecycle.manifest import RunManifest
    from lifecycle import site

    monkeypatch.setattr(site.shutil, 'which', lambda name: None)  # no quarto on PATH
    assert site.renderer() == 'nbconvert'
    s = load_settings(workspace)
    m = RunManifest.create(s.runs_dir, 'r1', mode='pipeline')
    nb = nbformat.v4.new_notebook(
        cells=[
            nbformat.v4.new_code_cell(
                '1 + 1', outputs=[nbformat.v4.new_output('execute_result', {'text/plain': '2'}, execution_count=1)]
            )
        ]
    )
    nbformat.write(nb, m.run_dir / '01_ingest.ipynb')
    m.update_stage('ingest', status='ok', notebook='01_ingest.ipynb', duration=0.5)
    index = site.render_site(s).read_text()
    page = s.site_dir / 'runs/r1/01_ingest.html'
    assert "href='runs/r1/01_ingest.html'" in index and page.is_file() and '<pre>2</pre>' in page.read_text()
    mtime = page.stat().st_mtime_ns
    site.render_site(s)
    assert page.stat().st_mtime_ns == mtime  # runs are immutable: rendered once, not again


def test_site_command_on_an_empty_workspace(workspace):
    r = cli(workspace, 'site')
    assert r.returncode == 0 and 'nbconvert' in r.stdout
    assert 'No runs yet' in (workspace / 'reports/site/index.html').read_text()
