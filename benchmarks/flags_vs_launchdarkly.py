"""Flag evaluation per request, building the evaluation context included: our `FlagClient` (OpenFeature, flagd's
in-process file provider on the compiled flag file) against LaunchDarkly's Python SDK (`launchdarkly-server-sdk`,
`ldclient` with a file data source holding the same rules), in the same run.

    python benchmarks/flags_vs_launchdarkly.py [--n N] [--rounds R] [--venv DIR] [--json]

The rules, on both sides: the model-version flag routes `/invocations` to the control, the cohort `internal == true`
to the challenger, and 10% of targeting keys (sticky) to the challenger, the rest to the control. One evaluation is
what `lifecycle serve` does per request: build the context from the request's key and attributes, then evaluate the
route (variant and version). LaunchDarkly runs with events off (ours sends none either).

LaunchDarkly's SDK is installed in its own virtual environment (default /tmp/lifecycle-bench-venvs/ld, created with
`python -m venv` and `pip install launchdarkly-server-sdk` if missing). Each side runs in its own process, R rounds
alternating ours and theirs (each round N evaluations, the best of 5 repeats per round): the machine is shared, so the
ratio of medians is the figure, not the absolute times. Both sides' rule outcomes are checked (the cohort, the route,
a 10% share +- 2 points).

Goal: ours no slower than LaunchDarkly's (ratio theirs / ours >= 1). Exit status 1 if missed or a rule disagrees.
"""

from __future__ import annotations
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

GOAL = 1.0
DEFAULT_VENV = Path('/tmp/lifecycle-bench-venvs/ld')

LD_FLAGS = {
    'flags': {
        'model-version': {
            'key': 'model-version',
            'version': 1,
            'on': True,
            'variations': ['3', '1', '4'],  # control, safe, challenger
            'offVariation': 1,
            'salt': 'model-version',
            'targets': [],
            'prerequisites': [],
            'rules': [
                {
                    'id': 'route',
                    'clauses': [{'attribute': 'route', 'op': 'in', 'values': ['invocations']}],
                    'variation': 0,
                },
                {
                    'id': 'internal',
                    'clauses': [{'attribute': 'internal', 'op': 'in', 'values': [True]}],
                    'variation': 2,
                },
            ],
            'fallthrough': {
                'rollout': {'variations': [{'variation': 0, 'weight': 90000}, {'variation': 2, 'weight': 10000}]}
            },
        }
    }
}
NAMES = {0: 'control', 1: 'safe', 2: 'challenger'}


def _timing(evaluate, n: int) -> float:
    "Best of 5 repeats of n evaluations, in microseconds per evaluation."
    import time

    best = float('inf')
    for _ in range(5):
        t0 = time.perf_counter()
        for i in range(n):
            evaluate(i)
        best = min(best, (time.perf_counter() - t0) / n)
    return best * 1e6


def _rules(route_of) -> dict:
    "The rule outcomes both sides must share: the route, the cohort, the share of keys to the challenger."
    share = sum(route_of(f'user-{i}', False, 'predict') == 'challenger' for i in range(4000)) / 4000
    return dict(
        invocations=route_of('user-1', True, 'invocations'),
        internal=route_of('user-1', True, 'predict'),
        share_ok=abs(share - 0.10) <= 0.02,
        share=share,
    )


def ours_side(work: Path, n: int) -> dict:
    from lifecycle.core.params import FlagsParams
    from lifecycle.serve.flags import FlagClient, compile_flags, make_provider

    spec = FlagsParams(
        control='3',
        safe='1',
        challenger='4',
        percentage=10,
        cohorts=[{'attribute': 'internal', 'equals': True, 'variant': 'challenger'}],
    )
    path = work / 'flags.flagd.json'
    path.write_text(json.dumps(compile_flags(spec)))
    fc = FlagClient(make_provider(spec, path), domain='bench')
    try:
        keys = [f'user-{i}' for i in range(n)]

        def evaluate(i):
            return fc.route(fc.context(keys[i], {'internal': False}, 'predict'))

        us = _timing(evaluate, n)
        rules = _rules(lambda k, internal, route: fc.route(fc.context(k, {'internal': internal}, route))[0])
    finally:
        fc.close()
    return dict(us=us, rules=rules)


def ld_side(work: Path, n: int) -> dict:
    import ldclient
    from ldclient import Context
    from ldclient.config import Config
    from ldclient.integrations import Files

    path = work / 'ld-flags.json'
    path.write_text(json.dumps(LD_FLAGS))
    client = ldclient.LDClient(
        Config('bench-sdk-key', update_processor_class=Files.new_data_source(paths=[str(path)]), send_events=False)
    )
    try:
        assert client.is_initialized(), 'the LaunchDarkly client did not initialise from the file'
        keys = [f'user-{i}' for i in range(n)]

        def evaluate(i):
            d = client.variation_detail(
                'model-version', Context.builder(keys[i]).set('internal', False).set('route', 'predict').build(), ''
            )
            return NAMES.get(d.variation_index, 'error'), d.value

        us = _timing(evaluate, n)

        def route_of(k, internal, route):
            ctx = Context.builder(k).set('internal', internal).set('route', route).build()
            return NAMES.get(client.variation_detail('model-version', ctx, '').variation_index, 'error')

        rules = _rules(route_of)
    finally:
        client.close()
    return dict(us=us, rules=rules, version=ldclient.VERSION)


def ensure_venv(venv: Path) -> Path:
    "The LaunchDarkly SDK's own environment; exits non-zero naming the reason if it cannot be installed."
    py = venv / 'bin' / 'python'
    if py.exists() and subprocess.run([py, '-c', 'import ldclient'], capture_output=True).returncode == 0:
        return py
    r = subprocess.run([sys.executable, '-m', 'venv', str(venv)], capture_output=True, text=True)
    if r.returncode:
        sys.exit(f"cannot create a virtual environment at {venv}: {r.stderr.strip()[-500:]}")
    r = subprocess.run([py, '-m', 'pip', 'install', '-q', 'launchdarkly-server-sdk'], capture_output=True, text=True)
    if r.returncode:
        sys.exit(f"cannot install launchdarkly-server-sdk from PyPI into {venv}: {r.stderr.strip()[-1000:]}")
    return py


def run(python: str, side: str, work: Path, n: int, env=None) -> dict:
    r = subprocess.run(
        [python, __file__, '--side', side, '--work', str(work), '--n', str(n)], capture_output=True, text=True, env=env
    )
    if r.returncode:
        sys.exit(f"the {side} side failed (exit {r.returncode}):\n{r.stderr[-3000:]}")
    return json.loads(r.stdout.strip().splitlines()[-1])


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--n', type=int, default=20_000, help='evaluations per round (default 20,000)')
    ap.add_argument('--rounds', type=int, default=3, help='rounds, alternating the sides (default 3)')
    ap.add_argument('--venv', type=Path, default=DEFAULT_VENV, help=f'LaunchDarkly SDK environment ({DEFAULT_VENV})')
    ap.add_argument('--json', action='store_true', help='print the figures as JSON')
    ap.add_argument('--side', choices=['ours', 'ld'], help=argparse.SUPPRESS)
    ap.add_argument('--work', type=Path, help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.side:
        print(json.dumps((ours_side if a.side == 'ours' else ld_side)(a.work, a.n)))
        return
    ld_python = str(ensure_venv(a.venv))
    ld_env = {k: v for k, v in os.environ.items() if k != 'PYTHONPATH'}  # its own environment, not our library
    ours, theirs = [], []
    with tempfile.TemporaryDirectory() as d:
        for _ in range(a.rounds):
            ours.append(run(sys.executable, 'ours', Path(d), a.n))
            theirs.append(run(ld_python, 'ld', Path(d), a.n, env=ld_env))
    o, t = statistics.median(x['us'] for x in ours), statistics.median(x['us'] for x in theirs)
    same = {k: v for k, v in ours[0]['rules'].items() if k != 'share'} == {
        k: v for k, v in theirs[0]['rules'].items() if k != 'share'
    }
    out = dict(
        evaluations_per_round=a.n,
        rounds=a.rounds,
        load_average=os.getloadavg(),
        ours_us=round(o, 2),
        ours_us_rounds=[round(x['us'], 2) for x in ours],
        launchdarkly_us=round(t, 2),
        launchdarkly_us_rounds=[round(x['us'], 2) for x in theirs],
        launchdarkly_sdk=theirs[0]['version'],
        ratio=round(t / o, 2),
        rules=dict(ours=ours[0]['rules'], launchdarkly=theirs[0]['rules']),
        rules_agree=same,
        goal_ratio=GOAL,
    )
    if a.json:
        print(json.dumps(out, indent=1))
    else:
        print(f"{'side':<44}{'us / evaluation (median of rounds)':>36}")
        print(f"{'LaunchDarkly SDK ' + out['launchdarkly_sdk'] + ' (file data source)':<44}{t:>36.2f}")
        print(f"{'ours: FlagClient (OpenFeature + flagd file)':<44}{o:>36.2f}")
        print(f"rounds: ours {out['ours_us_rounds']}, LaunchDarkly {out['launchdarkly_us_rounds']}")
        print(f"ratio LaunchDarkly / ours: {out['ratio']} (goal >= {GOAL}); load average {out['load_average'][0]:.1f}")
        print(f"rules: ours {ours[0]['rules']}, LaunchDarkly {theirs[0]['rules']}: {'agree' if same else 'DIFFER'}")
    sys.exit(0 if same and out['ratio'] >= GOAL else 1)


if __name__ == '__main__':
    main()
