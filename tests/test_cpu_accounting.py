"""`pytest --cpu-report=FILE` (tests/cpu_accounting.py) charges each test the CPU of its pytest process and of the
child processes reaped while it ran, in one process or under xdist, and its reader survives a torn line."""

from __future__ import annotations
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from cpu_accounting import read_report

TESTS = Path(__file__).resolve().parent

BURN = '''
import subprocess, sys, time

def spin(seconds):
    end = time.process_time() + seconds
    while time.process_time() < end:
        pass

def test_here():
    spin(0.4)

def test_in_a_child():
    subprocess.run([sys.executable, '-c', 'import test_burn; test_burn.spin(0.4)'], check=True)

def test_idle():
    time.sleep(0.3)
'''


@pytest.mark.parametrize(
    'workers',
    [[], pytest.param(['-p', 'xdist.plugin', '-n', '2'], marks=pytest.mark.slow)],  # (xdist starts three pytests)
    ids=['one process', 'xdist'],
)
def test_each_test_is_charged_its_own_cpu_and_its_childrens(tmp_path, workers):
    (tmp_path / 'test_burn.py').write_text(BURN)
    report = tmp_path / 'cpu.jsonl'
    old = {'test': 'test_gone.py::test_gone', 'self': 9.0, 'children': 0.0, 'wall': 9.0, 'worker': 'main'}
    report.write_text(json.dumps(old) + '\n')  # an earlier run's report: started over, not appended to
    r = subprocess.run(
        [
            sys.executable,
            '-m',
            'pytest',
            '-p',
            'cpu_accounting',
            '-p',
            'no:cacheprovider',
            f'--cpu-report={report}',
            *workers,
            'test_burn.py',
        ],
        cwd=tmp_path,
        env={  # only this plugin, and none of the caller's pytest options
            **{k: v for k, v in os.environ.items() if k != 'PYTEST_ADDOPTS'},
            'PYTHONPATH': str(TESTS),
            'PYTEST_DISABLE_PLUGIN_AUTOLOAD': '1',
        },
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 0, r.stdout + r.stderr
    lines = read_report(report)
    rows = {row['test'].split('::')[1]: row for row in lines}
    assert len(lines) == 3 and set(rows) == {'test_here', 'test_in_a_child', 'test_idle'}, lines
    assert rows['test_here']['self'] >= 0.35 and rows['test_here']['children'] < 0.1, rows
    assert rows['test_in_a_child']['children'] >= 0.35 and rows['test_in_a_child']['self'] < 0.35, rows
    assert rows['test_idle']['self'] + rows['test_idle']['children'] < 0.2 <= rows['test_idle']['wall'], rows
    assert r.stdout.count('CPU seconds per test') == 1 and 'test_burn.py::test_here' in r.stdout, r.stdout  # once


def test_a_torn_last_line_is_skipped(tmp_path):
    report = tmp_path / 'cpu.jsonl'
    good = {'test': 't.py::a', 'self': 1.0, 'children': 2.0, 'wall': 3.0, 'worker': 'gw0'}
    report.write_text(json.dumps(good) + '\n' + json.dumps(good)[:20])
    assert read_report(report) == [good]
