"""Fail when `nbdev-export` or `nbdev-clean` would change the library or the notebooks.

Hashes every file under lifecycle/ and nbs/ (and pyproject.toml, nbdev's settings) before and after running both, so
it works without git and is not fooled by uncommitted work; it names each file that changed. A file they rewrote with
the same contents gets its times back: nbdev-export rewrites pyproject.toml, which `make` would take for a changed
project and install it again (`make test` runs this check before the tests' own `setup`).
"""

import hashlib
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def snapshot():
    files = [ROOT / 'pyproject.toml'] + [
        p
        for d in ('lifecycle', 'nbs')
        for p in (ROOT / d).rglob('*')
        if p.is_file() and '__pycache__' not in p.parts and '.ipynb_checkpoints' not in p.parts
    ]
    return {str(p.relative_to(ROOT)): hashlib.sha256(p.read_bytes()).hexdigest() for p in files}


before = snapshot()
times = {k: os.stat(ROOT / k) for k in before}
for cmd in ('nbdev-export', 'nbdev-clean'):
    r = subprocess.run([str(BIN / cmd)], cwd=ROOT, capture_output=True, text=True)
    if r.returncode:
        sys.exit(f"{cmd} failed (exit {r.returncode}):\n{r.stdout}{r.stderr}")
after = snapshot()
for k, st in times.items():
    if after.get(k) == before[k]:
        os.utime(ROOT / k, ns=(st.st_atime_ns, st.st_mtime_ns))
changed = sorted(k for k in before.keys() | after.keys() if before.get(k) != after.get(k))
if changed:
    sys.exit(
        "notebooks and library are out of sync: nbdev-export/nbdev-clean changed\n  "
        + "\n  ".join(changed)
        + "\nRun `nbdev-export && nbdev-clean` and commit the result."
    )
print(f"nbdev sync ok: {len(after)} files unchanged by nbdev-export and nbdev-clean")
