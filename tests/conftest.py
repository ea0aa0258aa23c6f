"""Shared fixtures: a throw-away copy of the workspace, a way to call the `lifecycle` CLI in it, and trained workspaces
built once per session and copied for each test that needs one.

Tiers (the `slow` marker is registered in pyproject.toml): `slow` tests run the pipeline, a server, a kill -9 or many
CLI processes, or are the costliest doing an integration's work in-process (MkDocs builds, Evidently on large frames,
a simulation of hundreds of cases); everything else is the fast tier (`make test-fast`, `pytest -m "not slow"`). A
module marks itself with `pytestmark = pytest.mark.slow`, a test with `@pytest.mark.slow`; a test taking a
trained-workspace fixture is marked slow here. Every test runs in any order (pytest-randomly shuffles them on every
run) and on any xdist worker.
"""

from __future__ import annotations
import fcntl
import json
import os
import re
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
import weakref
from contextlib import contextmanager
from pathlib import Path
import pytest

pytest_plugins = ['cpu_accounting']  # `--cpu-report=FILE`: the CPU each test used (tests/cpu_accounting.py)

# One OpenMP thread per process (scikit-learn's boosting, numpy): the suite runs on three xdist workers beside
# nbdev-test on two cores, where every process spinning two threads more than doubles the time. Set before anything
# imports them; the `lifecycle` processes the tests start inherit it.
os.environ.setdefault('OMP_NUM_THREADS', '1')

ROOT = Path(__file__).resolve().parents[1]
LIFECYCLE = str(Path(sys.executable).parent / 'lifecycle')


def make_workspace(dest: Path) -> Path:
    "Copy what a workspace needs (settings, params, stage notebooks) into `dest`."
    dest.mkdir(parents=True, exist_ok=True)
    shutil.copy(ROOT / 'settings.ini', dest / 'settings.ini')
    shutil.copytree(ROOT / 'params', dest / 'params')
    shutil.copytree(
        ROOT / 'nbs' / 'stages', dest / 'nbs' / 'stages', ignore=shutil.ignore_patterns('.ipynb_checkpoints')
    )
    return dest


def clean_env() -> dict:
    "The environment without any LIFECYCLE_* overrides from the caller."
    return {k: v for k, v in os.environ.items() if not k.startswith(('LIFECYCLE_', 'MLFLOW_'))}


def cli(
    ws: Path, *args: str, timeout: int = 600, env: dict | None = None, own_process: bool = False
) -> subprocess.CompletedProcess:
    """Run `lifecycle ARGS` inside workspace `ws` (with extra environment variables `env`), as the user would: in this
    process through Click (the libraries each command imports are imported once per test process, not once per call),
    or, with `own_process=True` (or `LIFECYCLE_TESTS_OWN_PROCESS=1` for the whole suite), as a `lifecycle`
    subprocess. A test that holds a lock, kills the command or races two of them runs it in its own process."""
    if own_process or os.environ.get('LIFECYCLE_TESTS_OWN_PROCESS') == '1':
        return subprocess.run(
            [LIFECYCLE, *args],
            cwd=ws,
            env={**clean_env(), **(env or {})},
            capture_output=True,
            text=True,
            timeout=timeout,
        )
    return _cli_here(ws, args, env or {})


def _cli_here(ws: Path, args: tuple[str, ...], env: dict) -> subprocess.CompletedProcess:
    """`lifecycle ARGS` in this process: the environment a subprocess would get (no inherited LIFECYCLE_*/MLFLOW_*
    variables, plus `env`), the working folder `ws`, both put back afterwards with MLflow's URIs. An exception that
    escaped the command is shown as the traceback a user would see (the tests assert there is none)."""
    import traceback
    from typer.testing import CliRunner
    from lifecycle.app.cli import app

    saved_env, cwd, uris = dict(os.environ), os.getcwd(), _mlflow_uris()
    wanted = {**clean_env(), **env}
    os.environ.clear()
    os.environ.update(wanted)
    os.chdir(ws)
    try:
        r = CliRunner().invoke(app, list(args), prog_name='lifecycle')
    finally:
        _restore_mlflow_uris(uris)  # first: setting them writes MLFLOW_* variables, put back just after
        os.chdir(cwd)
        os.environ.clear()
        os.environ.update(saved_env)
    stderr = r.stderr
    if r.exception is not None and not isinstance(r.exception, SystemExit):
        stderr += ''.join(traceback.format_exception(r.exception))
    return subprocess.CompletedProcess([LIFECYCLE, *args], r.exit_code, r.stdout, stderr)


def cli_json(
    ws: Path, *args: str, env: dict | None = None, own_process: bool = False
) -> tuple[subprocess.CompletedProcess, dict]:
    "Run with --json and parse stdout."
    r = cli(ws, *args, '--json', env=env, own_process=own_process)
    try:
        return r, json.loads(r.stdout)
    except json.JSONDecodeError:
        raise AssertionError(f"not JSON (exit {r.returncode}):\n{r.stdout}\n{r.stderr}")


def wait_until(pred, timeout: float = 10, step: float = 0.02):
    "Poll `pred` until it is true (its value), or fail after `timeout` seconds."
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        v = pred()
        if v:
            return v
        time.sleep(step)
    raise AssertionError(f'condition not met within {timeout}s')


@pytest.fixture
def workspace(tmp_path) -> Path:
    return make_workspace(tmp_path / 'ws')


def set_yaml(path: Path, **changes) -> None:
    "Change top-level or dotted keys of a params YAML file."
    import yaml

    d = yaml.safe_load(path.read_text())
    for k, v in changes.items():
        target, parts = d, k.split('__')
        for part in parts[:-1]:
            target = target.setdefault(part, {})
        target[parts[-1]] = v
    path.write_text(yaml.safe_dump(d, sort_keys=False))


@pytest.fixture(scope='session')
def arrests():
    from sklego.datasets import load_arrests

    return load_arrests(as_frame=True)


# -- every test's keys outside the real home -------------------------------------------------------------------------

DATA_HOME_VAR = 'PYTEST_LIFECYCLE_DATA_HOME'


def pytest_configure(config):
    """Point the audit keys (`$XDG_DATA_HOME/lifecycle/keys/<workspace id>`) at a throw-away folder for the session, so
    no test reads or writes the user's real keys folder. The first process makes it (a plain run, or xdist's
    controller); xdist workers inherit it through the environment, so a template built by one worker keeps its key
    where the other finds it. `LIFECYCLE_KEYS_DIR` is dropped: a test that wants its own sets it."""
    if not os.environ.get(DATA_HOME_VAR):
        os.environ[DATA_HOME_VAR] = tempfile.mkdtemp(prefix='lifecycle-tests-data-')
        config._lifecycle_data_home = os.environ[DATA_HOME_VAR]  # this process made it: it removes it at the end
    os.environ['XDG_DATA_HOME'] = os.environ[DATA_HOME_VAR]
    os.environ.pop('LIFECYCLE_KEYS_DIR', None)
    import typer.testing

    typer.testing._get_command = click_command  # (CliRunner's: in this process only)


# -- the CLI's click commands, built once per process ---------------------------------------------------------------

_BUILT = weakref.WeakKeyDictionary()


def click_command(app):
    """The click command typer builds for Typer `app`, once per process and app. Typer's `CliRunner().invoke` built it
    afresh on each call from every command's signature: 31 ms for the whole CLI, 22 s of the fast tier's 220 s of CPU
    (cProfile). It is built alike every time, since an app's commands are fixed once registered, and a test that
    patches a module's function patches none of them either way."""
    import typer.main

    if app not in _BUILT:
        _BUILT[app] = typer.main.get_command(app)
    return _BUILT[app]


@pytest.hookimpl(trylast=True)
def pytest_unconfigure(config):
    """An xdist worker ends here, its results sent (`workerfinished` goes before unconfigure) and its session's
    fixtures torn down, without Python's teardown of everything it imported (pandas, scikit-learn, Evidently, MLflow):
    the controller waited for both workers to tear their heaps down, 3-6 s of every parallel run with nothing to do.
    The process that made the session's data home (`pytest_configure`) removes it."""
    if hasattr(config, 'workerinput'):
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(0)
    made = getattr(config, '_lifecycle_data_home', None)
    if made:
        shutil.rmtree(made, ignore_errors=True)
        os.environ.pop(DATA_HOME_VAR, None)


def _workspace_env() -> dict:
    return {k: v for k, v in os.environ.items() if k.startswith(('LIFECYCLE_', 'MLFLOW_'))}


@contextmanager
def _process_state_kept():
    """What the block changes in this process is put back afterwards: MLflow's tracking and registry URIs (opening a
    workspace points them there) and the LIFECYCLE_*/MLFLOW_* environment variables (an in-process pipeline run sets
    LIFECYCLE_WORKSPACE) and the params folders named with a contact that a workspace read (`names._params_read`)."""
    from lifecycle.core.names import _params_read

    uris, env, params_read = _mlflow_uris(), _workspace_env(), set(_params_read)
    _schema_head_once()
    try:
        yield
    finally:
        _params_read.clear()
        _params_read.update(params_read)
        _restore_mlflow_uris(uris)
        for k in set(_workspace_env()) - set(env):
            del os.environ[k]
        os.environ.update(env)


def _schema_head_once() -> None:
    """MLflow reads its 67 migration scripts again for each tracking database it opens, to learn the newest schema
    revision, which only its own version decides; a test process opens about a hundred (one per workspace copy), 20 ms
    of CPU each: the answer is kept for the process once MLflow's store code is loaded. No test sees another value."""
    utils = sys.modules.get('mlflow.store.db.utils')
    if utils is not None and not hasattr(utils._get_latest_schema_revision, 'cache_info'):
        import functools

        utils._get_latest_schema_revision = functools.cache(utils._get_latest_schema_revision)


@pytest.fixture(autouse=True)
def _process_state_restored():
    "What a test changes in this process for the next one is put back (`_process_state_kept`)."
    with _process_state_kept():
        yield


def _mlflow_uris() -> tuple[str | None, str | None]:
    "MLflow's module-level tracking and registry URIs as `set_*_uri` left them (None: never set, or MLflow not loaded)."
    if 'mlflow' not in sys.modules:
        return None, None
    from mlflow.tracking._model_registry import utils as registry
    from mlflow.tracking._tracking_service import utils as tracking

    return tracking._tracking_uri, registry._registry_uri


def _restore_mlflow_uris(uris: tuple[str | None, str | None]) -> None:
    "Put MLflow's URIs back as `_mlflow_uris` found them (unset when MLflow was not loaded then)."
    if 'mlflow' in sys.modules:
        import mlflow

        mlflow.set_tracking_uri(uris[0])
        mlflow.set_registry_uri(uris[1])


# -- trained workspaces: built once per session, copied per test ----------------------------------------------------

TRAINER = {'LIFECYCLE_ACTOR': 'alice'}  # who trains the templates' versions (a data scientist: not an approver)


def keys_folder_of(ws: Path) -> Path:
    "The folder outside the workspace holding its audit key and checkpoint (see `lifecycle.core.audit.keys_folder`)."
    from lifecycle.core.settings import default_keys_dir

    return default_keys_dir() / (ws / '.lifecycle' / 'workspace.id').read_text().strip()


def make_audit_unwritable(monkeypatch) -> None:
    """Make every audit append fail as an immutable (`chattr +i`) log does, with `PermissionError` on taking its lock;
    `monkeypatch.undo()` makes it writable again."""
    from contextlib import contextmanager
    from lifecycle.core import audit

    @contextmanager
    def immutable(log):
        raise PermissionError(1, 'Operation not permitted', str(log))
        yield

    monkeypatch.setattr(audit, '_locked_chain', immutable)


def killed_before_register_entry(monkeypatch, register) -> None:
    """Run `register()` (a `register_version` call) killed after MLflow registered the version and before its
    `model.register` audit entry (a KeyboardInterrupt there), then put `Workspace.audit` back."""
    from lifecycle.core.workspace import Workspace

    real = Workspace.audit

    def killed(self, action, *a, **k):
        if action == 'model.register':
            raise KeyboardInterrupt  # (the run killed after registering, before its audit entry)
        return real(self, action, *a, **k)

    monkeypatch.setattr(Workspace, 'audit', killed)
    with pytest.raises(KeyboardInterrupt):
        register()
    monkeypatch.setattr(Workspace, 'audit', real)


def toy_validation(ws) -> str:
    """A passing validation record of a small logistic regression on one column `a` (four rows), logged in a run of
    workspace `ws`: what `register_version` takes, without a pipeline run."""
    import pandas as pd
    from sklearn.linear_model import LogisticRegression
    from lifecycle.model.registry import record_validation

    X, y = pd.DataFrame({'a': [0.0, 1.0, 2.0, 3.0]}), [0, 0, 1, 1]
    with ws.mlflow.start_run(experiment_id=ws.experiment('toy')) as run:
        uri = ws.mlflow.sklearn.log_model(
            LogisticRegression().fit(X, y), name='model', pip_requirements=['scikit-learn']
        ).model_uri
    gates = [dict(gate='accuracy', kind='threshold', value=1.0, limit='>= 0.7', verdict='pass')]
    return record_validation(ws.store, dict(mlflow_run_id=run.info.run_id, model_uri=uri, passed=True, gates=gates))


def copy_workspace(src: Path, dest: Path) -> Path:
    """Copy a workspace with all its state to `dest`, self-contained: its own workspace id, its own copy of the audit
    key and checkpoint (outside the workspace, under that id), MLflow and the records it reads back pointing at it.

    MLflow keeps absolute paths in its SQLite database (experiments' `artifact_location`, runs' `artifact_uri`, logged
    models' and model versions' storage locations), so a plain copy would load models from the original and log new
    artifacts into it: the copy's database is rewritten to its own folder, and so are the JSON records the workspace
    reads back (stage cache outputs, run manifests). Absolute paths stay where they are evidence: the audit log, the
    signed model files, the executed notebooks. The copy's audit checkpoint names the original log; `audit verify`
    notes that, as it does for any moved workspace, and the next append rewrites it."""
    shutil.copytree(src, dest, symlinks=True)
    state = dest / '.lifecycle'
    if (state / 'workspace.id').is_file():
        old_keys = keys_folder_of(src)
        (state / 'workspace.id').write_text(os.urandom(16).hex() + '\n')
        if old_keys.is_dir():
            shutil.copytree(old_keys, keys_folder_of(dest))
    old, new = str(src.resolve()), str(dest.resolve())
    for db in (state / 'mlflow.db', state / 'predictions.db'):
        if db.is_file():
            rebase_sqlite(db, old, new)
    records = [*(state / 'cache').glob('*.json'), *(dest / 'reports' / 'runs').glob('*/manifest.json')]
    for record in records:
        text = record.read_text()
        if old in text:
            record.write_text(text.replace(old, new))
    return dest


def own_keys(ws: Path) -> Path:
    """Give a workspace copy a keys folder of its own (settings.ini's `keys_dir`, beside it), holding copies of what it
    uses from the session's shared one: the signing key, the people's keys and its audit key folder. For a test that
    replaces a person's key: in the shared folder, every other workspace's registration would then disagree with it."""
    import re
    from lifecycle.core.settings import default_keys_dir

    src, dest = default_keys_dir(), ws.parent / 'keys'
    wid = (ws / '.lifecycle' / 'workspace.id').read_text().strip()
    dest.mkdir(mode=0o700)
    for f in src.iterdir():
        if f.is_file():
            shutil.copy2(f, dest / f.name)
    for folder in ('people', wid):
        shutil.copytree(src / folder, dest / folder)
    ini = ws / 'settings.ini'
    text, n = re.subn(r'(?m)^keys_dir\s*=.*$', f'keys_dir = {dest}', ini.read_text())
    assert n == 1, f"{ini}: expected one keys_dir line"
    ini.write_text(text)
    return dest


def rebase_sqlite(db: Path, old: str, new: str) -> int:
    "Replace the path prefix `old` by `new` in every text value of every table of SQLite file `db`; rows changed."
    con = sqlite3.connect(db)
    try:
        changed = 0
        with con:
            tables = [t for (t,) in con.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
            for t in tables:
                # the audit checkpoint's copy (a tag) is signed evidence naming the original log, as the audit log
                # itself: kept as written, like a moved workspace's
                keep = " AND key != 'audit.checkpoint'" if t == 'tags' else ''
                for col in [c[1] for c in con.execute(f'PRAGMA table_info("{t}")')]:
                    changed += con.execute(
                        f'UPDATE "{t}" SET "{col}" = replace("{col}", ?, ?) '
                        f'WHERE typeof("{col}") = \'text\' AND instr("{col}", ?) > 0{keep}',
                        (old, new, old),
                    ).rowcount
        return changed
    finally:
        con.close()


@contextmanager
def _exclusive(lock: Path):
    "One process at a time: pytest-xdist workers build a shared template once, the others wait and reuse it."
    with open(lock, 'w') as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def _listing(root: Path) -> dict:
    return {str(p.relative_to(root)): [p.stat().st_size, p.stat().st_mtime_ns] for p in root.rglob('*') if p.is_file()}


def _template_listing(ws: Path) -> dict:
    "Size and modification time of each file of a template workspace and of its keys folder (`<keys>/...`)."
    return {**_listing(ws), **{f'<keys>/{k}': v for k, v in _listing(keys_folder_of(ws)).items()}}


def _shared_template(tmp_path_factory, name: str, build) -> tuple[Path, dict]:
    """Build a template workspace once for the whole session (all xdist workers share it): `build(ws)` returns a
    JSON-able dict kept beside it. Later callers, in this process or another worker, get the finished template."""
    base = tmp_path_factory.getbasetemp()
    if os.environ.get('PYTEST_XDIST_WORKER'):
        base = base.parent  # shared by the workers of one session
    home = base / 'templates' / name
    home.parent.mkdir(parents=True, exist_ok=True)
    with _exclusive(home.parent / f'{name}.lock'):
        done = home / 'built.json'
        if not done.is_file():
            shutil.rmtree(home, ignore_errors=True)
            info = build(make_workspace(home / 'ws'))
            ws = home / 'ws'
            listing = _template_listing(ws)
            done.write_text(json.dumps({'info': info, 'listing': listing}))
    return home / 'ws', json.loads(done.read_text())


def _check_untouched(ws: Path, built: dict) -> None:
    "Fail if a test wrote into a template (or its keys folder): its copies would no longer be what they claim."
    now = _template_listing(ws)
    changed = {k for k, v in now.items() if built['listing'].get(k) != v} | (set(built['listing']) - set(now))
    assert not changed, f"a test wrote into the session template {ws}: {sorted(changed)[:10]}"


@pytest.fixture(scope='session')
def trained_template(tmp_path_factory) -> tuple[Path, dict]:
    """One cold `lifecycle run --json` on the default dataset per session, trained by alice: version 1 of
    arrests-release with the dev alias (the champion of a dev workspace), the report site rendered. Returns the
    template and the run's JSON output. Never change it: take a copy (`trained`)."""

    def build(ws):
        r, out = cli_json(ws, 'run', env=TRAINER)
        assert r.returncode == 0, r.stderr
        return out

    ws, built = _shared_template(tmp_path_factory, 'trained', build)
    yield ws, built['info']
    _check_untouched(ws, built)


@pytest.fixture(scope='session')
def two_versions_template(tmp_path_factory, trained_template) -> Path:
    """The trained template plus version 2, trained beside the champion on the same snapshot by the library's
    `simulate.train_candidate` (validated, registered with no alias and signed, as the rollout demo does; cheaper than
    a second pipeline run), then `lifecycle flags init`: control and safe version 1, no challenger deployed yet."""

    def build(ws):
        shutil.rmtree(ws)
        copy_workspace(trained_template[0], ws)
        code = (
            'from lifecycle.core.workspace import Workspace; from lifecycle.deliver.simulate import train_candidate; '
            'print(train_candidate(Workspace.open("."), reason="second version for the tests"))'
        )
        r = subprocess.run(
            [sys.executable, '-c', code],
            cwd=ws,
            env={**clean_env(), **TRAINER},
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )
        assert r.returncode == 0 and r.stdout.split()[-1] == '2', r.stdout + r.stderr
        r = cli(ws, 'flags', 'init')
        assert r.returncode == 0, r.stderr
        return {}

    ws, built = _shared_template(tmp_path_factory, 'two-versions', build)
    yield ws
    _check_untouched(ws, built)


@pytest.fixture(scope='session')
def tiny_template(tmp_path_factory) -> Path:
    """`tiny_workspace` once per session for every worker: two small validated, signed versions of the default model
    (1 with the dev alias, the champion), flags initialised, the demo identities registered. Never change it: take a
    copy (`tiny_ws` for a module, `copy_workspace` for a test)."""
    from lifecycle.serve.local import tiny_workspace

    def build(ws):
        shutil.rmtree(ws)
        with _process_state_kept():  # (built in this process: MLflow's URIs never left pointing at the template)
            tiny_workspace(ws, template=ROOT)
        return {}

    ws, built = _shared_template(tmp_path_factory, 'tiny', build)
    yield ws
    _check_untouched(ws, built)


@pytest.fixture(scope='module')
def tiny_ws(tiny_template, tmp_path_factory) -> Path:
    "A copy of the session's tiny workspace (`tiny_template`) that the tests of one module share."
    return copy_workspace(tiny_template, tmp_path_factory.mktemp('tiny') / 'ws')


@pytest.fixture
def trained(trained_template, tmp_path) -> Path:
    "A private copy of the session's trained workspace (see `trained_template`): change it at will."
    return copy_workspace(trained_template[0], tmp_path / 'ws')


@pytest.fixture
def two_versions(two_versions_template, tmp_path) -> Path:
    "A private copy of the session's workspace: versions 1 (dev, the champion) and 2 (a candidate), flags initialised."
    return copy_workspace(two_versions_template, tmp_path / 'ws')


SLOW_FIXTURES = {'trained_template', 'two_versions_template'}


def pytest_collection_modifyitems(config, items):
    "A test that needs a trained workspace (a cold pipeline run at least once per session) is in the slow tier."
    for item in items:
        if SLOW_FIXTURES & set(getattr(item, 'fixturenames', ())):
            item.add_marker(pytest.mark.slow)


def write_ab_report(w, version='1', control='0') -> str:
    """A/B evidence about `version` in workspace handle `w`: an experiment report, written as `lifecycle experiment
    report` writes it, in which `version` served the challenger arm beside `control`; its sha256."""
    import hashlib
    import pandas as pd
    from lifecycle.deliver import experiment

    rows = [
        dict(
            variant=arm,
            route='predict',
            shadow=False,
            decision=[1],
            outcome='Yes',
            status=200,
            latency_ms=2.0,
            model_version=v,
        )
        for arm, v in (('control', str(control)), ('challenger', str(version)))
        for _ in range(3)
    ]
    a = experiment.analyse(pd.DataFrame(rows), 'Yes', w.params['rollout'].experiment, draws=2000)
    return hashlib.sha256(experiment.write_report(w, a).read_bytes()).hexdigest()


DIGEST = r'h:[0-9a-f]{10}'  # how a refused or quarantined value is quoted (`lifecycle.data.pii.digest`, keyed)


def digests_masked(text: str) -> str:
    "`text` with every digest written `h:<hash>`: a check that no raw value is quoted must not read a digest's digits."
    return re.sub(rf'\b{DIGEST}\b', 'h:<hash>', text)


def http_answers(so, n: int) -> list[tuple[bytes, dict]]:
    "The next `n` HTTP answers read from socket `so`, each as (head, JSON body); fails if the server closes first."
    data, out = b'', []
    while len(out) < n:
        head, sep, rest = data.partition(b'\r\n\r\n')
        sizes = [int(x.split(b':')[1]) for x in head.split(b'\r\n') if x.lower().startswith(b'content-length:')]
        if sep and sizes and len(rest) >= sizes[0]:
            out.append((head, json.loads(rest[: sizes[0]])))
            data = rest[sizes[0] :]
            continue
        chunk = so.recv(1 << 20)
        assert chunk, f'connection closed after {len(out)} answer(s)'
        data += chunk
    return out


@contextmanager
def uvicorn_thread(app, **config):
    """uvicorn serving `app` in a thread on a free port of 127.0.0.1 (`config`: more of `uvicorn.Config`): yields
    (the server, its port); it must stop when told."""
    import socket
    import threading
    import uvicorn

    with socket.socket() as so:
        so.bind(('127.0.0.1', 0))
        port = so.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, host='127.0.0.1', port=port, **{'log_level': 'warning', **config}))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    end = time.monotonic() + 60
    while not server.started and thread.is_alive() and time.monotonic() < end:
        time.sleep(0.02)
    assert server.started
    try:
        yield server, port
    finally:
        server.should_exit = True
        thread.join(30)
        assert not thread.is_alive(), 'the server did not stop'


# -- the cycle collector in the pytest processes ---------------------------------------------------------------------


def pytest_collection_finish(session):
    """The cycle collector, in each pytest process once its tests are collected: what collection imported is frozen
    (modules live as long as the process: no collection walks them again), and a young-generation collection waits
    for 10,000 new objects instead of 700. In the fast tier the two xdist workers spent 13.2 s of their 110 s of CPU
    collecting; 7.2 s with this (timed with `gc.callbacks`)."""
    import gc

    gc.collect()
    gc.freeze()
    gc.set_threshold(10_000, *gc.get_threshold()[1:])
