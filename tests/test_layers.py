"""The import contract: foundation <- agents, tools <- graphs <- application, with the simulator and the
command-line package reachable only from the application. Checked on the source (every import, those
inside functions too), so a new module must be given its layer here."""

import ast
import re
import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

FOUNDATION = {
    "chimera", "chimera.__main__", "chimera.checkout_aliases", "chimera.checkpoint_saver", "chimera.checkpoint_serde",
    "chimera.checkpoint_postgres",
    "chimera.batching", "chimera.batch_anthropic",
    "chimera.concurrency", "chimera.config", "chimera.costs", "chimera.dispatch", "chimera.embeddings", "chimera.errors",
    "chimera.ids", "chimera.jsonl", "chimera.plan", "chimera.price_table",
    "chimera.kept_replies", "chimera.label_report", "chimera.json_repair", "chimera.storable",
    "chimera.langchain_transport", "chimera.llm", "chimera.logs", "chimera.outputs", "chimera.prompt_markers", "chimera.quotas",
    "chimera.reasoning", "chimera.records", "chimera.review", "chimera.review.decision", "chimera.review.policy",
    "chimera.run_health", "chimera.run_lock", "chimera.run_status", "chimera.secrets", "chimera.tracing",
}
FOUNDATION_PACKAGES = ("chimera.store",)
AGENTS_AND_TOOLS = ("chimera.agents", "chimera.tools", "chimera.reward")
GRAPHS = ("chimera.graphs",)
APPLICATION = ("chimera.cli", "chimera.sim", "chimera.evals", "chimera.examples", "chimera.runner",
               "chimera.session", "chimera.export", "chimera.hf_export", "chimera.judging", "chimera.taxonomy_io",
               "chimera.yield_report", "chimera.worker_loop", "chimera.heartbeat", "chimera.outages", "chimera.api")
LAYER_NAMES = ["foundation", "agents and tools", "graphs", "application"]
# The package's lazy re-export of the Python API (chimera.run, chimera.open_run, ...): imported on first use,
# once every module is loaded, so it is no import-time edge: neither an upward import nor part of a cycle.
LAZY = {("chimera", "chimera.api")}


def module_files() -> dict[str, Path]:
    mapping = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-dir"]
    modules = {}
    for package, folder in mapping.items():
        for path in (ROOT / folder).rglob("*.py"):
            parts = list(path.relative_to(ROOT / folder).with_suffix("").parts)
            if package == "chimera" and parts[0] in {"agents", "graphs", "tools", "evals", "examples"}:
                continue
            name = ".".join([package, *[p for p in parts if p != "__init__"]])
            modules[name] = path
    return modules


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
    assert starters == ["chimera.session"]


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


def test_importing_a_checkout_folder_by_name_gives_the_installed_modules():
    probe = ("import agents, agents.critic, graphs.solve, tools.grading, chimera.agents.critic, chimera.graphs.solve\n"
             "import chimera.tools.grading\n"
             "assert agents.critic is chimera.agents.critic, 'agents.critic is a second copy'\n"
             "assert graphs.solve is chimera.graphs.solve, 'graphs.solve is a second copy'\n"
             "assert tools.grading is chimera.tools.grading, 'tools.grading is a second copy'\n"
             "copies = [m.__name__ for n, m in list(__import__('sys').modules.items()) if n.split('.')[0] in\n"
             "          ('agents', 'graphs', 'tools') and not m.__name__.startswith('chimera.')]\n"
             "assert copies == [], copies\n")
    result = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


SQL = re.compile(r"^\s*(select|insert into|update \w+ set|delete from|create (table|index)|drop table|alter table|pragma)\b",
                 re.IGNORECASE)
# the store; the checkpointers' connections
OWN_SQL = ("chimera.store", "chimera.checkpoint_saver", "chimera.checkpoint_postgres", "chimera.run_lock")


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
