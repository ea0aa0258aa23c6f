"""The package's layers: no module imports a higher layer, and no import cycle among modules; old import paths still
resolve to the moved modules with a deprecation warning."""

from __future__ import annotations
import ast
import warnings
from pathlib import Path
import pytest

ROOT = Path(__file__).resolve().parents[1] / 'lifecycle'
ORDER = ['core', 'data', 'model', 'release', 'serve', 'deliver', 'operate', 'loop', 'app']


def imports() -> dict[str, set[str]]:
    "Module `layer.name` -> the `layer.name` modules of lifecycle it imports (at the top or inside functions)."
    edges = {}
    for f in ROOT.glob('*/*.py'):
        layer, mod = f.parent.name, f.stem
        if layer not in ORDER or mod == '__init__':
            continue
        out = edges.setdefault(f'{layer}.{mod}', set())
        for node in ast.walk(ast.parse(f.read_text())):
            if isinstance(node, ast.ImportFrom):
                if node.level == 1:
                    targets = [(layer, (node.module or n.name).split('.')[0]) for n in node.names]
                elif node.level == 2 and node.module:
                    targets = (
                        [tuple(node.module.split('.')[:2])]
                        if '.' in node.module
                        else [(node.module, n.name) for n in node.names]
                    )
                elif node.module and node.module.startswith('lifecycle.'):
                    parts = node.module.split('.')[1:]
                    targets = [tuple(parts[:2])] if len(parts) >= 2 else [(parts[0], n.name) for n in node.names]
                else:
                    targets = []
            elif isinstance(node, ast.Import):
                targets = [tuple(n.name.split('.')[1:3]) for n in node.names if n.name.startswith('lifecycle.')]
            else:
                continue
            out |= {f'{a}.{b}' for a, b in targets if a in ORDER}
    return edges


def test_no_module_imports_a_higher_layer():
    upward = [
        f'{a} -> {b}'
        for a, bs in imports().items()
        for b in bs
        if ORDER.index(b.split('.')[0]) > ORDER.index(a.split('.')[0])
    ]
    assert upward == []


def test_no_import_cycle_among_modules():
    edges, cycles, done = imports(), [], set()

    def visit(n, path):
        if n in path:
            cycles.append(path[path.index(n) :] + [n])
            return
        if n in done:
            return
        for m in edges.get(n, ()):
            visit(m, path + [n])
        done.add(n)

    for n in edges:
        visit(n, [])
    assert cycles == []


def test_the_layers_are_all_there():
    assert sorted({m.split('.')[0] for m in imports()}) == sorted(ORDER)


@pytest.mark.parametrize('old, new', [('store', 'core.store'), ('ingest', 'data.ingest'), ('serving', 'serve.serving')])
def test_an_old_import_path_is_the_moved_module_with_a_warning(old, new):
    import importlib
    import sys

    sys.modules.pop(f'lifecycle.{old}', None)
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter('always')
        moved = importlib.import_module(f'lifecycle.{old}')
    assert moved is importlib.import_module(f'lifecycle.{new}')
    assert any(issubclass(x.category, DeprecationWarning) and f'lifecycle.{new}' in str(x.message) for x in w)
