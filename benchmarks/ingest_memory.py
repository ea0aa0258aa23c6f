"""Peak memory of `lifecycle ingest` as the file grows, beside the peer: pandas reading the whole file.

    python benchmarks/ingest_memory.py [--rows 250000,1000000,2000000] [--json]

Each measurement runs in its own process and reports that process's peak resident memory (ru_maxrss), so the
two sides do not pollute each other. Goal: ours stays flat as the file grows (bounded by chunk size, drift sample
and 8 bytes per distinct row), while a whole-file read grows with the file.
"""

from __future__ import annotations
import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent

PEER = """
import sys, resource, pandas as pd
df = pd.read_csv(sys.argv[1])
df.duplicated().mean(); df.isna().mean()
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
"""


def make_csv(path: Path, rows: int) -> None:
    import numpy as np
    from sklego.datasets import load_arrests

    base = load_arrests(as_frame=True)
    rng = np.random.default_rng(0)
    with open(path, 'w') as f:
        for i, start in enumerate(range(0, rows, 200_000)):
            n = min(200_000, rows - start)
            part = base.sample(n, replace=True, random_state=i).assign(age=rng.integers(12, 70, n))
            part.to_csv(f, index=False, header=(i == 0))


def peak_of(cmd: list[str], cwd: Path, env: dict) -> tuple[float, float]:
    t0 = time.perf_counter()
    r = subprocess.run(['/usr/bin/env', *cmd], cwd=cwd, env=env, capture_output=True, text=True)
    dt = time.perf_counter() - t0
    if r.returncode not in (0,):
        sys.exit(f"{cmd[0]} failed ({r.returncode}): {r.stderr[-1500:]}")
    return dt, r


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--rows', default='250000,1000000,2000000', help='comma-separated file sizes in rows')
    ap.add_argument('--json', action='store_true')
    a = ap.parse_args()
    sizes = [int(x) for x in a.rows.split(',')]
    env = {k: v for k, v in os.environ.items() if not k.startswith('LIFECYCLE_')}
    results = []
    with tempfile.TemporaryDirectory() as d:
        ws = Path(d)
        shutil.copy(ROOT / 'settings.ini', ws)
        shutil.copytree(ROOT / 'params', ws / 'params')
        p = ws / 'params/ingest.yaml'
        p.write_text(p.read_text().replace('max_duplicate_rate: 0.6', 'max_duplicate_rate: 1.0'))
        for n in sizes:
            csv = ws / f'b{n}.csv'
            make_csv(csv, n)
            size_mb = csv.stat().st_size / 2**20
            cmd = [str(BIN / 'lifecycle'), 'ingest', str(csv), '--dataset', 'arrests', '--json']
            code = (
                f"import resource, subprocess, sys; r = subprocess.run({cmd!r}, capture_output=True); "
                "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss); sys.exit(r.returncode)"
            )
            t_ours, r = peak_of([sys.executable, '-c', code], ws, env)
            ours_mb = int(r.stdout.strip().splitlines()[-1]) / 1024
            t_peer, r = peak_of([sys.executable, '-c', PEER, str(csv)], ws, env)
            peer_mb = int(r.stdout.strip().splitlines()[-1]) / 1024
            results.append(
                dict(
                    rows=n,
                    file_mb=round(size_mb, 1),
                    ours_peak_mb=round(ours_mb),
                    ours_s=round(t_ours, 1),
                    pandas_whole_file_peak_mb=round(peer_mb),
                    pandas_s=round(t_peer, 1),
                )
            )
            print(f"{n} rows done", file=sys.stderr)
            csv.unlink()
    first, last = results[0], results[-1]
    growth = dict(
        file=round(last['file_mb'] / first['file_mb'], 1),
        ours=round(last['ours_peak_mb'] / first['ours_peak_mb'], 2),
        pandas=round(last['pandas_whole_file_peak_mb'] / first['pandas_whole_file_peak_mb'], 2),
    )
    if a.json:
        print(json.dumps(dict(results=results, growth=growth), indent=1))
        return
    print(f"{'rows':>9} {'file MB':>8} {'ours peak MB':>13} {'ours s':>7} {'pandas peak MB':>15} {'pandas s':>9}")
    for r in results:
        print(
            f"{r['rows']:>9} {r['file_mb']:>8} {r['ours_peak_mb']:>13} {r['ours_s']:>7} "
            f"{r['pandas_whole_file_peak_mb']:>15} {r['pandas_s']:>9}"
        )
    print(
        f"growth from {first['rows']} to {last['rows']} rows: file x{growth['file']}, ours x{growth['ours']}, "
        f"pandas x{growth['pandas']}"
    )


if __name__ == '__main__':
    main()
