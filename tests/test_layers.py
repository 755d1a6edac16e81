"""The import contract: foundation <- agents, tools <- graphs <- application, with the simulator and the
command-line package reachable only from the application. Checked on the source (every import, those
inside functions too), so a new module must be given its layer here."""

import ast
import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

FOUNDATION = {"chimera", "chimera.__main__", "chimera.config", "chimera.errors", "chimera.ids", "chimera.jsonl",
              "chimera.logs"}
FOUNDATION_PACKAGES = ("chimera.models", "chimera.store", "chimera.review")
AGENTS_AND_TOOLS = ("chimera.agents", "chimera.tools")
GRAPHS = ("chimera.graphs",)
APPLICATION = ("chimera.engine", "chimera.products", "chimera.cli", "chimera.sim", "chimera.evals", "chimera.examples",
               "chimera.api")
LAYER_NAMES = ["foundation", "agents and tools", "graphs", "application"]
# The package's lazy re-export of the Python API (chimera.run, chimera.open_run, ...): imported on first use,
# once every module is loaded, so it is no import-time edge: neither an upward import nor part of a cycle.
LAZY = {("chimera", "chimera.api")}
# Folders the top level of chimera/ holds besides its subpackages: at most this many modules.
TOP_LEVEL_MODULES = 10


def module_files() -> dict[str, Path]:
    """Every module of the package as it is installed: chimera/ with the top-level folders linked into it."""
    package = ROOT / "chimera"
    modules = {}
    for path in _walk(package):
        parts = [p for p in path.relative_to(package).with_suffix("").parts if p != "__init__"]
        modules[".".join(["chimera", *parts])] = path
    return modules


def _walk(package: Path) -> list[Path]:
    found = []  # os.walk, not Path.rglob: rglob does not follow the links before Python 3.13
    for folder, _, files in os.walk(package, followlinks=True):
        found += [Path(folder, name) for name in files if name.endswith(".py")]
    return sorted(found)


def imports_of(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return {name for name in found if name == "chimera" or name.startswith("chimera.")}


def layer(module: str) -> int:
    if module in FOUNDATION or module.startswith(tuple(p + "." for p in FOUNDATION_PACKAGES)) \
            or module in FOUNDATION_PACKAGES:
        return 0
    for index, prefixes in enumerate((AGENTS_AND_TOOLS, GRAPHS, APPLICATION), start=1):
        if any(module == p or module.startswith(p + ".") for p in prefixes):
            return index
    raise AssertionError(f"{module}: in no layer; give it one in tests/test_layers.py")


def edges() -> dict[str, set[str]]:
    modules = module_files()
    return {name: {m for m in imports_of(path) if m in modules and m != name} for name, path in modules.items()}


def test_every_module_has_a_layer():
    unplaced = []
    for name in module_files():
        try:
            layer(name)
        except AssertionError as error:
            unplaced.append(str(error))
    assert unplaced == []


def test_no_module_imports_from_a_layer_above_its_own():
    doors = {("chimera.__main__", "chimera.cli")} | LAZY  # `python -m chimera`; the API's re-export
    upward = [f"{name} ({LAYER_NAMES[layer(name)]}) imports {target} ({LAYER_NAMES[layer(target)]})"
              for name, targets in edges().items() for target in sorted(targets)
              if layer(target) > layer(name) and (name, target) not in doors]
    assert upward == []


def test_the_command_line_package_is_imported_by_nothing_outside_it():
    outside = [f"{name} imports {target}" for name, targets in edges().items() for target in targets
               if target.startswith("chimera.cli") and not name.startswith("chimera.cli")
               and name != "chimera.__main__"]
    assert outside == []


def test_the_simulator_is_started_in_one_place():
    starters = sorted(name for name, targets in edges().items()
                      if "chimera.sim.server" in targets and not name.startswith("chimera.sim"))
    assert starters == ["chimera.engine.session"]


def test_there_is_no_import_cycle():
    graph = {name: {t for t in targets if (name, t) not in LAZY} for name, targets in edges().items()}
    cycles, state = [], {}

    def visit(node: str, trail: list[str]) -> None:
        state[node] = "open"
        for target in sorted(graph[node]):
            if state.get(target) == "open":
                cycles.append(" -> ".join(trail[trail.index(target):] + [target]))
            elif target not in state:
                visit(target, [*trail, target])
        state[node] = "done"

    for node in sorted(graph):
        if node not in state:
            visit(node, [node])
    assert cycles == []


def test_importing_a_checkout_folder_by_name_is_refused_with_the_package_to_import():
    probe = ("import sys\n"
             "for folder in ('agents', 'graphs', 'tools', 'evals', 'examples'):\n"
             "    try:\n"
             "        __import__(folder)\n"
             "    except ImportError as error:\n"
             "        assert f'import chimera.{folder}, not {folder}' in str(error), error\n"
             "    else:\n"
             "        raise AssertionError(f'{folder} imported as a second copy of chimera.{folder}')\n"
             "copies = [name for name in sys.modules if name.split('.')[0] in ('agents', 'graphs', 'tools', 'evals')]\n"
             "assert copies == [], copies\n"
             "import chimera.graphs.solve, chimera.agents.critic\n")
    result = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_the_top_level_of_the_package_holds_few_modules_besides_its_subpackages():
    modules = sorted(path.name for path in (ROOT / "chimera").glob("*.py"))
    assert len(modules) <= TOP_LEVEL_MODULES, modules


def test_the_top_level_folders_are_linked_into_the_package():
    for folder in ("agents", "graphs", "tools", "evals", "examples"):
        link = ROOT / "chimera" / folder
        assert link.is_symlink() and link.resolve() == (ROOT / folder).resolve(), link


SQL = re.compile(r"^\s*(select|insert into|update \w+ set|delete from|create (table|index)|drop table|alter table|pragma)\b",
                 re.IGNORECASE)
# the store; the checkpointers' connections
OWN_SQL = ("chimera.store", "chimera.store.checkpoint_saver", "chimera.store.checkpoint_postgres", "chimera.store.run_lock")


def test_no_sql_outside_the_store():
    found = []
    for name, path in module_files().items():
        if name.startswith(OWN_SQL):
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            text = node.value if isinstance(node, ast.Constant) and isinstance(node.value, str) else None
            if isinstance(node, ast.JoinedStr):
                text = "".join(v.value for v in node.values if isinstance(v, ast.Constant) and isinstance(v.value, str))
            if text and SQL.match(text):
                found.append(f"{name}:{node.lineno}: {text[:60]!r}")
        found += [f"{name}: sqlite3.connect" for _ in range(path.read_text().count("sqlite3.connect("))]
    assert found == []
