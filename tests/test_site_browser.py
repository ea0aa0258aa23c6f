"""The evidence site in a real browser: headless Chromium (Debian's `chromium`, driven by Playwright) opens every page
of a site built from a real run. No broken link, no console error, nothing fetched from outside the site; the landing
page shows the champion's version, gate verdicts and monitoring health; an evidence page shows no code until it is
unfolded. Screenshots of the landing page and a model-version page land in reports/screenshots/ (ignored by git)."""

from __future__ import annotations
import functools
import http.server
import json
import shutil
import threading
import urllib.error
import urllib.request
from pathlib import Path
from urllib.parse import urldefrag, urljoin, urlparse
import httpx
import pytest
from conftest import ROOT, cli, cli_json, copy_workspace

CHROMIUM = shutil.which('chromium') or '/usr/bin/chromium'
SHOTS = ROOT / 'reports' / 'screenshots'
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        not Path(CHROMIUM).exists(), reason='chromium is not installed (Debian: apt-get install -y chromium)'
    ),
]


@pytest.fixture(scope='module')
def site(tmp_path_factory, trained_template):
    "A copy of the session's trained workspace (one real run) with flags deployed, its site rendered and served."
    ws = copy_workspace(trained_template[0], tmp_path_factory.mktemp('site') / 'ws')
    out = trained_template[1]
    r = cli(ws, 'flags', 'init')
    assert r.returncode == 0, r.stderr
    r = cli(ws, 'site')
    assert r.returncode == 0, r.stderr
    root = ws / 'reports' / 'site'
    handler = functools.partial(QuietHandler, directory=str(root))
    server = QuietServer(('127.0.0.1', 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield dict(ws=ws, root=root, run_id=out['run_id'], url=f'http://127.0.0.1:{server.server_port}/')
    server.shutdown()


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


class QuietServer(http.server.ThreadingHTTPServer):
    def handle_error(self, request, client_address):
        pass  # the browser closing a page mid-transfer is not a site problem


@pytest.fixture(scope='module')
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=['--no-sandbox'])
        yield b
        b.close()


def open_page(browser, url: str):
    "A page at `url` whose console errors, failed requests and outside requests are recorded."
    page = browser.new_page(viewport={'width': 1280, 'height': 900})
    page.problems = []
    page.on('console', lambda m: m.type == 'error' and page.problems.append(f'console: {m.text}'))
    page.on('pageerror', lambda e: page.problems.append(f'page error: {e}'))
    page.on('requestfailed', lambda r: page.problems.append(f'request failed: {r.url}'))
    page.on('response', lambda r: r.status >= 400 and page.problems.append(f'{r.status}: {r.url}'))

    def outside(route):
        page.problems.append(f'outside request: {route.request.url}')
        route.abort()

    page.route(lambda u: urlparse(u).hostname not in ('127.0.0.1', None), outside)
    page.goto(url, wait_until='load')
    return page


def test_every_page_opens_with_no_broken_link_no_console_error_and_nothing_from_outside(site, browser):
    base, seen, queue, problems, checked = site['url'], set(), [site['url'] + 'index.html'], [], {}
    while queue:
        url = queue.pop()
        if url in seen:
            continue
        seen.add(url)
        page = open_page(browser, url)
        problems += [f'{url}: {p}' for p in page.problems]
        for href in page.eval_on_selector_all('a[href]', 'els => els.map(e => e.getAttribute("href"))'):
            target = urldefrag(urljoin(url, href)).url
            if not target.startswith(base):
                continue  # a link out of the site is not fetched (the site works offline)
            if target not in checked:
                try:
                    checked[target] = urllib.request.urlopen(target).status
                except urllib.error.HTTPError as e:
                    checked[target] = e.code
            if checked[target] != 200:
                problems.append(f'{url}: broken link {href} ({checked[target]})')
            elif target.endswith('.html') and target not in seen:
                queue.append(target)
        page.close()
    assert not problems, '\n'.join(problems[:20])
    pages = {p.relative_to(site['root']).as_posix() for p in site['root'].rglob('*.html')} - {'404.html'}
    opened = {u.removeprefix(base) for u in seen}
    assert pages <= opened, f'pages no link reaches: {sorted(pages - opened)}'
    assert len(opened) >= 12  # sections, a run, its six notebooks, a model version


def test_the_ingest_page_draws_evidentlys_reports_with_the_sites_one_copy_of_the_bundle(site, browser):
    "The run's ingest page links Evidently's script bundle (one copy under assets/evidently), and its reports draw."
    root, page_path = site['root'], f"runs/{site['run_id']}/01_ingest.html"
    (bundle,) = (root / 'assets' / 'evidently').glob('*.js')
    assert bundle.stat().st_size > 1_000_000 and (root / page_path).stat().st_size < 3_000_000  # (9.9 MB embedded)
    page = open_page(browser, site['url'] + page_path)
    reports = page.locator('iframe.evidently-ui-iframe')
    assert reports.count() >= 2  # (the default run replays two batches: the second is sized too)
    for i in range(reports.count()):  # drawn by the linked bundle: the page holds no copy of it
        reports.nth(i).content_frame.get_by_text('Dataset Drift').first.wait_for(timeout=30_000)
    # each report is as tall as what it draws, not an iframe's default 150 px (Evidently's own script sized the first)
    page.wait_for_function(
        "n => [...document.querySelectorAll('iframe.evidently-ui-iframe')].filter(f => "
        "f.getBoundingClientRect().height > 400 && "
        "f.getBoundingClientRect().height + 5 >= f.contentDocument.body.scrollHeight).length === n",
        arg=reports.count(),
        timeout=15_000,
    )
    assert not page.problems


def test_the_landing_page_shows_the_champion_and_its_gate_verdicts(site, browser):
    ws = site['ws']
    r, status = cli_json(ws, 'status')
    (model,) = status['models']
    champion = model['aliases']['dev']  # a dev workspace: dev's alias names the champion
    (validation,) = [json.loads(p.read_text()) for p in (ws / '.lifecycle/store/records/validations').glob('*.json')]
    page = open_page(browser, site['url'] + 'index.html')
    text = page.inner_text('article')
    assert f'Champion (the dev alias): version {champion}' in text
    for g in validation['gates']:
        row = page.locator('tr', has_text=g['gate']).first.inner_text()
        assert g['verdict'] in row, row
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / 'landing.png'), full_page=True)
    assert not page.problems


def test_the_landing_page_shows_monitoring_health_per_served_version(site, browser):
    "The monitor never ran in this workspace: the champion is honestly 'never monitored', with no alert counted."
    ws = site['ws']
    r, status = cli_json(ws, 'status')
    (model,) = status['models']
    champion = model['aliases']['dev']  # a dev workspace: dev's alias names the champion
    page = open_page(browser, site['url'] + 'index.html')
    heading = page.locator('h3', has_text=f"Monitoring health of {model['name']}")
    assert heading.is_visible()
    assert 'The monitor has never run here' in page.inner_text('article')
    table = heading.locator('xpath=following::table[1]')
    head = [t.strip() for t in table.locator('th').all_inner_texts()]
    assert head == ['version', 'environments', 'variant', 'last window closed', 'health', 'low', 'medium', 'high',
                    'critical']  # fmt: skip
    row = table.locator('tr', has_text=f'version {champion}').first
    cells = [t.strip() for t in row.locator('td').all_inner_texts()]
    assert 'dev' in cells[1] and 'flags control' in cells[1], cells
    assert cells[4:] == ['never monitored', '0', '0', '0', '0'], cells
    assert row.locator('a').get_attribute('href') == f"models/{model['name']}/v{champion}.html"
    environments = page.locator('tr', has_text='kill-switch target').first.inner_text()
    assert 'never monitored' in environments, environments
    assert not page.problems


def test_a_model_version_page_draws_the_lineage_and_links_the_evidence(site, browser):
    page = open_page(browser, site['url'] + 'models/arrests-release/v1.html')
    assert page.locator('svg.lineage').is_visible()
    assert page.locator('svg.lineage text', has_text='snapshot').count() == 1
    evidence = page.locator('a', has_text='validate notebook')
    assert evidence.count() == 1
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / 'model-version.png'), full_page=True)
    page.wait_for_load_state('networkidle')  # the favicon too: a click while it loads cancels it (a failed request)
    evidence.click()
    page.wait_for_load_state('load')
    assert page.url.endswith(f"runs/{site['run_id']}/04_validate.html")
    assert not page.problems


def test_an_evidence_page_shows_no_code_until_unfolded_and_keeps_plots_and_tables(site, browser):
    page = open_page(browser, site['url'] + f"runs/{site['run_id']}/04_validate.html")
    inputs = page.locator('.jp-CodeCell > .jp-Cell-inputWrapper')
    assert inputs.count() > 3
    assert not any(inputs.nth(i).is_visible() for i in range(inputs.count()))
    assert 'injected-parameters' not in page.content() and 'run_id = ' not in page.inner_text('article')
    assert page.locator('.jp-OutputArea-output img').first.is_visible()  # plots kept
    assert page.locator('.jp-OutputArea-output table').first.is_visible()  # tables kept
    page.locator('button.lc-fold').first.click()
    assert inputs.first.is_visible() and not inputs.nth(1).is_visible()
    assert not page.problems


def test_search_works_offline(site, browser):
    page = open_page(browser, site['url'] + 'index.html')
    page.locator('input.md-search__input').click()
    page.keyboard.type('gates', delay=50)  # typed, as a reader would: the search listens to key events
    page.locator('.md-search-result__item').first.wait_for(timeout=15_000)
    assert page.locator('.md-search-result__item').count() >= 1
    assert not page.problems


def test_search_works_from_disk(site, browser):
    "Opened from disk (file://), as the README says the site can be: search finds pages, and nothing fails to load."
    page = open_page(browser, (site['root'] / 'index.html').as_uri())
    page.locator('input.md-search__input').click()
    page.keyboard.type('gates', delay=50)
    page.locator('.md-search-result__item').first.wait_for(timeout=15_000)
    assert page.locator('.md-search-result__item').count() >= 1
    assert not page.problems, page.problems


def test_a_drift_report_draws_with_the_shared_evidently_scripts_and_in_the_site_with_its_one_copy(
    workspace, browser, arrests
):
    "Evidently's drift reports draw with the scripts they link: theirs beside them, and in the site the site's copy."
    from lifecycle.app import site
    from lifecycle.core.workspace import Workspace
    from lifecycle.data.drift import evidently_report, save_report

    s = Workspace.open(workspace)
    snap = evidently_report(arrests.iloc[:1000], arrests.iloc[1000:1200])
    ingest = s.reports_dir / 'ingest'
    for b in ('b1', 'b2'):
        out = save_report(snap, ingest / 'arrests' / f'{b}-drift.html', ingest / '_evidently')
        assert out['shared_lib'] and out['bytes'] < 1_000_000
    s.ingest_dir.mkdir(parents=True, exist_ok=True)
    (s.ingest_dir / 'batches.jsonl').write_text(
        ''.join(json.dumps(dict(batch_id=b, dataset='arrests', status='accepted')) + '\n' for b in ('b1', 'b2'))
    )
    site.render_site(s, 'mkdocs')
    bundle = site.evidently_bundle()
    in_site = s.site_dir / 'batches/arrests/b2-drift.html'
    assert f'src="../../assets/evidently/{bundle.name}"' in in_site.read_text()
    assert not list((s.site_dir / 'batches/_evidently').glob('*.js'))  # one copy of the bundle in the site
    handler = functools.partial(QuietHandler, directory=str(s.root))
    server = QuietServer(('127.0.0.1', 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        for path in (ingest / 'arrests/b2-drift.html', in_site):
            page = open_page(browser, f'http://127.0.0.1:{server.server_port}/{path.relative_to(s.root).as_posix()}')
            page.wait_for_selector('text=Dataset Drift', timeout=30_000)  # drawn by the linked bundle, not embedded
            assert page.problems == [] and 'Dataset drift detection threshold' in page.inner_text('body')
            page.close()
    finally:
        server.shutdown()


@pytest.fixture(scope='module')
def api_server(tiny_ws):
    "A `lifecycle serve` process on the session's tiny workspace (two served versions)."
    from conftest import clean_env
    from lifecycle.serve.local import LocalServer

    with LocalServer(tiny_ws, env=clean_env(), timeout=240) as srv:
        yield srv


def test_the_servers_api_docs_draw_with_nothing_from_outside(api_server, browser):
    "Swagger UI comes from the server itself (FastAPI's default loads it from a CDN: a blank page offline)."
    page = open_page(browser, api_server.url + '/docs')
    page.wait_for_selector('.opblock-summary-path >> text=/invocations', timeout=30_000)  # drawn from /openapi.json
    assert 'MLflow scoring protocol' in page.inner_text('body')
    assert page.problems == [], page.problems
    page.close()
    assert httpx.get(api_server.url + '/redoc').status_code == 404  # (ReDoc fetches its maker's logo from the web)
