"""numpy's AVX-512 sort turned off on AMD Zen 4 by the `lifecycle` command (`lifecycle.core.cpu`)."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

import lifecycle.app.cli as cli_module
from lifecycle.core import cpu

ZEN4 = (
    'processor\t: 0\nvendor_id\t: AuthenticAMD\ncpu family\t: 25\nmodel\t\t: 17\nmodel name\t: AMD EPYC\n'
    'flags\t\t: fpu sse2 avx avx2 avx512f avx512dq avx512cd avx512bw avx512vl\n\nprocessor\t: 1\n'
)


def test_numpy_knows_every_feature_it_is_told_to_turn_off():
    "An unknown name would only warn (an ImportWarning, made an error here), and leave the AVX-512 sort on."
    code = 'import numpy as np; print(np._core._multiarray_umath.__cpu_features__["X86_V4"])'
    r = subprocess.run(
        [sys.executable, '-W', 'error::ImportWarning', '-c', code],
        env={**os.environ, cpu.NUMPY_DISABLE: cpu.ZEN4_OFF},
        capture_output=True,
        text=True,
    )
    assert r.returncode == 0 and r.stdout.strip() == 'False', r.stderr[-2000:]


@pytest.mark.parametrize('vendor, expected', [('AuthenticAMD', cpu.ZEN4_OFF), ('GenuineIntel', None)])
def test_the_command_sets_numpys_switch_first_on_zen4_only(tmp_path, monkeypatch, vendor, expected):
    info = tmp_path / 'cpuinfo'
    info.write_text(ZEN4.replace('AuthenticAMD', vendor))
    monkeypatch.setattr(cpu, '_CPUINFO', str(info))
    for var in (cpu.NUMPY_DISABLE, 'NPY_ENABLE_CPU_FEATURES'):
        monkeypatch.setenv(var, 'x')  # (so that monkeypatch takes away what `main` sets)
        monkeypatch.delenv(var)
    seen = []
    monkeypatch.setattr(cli_module, 'app', lambda *a, **k: seen.append(os.environ.get(cpu.NUMPY_DISABLE)))
    monkeypatch.setattr('sys.argv', ['lifecycle', 'status'])
    cli_module.main()
    assert seen == [expected]  # set before the command ran, so in every process it starts


def test_a_users_own_setting_wins(tmp_path, monkeypatch):
    info = tmp_path / 'cpuinfo'
    info.write_text(ZEN4)
    monkeypatch.setattr(cpu, '_CPUINFO', str(info))
    monkeypatch.setenv(cpu.NUMPY_DISABLE, '')  # (keep numpy's AVX-512 kernels)
    monkeypatch.setattr(cli_module, 'app', lambda *a, **k: None)
    monkeypatch.setattr('sys.argv', ['lifecycle', 'status'])
    cli_module.main()
    assert os.environ[cpu.NUMPY_DISABLE] == ''


def test_the_makefile_gives_the_tests_the_commands_setting(tmp_path):
    "make's recipes (the test tiers) sort as the `lifecycle` command does on this machine; a user's own value is kept."
    root = Path(__file__).resolve().parents[1]
    printer = tmp_path / 'print.mk'
    printer.write_text(f'print:\n\t@echo "[$${cpu.NUMPY_DISABLE}]"\n')
    env = {k: v for k, v in os.environ.items() if not k.startswith(('NPY_', 'MAKE'))}

    def ask(**extra) -> str:
        cmd = ['make', '-s', '--no-print-directory', '-f', 'Makefile', '-f', str(printer), 'print']
        cmd.append(f'VENV={sys.prefix}')  # (the virtualenv running the tests: a clone's own .venv may not exist)
        r = subprocess.run(cmd, cwd=root, env={**env, **extra}, capture_output=True, text=True, timeout=60)
        assert r.returncode == 0, r.stderr
        return r.stdout.strip()

    assert ask() == f"[{cpu.avx2_sort({}).get(cpu.NUMPY_DISABLE, '')}]"
    assert ask(**{cpu.NUMPY_DISABLE: 'AVX512_SPR'}) == '[AVX512_SPR]'


@pytest.mark.parametrize('written, known', [('version = "2.4.6"', True), ('version: str = "3.0.0"', True),
                                            ('version = "2.3.5"', False), ('version = "1.26.4"', False), ('', False)])
def test_an_older_numpy_is_told_nothing_it_would_warn_of(tmp_path, monkeypatch, written, known):
    "numpy before 2.4 names its AVX-512 targets otherwise: it would warn of ours at import and keep its kernels."
    import importlib.machinery
    import importlib.util

    (tmp_path / 'numpy').mkdir()
    (tmp_path / 'numpy' / 'version.py').write_text(written + '\n')
    spec = importlib.machinery.ModuleSpec('numpy', None, origin=str(tmp_path / 'numpy' / '__init__.py'))
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, 'find_spec', lambda name, *a: spec if name == 'numpy' else real(name, *a))
    info = tmp_path / 'cpuinfo'
    info.write_text(ZEN4)
    assert cpu.avx2_sort({}, str(info)) == ({cpu.NUMPY_DISABLE: cpu.ZEN4_OFF} if known else {})
