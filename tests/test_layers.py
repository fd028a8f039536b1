"""bot/'s layers, read from its imports (ast: nothing is imported or run).

The rules, and why, are in docs/architecture.md:
- ui imports neither services nor cogs;
- services import no cog, and nothing of the process above them (app, lifecycle, metrics...);
- nothing imports a cog module: the bot loads them by name (bot.app.EXTENSIONS);
- db imports nothing of bot but itself and config;
- no circles, counting the imports made only for type checking.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
BOT = ROOT / "bot"


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


def imported(name: str, tree: ast.AST) -> set[str]:
    """The bot modules `name` imports anywhere (top level, functions, TYPE_CHECKING)."""
    package = name if MODULES[name].name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            # `from bot.ui import views` imports the module bot.ui.views.
            targets = [
                f"{base}.{alias.name}" if f"{base}.{alias.name}" in MODULES else base
                for alias in node.names
            ]
        else:
            continue
        found.update(t for t in targets if t in MODULES)
    found.discard(name)
    return found


GRAPH = {name: imported(name, ast.parse(path.read_text())) for name, path in MODULES.items()}


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
        "ui": lambda a, b: in_layer(a, "bot.ui")
        and (in_layer(b, "bot.services") or in_layer(b, "bot.cogs")),
        "services": lambda a, b: in_layer(a, "bot.services")
        and (
            in_layer(b, "bot.cogs")
            or b in {"bot", "bot.app", "bot.__main__", "bot.cli", "bot.serve", "bot.lifecycle"}
            or b == "bot.health"
            or b == "bot.metrics"
        ),
        "cogs": lambda a, b: is_cog(b),
        "db": lambda a, b: in_layer(a, "bot.db")
        and not (in_layer(b, "bot.db") or b == "bot.config"),
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


def test_no_module_is_named_like_a_class_of_another() -> None:
    """tuning_job.py beside a TuningJob elsewhere reads as one thing in two places."""

    def snake(name: str) -> str:
        return "".join(f"_{c.lower()}" if c.isupper() else c for c in name).lstrip("_")

    classes = {
        snake(node.name): name
        for name, path in MODULES.items()
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, ast.ClassDef)
    }
    clashes = [
        f"{name} ~ a class of {classes[stem]}"
        for name in MODULES
        if (stem := name.rpartition(".")[2]) in classes and classes[stem] != name
    ]
    assert clashes == []
