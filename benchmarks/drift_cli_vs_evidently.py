"""`lifecycle drift` end to end against an Evidently DataDriftPreset process, on the same two Parquet files, in the
same run: each side is a fresh process that starts Python, imports what it needs, reads both files and prints the
per-column verdicts, and the whole process is timed (wall clock and CPU seconds).

    python benchmarks/drift_cli_vs_evidently.py [--rows N] [--repeat R] [--json]

The data is `drift_vs_evidently.make_frames` (N rows each side, default 1,000,000; 10 columns, 8 numeric and 2
categorical, four shifted), written as Parquet into a scratch workspace (this repository's settings.ini and params/).
Ours runs `lifecycle drift --reference ref.parquet --current cur.parquet --json` R times (median reported; the first
run reads the files cold from the page cache like Evidently's does); Evidently runs once (it takes ~50 s), reading
the files with `pandas.read_parquet` and running `Report([DataDriftPreset()])` with the columns' kinds declared.
Both sides run as installed: our package's bytecode is compiled first, as pip compiles Evidently's, pandas' and every
other installed package (an editable install compiles on first import, but not under PYTHONDONTWRITEBYTECODE).

Goal: ours at least 40x faster than Evidently's process, every column's verdict and the dataset verdict identical.
Exit status 1 if the verdicts differ or the goal is missed.
"""

from __future__ import annotations
import argparse
import importlib.util
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

GOAL = 40.0
ROOT = Path(__file__).resolve().parents[1]
LIFECYCLE = str(Path(sys.executable).parent / 'lifecycle')


def evidently_side(data: Path) -> dict:
    "The Evidently process: read both Parquet files, run DataDriftPreset, return its verdicts."
    import pandas as pd
    from lifecycle.data.drift import evidently_verdicts

    ref, cur = pd.read_parquet(data / 'ref.parquet'), pd.read_parquet(data / 'cur.parquet')
    res = evidently_verdicts(ref, cur)
    return dict(
        dataset_drift=bool(res.attrs['dataset_drift']),
        columns={
            r['column']: dict(method=r['method'], score=r['score'], drifted=bool(r['drifted']))
            for r in res.to_dict('records')
        },
    )


def timed(cmd: list[str], cwd: Path) -> tuple[subprocess.CompletedProcess, float, float]:
    "Run a process; its output, wall seconds and CPU seconds (user + system, children included)."
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    r = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, env={**os.environ, 'PYTHONWARNINGS': 'ignore'})
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    if r.returncode:
        sys.exit(f"{' '.join(cmd[:3])} failed (exit {r.returncode}):\n{r.stderr[-3000:]}")
    return r, wall, cpu


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--rows', type=int, default=1_000_000, help='rows in each file (default 1,000,000)')
    ap.add_argument('--repeat', type=int, default=3, help='runs of `lifecycle drift` (the median is reported)')
    ap.add_argument('--json', action='store_true', help='print the figures as JSON')
    ap.add_argument('--side', choices=['evidently'], help=argparse.SUPPRESS)
    ap.add_argument('--data', type=Path, help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.side:
        print(json.dumps(evidently_side(a.data)))
        return
    sys.path.insert(0, str(Path(__file__).parent))
    from drift_vs_evidently import make_frames

    spec = importlib.util.find_spec('lifecycle')  # the package `lifecycle drift` imports, wherever it is
    subprocess.run([sys.executable, '-m', 'compileall', '-q', *spec.submodule_search_locations], check=True)
    with tempfile.TemporaryDirectory() as d:
        ws = Path(d)
        shutil.copy(ROOT / 'settings.ini', ws / 'settings.ini')
        shutil.copytree(ROOT / 'params', ws / 'params')
        ref, cur = make_frames(a.rows)
        ref.to_parquet(ws / 'ref.parquet')
        cur.to_parquet(ws / 'cur.parquet')
        del ref, cur
        cmd = [LIFECYCLE, 'drift', '--reference', 'ref.parquet', '--current', 'cur.parquet', '--json']
        runs = [timed(cmd, ws) for _ in range(a.repeat)]
        ours = json.loads(runs[0][0].stdout)
        print(f"ours: {', '.join(f'{w:.2f}s' for _, w, _ in runs)}", file=sys.stderr)
        r, ev_wall, ev_cpu = timed([sys.executable, __file__, '--side', 'evidently', '--data', str(ws)], ws)
        ev = json.loads(r.stdout.strip().splitlines()[-1])
        print(f"evidently: {ev_wall:.1f}s", file=sys.stderr)
    wall = statistics.median(w for _, w, _ in runs)
    cpu = statistics.median(c for _, _, c in runs)
    cols, disagree = [], []
    for c in ours['columns']:
        e = ev['columns'].get(c['column'], {})
        same = c['method'] == e.get('method') and c['drifted'] == e.get('drifted')
        cols.append(
            dict(
                column=c['column'],
                method=c['method'],
                ours=c['score'],
                evidently=e.get('score'),
                drifted=c['drifted'],
                evidently_drifted=e.get('drifted'),
                agree=same,
            )
        )
        if not same:
            disagree.append(c['column'])
    disagree += [k for k in ev['columns'] if k not in {c['column'] for c in cols}]
    same_dataset = ours['summary']['dataset_drift'] == ev['dataset_drift']
    out = dict(
        rows=a.rows,
        command=' '.join(cmd[1:]),
        cpus=os.cpu_count(),
        load_average=os.getloadavg(),
        ours_wall_s=round(wall, 3),
        ours_wall_all_s=[round(w, 3) for _, w, _ in runs],
        ours_cpu_s=round(cpu, 3),
        evidently_wall_s=round(ev_wall, 2),
        evidently_cpu_s=round(ev_cpu, 2),
        speedup_wall=round(ev_wall / wall, 1),
        speedup_cpu=round(ev_cpu / cpu, 1),
        verdicts_agree=not disagree and same_dataset,
        disagreements=disagree,
        dataset_drift=dict(ours=ours['summary']['dataset_drift'], evidently=ev['dataset_drift']),
        columns=cols,
        goal_speedup=GOAL,
    )
    if a.json:
        print(json.dumps(out, indent=1))
    else:
        print(f"{'process':<34}{'wall s':>9}{'CPU s':>9}")
        print(f"{'Evidently DataDriftPreset':<34}{ev_wall:>9.2f}{ev_cpu:>9.2f}")
        print(f"{'lifecycle drift (median of ' + str(a.repeat) + ')':<34}{wall:>9.2f}{cpu:>9.2f}")
        print(
            f"speed-up: {out['speedup_wall']}x wall, {out['speedup_cpu']}x CPU (goal {GOAL:.0f}x); "
            f"load average {out['load_average'][0]:.1f} on {out['cpus']} CPUs"
        )
        print(f"{'column':<14}{'method':<27}{'ours':>12}{'evidently':>12}  drifted (ours/evidently)")
        for c in cols:
            theirs = c['evidently'] if c['evidently'] is not None else float('nan')
            print(
                f"{c['column']:<14}{c['method']:<27}{c['ours']:>12.6g}{theirs:>12.6g}"
                f"  {c['drifted']}/{c['evidently_drifted']}"
            )
        print(f"dataset drift: ours {out['dataset_drift']['ours']}, evidently {out['dataset_drift']['evidently']}")
        print("verdicts: identical" if out['verdicts_agree'] else f"verdicts DIFFER: {disagree}")
    sys.exit(0 if out['verdicts_agree'] and out['speedup_wall'] >= GOAL else 1)


if __name__ == '__main__':
    main()
