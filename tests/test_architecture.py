"""The core's shape, checked from its source: no import circle, flows -> tasks -> core only, and
every registry entry resolves to what the recipe schema accepts.

The import graph is read with `ast` (no module is imported to build it): every `import` and
`from ... import` anywhere in a module, at module level or inside a function, absolute or
relative, is an edge. An import under `if TYPE_CHECKING:` is an edge too: a circle that only
type hints close is still a circle a reader has to untangle.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CORE = "synthfactory"


def module_names(package: str = CORE) -> dict[str, Path]:
    """Every module of the package by dotted name (a package by its own name, for its __init__)."""
    names = {}
    for path in sorted((ROOT / package).rglob("*.py")):
        parts = list(path.relative_to(ROOT).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        names[".".join(parts)] = path
    return names


def imported_names(path: Path, module: str) -> set[str]:
    """Dotted names `path` imports anywhere in its body; `from a import b` yields `a.b` and `a`."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[:len(base) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            names.add(target)
            names.update(f"{target}.{alias.name}" for alias in node.names)
    return names


def import_graph(package: str = CORE) -> dict[str, set[str]]:
    """module -> the modules of `package` it imports (a name resolves to the longest module it names)."""
    modules = module_names(package)
    graph: dict[str, set[str]] = {}
    for module, path in modules.items():
        edges = set()
        for name in imported_names(path, module):
            while name and name not in modules:
                name = name.rpartition(".")[0]
            if name and name != module and name != package:  # the root package only exports lazily
                edges.add(name)
        graph[module] = edges
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph.get(node, ())):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                component.append(top)
                if top == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_the_graph_reader_sees_every_kind_of_import(tmp_path: Path) -> None:
    """A checker that misses function-level or relative imports would pass on a circle."""
    pkg = tmp_path / "pkg"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "sub" / "__init__.py").write_text("from . import b\n")
    (pkg / "a.py").write_text("def f():\n    from pkg.sub.b import thing\n")
    (pkg / "sub" / "b.py").write_text("from ..a import f\n")
    (pkg / "c.py").write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from pkg import sub\n")
    global ROOT
    saved, ROOT = ROOT, tmp_path
    try:
        graph = import_graph("pkg")
    finally:
        ROOT = saved
    assert graph["pkg.a"] == {"pkg.sub.b"}
    assert graph["pkg.sub.b"] == {"pkg.a"}
    assert graph["pkg.sub"] == {"pkg.sub.b"}
    assert graph["pkg.c"] == {"pkg.sub"}
    assert cycles(graph) == [["pkg.a", "pkg.sub.b"]]


def test_no_import_circle_in_the_core() -> None:
    found = cycles(import_graph())
    assert not found, "import circles in synthfactory/: " + "; ".join(" <-> ".join(c) for c in found)


# Floors, bottom up: a module may import its own floor and the floors below, never one above. The
# data model (rows, batch state, plan, version metadata, the run context) sits just above the
# foundation, with what it describes (the recipe, seeds and corpora, the store of versions).
FLOORS = (
    ("foundation", {"errors", "registry", "cache", "storage"}),
    ("data model", {"model", "recipe", "inputs", "store"}),
    ("the work", {"engines", "methods", "verify", "grading", "quality", "labels"}),
    ("publish", {"publish"}),
    ("the run", {"run"}),
    ("commands", {"probe", "improve", "cli", CORE}),
)


def floor_of(module: str) -> int:
    """The floor of a core module: that of its room (`synthfactory.<room>...`)."""
    parts = module.split(".")
    room = parts[1] if len(parts) > 1 else parts[0]
    for level, (_, rooms) in enumerate(FLOORS):
        if room in rooms:
            return level
    raise AssertionError(f"{module}: room {room!r} is on no floor; add it to FLOORS in tests/test_architecture.py")


def upward_imports(graph: dict[str, set[str]]) -> list[str]:
    return sorted(f"{m} ({FLOORS[floor_of(m)][0]}) -> {e} ({FLOORS[floor_of(e)][0]})"
                  for m, edges in graph.items() for e in edges if floor_of(e) > floor_of(m))


def test_every_import_points_down_a_floor() -> None:
    found = upward_imports(import_graph())
    assert not found, "imports up a floor:\n" + "\n".join(found)


def test_the_floor_check_sees_an_upward_import() -> None:
    """A floor check that cannot fail is no check: the data model importing the run is caught."""
    graph = {"synthfactory.model.batch": {"synthfactory.run.driver"}, "synthfactory.run.driver": set()}
    assert upward_imports(graph) == ["synthfactory.model.batch (data model) -> synthfactory.run.driver (the run)"]


# The command line is the one place the core reaches Prefect: `synthfactory run` starts the flow
# (DESIGN: the core "knows nothing of Prefect except where the CLI starts a flow"). It is an entry
# point, a package of one module per command: any module of it may import these names of the flows
# and nothing else of tasks/flows; no core module outside it may import it, so that edge cannot carry
# the flows into the core.
ENTRY_POINT = "synthfactory.cli"
ENTRY_POINT_MAY_IMPORT = {"flows.factory", "flows.factory.factory_flow",  # and the flow's API server, started first
                         "flows.server", "flows.server.start_early_server", "flows.server.prefect_api"}


def in_entry_point(module: str) -> bool:
    return module == ENTRY_POINT or module.startswith(ENTRY_POINT + ".")


def orchestration_imports(modules: dict[str, Path]) -> dict[str, list[str]]:
    """Core module -> the names of tasks/flows it imports that it may not (the CLI's allowed ones aside)."""
    wrong = {}
    for module, path in modules.items():
        names = {n for n in imported_names(path, module) if n.split(".")[0] in ("tasks", "flows")}
        if in_entry_point(module):
            names -= ENTRY_POINT_MAY_IMPORT
        if names:
            wrong[module] = sorted(names)
    return wrong


def entry_point_importers(graph: dict[str, set[str]]) -> list[str]:
    """Core modules outside the CLI package that import any module of it."""
    return sorted(m for m, edges in graph.items() if not in_entry_point(m) and any(map(in_entry_point, edges)))


def test_the_core_never_imports_tasks_or_flows() -> None:
    wrong = orchestration_imports(module_names())
    assert not wrong, f"the core imports the orchestration layer (flows -> tasks -> core only): {wrong}"
    assert [m for m in module_names() if in_entry_point(m)] != [ENTRY_POINT], "the CLI is one module per command"
    importers = entry_point_importers(import_graph())
    assert not importers, f"core modules import the command line (and through it the flows): {importers}"


def test_the_entry_point_rule_sees_a_wrong_import(tmp_path: Path) -> None:
    """A rule that cannot fail is no check: any CLI module may import the flow and its server, no
    more; a core module that imports any CLI module is caught."""
    (tmp_path / "run.py").write_text("from flows.factory import factory_flow\nfrom flows.server import prefect_api\n")
    (tmp_path / "sneaky.py").write_text("from tasks.stages import STAGE_TASKS\n")
    (tmp_path / "core.py").write_text("from flows.factory import factory_flow\n")
    modules = {"synthfactory.cli.run": tmp_path / "run.py", "synthfactory.cli.sneaky": tmp_path / "sneaky.py",
               "synthfactory.run.core": tmp_path / "core.py"}
    assert orchestration_imports(modules) == {"synthfactory.cli.sneaky": ["tasks.stages", "tasks.stages.STAGE_TASKS"],
                                              "synthfactory.run.core": ["flows.factory", "flows.factory.factory_flow"]}
    graph = {"synthfactory.cli": {"synthfactory.cli.run"}, "synthfactory.cli.run": {"synthfactory.run.driver"},
             "synthfactory.run.driver": {"synthfactory.cli.console"}, "synthfactory.cli.console": set()}
    assert entry_point_importers(graph) == ["synthfactory.run.driver"]


def test_tasks_never_import_flows() -> None:
    wrong = {}
    for module, path in module_names("tasks").items():
        names = {n for n in imported_names(path, module) if n.split(".")[0] == "flows"}
        if names:
            wrong[module] = sorted(names)
    assert not wrong, f"tasks import flows (flows -> tasks -> core only): {wrong}"


# --- registries -------------------------------------------------------------------------------

def test_every_registry_entry_resolves_to_what_its_kind_needs() -> None:
    from pydantic import BaseModel

    from synthfactory.engines.base import EngineBackend, EngineOptions
    from synthfactory.grading.llm import LLMJudge
    from synthfactory.methods.base import Method
    from synthfactory.quality.screens import Screen, ScreenOptions
    from synthfactory.registry import ENGINES, JUDGES, METHODS, REGISTRIES, SCREENS, VERIFIERS

    assert set(REGISTRIES) == {"method", "judge", "screen", "engine", "verifier", "stage"}
    for name in METHODS:
        cls = METHODS.load(name)
        assert issubclass(cls, Method) and cls.name == name and issubclass(cls.Options, BaseModel)
    for name in ENGINES:
        cls = ENGINES.load(name)
        assert issubclass(cls, EngineBackend) and issubclass(cls.Options, EngineOptions), name
        assert cls.Options.model_config.get("extra") == "forbid", name
    for name in JUDGES:
        cls = JUDGES.load(name)
        assert callable(cls.for_panel) and callable(cls.model_of), name
        assert JUDGES.fact(name, "llm") == issubclass(cls, LLMJudge), f"{name}: the llm fact disagrees with its class"
    for name in SCREENS:
        cls = SCREENS.load(name)
        assert issubclass(cls, Screen) and issubclass(cls.Options, ScreenOptions), name
    from synthfactory.verify.base import Verifier, VerifierOptions

    assert VERIFIERS.names, "no verifier registered"
    for name in VERIFIERS:
        cls = VERIFIERS.load(name)
        assert issubclass(cls, Verifier) and cls.name == name and issubclass(cls.Options, VerifierOptions), name
        assert tuple(VERIFIERS.fact(name, "needs", ())) == cls.needs, f"{name}: the needs fact disagrees with its class"
    for registry in REGISTRIES.values():
        with pytest.raises(ValueError, match=f"unknown {registry.kind} 'nope'; known: "):
            registry.load("nope")


def test_the_schema_accepts_exactly_the_registered_names() -> None:
    from pydantic import ValidationError

    from synthfactory.recipe.options import screen_options
    from synthfactory.recipe.schema import LLM_JUDGES, GenerationConfig, GradingConfig, JudgeConfig
    from synthfactory.registry import ENGINES, JUDGES, METHODS, SCREENS

    for name in METHODS:
        assert GenerationConfig(method=name, prompt_template="x").method == name
    for name in ENGINES:
        assert GenerationConfig(engine=name, prompt_template="x").engine == name
    for name in JUDGES:
        needs = {field: "labels.jsonl" for field in JUDGES.fact(name, "needs", ())}  # e.g. a learned judge's labels
        assert JudgeConfig(name="a", method=name, **needs).method == name
    assert LLM_JUDGES == JUDGES.where(llm=True) == ("json", "logprobs")
    for name in LLM_JUDGES:
        assert GradingConfig(method=name, rubric=[{"name": "ok", "description": "Fine."}]).method == name
    for field, value in (("method", "nope"), ("engine", "nope")):
        with pytest.raises(ValidationError, match=f"unknown {field} 'nope'"):
            GenerationConfig(prompt_template="x", **{field: value})
    with pytest.raises(ValidationError, match="unknown judge 'nope'"):
        JudgeConfig(name="a", method="nope")
    # quality.filters: every key belongs to exactly one registered screen
    owners: dict[str, str] = {}
    for name in SCREENS:
        for key in SCREENS.load(name).Options.model_fields:
            assert key not in owners, f"quality.filters.{key}: both {owners[key]} and {name} declare it"
            owners[key] = name
    assert set(screen_options({})) == set(owners)


def test_the_schema_imports_no_implementation() -> None:
    """Loading the recipe schema must not import a method, judge, screen or engine module."""
    import subprocess
    import sys

    code = ("import sys, synthfactory.recipe.schema\n"
            "print(sorted(m for m in sys.modules if m.startswith(('synthfactory.methods', 'synthfactory.engines', "
            "'synthfactory.grading', 'synthfactory.quality'))))\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "[]"


# --- the run's shape ---------------------------------------------------------------------------

EXECUTOR_INTERFACE = {"submit", "wait_any", "lock", "log", "run_ids"}


def test_the_executor_protocol_has_no_step_of_the_run_in_it() -> None:
    """Executors run functions: submit, wait for any, lock. Seeds, plans, stages and publishing are
    the driver's; an executor with a method per step would have to change with every step."""
    from flows.executor import PrefectExecutor
    from synthfactory.run.executor import Executor, LocalExecutor

    protocol = {n for n in vars(Executor) if not n.startswith("_")} | set(Executor.__annotations__)
    assert protocol == EXECUTOR_INTERFACE
    for executor in (LocalExecutor, PrefectExecutor):
        public = {n for n in vars(executor) if not n.startswith("_") and callable(getattr(executor, n))}
        assert public <= EXECUTOR_INTERFACE | {"close"}, f"{executor.__name__}: {sorted(public - EXECUTOR_INTERFACE)}"


def test_every_stage_is_a_module_and_a_registry_line_read_by_driver_and_flow() -> None:
    from synthfactory.registry import STAGES
    from synthfactory.run.stages import Stage, stage_line

    assert STAGES.names == ("generate", "screen", "verify", "grade", "filter", "measure", "validate")
    line = stage_line()
    assert [s.name for s in line] == list(STAGES.names) and all(isinstance(s, Stage) for s in line)
    modules = {STAGES.entry(name).target.partition(":")[0] for name in STAGES}
    assert len(modules) == len(STAGES), "one module per stage"
    for path in (ROOT / "synthfactory" / "run" / "driver.py", ROOT / "flows" / "executor.py",
                 ROOT / "flows" / "factory.py", ROOT / "synthfactory" / "run" / "executor.py"):
        text = path.read_text()
        for name in STAGES:  # nobody but the registry and the stage's own module lists the stages
            assert f'"{name}"' not in text, f"{path.name} names the stage {name!r}"


def test_a_new_stage_is_one_module_plus_one_registry_line(tmp_path, monkeypatch) -> None:
    """Adding a stage: write its module, add its line to `registry.STAGES`. The run driver, the
    local executor, the staging and resume pick it up with no other change."""
    import sys

    from synthfactory import registry
    from synthfactory.registry import Registry
    from tests.conftest import make_recipe
    from tests.test_driver import FAST, StubPool, _drive, _suite

    (tmp_path / "stamp_stage.py").write_text(
        "from dataclasses import replace\n"
        "from synthfactory.run.stages import Stage\n\n"
        "class StampStage(Stage):\n"
        "    name = 'stamp'\n\n"
        "    def run(self, work, state):\n"
        "        return replace(state, rows=[{**row, 'text': row['text'] + ' [stamped]'} for row in state.rows])\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    entries = {name: registry.STAGES.entry(name).target for name in registry.STAGES}
    line = list(entries.items())
    line.insert(line.index(("filter", entries["filter"])) + 1, ("stamp", "stamp_stage:StampStage"))  # the one line
    monkeypatch.setattr(registry, "STAGES", Registry("stage", dict(line)))
    try:
        recipe = make_recipe(tmp_path, suite=_suite(), batches__count=2, batches__size=3, **FAST)
        summary = _drive(recipe, tmp_path / "store", StubPool())
    finally:
        sys.modules.pop("stamp_stage", None)
    from synthfactory import load_dataset_version

    rows = load_dataset_version(tmp_path / "store" / "tiny")
    assert summary["accepted"] == rows.num_rows > 0
    assert all(text.endswith(" [stamped]") for text in rows["text"]), "every published row went through the stage"
