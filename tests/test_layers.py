"""The package's layers hold: every import (at the top, inside functions, under TYPE_CHECKING) runs down or
sideways, but for a short list of known exceptions; no import cycle; no two modules share a name.

Layers, highest first (ARCHITECTURE.md draws them): cli > api > batch > tasks > core > media, net, server >
the ground floor (settings, families, presets, errors, hints, events, files, urls, limits, switches, terminal).
Within that order, a few imports are never made at all, even downward (NEVER). Every error class that leaves its
module lives in mmcli/errors.py."""

from __future__ import annotations

import ast
import builtins
from collections import defaultdict
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "mmcli"

# the first prefix that matches a module names its layer; anything else in the package is the ground floor
LAYERS = [
    (6, "cli", ("mmcli.cli", "mmcli.__main__")),
    (5, "api", ("mmcli.api",)),
    (4, "batch", ("mmcli.batch",)),
    (3, "tasks", ("mmcli.tasks",)),
    (2, "core", ("mmcli.core",)),
    (1, "media/net/server", ("mmcli.media", "mmcli.net", "mmcli.server")),
]
GROUND = (0, "ground")

# importer -> imported: the imports allowed to run up a layer, each with why (at most 6)
UPWARD_ALLOWED = {
}

# importer's folder -> imported folder: imports never made, not even lazily, each with why
NEVER = [
    ("mmcli.tasks", "mmcli.net", "tasks go through the Runner and core: only core sends, through net"),
    ("mmcli.media", "mmcli.net", "media knows no requests: the floor's three rooms stand apart"),
    ("mmcli.media", "mmcli.server", "media knows no requests: the floor's three rooms stand apart"),
    ("mmcli.net", "mmcli.media", "HTTP knows no decoding: the floor's three rooms stand apart"),
    ("mmcli.net", "mmcli.server", "the client's HTTP needs nothing of the vLLM process (shared hints are ground)"),
    ("mmcli.server", "mmcli.net", "the server side never imports the client side"),
    ("mmcli.server", "mmcli.media", "the server side never imports the client side"),
]

# exceptions raised and caught within one layer, kept with their module's own vocabulary (each with why);
# a class whose name starts with _ is private to its module and needs no entry
LOCAL_EXCEPTIONS = {
    "mmcli.net.apierrors.StatusFailure": "carries the HTTP reply; net turns it into an MmcliError (map_api_error)",
    "mmcli.net.apierrors.ConnectionFailure": "carries the httpx error; net turns it into an MmcliError",
    "mmcli.core.history.store.NoHistory": "the store's; history/follow turns it into a UsageError",
    "mmcli.core.history.store.NewerDatabase": "the store's sqlite3 error; history/follow makes it HistoryUnreadable",
    "mmcli.batch.tasksfile.LineError": "one bad line of a tasks file; becomes a Problem line, never raised further",
    "mmcli.batch.taskdict.TaskError": "one bad task dict; the tasks file makes it a Problem line, the API a UsageError",
    "mmcli.media.resize.AspectRatioError": "the pure resize math's ValueError; media makes it a MediaError",
}

# a name may repeat only between a command's module and its task's (cli/commands/X.py, tasks/X.py or tasks/X/,
# and the same role inside each task's folder, such as tasks/detect/jobs.py and tasks/embed/jobs.py)
SHARED_NAMES_MAY_LIVE_IN = ("mmcli/cli/commands/", "mmcli/tasks/")


def module_name(path: Path) -> str:
    """mmcli/a/b.py -> mmcli.a.b; a package's __init__.py -> the package."""
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules() -> dict[str, Path]:
    """Every module of the package by its dotted name."""
    return {module_name(path): path for path in sorted(PACKAGE.rglob("*.py"))}


def layer(module: str) -> tuple[int, str]:
    """The layer a module belongs to."""
    for rank, name, prefixes in LAYERS:
        if any(module == prefix or module.startswith(prefix + ".") for prefix in prefixes):
            return rank, name
    return GROUND


def _absolute(module: str, is_package: bool, node: ast.ImportFrom) -> str:
    if not node.level:
        return node.module or ""
    base = module.split(".") if is_package else module.split(".")[:-1]
    base = base[:len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def imports(module: str, path: Path, known: dict, top_level_only: bool = False) -> set[str]:
    """The package's modules that `module` imports: anywhere in it, or only those run when it is imported."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    nodes = _top_level(tree) if top_level_only else ast.walk(tree)
    found = set()
    for node in nodes:
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names if alias.name.split(".")[0] == "mmcli"}
        elif isinstance(node, ast.ImportFrom):
            base = _absolute(module, path.name == "__init__.py", node)
            if base.split(".")[0] != "mmcli":
                continue
            for alias in node.names:
                found.add(f"{base}.{alias.name}" if f"{base}.{alias.name}" in known else base)
    return {name for name in found if name in known and name != module}


def _top_level(tree: ast.Module):
    """Import statements run when the module is imported: outside functions and TYPE_CHECKING blocks."""
    todo = list(tree.body)
    while todo:
        node = todo.pop()
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            continue
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            todo.extend(node.orelse)
            continue
        yield node
        todo.extend(child for child in ast.iter_child_nodes(node) if isinstance(child, ast.stmt))


def upward_imports() -> dict[tuple[str, str], str]:
    """Every import from a lower layer to a higher one: (importer, imported) -> "low -> high"."""
    known = modules()
    found = {}
    for module, path in known.items():
        low = layer(module)
        for target in imports(module, path, known):
            high = layer(target)
            if high[0] > low[0]:
                found[(module, target)] = f"{low[1]} -> {high[1]}"
    return found


def test_imports_run_down_the_layers_but_for_a_short_known_list():
    found = upward_imports()
    unexpected = {pair: how for pair, how in found.items() if pair not in UPWARD_ALLOWED}
    assert unexpected == {}, "imports running up a layer (move the code down, or pass what it needs in):\n" + \
        "\n".join(f"  {a} imports {b} ({how})" for (a, b), how in sorted(unexpected.items()))
    assert len(UPWARD_ALLOWED) <= 6
    stale = set(UPWARD_ALLOWED) - set(found)
    assert not stale, f"allowed upward imports that no longer exist (remove them from the list): {sorted(stale)}"


def _inside(module: str, folder: str) -> bool:
    return module == folder or module.startswith(folder + ".")


def test_the_imports_never_made_are_not_made():
    known = modules()
    found = [f"  {module} imports {target} ({why})" for module, path in known.items()
             for target in sorted(imports(module, path, known))
             for low, high, why in NEVER if _inside(module, low) and _inside(target, high)]
    assert found == [], "imports that must not be made (go through the layer meant for it, or move the name " \
                        "to the ground floor):\n" + "\n".join(found)


def _exception_classes() -> dict[str, list[str]]:
    """Every class of the package that derives from an exception: dotted name -> its bases' names."""
    trees = {module: ast.parse(path.read_text(encoding="utf-8")) for module, path in modules().items()}
    classes = {f"{module}.{node.name}": [ast.unparse(base).split(".")[-1] for base in node.bases]
               for module, tree in trees.items() for node in ast.walk(tree) if isinstance(node, ast.ClassDef)}
    names = {name.rsplit(".", 1)[1] for name in classes}
    exceptions = {name for name in dir(builtins) if isinstance(getattr(builtins, name), type)
                  and issubclass(getattr(builtins, name), BaseException)} | {"DatabaseError", "Error"}
    grown = True
    while grown:  # a class is an exception when one of its bases is
        found = {dotted.rsplit(".", 1)[1] for dotted, bases in classes.items() if exceptions & set(bases)}
        grown = bool(found - exceptions)
        exceptions |= found & names
    return {dotted: bases for dotted, bases in classes.items() if exceptions & set(bases)}


def test_error_classes_live_in_errors_py_but_for_a_short_known_list():
    found = _exception_classes()
    outside = {name: bases for name, bases in found.items() if not name.startswith("mmcli.errors.")}
    public = {name for name in outside if not name.rsplit(".", 1)[1].startswith("_")}
    assert public - set(LOCAL_EXCEPTIONS) == set(), "error classes to move to mmcli/errors.py"
    assert set(LOCAL_EXCEPTIONS) - public == set(), "local exceptions that no longer exist: remove them from the list"
    ours = {name.rsplit(".", 1)[1] for name in found if name.startswith("mmcli.errors.")}
    built_on_ours = {name for name, bases in outside.items() if ours & set(bases)}
    assert built_on_ours == set(), "errors built on mmcli.errors' classes leave their module: move them to errors.py"


def test_no_import_cycle_among_what_runs_at_import():
    known = modules()
    graph = {module: imports(module, path, known, top_level_only=True) for module, path in known.items()}
    # a package's __init__ runs before its modules: an edge to a package is an edge to its __init__
    state: dict[str, int] = {}
    cycles = []

    def visit(node: str, trail: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                cycles.append(trail[trail.index(nxt):] + [nxt] if nxt in trail else [node, nxt])
            elif nxt not in state:
                visit(nxt, trail + [nxt])
        state[node] = 2

    for module in sorted(graph):
        if module not in state:
            visit(module, [module])
    assert cycles == []


def test_no_two_modules_share_a_name_but_a_command_and_its_task():
    by_name = defaultdict(list)
    for path in PACKAGE.rglob("*.py"):
        if path.name not in ("__init__.py", "__main__.py"):
            by_name[path.stem].append(path.relative_to(PACKAGE.parent).as_posix())
    clashes = {name: sorted(paths) for name, paths in by_name.items()
               if len(paths) > 1 and not all(p.startswith(SHARED_NAMES_MAY_LIVE_IN) for p in paths)}
    assert clashes == {}


def test_the_layer_table_knows_every_folder_of_the_package():
    # a new folder is given a layer here before it holds code, so nothing lands on the ground floor by accident
    folders = {module_name(p) for p in PACKAGE.glob("*/__init__.py")}
    unplaced = {folder for folder in folders if layer(folder) == GROUND}
    assert unplaced == set()
