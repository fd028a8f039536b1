"""bot/'s layers and engine/'s torch-free package, read from their imports (ast: nothing is
imported or run, but for one fresh interpreter that imports engine.api).

The rules, and why, are in docs/architecture.md:
- engine.api imports no engine module outside it, and nothing heavy (torch, numpy...);
- bot/ imports nothing of engine/ but engine.api;
- no module of bot/ or engine/ is named like a class of another, and no class name is
  defined in both bot/ and engine/;
- ui imports neither services nor cogs;
- services import no cog, and nothing of the process above them (app, lifecycle, metrics...);
- nothing imports a cog module: the bot loads them by name (bot.app.EXTENSIONS);
- db imports nothing of bot but itself and config;
- no circles, counting the imports made only for type checking.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
BOT = ROOT / "bot"
ENGINE = ROOT / "engine"


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


MODULES = {
    module_name(path): path
    for path in BOT.rglob("*.py")
    if "migrations" not in path.relative_to(BOT).parts
}
ENGINE_MODULES = {module_name(path): path for path in ENGINE.rglob("*.py")}
API = "engine.api"
# Libraries the bot's process must never load: torch above all (seconds of import, hundreds
# of MB), and the numeric and audio stacks the engine's heavy parts stand on.
HEAVY = {
    "torch",
    "numpy",
    "scipy",
    "matplotlib",
    "music21",
    "miditok",
    "pretty_midi",
    "fluidsynth",
    "soundfile",
}
# The `motif` launcher hands `motif engine ...` to the engine's CLI in that same command's
# process, never in the bot's; the CLI's heavy imports are made inside the command run.
LAUNCHER = ("bot.cli", "engine.__main__")


def imports_of(name: str, path: Path) -> set[str]:
    """Every name module `name` imports anywhere (top level, functions, TYPE_CHECKING), made
    absolute: `import a.b` gives a.b; `from a import b, c` gives a.b and a.c."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            found.update(f"{base}.{alias.name}" for alias in node.names)
    return found


def imported(name: str) -> set[str]:
    """The bot modules `name` imports: `from bot.ui import views` is bot.ui.views, `from
    bot.ui.views import X` is bot.ui.views."""
    found = {
        target if target in MODULES else target.rpartition(".")[0]
        for target in imports_of(name, MODULES[name])
    }
    return (found & MODULES.keys()) - {name}


GRAPH = {name: imported(name) for name in MODULES}


def in_layer(name: str, layer: str) -> bool:
    return name == layer or name.startswith(layer + ".")


def is_cog(name: str) -> bool:
    """A module of bot/cogs/ with an extension's `setup` function."""
    if not name.startswith("bot.cogs."):
        return False
    tree = ast.parse(MODULES[name].read_text())
    return any(
        isinstance(node, ast.AsyncFunctionDef | ast.FunctionDef) and node.name == "setup"
        for node in tree.body
    )


def breaches(rule: str) -> list[str]:
    rules = {
        "ui": lambda a, b: (
            in_layer(a, "bot.ui") and (in_layer(b, "bot.services") or in_layer(b, "bot.cogs"))
        ),
        "services": lambda a, b: (
            in_layer(a, "bot.services")
            and (
                in_layer(b, "bot.cogs")
                or b in {"bot", "bot.app", "bot.__main__", "bot.cli", "bot.serve", "bot.lifecycle"}
                or b == "bot.health"
                or b == "bot.metrics"
            )
        ),
        "cogs": lambda a, b: is_cog(b),
        "db": lambda a, b: (
            in_layer(a, "bot.db") and not (in_layer(b, "bot.db") or b == "bot.config")
        ),
    }
    return sorted(
        f"{a} -> {b}" for a, targets in GRAPH.items() for b in targets if rules[rule](a, b)
    )


def test_the_graph_is_read() -> None:
    # A reader that found nothing would pass every rule: these imports are known to exist.
    assert "bot.services.engine_port" in GRAPH["bot.app"]
    assert "bot.ui.views" in GRAPH["bot.cogs.votes"]
    assert "bot.app" in GRAPH["bot.cogs.votes"]  # under TYPE_CHECKING: still read
    assert "bot.db.queries" in GRAPH["bot.db"]


@pytest.mark.parametrize("rule", ["ui", "services", "cogs", "db"])
def test_layer_rule(rule: str) -> None:
    assert breaches(rule) == []


def test_the_bot_loads_every_cog_by_name_and_nothing_else() -> None:
    app = ast.parse(MODULES["bot.app"].read_text())
    (extensions,) = [
        node.value
        for node in app.body
        if isinstance(node, ast.Assign)
        and any(isinstance(t, ast.Name) and t.id == "EXTENSIONS" for t in node.targets)
    ]
    loaded = set(ast.literal_eval(extensions))
    cogs = {name for name in MODULES if is_cog(name)}
    assert loaded == cogs
    assert {name for name in MODULES if name.startswith("bot.cogs.")} == cogs


def test_no_circles() -> None:
    circles: list[list[str]] = []
    state: dict[str, str] = {}
    path: list[str] = []

    def visit(name: str) -> None:
        state[name], _ = "open", path.append(name)
        for target in sorted(GRAPH[name]):
            if state.get(target) == "open":
                circles.append([*path[path.index(target) :], target])
            elif target not in state:
                visit(target)
        state[name], _ = "done", path.pop()

    for name in sorted(GRAPH):
        if name not in state:
            visit(name)
    assert circles == []


def in_engine_api(target: str) -> bool:
    return in_layer(target, API)


def test_engine_api_imports_nothing_outside_it_and_nothing_heavy() -> None:
    api = {name: path for name, path in ENGINE_MODULES.items() if in_layer(name, API)}
    assert "engine.api.client" in api and "engine.api.schema" in api
    breaches = sorted(
        f"{name} -> {target}"
        for name, path in api.items()
        for target in imports_of(name, path)
        if target.split(".")[0] in HEAVY
        or (target.split(".")[0] == "engine" and not in_engine_api(target))
    )
    assert breaches == []


def test_the_contract_reader_sees_heavy_imports_in_functions(tmp_path: Path) -> None:
    # The check above is only as good as imports_of: an import inside a function, or one
    # made for type checking only, must be read.
    probe = tmp_path / "probe.py"
    probe.write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n"
        "    from engine.model.lstm import X\n"
        "def f():\n    import torch.nn\n    from . import sibling\n"
    )
    assert imports_of("engine.api.probe", probe) == {
        "typing.TYPE_CHECKING",
        "engine.model.lstm.X",
        "torch.nn",
        "engine.api.sibling",
    }


def test_engine_api_imports_without_torch_or_numpy() -> None:
    # A fresh interpreter: this test session has imported torch for the engine's tests.
    names = sorted(name for name in ENGINE_MODULES if in_layer(name, API))
    code = (
        "import importlib, sys\n"
        f"for name in {names!r}:\n"
        "    importlib.import_module(name)\n"
        "heavy = sorted(m for m in sys.modules if m.split('.')[0] in "
        f"{sorted(HEAVY)!r})\n"
        "assert not heavy, heavy\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr


def test_the_bot_imports_only_the_engines_torch_free_package() -> None:
    found = sorted(
        f"{name} -> {target}"
        for name, path in MODULES.items()
        for target in imports_of(name, path)
        if target.split(".")[0] == "engine"
        and not in_engine_api(target)
        and not (name == LAUNCHER[0] and in_layer(target, LAUNCHER[1]))
    )
    assert found == []


def snake(name: str) -> str:
    return "".join(f"_{c.lower()}" if c.isupper() else c for c in name).lstrip("_")


def classes_of(modules: dict[str, Path]) -> dict[str, set[str]]:
    """Class name -> the modules that define a class of that name."""
    found: dict[str, set[str]] = defaultdict(set)
    for name, path in modules.items():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ClassDef):
                found[node.name].add(name)
    return found


BOTH = {**MODULES, **ENGINE_MODULES}


def test_no_module_is_named_like_a_class_of_another() -> None:
    """tuning_job.py beside a TuningJob elsewhere reads as one thing in two places; so does
    engine/model.py beside engine/models.py's ModelCache, or engine's Seed beside the ORM's."""
    by_stem: dict[str, set[str]] = defaultdict(set)
    for cls, where in classes_of(BOTH).items():
        by_stem[snake(cls)] |= {f"{m}.{cls}" for m in where}
    clashes = sorted(
        f"{name} ~ {owner}"
        for name in BOTH
        if "." in name  # the packages bot and engine themselves name the project's two parts
        for owner in by_stem.get(name.rpartition(".")[2], ())
        if owner.rpartition(".")[0] != name
    )
    assert clashes == []


def test_no_class_name_means_two_things_across_bot_and_engine() -> None:
    """One name, one thing: the engine's candidate is not the ORM's Candidate."""
    classes = classes_of(BOTH)
    shared = sorted(
        f"{cls}: {sorted(where)}"
        for cls, where in classes.items()
        if {m.split(".")[0] for m in where} == {"bot", "engine"}
    )
    assert shared == []
