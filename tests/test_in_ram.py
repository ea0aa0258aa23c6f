"""`tests/in_ram.sh`, which the Makefile's test targets run under: the command gets a fresh folder in RAM as TMPDIR,
removed when it passes, kept when it fails until a later run finds no run holding it; on disk when asked, or when
TMPDIR is set already."""

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from conftest import ROOT, wait_until

SCRIPT = ROOT / 'tests' / 'in_ram.sh'


def _ram_usable() -> bool:
    if not os.access('/dev/shm', os.W_OK) or shutil.which('flock') is None:
        return False
    tmpfs = subprocess.run(['stat', '-f', '-c', '%T', '/dev/shm'], capture_output=True, text=True).stdout.strip()
    return tmpfs == 'tmpfs'


pytestmark = pytest.mark.skipif(not _ram_usable(), reason='/dev/shm is no writable tmpfs here')


def environ(**env) -> dict:
    """The script's environment: none of the caller's TMPDIR or LIFECYCLE_TEST_TMP (the suite's own run has a TMPDIR,
    and `LIFECYCLE_TEST_TMP=disk make pytest` must not send these runs to disk), and no free space asked of /dev/shm
    (LIFECYCLE_TEST_RAM_GIB=0): by the time these run, the suite's own folder may hold gigabytes of it."""
    base = {k: v for k, v in os.environ.items() if k not in ('TMPDIR', 'LIFECYCLE_TEST_TMP')}
    return {**base, 'LIFECYCLE_TEST_RAM_GIB': '0', **env}


def run(*cmd: str, **env) -> subprocess.CompletedProcess:
    "The script running `cmd` (environment: `environ`)."
    return subprocess.run(['bash', str(SCRIPT), *cmd], env=environ(**env), capture_output=True, text=True, timeout=60)


def test_a_passing_command_gets_a_fresh_folder_in_ram_that_goes_with_it():
    r = run('sh', '-c', 'echo "$TMPDIR"; touch "$TMPDIR/x"; stat -c %a "$TMPDIR"')
    assert r.returncode == 0, r.stderr
    folder, mode = r.stdout.split()
    assert folder.startswith('/dev/shm/lifecycle-tests.') and mode == '1777'  # (as /tmp: another user's cluster)
    assert f'temporary files are in {folder} (RAM)' in r.stderr and not Path(folder).exists()


def test_a_failing_command_keeps_its_folder_for_a_look_and_the_next_run_removes_it():
    r = run('sh', '-c', 'echo "$TMPDIR"; touch "$TMPDIR/x"; exit 3')
    folder = Path(r.stdout.strip())
    assert r.returncode == 3 and (folder / 'x').is_file()
    assert f'kept in {folder} (RAM) for a look' in r.stderr
    assert run('true').returncode == 0 and not folder.exists()


def test_a_folder_a_running_command_holds_is_left_to_it(tmp_path):
    go = tmp_path / 'go'
    holder = subprocess.Popen(
        ['bash', str(SCRIPT), 'sh', '-c', f'echo "$TMPDIR"; while [ ! -e {go} ]; do sleep 0.05; done; ls "$TMPDIR"'],
        env=environ(),
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        folder = Path(holder.stdout.readline().strip())
        assert folder.parent == Path('/dev/shm'), folder  # (not '': a `mine` in the working folder)
        (folder / 'mine').touch()
        assert run('true').returncode == 0  # another run, which removes folders no run holds
        assert (folder / 'mine').is_file()
    finally:
        go.touch()
    out, _ = holder.communicate(timeout=30)
    assert holder.returncode == 0 and out.split() == ['mine']
    wait_until(lambda: not folder.exists())


def test_a_tmpdir_set_already_is_kept_and_disk_is_taken_when_asked(tmp_path):
    r = run('sh', '-c', 'echo "$TMPDIR"', TMPDIR=str(tmp_path))
    assert (r.returncode, r.stdout.strip(), r.stderr) == (0, str(tmp_path), '')
    r = run('sh', '-c', 'echo "${TMPDIR:-unset}"; exit 4', LIFECYCLE_TEST_TMP='disk')
    assert (r.returncode, r.stdout.strip()) == (4, 'unset')
    assert 'stay on disk: LIFECYCLE_TEST_TMP=disk' in r.stderr


def test_a_kept_folder_is_removed_by_a_run_that_then_finds_too_little_room_and_takes_the_disk():
    "The stale folders go before the free space is looked at: a kept folder cannot keep every later run on disk."
    folder = Path(run('sh', '-c', 'echo "$TMPDIR"; exit 1').stdout.strip())
    assert folder.parent == Path('/dev/shm') and folder.is_dir()
    r = run('sh', '-c', 'echo "${TMPDIR:-unset}"', LIFECYCLE_TEST_RAM_GIB=str(1 << 20))
    assert (r.returncode, r.stdout.strip()) == (0, 'unset') and 'GiB free, not 1048576' in r.stderr
    assert not folder.exists()
