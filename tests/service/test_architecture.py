"""The layers hold: the runtime knows nothing of HTTP, `--help` loads no image stack, and no
module of the service imports another that imports it back."""

from __future__ import annotations

import ast
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
