"""`pytest --cpu-report=FILE`: the CPU each test used, to see where the suite's budget goes (ten minutes of CI on two
cores, both busy from start to end). Wall times (`--durations`) cannot say that: on a saturated machine a test's
duration is mostly its neighbours' work, and a test waiting for a session template another worker builds looks costly
without using any CPU.

Per test, one JSON line appended to FILE (xdist workers append to the same file, one short line per write). `self`:
the CPU seconds (user + system, every thread) of the pytest process while the test ran, setup and teardown included.
`children`: those of the child processes it reaped (waited for) in that time, with their descendants that they in
turn reaped (stage kernels, servers, CLI calls, a browser). So a process counts for the test during which it is
reaped, wherever it was started (a module fixture's server for the module's last test); one reaped by another process
counts nowhere; a session template is charged to the first test on that worker that uses it; and what test modules
import at collection is charged to no test. At the end, the costliest tests and files are printed.

Write it with `=`. pytest sets its root folder before this conftest plugin is loaded, and takes the words of options it
does not know yet for paths: `--cpu-report /tmp/f.jsonl` gives xdist workers /tmp as their root, no pyproject.toml, and
so no such option."""

from __future__ import annotations
import json
import os
import time
from collections import Counter
from pathlib import Path

import pytest

TOP = 15
_PATH = pytest.StashKey[Path]()


def pytest_addoption(parser):
    parser.addoption(
        '--cpu-report',
        metavar='FILE',  # --cpu-report=FILE: see the module's docstring
        default=None,
        help='append the CPU seconds each test used (its pytest process, and the child processes reaped while it ran) '
        'to FILE as JSON lines, and print the costliest tests at the end',
    )


def pytest_configure(config):
    path = config.getoption('cpu_report')
    if not path:
        return
    config.stash[_PATH] = Path(path).resolve()  # (tests change the working folder: every write goes to one file)
    # the first process (a plain run, or xdist's controller) starts it over; its workers only append
    if not hasattr(config, 'workerinput'):
        config.stash[_PATH].write_text('')


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item, nextitem):
    path = item.config.stash.get(_PATH, None)
    if path is None:
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
    path = config.stash.get(_PATH, None)
    if path is None or hasattr(config, 'workerinput') or not path.is_file():
        return
    rows = read_report(path)
    if not rows:
        return
    cost = lambda r: r['self'] + r['children']  # noqa: E731
    files = Counter()
    for r in rows:
        files[r['test'].split('::')[0]] += cost(r)
    tr = terminalreporter
    tr.write_sep('=', f'CPU seconds per test (--cpu-report={path})')
    own, kids = sum(r['self'] for r in rows), sum(r['children'] for r in rows)
    tr.write_line(
        f'{own + kids:.1f} s charged to {len(rows)} tests: {own:.1f} s in pytest processes, {kids:.1f} s in child '
        'processes (collection, start-up and processes reaped between tests not included)'
    )
    for r in sorted(rows, key=cost, reverse=True)[:TOP]:
        tr.write_line(f'{cost(r):7.1f} s  ({r["self"]:.1f} + {r["children"]:.1f})  {r["test"]}')
    tr.write_line('files:')
    for file, total in files.most_common(TOP):
        tr.write_line(f'{total:7.1f} s  {file}')
