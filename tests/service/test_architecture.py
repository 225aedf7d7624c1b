"""The layers hold: the runtime knows nothing of HTTP, `--help` loads no image stack, and no
module of the service imports another that imports it back."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from tests.conftest import REPO_ROOT
from tests.service.test_no_tensorflow import _modules_after

WEB_STACK = ("fastapi", "starlette", "uvicorn", "prometheus_client", "multipart", "grpc")
IMAGE_STACK = ("PIL", "numpy", "ai_edge_litert")


def test_the_runtime_imports_no_web_framework_and_no_metrics_library() -> None:
    """In-process use (batch jobs, `digits-score --local`, Ray) needs none of the server."""
    code = """
import numpy as np
from service.runtime.recognizer import Recognizer
from service.settings import Settings
recognizer = Recognizer.open(Settings(model_card="models/model.json"))
recognizer.classify(np.zeros((1, 28, 28), dtype=np.float32))
"""
    modules = _modules_after(code)
    assert not set(WEB_STACK) & set(modules), sorted(set(WEB_STACK) & set(modules))


def test_settings_and_the_command_lines_help_load_no_image_stack() -> None:
    modules = _modules_after("import service.settings, service.server.cli, service.scoring.cli")
    assert not set(IMAGE_STACK) & set(modules), sorted(set(IMAGE_STACK) & set(modules))


def _imports(path: Path, package_root: Path) -> set[str]:
    """Modules of `service` that `path` imports at run time (not under TYPE_CHECKING)."""
    tree = ast.parse(path.read_text())
    found: set[str] = set()

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
        for inner in ast.iter_child_nodes(node):
            visit(inner)

    visit(tree)
    modules = {_module_name(p, package_root) for p in package_root.rglob("*.py")}
    return {name for name in found if name in modules}


def _module_name(path: Path, package_root: Path) -> str:
    parts = path.relative_to(package_root.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def test_no_import_cycles_in_the_service() -> None:
    root = REPO_ROOT / "service"
    graph = {_module_name(p, root): _imports(p, root) for p in root.rglob("*.py")}
    done: set[str] = set()

    def walk(module: str, path: list[str]) -> None:
        if module in path:
            cycle = [*path[path.index(module) :], module]
            pytest.fail("import cycle: " + " -> ".join(cycle))
        if module in done:
            return
        for imported in sorted(graph.get(module, ())):
            walk(imported, [*path, module])
        done.add(module)

    for module in sorted(graph):
        walk(module, [])


def _layers() -> list[tuple[str, list[str]]]:
    """The README's folder table, top row first: (the row's first cell, the modules and
    folders it names). The table is the test's input, so the two cannot drift."""
    lines = (REPO_ROOT / "README.md").read_text().splitlines()
    start = lines.index("| folder / module | concern | may import |") + 2
    rows = []
    for line in lines[start:]:
        if not line.startswith("|"):
            break
        cell = line.split("|")[1]
        rows.append((cell.strip(), re.findall(r"`([^`]+)`", cell)))
    return rows


def _layer_of(module: str, layers: list[tuple[str, list[str]]]) -> int | None:
    path = module.removeprefix("service").lstrip(".").replace(".", "/")
    for index, (_, names) in enumerate(layers):
        for name in names:
            folder = name.rstrip("/")
            if name.endswith("/") and (path == folder or path.startswith(folder + "/")):
                return index
            if name.endswith(".py") and path in (name[:-3], name[:-3] + "/__init__"):
                return index
            if name == "__init__.py" and path == "":
                return index
    return None


def test_every_module_sits_in_a_row_of_the_readmes_folder_table() -> None:
    layers = _layers()
    root = REPO_ROOT / "service"
    homeless = [
        _module_name(path, root)
        for path in root.rglob("*.py")
        if _layer_of(_module_name(path, root), layers) is None
    ]
    assert not homeless, f"in no row of README.md's folder table: {sorted(homeless)}"


def test_no_import_runs_up_the_layers() -> None:
    """Each row of the README's folder table imports only from the rows below it."""
    layers = _layers()
    root = REPO_ROOT / "service"
    upward = []
    for path in sorted(root.rglob("*.py")):
        module = _module_name(path, root)
        row = _layer_of(module, layers)
        for imported in sorted(_imports(path, root)):
            target = _layer_of(imported, layers)
            if row is not None and target is not None and target < row:
                upward.append(
                    f"{module} ({layers[row][0]}) imports {imported} ({layers[target][0]})"
                )
    assert not upward, "imports up the layers:\n" + "\n".join(upward)


# The gateway's match: the only code that compares a request's URL with anything.
URL_MATCHERS = {"service/gateway/matcher.py", "service/web/operation.py"}


def test_no_url_is_matched_outside_the_table() -> None:
    """Prefix and suffix tests on a path (`path.startswith(...)`, `scope["path"].endswith`)
    only in the gateway's match: every other layer reads the operation's rules."""
    found = []
    for path in sorted((REPO_ROOT / "service").rglob("*.py")):
        where = str(path.relative_to(REPO_ROOT))
        if where in URL_MATCHERS:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr in ("startswith", "endswith", "removeprefix", "removesuffix")
                and re.search(r"path|url|route", ast.unparse(node.func.value), re.IGNORECASE)
            ):
                found.append(f"{where}:{node.lineno}: {ast.unparse(node)}")
    assert not found, "URL matching outside the table:\n" + "\n".join(found)
