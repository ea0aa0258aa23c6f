"""Write the `.pyc` files of what the workspace imports, once, at `make setup`: every module that `lifecycle`, the
notebooks and the tests import anywhere (at the top or inside a function: the CLI imports its libraries late), and the
tools its processes start (notebook kernels, nbdev-test, the site build, pytest).

`uv pip install --compile-bytecode` compiled all of site-packages instead: 33,000 files, 70 s on two cores, for the
3,800 or so modules anything here imports (31 s in one process, this script). What is imported later and not here is
compiled, and its `.pyc` written, by the first process that imports it (`make` unexports PYTHONDONTWRITEBYTECODE).

    python .ci/compile_imports.py [--quiet]

Two processes (the imports split by top-level package, alternately) compile on two cores.
"""

from __future__ import annotations
import ast
import importlib
import json
import subprocess
import sys
import time
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# Started outside `lifecycle`'s own imports: stage kernels (papermill, ipykernel), nbdev-test (execnb), the report
# site (mkdocs-jupyter, nbconvert), the browser test (playwright) and the test runner itself.
TOOLS = (
    'ipykernel.kernelapp',
    'ipykernel.ipkernel',
    'papermill',
    'nbclient',
    'nbformat',
    'nbconvert',
    'execnb.shell',
    'nbdev.test',
    'nbdev.export',
    'nbdev.clean',
    'mkdocs.commands.build',
    'mkdocs_jupyter.plugin',
    'material',
    'matplotlib.pyplot',
    'plotly.graph_objects',
    'playwright.sync_api',
    'pytest',
    'xdist.plugin',
    'pytest_randomly',
    'pytest_timeout',
    'aiosmtpd.controller',
    'httpx',
)


def sources() -> list[str]:
    "The code of the library, the tests and the notebooks' code cells."
    code = [p.read_text() for d in ('lifecycle', 'tests') for p in sorted((ROOT / d).rglob('*.py'))]
    for nb in sorted((ROOT / 'nbs').rglob('*.ipynb')):
        cells = json.loads(nb.read_text()).get('cells', [])
        code += [''.join(c['source']) for c in cells if c.get('cell_type') == 'code']
    return code


def imported(code: str) -> list[str]:
    "The absolute imports in `code`, wherever they are; for `from a import b`, both `a` and `a.b` (b may be a module)."
    try:
        tree = ast.parse(code)
    except SyntaxError:  # a notebook cell with IPython magics
        return []
    names = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names += [node.module, *(f"{node.module}.{a.name}" for a in node.names if a.name != '*')]
    return names


def main() -> int:
    sys.dont_write_bytecode = False  # whatever the environment says: writing them is the point
    warnings.simplefilter('ignore')
    started, wanted = time.monotonic(), dict.fromkeys(n for c in sources() for n in imported(c))
    local = {p.stem for p in (ROOT / 'tests').glob('*.py')} | {'conftest'}  # test helpers, not libraries
    names = [n for n in [*wanted, *TOOLS] if n.split('.')[0] not in local]
    total, tops = len(names), sorted({n.split('.')[0] for n in names})
    other = set(tops[1::2])  # (the second process's share)
    if '--part' in sys.argv:
        names = [n for n in names if n.split('.')[0] in other]
    else:
        helper = subprocess.Popen([sys.executable, __file__, '--part', '--quiet'])
        names = [n for n in names if n.split('.')[0] not in other]
    for name in names:
        if name in sys.modules:
            continue
        try:
            importlib.import_module(name)
        except ImportError:  # `from a import b` of a function, not a module; or an optional tool not installed
            pass
        except (Exception, SystemExit):  # a module that fails at import: its tests say why
            pass
    if '--part' not in sys.argv:
        helper.wait()
    if '--quiet' not in sys.argv:
        print(f"compiled the modules {total:,} imports need, in two processes, in {time.monotonic() - started:.0f} s")
    return 0


if __name__ == '__main__':
    sys.exit(main())
