"""What protocol.py and coalescing.py use of uvicorn is what service/server/uvicorn_internals.py
lists, read from their code: so that the list, which test_private_apis.py checks against the
installed uvicorn, cannot fall behind the code. And the names protocol.py gives its own state
are not uvicorn's."""

from __future__ import annotations

import ast
from pathlib import Path

from tests.conftest import REPO_ROOT
from tests.service.server.uvicorn_exchange import UVICORN, exchange, internals

SERVER = REPO_ROOT / "service" / "server"


def _class(path: Path, name: str) -> ast.ClassDef:
    return next(
        node
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, ast.ClassDef) and node.name == name
    )


def _chains(cls: ast.ClassDef) -> set[str]:
    """The attribute chains on `self` in `cls`, dotted ("cycle.transport", and its prefix
    "cycle"); `super().name` as "super().name"; `getattr(self, "name", ...)` as "name"."""
    chains: set[str] = set()
    for node in ast.walk(cls):
        if isinstance(node, ast.Call) and ast.unparse(node.func) == "getattr":
            target, name = node.args[:2]
            if ast.unparse(target) == "self" and isinstance(name, ast.Constant):
                chains.add(str(name.value))
        if not isinstance(node, ast.Attribute):
            continue
        parts: list[str] = []
        base: ast.expr = node
        while isinstance(base, ast.Attribute):
            parts.insert(0, base.attr)
            base = base.value
        if ast.unparse(base) in ("self", "super()"):
            chains.add(".".join(parts) if ast.unparse(base) == "self" else "super()." + parts[0])
    return chains


def _own(cls: ast.ClassDef) -> set[str]:
    """The names `cls` defines: in its body, and on `self` in `__init__`."""
    names: set[str] = set()
    for node in cls.body:
        if isinstance(node, ast.FunctionDef):
            names.add(node.name)
        elif isinstance(node, (ast.Assign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            names.update(target.id for target in targets if isinstance(target, ast.Name))
    init = next(
        node for node in cls.body if isinstance(node, ast.FunctionDef) and node.name == "__init__"
    )
    names.update(
        node.attr
        for node in ast.walk(init)
        if isinstance(node, ast.Attribute)
        and isinstance(node.ctx, ast.Store)
        and ast.unparse(node.value) == "self"
    )
    return names


def test_protocol_py_overrides_and_calls_through_super_only_what_is_listed() -> None:
    protocol = _class(SERVER / "protocol.py", "BoundedHttpProtocol")
    listed = {item.name for item in internals.OVERRIDDEN}
    own = _own(protocol)
    inherited = {
        name
        for name in own
        if not name.startswith("__") and hasattr(internals.HttpToolsProtocol, name)
    }
    supers = {
        chain.removeprefix("super().")
        for chain in _chains(protocol)
        if chain.startswith("super().")
    }
    also_uvicorn_s = sorted(inherited - listed)
    assert not also_uvicorn_s, (
        f"{UVICORN}: HttpToolsProtocol has {also_uvicorn_s}, which service/server/protocol.py"
        " defines too: list an override in uvicorn_internals.OVERRIDDEN, else rename it there"
    )
    stale = sorted(listed - own)
    assert not stale, f"uvicorn_internals.OVERRIDDEN lists {stale}, not overridden in protocol.py"
    unlisted = sorted(supers - listed - {"__init__"})
    assert not unlisted, f"protocol.py calls super().{unlisted}: list them in OVERRIDDEN"


def test_protocol_and_coalescing_read_only_the_attributes_listed() -> None:
    protocol = _class(SERVER / "protocol.py", "BoundedHttpProtocol")
    coalescing = _class(SERVER / "coalescing.py", "CoalescingTransport")
    own, chains = _own(protocol), _chains(protocol)
    read = {
        chain
        for chain in chains
        if chain.split(".")[0] not in own and not chain.startswith(("super().", "cycle."))
    }
    listed = {item.name for item in internals.PROTOCOL_ATTRIBUTES}

    def covers(a: str, b: str) -> bool:  # "transport" covers "transport.write", and back
        return a == b or a.startswith(b + ".") or b.startswith(a + ".")

    unlisted = {chain for chain in read if not any(covers(chain, name) for name in listed)}
    unused = {name for name in listed if not any(covers(chain, name) for chain in read)}
    assert not unlisted, (
        f"protocol.py reads HttpToolsProtocol.{unlisted}: list in PROTOCOL_ATTRIBUTES"
    )
    assert not unused, f"PROTOCOL_ATTRIBUTES lists {unused}, which protocol.py no longer reads"
    cycle = {chain.split(".")[1] for chain in chains if chain.startswith("cycle.")}
    cycle |= {chain.split(".")[1] for chain in _chains(coalescing) if chain.startswith("_cycle.")}
    listed_cycle = {item.name for item in internals.CYCLE_ATTRIBUTES}
    assert cycle == listed_cycle, (
        f"protocol.py and coalescing.py use RequestResponseCycle.{sorted(cycle)};"
        f" CYCLE_ATTRIBUTES lists {sorted(listed_cycle)}"
    )


def test_the_names_protocol_py_gives_its_own_state_are_not_uvicorn_s() -> None:
    own = _own(_class(SERVER / "protocol.py", "BoundedHttpProtocol"))
    ours = {name for name in own if not name.startswith("__")} - {
        item.name for item in internals.OVERRIDDEN
    }
    protocol = exchange().protocol  # with every attribute uvicorn sets, up to an error
    # Those of the class are the test above's: here, what uvicorn sets on an instance.
    taken = sorted(
        name
        for name in ours
        if hasattr(protocol, name) and not hasattr(internals.HttpToolsProtocol, name)
    )
    assert not taken, (
        f"{UVICORN}: HttpToolsProtocol now has {taken} of its own; service/server/protocol.py"
        " uses the same names for its own state: rename them there"
    )
