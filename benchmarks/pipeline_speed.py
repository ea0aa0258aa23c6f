"""Time `lifecycle run` cold (empty state) and warm (nothing changed), next to the peer baseline: papermill
executing one notebook that imports pandas, scikit-learn and MLflow.

    python benchmarks/pipeline_speed.py [--repeat N] [--json]

Goals on a 2-core machine (issue #17): cold <= 25 s, warm <= 1 s, `lifecycle --help` < 1 s.
"""

from __future__ import annotations
import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
GOALS = {'cold': 25.0, 'warm': 1.0, 'help': 1.0}


def workspace(dest: Path) -> Path:
    shutil.copy(ROOT / 'settings.ini', dest / 'settings.ini')
    shutil.copytree(ROOT / 'params', dest / 'params')
    shutil.copytree(ROOT / 'nbs/stages', dest / 'nbs/stages')
    return dest


def timed(cmd: list[str], cwd: Path) -> float:
    env = {k: v for k, v in os.environ.items() if not k.startswith('LIFECYCLE_')}
    t0 = time.perf_counter()
    r = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
    dt = time.perf_counter() - t0
    if r.returncode:
        sys.exit(f"{' '.join(cmd)} failed ({r.returncode}):\n{r.stderr[-2000:]}")
    return dt


def papermill_baseline(tmp: Path) -> float:
    import nbformat

    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell('import pandas, sklearn.linear_model, mlflow')])
    src = tmp / 'baseline.ipynb'
    nbformat.write(nb, src)
    return timed(
        [str(BIN / 'papermill'), str(src), str(tmp / 'baseline-out.ipynb'), '--no-progress-bar', '-k', 'python3'], tmp
    )


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--repeat', type=int, default=1, help='cold/warm pairs to run (median is reported)')
    ap.add_argument('--json', action='store_true', help='print the figures as JSON')
    a = ap.parse_args()
    res = {'cold': [], 'warm': [], 'help': [], 'papermill_one_notebook': []}
    for i in range(a.repeat):
        with tempfile.TemporaryDirectory() as d:
            ws = workspace(Path(d))
            res['help'].append(timed([str(BIN / 'lifecycle'), '--help'], ws))
            res['papermill_one_notebook'].append(papermill_baseline(Path(d)))
            res['cold'].append(timed([str(BIN / 'lifecycle'), 'run'], ws))
            res['warm'].append(timed([str(BIN / 'lifecycle'), 'run'], ws))
            print(f"pair {i + 1}/{a.repeat}: cold {res['cold'][-1]:.1f}s warm {res['warm'][-1]:.2f}s", file=sys.stderr)
    med = {k: statistics.median(v) for k, v in res.items()}
    out = {
        **{f'{k}_s': round(v, 3) for k, v in med.items()},
        'cold_vs_goal': round(med['cold'] / GOALS['cold'], 2),
        'warm_vs_goal': round(med['warm'] / GOALS['warm'], 2),
        'cold_vs_6_papermill_notebooks': round(med['cold'] / (6 * med['papermill_one_notebook']), 2),
        'warm_vs_1_papermill_notebook': round(med['warm'] / med['papermill_one_notebook'], 2),
        'repeat': a.repeat,
        'cpus': os.cpu_count(),
    }
    if a.json:
        print(json.dumps(out, indent=1))
        return
    print(f"{'measure':<34}{'seconds':>9}{'goal':>8}")
    for k in ('help', 'papermill_one_notebook', 'cold', 'warm'):
        print(f"{k:<34}{med[k]:>9.2f}{GOALS.get(k, float('nan')):>8.1f}")
    print(f"cold / 6 papermill notebooks (peer floor): {out['cold_vs_6_papermill_notebooks']:.2f}x")
    print(f"warm / 1 papermill notebook:               {out['warm_vs_1_papermill_notebook']:.2f}x")


if __name__ == '__main__':
    main()
