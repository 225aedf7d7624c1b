"""Private APIs pinned and watched (issue 23): the installed uvicorn and Pillow are the minor
versions pyproject.toml pins, and uvicorn's internals that protocol.py and coalescing.py rely
on, as listed in service/server/uvicorn_internals.py, are in it and behave as relied on
(test_private_api_list.py: the two use none that is not listed; Pillow's, in
tests/service/imaging/test_pillow_internals.py). A failure names what moved: a new uvicorn
or Pillow needs its private uses checked before its pin moves."""

from __future__ import annotations

import inspect
import re
from importlib.metadata import version

import pytest
from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

from tests.conftest import REPO_ROOT
from tests.service.server.uvicorn_exchange import UVICORN, Exchange, exchange, internals


def _pins(name: str) -> dict[str, Requirement]:
    """pyproject.toml's requirements of distribution `name`, by the line they are on."""
    # Read as text: tomllib is Python 3.11 on, and the project supports 3.10.
    lines = (REPO_ROOT / "pyproject.toml").read_text().splitlines()
    found = {}
    for number, line in enumerate(lines, 1):
        for text in re.findall(r'"([A-Za-z][^"]*)"', line):
            try:
                requirement = Requirement(text)
            except InvalidRequirement:
                continue
            if canonicalize_name(requirement.name) == name:
                found[f"pyproject.toml:{number}"] = requirement
    return found


@pytest.mark.parametrize("name", ["uvicorn", "pillow"])
def test_the_installed_version_is_the_minor_version_pinned(name: str) -> None:
    pins = _pins(name)
    assert pins, f"pyproject.toml no longer requires {name}"
    specifiers = {requirement.specifier for requirement in pins.values()}
    assert len(specifiers) == 1, f"pyproject.toml pins {name} in more ways than one: {pins}"
    (specifier,) = specifiers
    installed = Version(version(name))
    where = f"pyproject.toml's {name}{specifier}"
    assert specifier.contains(installed, prereleases=True), (
        f"{name} {installed} is installed, outside {where}: check its private uses here, then"
        " move the pin"
    )
    # The earliest release of the minor version installed (its first development release),
    # and of the next: the pin lets in neither an older minor version nor a newer one.
    first = Version(f"{installed.major}.{installed.minor}.0.dev0")
    after = Version(f"{installed.major}.{installed.minor + 1}.0.dev0")
    assert not specifier.contains(first, prereleases=True), f"{where} lets in older versions"
    assert not specifier.contains(after, prereleases=True), f"{where} lets in {after.base_version}"


def _gone(owner: str, item: internals.Internal) -> str:
    return f"{UVICORN}: {owner}.{item.name} is gone; {item.used}"


def test_the_names_imported_from_uvicorn_are_there() -> None:
    listed = {item.name for item in internals.MODULE_NAMES}
    assert listed == set(internals.__all__), "uvicorn_internals: MODULE_NAMES is not __all__"
    # Refusals begin with these status lines.
    lines = {status: internals.STATUS_LINE.get(status) for status in (400, 408, 431, 503)}
    assert all(
        isinstance(line, bytes) and line.startswith(b"HTTP/1.1 %d " % status)
        for status, line in lines.items()
    ), f"{UVICORN}: STATUS_LINE holds {lines}; service/server/protocol.py begins refusals so"


def test_the_methods_protocol_py_overrides_are_there_with_their_parameters() -> None:
    problems = []
    for item in internals.OVERRIDDEN:
        method = getattr(internals.HttpToolsProtocol, item.name, None)
        if not inspect.isfunction(method):
            problems.append(_gone("HttpToolsProtocol", item))
            continue
        parameters = tuple(inspect.signature(method).parameters)[1:]
        if parameters != item.parameters:
            problems.append(
                f"{UVICORN}: HttpToolsProtocol.{item.name} takes {parameters}, not"
                f" {item.parameters}; {item.used}"
            )
    assert not problems, "\n".join(problems)


# --- on a protocol driven as uvicorn drives it -------------------------------------------


@pytest.fixture(scope="module")
def done() -> Exchange:
    return exchange()


def _missing(owner: object, dotted: str) -> bool:
    for name in dotted.split("."):
        if not hasattr(owner, name):
            return True
        owner = getattr(owner, name)
    return False


def test_the_attributes_protocol_py_and_coalescing_py_read_are_there(done: Exchange) -> None:
    assert isinstance(done.cycle, internals.RequestResponseCycle), (
        f"{UVICORN}: HttpToolsProtocol.cycle holds {done.cycle!r} once a request's head is read;"
        " service/server/protocol.py wraps that cycle's transport"
    )
    problems = [
        _gone("HttpToolsProtocol", item)
        for item in internals.PROTOCOL_ATTRIBUTES
        if _missing(done.protocol, item.name)
    ] + [
        _gone("RequestResponseCycle", item)
        for item in internals.CYCLE_ATTRIBUTES
        if _missing(done.cycle, item.name)
    ]
    assert not problems, "\n".join(problems)
    assert done.url == b"/path?q=1", f"{UVICORN}: HttpToolsProtocol.url is {done.url!r}"
    assert done.protocol in done.protocol.connections, (
        f"{UVICORN}: HttpToolsProtocol.connections leaves out the connection: the cap counts it"
    )


def test_uvicorn_calls_the_methods_protocol_py_overrides_in_turn(done: Exchange) -> None:
    """A request: its head, its end, its response's end; then malformed HTTP."""
    expected = [
        "connection_made",
        "on_message_begin",
        "on_headers_complete",
        "on_message_complete",
        "on_response_complete",
        "send_400_response",
    ]
    rest = iter(done.calls)
    uses = {item.name: item.used for item in internals.OVERRIDDEN}
    problems = [
        f"{UVICORN}: HttpToolsProtocol.{name} was not called in turn ({done.calls}); {uses[name]}"
        for name in expected
        if name not in rest  # consumes `rest` up to `name`: the order is checked
    ]
    assert not problems, "\n".join(problems)


def test_a_cycle_writes_a_head_in_one_write_through_its_transport_once_started(
    done: Exchange,
) -> None:
    """What coalescing.py relies on: replacing `cycle.transport` before the cycle's task runs
    catches all it writes, and the first write once `response_started` is set is the head."""
    assert done.cycle_transport is done.protocol.transport, (
        f"{UVICORN}: a RequestResponseCycle no longer writes to its protocol's transport"
    )
    head = internals.STATUS_LINE[200]
    writes = [(data[: len(head)], started) for data, started in done.cycle_writes]
    assert writes == [(head, True), (b"ok", True)], (
        f"{UVICORN}: a response went to RequestResponseCycle.transport as {done.cycle_writes};"
        " service/server/coalescing.py expects its head in one write, after response_started"
    )


def test_what_accept_queue_py_reads_of_a_started_server_is_there() -> None:
    """`new_http_protocol` makes a connection's protocol as uvicorn's `Server.startup` does:
    the attributes it reads of a started server, and the protocol's keyword parameters."""
    import asyncio

    import uvicorn

    from service.server.uvicorn_internals import PROTOCOL_PARAMETERS, SERVER_ATTRIBUTES

    async def started() -> uvicorn.Server:
        async def app(scope: object, receive: object, send: object) -> None:
            pass

        server = uvicorn.Server(uvicorn.Config(app, port=0, lifespan="off", log_level="error"))
        config = server.config
        config.load()
        server.lifespan = config.lifespan_class(config)
        return server

    server = asyncio.run(started())
    for internal in SERVER_ATTRIBUTES:
        target: object = server
        for part in internal.name.split("."):
            assert hasattr(target, part), (
                f"uvicorn {version('uvicorn')}: Server.{internal.name} is gone; {internal.used}"
            )
            target = getattr(target, part)
    parameters = inspect.signature(server.config.http_protocol_class).parameters
    missing = [name for name in PROTOCOL_PARAMETERS if name not in parameters]
    assert not missing, (
        f"uvicorn {version('uvicorn')}: the HTTP protocol takes no {missing}; "
        "service/server/uvicorn_internals.py: new_http_protocol passes them"
    )
