"""`lifecycle run` on generated data shaped like the default dataset, at 1M and 10M rows: time and peak memory of
each stage (ingest, features, train, validate, and the stages after them).

    python benchmarks/scale.py [--rows 1000000,10000000] [--json]

The data: the arrests rows (scikit-lego) drawn with replacement, with `age` redrawn uniformly from 12 to 69 and
`checks` from 0 to 6 so that rows differ, written as one Parquet file that the workspace's `params/ingest.yaml`
names as its source. Its `max_duplicate_rate` is raised to 1.0: drawn rows repeat far more often than the real data's
45%, and that check is not what is measured. Everything else is the repository's params (split on `year`, the
default model family, the drift sample of `drift.sample_rows`).

Each size runs `lifecycle run --no-site` once in a fresh workspace. A sampler reads the resident memory of the
`lifecycle` process and all its children (the stage kernels) every 0.2 s; each stage's peak is the largest sum
sampled while it ran (its start and duration from the run manifest). Memory is the whole process tree's, so a stage's
figure includes what earlier stages left in the shared kernel. A run is stopped (and reported as such) when its
processes exceed --max-rss-gib or it runs past --timeout: the machine is shared.
"""

from __future__ import annotations
import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from datetime import datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def make_data(path: Path, rows: int, seed: int = 0) -> None:
    "Arrests-shaped rows, drawn with replacement, age and checks redrawn; written in parts to bound memory."
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq
    from sklego.datasets import load_arrests

    base = load_arrests(as_frame=True)
    rng = np.random.default_rng(seed)
    writer = None
    for start in range(0, rows, 1_000_000):
        n = min(1_000_000, rows - start)
        part = base.iloc[rng.integers(0, len(base), n)].reset_index(drop=True)
        part['age'] = rng.integers(12, 70, n).astype(part['age'].dtype)
        part['checks'] = rng.integers(0, 7, n).astype(part['checks'].dtype)
        t = pa.Table.from_pandas(part, preserve_index=False)
        writer = writer or pq.ParquetWriter(path, t.schema)
        writer.write_table(t)
    writer.close()


def workspace(dest: Path, data: Path) -> Path:
    shutil.copy(ROOT / 'settings.ini', dest / 'settings.ini')
    shutil.copytree(ROOT / 'params', dest / 'params')
    shutil.copytree(ROOT / 'nbs/stages', dest / 'nbs/stages', ignore=shutil.ignore_patterns('.ipynb_checkpoints'))
    p = dest / 'params/ingest.yaml'
    text = re.sub(r'^source: .*$', f'source: "{data.name}"', p.read_text(), count=1, flags=re.M)
    text = re.sub(r'^max_duplicate_rate: .*$', 'max_duplicate_rate: 1.0', text, count=1, flags=re.M)
    p.write_text(text)
    return dest


def tree_rss(pid: int) -> int:
    import psutil

    try:
        procs = [psutil.Process(pid)]
        procs += procs[0].children(recursive=True)
    except psutil.NoSuchProcess:
        return 0
    total = 0
    for p in procs:
        try:
            total += p.memory_info().rss
        except psutil.NoSuchProcess:
            pass
    return total


def stop_tree(pid: int) -> None:
    "Kill a run we started and its kernels (a shared machine: no run may take all its memory)."
    import psutil

    try:
        procs = [psutil.Process(pid)]
        procs += procs[0].children(recursive=True)
    except psutil.NoSuchProcess:
        return
    for p in procs:
        try:
            p.kill()
        except psutil.NoSuchProcess:
            pass


def run_once(rows: int, tmp: Path, max_rss_gib: float, timeout_s: float) -> dict:
    ws = tmp / f'ws-{rows}'
    ws.mkdir()
    data = ws / f'arrests-{rows}.parquet'
    t0 = time.perf_counter()
    make_data(data, rows)
    print(
        f"{rows:,} rows: data {data.stat().st_size / 2**20:.0f} MiB in {time.perf_counter() - t0:.0f} s",
        file=sys.stderr,
    )
    workspace(ws, data)
    env = {k: v for k, v in os.environ.items() if not k.startswith(('LIFECYCLE_', 'MLFLOW_'))}
    samples: list[tuple[float, int]] = []
    t_start = time.time()
    proc = subprocess.Popen(
        [str(BIN / 'lifecycle'), 'run', '--no-site', '--json'],
        cwd=ws,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )

    stopped = []

    def sample():
        while proc.poll() is None:
            samples.append((time.time(), tree_rss(proc.pid)))
            over = samples[-1][1] > max_rss_gib * 2**30
            if over or time.time() - t_start > timeout_s:
                stopped.append(f"over {max_rss_gib:g} GiB" if over else f"over {timeout_s:g} s")
                stop_tree(proc.pid)
                return
            time.sleep(0.2)

    th = threading.Thread(target=sample, daemon=True)
    th.start()
    out, err = proc.communicate()
    th.join()
    wall = time.time() - t_start
    manifests = sorted((ws / 'reports/runs').glob('*/manifest.json'))
    if stopped:  # the run was stopped: what it reached, from the stage notebooks it wrote
        done = sorted(p.stem for p in (ws / 'reports/runs').glob('*/*.ipynb'))
        return dict(
            rows=rows,
            stopped=stopped[0],
            wall_s=round(wall, 1),
            stage_notebooks=done,
            peak_rss_mib=round(max(r for _, r in samples) / 2**20) if samples else None,
        )
    if proc.returncode or not manifests:
        sys.exit(f"lifecycle run on {rows:,} rows failed ({proc.returncode}):\n{out[-1500:]}\n{err[-2500:]}")
    m = json.loads(manifests[-1].read_text())
    stages = {}
    for name, st in m['stages'].items():
        start = datetime.fromisoformat(st['started']).timestamp()
        end = start + float(st.get('duration') or 0)
        inside = [r for t, r in samples if start - 0.5 <= t <= end + 0.5]
        stages[name] = dict(
            seconds=round(float(st.get('duration') or 0), 1),
            peak_rss_mib=round(max(inside) / 2**20) if inside else None,
            status=st.get('status'),
        )
    return dict(
        rows=rows,
        wall_s=round(wall, 1),
        peak_rss_mib=round(max(r for _, r in samples) / 2**20) if samples else None,
        stages=stages,
        load_average=os.getloadavg()[0],
    )


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--rows', default='1000000,10000000', help='comma-separated sizes (default 1M and 10M)')
    ap.add_argument('--max-rss-gib', type=float, default=8, help='stop a run whose processes exceed this (default 8)')
    ap.add_argument('--timeout', type=float, default=3600, help='stop a run after this many seconds (default 3600)')
    ap.add_argument('--json', action='store_true', help='print the figures as JSON')
    a = ap.parse_args()
    results = []
    with tempfile.TemporaryDirectory(prefix='scale-') as d:
        for n in (int(x) for x in a.rows.split(',')):
            results.append(run_once(n, Path(d), a.max_rss_gib, a.timeout))
            print(json.dumps(results[-1]), file=sys.stderr)
    if a.json:
        print(json.dumps(results, indent=1))
        return
    for r in results:
        if 'stopped' in r:
            print(
                f"{r['rows']:,} rows: stopped ({r['stopped']}) after {r['wall_s']} s, peak {r['peak_rss_mib']} MiB; "
                f"stage notebooks written: {r['stage_notebooks']}"
            )
    results = [r for r in results if 'stopped' not in r]
    if not results:
        return
    names = list(results[0]['stages'])
    heads = [f"{r['rows']:,} rows: s" for r in results]
    print(f"{'stage':<14}" + ''.join(f"{h:>22}{'peak MiB':>10}" for h in heads))
    for s in names:
        cells = ''
        for r in results:
            st = r['stages'].get(s, {})
            cells += f"{st.get('seconds', ''):>22}{st.get('peak_rss_mib') or '':>10}"
        print(f"{s:<14}{cells}")
    print(f"{'whole run':<14}" + ''.join(f"{r['wall_s']:>22}{r['peak_rss_mib']:>10}" for r in results))


if __name__ == '__main__':
    main()
