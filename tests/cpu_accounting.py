"""`pytest --cpu-report=FILE`: the CPU each test used, so that the suite's budget (ten minutes of CI on two cores, where
it keeps both cores busy from start to end) can be spent where it goes. Wall times (`--durations`) cannot say that:
on a saturated machine a test's duration is mostly its neighbours' work, and a test that waits for a session template
another worker builds looks costly without using any CPU.

Per test, one JSON line appended to FILE (xdist workers append to the same file, one short line per write):
`self`, the CPU seconds (user + system) of the pytest process running it, and `children`, those of the processes it
started and reaped (stage kernels, servers, CLI subprocesses, a browser). A process started by a module or session
fixture counts for the test during whose teardown it is reaped, and one never reaped (killed by a grandparent, or
left running) counts nowhere; the first test in a process to import a library pays for the import. At the end, the
costliest tests and files are printed."""

from __future__ import annotations
import json
import os
import time
from collections import Counter
from pathlib import Path

import pytest

TOP = 15


def pytest_addoption(parser):
    parser.addoption(
        '--cpu-report',
        metavar='FILE',
        default=None,
        help='append the CPU seconds each test used (its pytest process, and the processes it started) to FILE as '
        'JSON lines, and print the costliest tests at the end',
    )


def pytest_configure(config):
    path = config.getoption('cpu_report')
    if path and not hasattr(
        config, 'workerinput'
    ):  # the first process (plain run, or xdist's controller) starts it over
        Path(path).write_text('')


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item, nextitem):
    path = item.config.getoption('cpu_report')
    if not path:
        yield
        return
    before, start = os.times(), time.monotonic()
    yield
    after = os.times()
    line = {
        'test': item.nodeid,
        'self': round(after.user - before.user + after.system - before.system, 3),
        'children': round(
            after.children_user - before.children_user + after.children_system - before.children_system, 3
        ),
        'wall': round(time.monotonic() - start, 3),
        'worker': os.environ.get('PYTEST_XDIST_WORKER', 'main'),
    }
    with open(path, 'a') as f:
        f.write(json.dumps(line) + '\n')


def read_report(path: Path) -> list[dict]:
    "The lines of a CPU report; a torn or foreign line is skipped."
    rows = []
    for text in path.read_text().splitlines():
        try:
            row = json.loads(text)
        except json.JSONDecodeError:
            continue
        if isinstance(row, dict) and {'test', 'self', 'children'} <= set(row):
            rows.append(row)
    return rows


def pytest_terminal_summary(terminalreporter, config):
    path = config.getoption('cpu_report')
    if not path or hasattr(config, 'workerinput') or not Path(path).is_file():
        return
    rows = read_report(Path(path))
    if not rows:
        return
    cpu = {r['test']: r['self'] + r['children'] for r in rows}
    files = Counter()
    for r in rows:
        files[r['test'].split('::')[0]] += r['self'] + r['children']
    tr = terminalreporter
    tr.write_sep('=', f'CPU seconds per test (--cpu-report {path})')
    own, kids = sum(r['self'] for r in rows), sum(r['children'] for r in rows)
    tr.write_line(
        f'{len(rows)} tests, {own + kids:.1f} s: {own:.1f} s in pytest processes, {kids:.1f} s in the processes they '
        'started'
    )
    by_test = {r['test']: r for r in rows}
    for test, total in sorted(cpu.items(), key=lambda kv: -kv[1])[:TOP]:
        r = by_test[test]
        tr.write_line(f'{total:7.1f} s  ({r["self"]:.1f} + {r["children"]:.1f})  {test}')
    tr.write_line('files:')
    for file, total in files.most_common(TOP):
        tr.write_line(f'{total:7.1f} s  {file}')
