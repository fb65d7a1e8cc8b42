"""The package's structural rules (docs/architecture.md): no import cycle, short modules, one owner per file name.

Run the cycle check alone with ``python tests/test_architecture.py``: it prints every cycle
(strongly connected set of modules) and exits 1 when there is one.
"""

import ast
import pathlib
import sys
from collections import defaultdict

PACKAGE = pathlib.Path(__file__).resolve().parents[1] / "llm_tf"
#: Longest module without a note; a longer one says why in its docstring, in a line starting so.
MAX_LINES = 500
LONG_MODULE_NOTE = "Why this module is long:"
#: On-disk names and the one module that spells each (every other module uses its constant). The
#: serving package reads TF Serving's layout (``assets.extra``, ``model.tflite``) itself: it imports nothing
#: else of llm_tf.
OWNED_NAMES = {
    '"params.yaml"': "llm_tf/training/model_dir.py",
    '"encoder.weights.h5"': "llm_tf/training/model_dir.py",
    '"pruning.json"': "llm_tf/training/model_dir.py",
    '"best.json"': "llm_tf/training/model_dir.py",
    '"summary.json"': "llm_tf/data/prepared.py",
    '"statistics.json"': "llm_tf/data/prepared.py",
    '"schema.json"': "llm_tf/data/prepared.py",
    '"rejected.jsonl"': "llm_tf/data/prepared.py",
    '"token_lengths.png"': "llm_tf/data/prepared.py",
    '"label_counts.png"': "llm_tf/data/prepared.py",
    '"training_curves.png"': "llm_tf/training/model_dir.py",
    '"evaluation.json"': "llm_tf/pipeline/components/evaluator.py",
    '"confusion_matrix.png"': "llm_tf/pipeline/components/evaluator.py",
    '"sliced_metrics.png"': "llm_tf/pipeline/components/evaluator.py",
    '"llm_tf_export.json"': "llm_tf/export/export_dir.py",
    '"assets.extra"': "llm_tf/export/export_dir.py",
    '"model.tflite"': "llm_tf/export/export_dir.py",
}
#: Packages allowed to spell a name besides its owner.
ALSO_SPELLED_IN = {'"assets.extra"': ("llm_tf/serving/",), '"model.tflite"': ("llm_tf/serving/",)}


def _module_name(path: pathlib.Path, package: pathlib.Path) -> str:
    parts = list(path.relative_to(package.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph(package: pathlib.Path = PACKAGE) -> dict[str, set[str]]:
    """Module -> the package's modules it imports, counting imports inside functions too.

    ``from a import b`` counts as importing ``a.b`` when that is a module, else ``a``.
    """
    files = {_module_name(p, package): p for p in package.rglob("*.py")}
    graph: dict[str, set[str]] = defaultdict(set)
    for name, path in files.items():
        package_name = name if path.name == "__init__.py" else name.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    anchor = package_name.split(".")[: len(package_name.split(".")) - node.level + 1]
                    base = ".".join(anchor + ([base] if base else []))
                targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in files else base for a in node.names]
            else:
                continue
            graph[name].update(t for t in targets if t in files and t != name)
    return graph


def import_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected sets of more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in sorted(graph.get(node, ())):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    sys.setrecursionlimit(max(sys.getrecursionlimit(), 10_000))
    for node in sorted(graph):
        if node not in index:
            visit(node)
    return cycles


def test_the_checker_finds_a_cycle(tmp_path):
    package = tmp_path / "pkg"
    (package / "sub").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "sub" / "__init__.py").write_text("")
    (package / "a.py").write_text("from pkg.sub import b\n")
    (package / "sub" / "b.py").write_text("def f():\n    from pkg import c\n")
    (package / "c.py").write_text("from . import a\n")
    assert import_cycles(import_graph(package)) == [["pkg.a", "pkg.c", "pkg.sub.b"]]
    (package / "c.py").write_text("")
    assert import_cycles(import_graph(package)) == []


def test_llm_tf_has_no_import_cycle():
    assert import_cycles(import_graph()) == []


def test_modules_are_short_or_say_why():
    long_silent = []
    for path in sorted(PACKAGE.rglob("*.py")):
        lines = path.read_text(encoding="utf-8").count("\n")
        docstring = ast.get_docstring(ast.parse(path.read_text(encoding="utf-8"))) or ""
        if lines > MAX_LINES and LONG_MODULE_NOTE not in docstring:
            long_silent.append(f"{path.relative_to(PACKAGE.parent)} ({lines} lines)")
    assert not long_silent, f"over {MAX_LINES} lines without '{LONG_MODULE_NOTE}' in the docstring: {long_silent}"


def test_each_on_disk_name_is_spelled_by_its_owner_only():
    spelled: dict[str, list[str]] = defaultdict(list)
    for path in sorted(PACKAGE.rglob("*.py")):
        text = path.read_text(encoding="utf-8")
        for name in OWNED_NAMES:
            if name in text:
                spelled[name].append(str(path.relative_to(PACKAGE.parent)))
    wrong = {name: [w for w in where if w != OWNED_NAMES[name] and not w.startswith(ALSO_SPELLED_IN.get(name, ("-",)))]
             for name, where in spelled.items()}
    wrong = {name: where for name, where in wrong.items() if where}
    assert not wrong, f"on-disk names spelled outside their owner module: {wrong}"


if __name__ == "__main__":
    found = import_cycles(import_graph())
    for cycle in found:
        print("import cycle:", " <-> ".join(cycle))
    print(f"{len(found)} import cycle(s) in {PACKAGE}")
    sys.exit(1 if found else 0)
