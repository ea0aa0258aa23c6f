"""Render time of the evidence site for 1, 10 and 100 runs, cold and warm.

The runs are synthetic records made from a real run: the real run is copied into a fresh workspace with its state,
and N-1 further run records are written that reuse its stages the way a warm `lifecycle run` does (every stage
cached from the real run). With `--executed`, each copy also carries its own copy of the executed notebooks (each
made distinct, so each is converted), the shape of N cold runs.

For each N it measures, in process (the imports are timed once, apart):
- cold: no site source nor site yet; every page planned, written and rendered;
- warm, nothing changed: the manifest's fingerprint matches, nothing is read nor rendered;
- warm, one more run: one cached run record added, the case of a warm `lifecycle run`; only the new and changed pages
  (landing page, runs listing, the new run's page) are rendered.

    python benchmarks/site_render.py --source WORKSPACE_WITH_ONE_RUN [--runs 1 10 100] [--executed]

Without --source, a workspace is made and `lifecycle run` + `lifecycle flags init` run in it first (minutes).
"""

from __future__ import annotations
import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LIFECYCLE = str(Path(sys.executable).parent / 'lifecycle')


def make_source(dest: Path) -> Path:
    "A workspace after one real run with flags deployed."
    dest.mkdir(parents=True)
    shutil.copy(ROOT / 'settings.ini', dest / 'settings.ini')
    shutil.copytree(ROOT / 'params', dest / 'params')
    shutil.copytree(ROOT / 'nbs' / 'stages', dest / 'nbs' / 'stages')
    for args in (['run', '--no-site'], ['flags', 'init']):
        subprocess.run([LIFECYCLE, *args], cwd=dest, check=True, capture_output=True)
    return dest


def workspace_with_runs(source: Path, dest: Path, n: int, executed: bool) -> Path:
    "A copy of `source` (state and its one real run) plus n-1 synthetic run records."
    dest.mkdir(parents=True)
    for name in ('settings.ini', 'params', 'nbs', '.lifecycle'):
        src = source / name
        (shutil.copytree if src.is_dir() else shutil.copy)(src, dest / name)
    runs = dest / 'reports' / 'runs'
    (real,) = [p for p in (source / 'reports' / 'runs').iterdir() if (p / 'manifest.json').is_file()]
    shutil.copytree(real, runs / real.name)
    for i in range(1, n):
        add_run(runs, real, i, executed)
    return dest


def add_run(runs: Path, real: Path, i: int, executed: bool) -> str:
    "Write synthetic run record i: stages cached from the real run, or (executed) its own copy of the notebooks."
    m = json.loads((real / 'manifest.json').read_text())
    run_id = f'29990101T{i // 3600:02d}{i // 60 % 60:02d}{i % 60:02d}Z-bench{i:04d}'
    out = runs / run_id
    out.mkdir(parents=True)
    m.update(run_id=run_id, started=f'2999-01-01T{i // 3600:02d}:{i // 60 % 60:02d}:{i % 60:02d}+00:00')
    for st in m['stages'].values():
        if executed:
            nb = json.loads((real / st['notebook']).read_text())
            nb['metadata']['lifecycle_bench_copy'] = run_id  # a distinct notebook, converted on its own
            (out / st['notebook']).write_text(json.dumps(nb))
        else:
            st.update(status='cached', cached_from=real.name)
    (out / 'manifest.json').write_text(json.dumps(m))
    return run_id


def timed(fn) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--source', type=Path, help='a workspace holding one real run (default: make one)')
    ap.add_argument('--runs', type=int, nargs='+', default=[1, 10, 100])
    ap.add_argument('--executed', action='store_true', help='each synthetic run carries its own executed notebooks')
    a = ap.parse_args()
    t = time.perf_counter()
    from lifecycle.core.workspace import Workspace
    from lifecycle.app.site import render_site
    import mkdocs.commands.build  # noqa: F401
    import mkdocs_jupyter.plugin  # noqa: F401
    import mlflow  # noqa: F401

    print(f'imports (lifecycle.app.site, mkdocs, mkdocs-jupyter, mlflow): {time.perf_counter() - t:.1f} s, once')
    with tempfile.TemporaryDirectory(prefix='site-bench-') as tmp:
        source = a.source.resolve() if a.source else make_source(Path(tmp) / 'source')
        print(f"{'runs':>5} {'pages':>6} {'cold s':>8} {'warm, no change s':>18} {'warm, +1 run s':>15}")
        for n in a.runs:
            ws_dir = workspace_with_runs(source, Path(tmp) / f'ws{n}', n, a.executed)
            ws = Workspace.open(ws_dir)
            cold = timed(lambda: render_site(ws, 'mkdocs'))
            same = timed(lambda: render_site(ws, 'mkdocs'))
            add_run(ws.runs_dir, ws.runs_dir / sorted(p.name for p in ws.runs_dir.iterdir())[0], n + 1, False)
            plus = timed(lambda: render_site(ws, 'mkdocs'))
            pages = len(json.loads((ws.reports_dir / 'site-src' / 'manifest.json').read_text())['pages'])
            print(f'{n:>5} {pages:>6} {cold:>8.1f} {same:>18.3f} {plus:>15.1f}', flush=True)
            shutil.rmtree(ws_dir)


if __name__ == '__main__':
    main()
