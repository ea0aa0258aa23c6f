"""Shared fixtures: a throw-away copy of the workspace and a way to call the `lifecycle` CLI in it."""

from __future__ import annotations
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
import pytest

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


def cli(ws: Path, *args: str, timeout: int = 600, env: dict | None = None) -> subprocess.CompletedProcess:
    "Run `lifecycle ARGS` inside workspace `ws` (with extra environment variables `env`)."
    return subprocess.run(
        [LIFECYCLE, *args], cwd=ws, env={**clean_env(), **(env or {})}, capture_output=True, text=True, timeout=timeout
    )


def cli_json(ws: Path, *args: str, env: dict | None = None) -> tuple[subprocess.CompletedProcess, dict]:
    "Run with --json and parse stdout."
    r = cli(ws, *args, '--json', env=env)
    try:
        return r, json.loads(r.stdout)
    except json.JSONDecodeError:
        raise AssertionError(f"not JSON (exit {r.returncode}):\n{r.stdout}\n{r.stderr}")


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
