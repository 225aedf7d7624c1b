"""No setting may be a no-op (issue 10): each `Settings` field has a test that fails if the
service ignored it.

`EFFECT_TESTS` maps every field to such a test, wherever it lives; the meta-test keeps the
map complete as settings come and go. The tests below cover what the server process
itself does with its settings (where it listens, how many processes, what it logs, how
it stops), on a real `python -m service`.
"""

from __future__ import annotations

import ast
import contextlib
import json
import logging
import os
import signal
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from service.settings import Settings
from tests.conftest import MODEL_CARD
from tests.subprocess_server import ServerProcess, children, free_port, server_process

_STARTUP, _ERRORS, _AUTH = "server/test_startup.py", "web/test_errors.py", "middleware/test_auth.py"
_PREDICTOR, _HERE = "runtime/test_recognizer.py", "test_settings_effects.py"
_SHEDDING = "middleware/test_load_shedding.py"

# Setting → tests (in tests/service/<file>::<function>) that fail if it is ignored.
EFFECT_TESTS: dict[str, list[str]] = {
    "model_card": [f"{_STARTUP}::test_missing_card"],
    "model_file": [f"{_STARTUP}::test_selected_model_file_is_served"],
    "not_a_digit_threshold": [
        "api/test_not_a_digit.py::test_the_setting_is_the_default_threshold",
        "api/test_not_a_digit.py::test_the_setting_is_read_from_its_variable_and_bounded",
        "v2/test_v2_not_a_digit.py::test_the_setting_is_the_default_threshold_on_v2",
    ],
    "max_images": [f"{_ERRORS}::test_image_count_limits"],
    "max_body_bytes": [f"{_ERRORS}::test_declared_body_over_the_limit_is_413"],
    "max_body_bytes_in_flight": [
        "middleware/test_body_budget_live.py::test_held_back_bodies_stay_within_the_budget"
    ],
    "worker_heartbeat_seconds": [
        "server/test_supervisor.py::test_a_stopped_worker_is_killed_and_replaced"
    ],
    "max_pixels": [f"{_ERRORS}::test_pixel_limit_comes_from_settings"],
    "decode_threads": [
        f"{_PREDICTOR}::test_decode_threads_bounds_how_many_images_are_decoded_at_once"
    ],
    "interpreters": [f"{_PREDICTOR}::test_interpreters_is_how_many_inferences_run_at_once"],
    "interpreter_threads": [
        f"{_PREDICTOR}::test_interpreter_threads_gives_each_interpreter_its_own_cpu_threads"
    ],
    "workers": [f"{_HERE}::test_workers_is_how_many_processes_serve_the_port"],
    "batching": [
        f"{_PREDICTOR}::test_batching_settings_decide_how_many_requests_share_an_interpreter_call"
    ],
    "batch_max_size": [
        f"{_PREDICTOR}::test_batching_settings_decide_how_many_requests_share_an_interpreter_call"
    ],
    "inline_max_bytes": [
        f"{_PREDICTOR}::test_inline_max_bytes_decides_which_images_are_decoded_on_the_event_loop"
    ],
    "host": [
        f"{_HERE}::test_host_and_port_are_where_the_server_listens",
        f"{_HERE}::test_workers_is_how_many_processes_serve_the_port",  # the forked path
    ],
    "port": [f"{_HERE}::test_host_and_port_are_where_the_server_listens"],
    "grpc_port": [f"{_HERE}::test_grpc_port_is_where_every_worker_serves_grpc"],
    "log_level": [f"{_HERE}::test_log_level_and_access_log_decide_what_is_logged"],
    "access_log": [
        f"{_HERE}::test_log_level_and_access_log_decide_what_is_logged",
        f"{_HERE}::test_access_log_true_logs_each_request",
    ],
    "root_path": [f"{_HERE}::test_root_path_is_the_prefix_in_the_openapi_servers"],
    "drain_seconds": [f"{_HERE}::test_drain_seconds_is_how_long_sigterm_keeps_serving"],
    "shutdown_timeout_seconds": [
        f"{_HERE}::test_shutdown_timeout_seconds_cancels_a_request_still_running"
    ],
    "request_timeout_seconds": [
        "middleware/test_request_timeout.py::test_the_service_enforces_its_setting"
    ],
    "max_header_bytes": [
        "server/test_protocol.py::test_a_head_over_max_header_bytes_is_431_and_the_connection_closes"
    ],
    "keep_alive_seconds": [
        "server/test_protocol.py::test_an_idle_connection_is_closed_after_keep_alive_seconds"
    ],
    "header_timeout_seconds": [
        "server/test_protocol.py::test_a_head_must_arrive_within_header_timeout_seconds"
    ],
    "max_connections": [
        "server/test_protocol.py::test_connections_over_max_connections_get_503_at_once"
    ],
    "worker_restart_limit": [
        "server/test_supervisor.py::"
        "test_a_dead_worker_is_replaced_and_too_many_deaths_stop_the_server"
    ],
    "max_queued_images": [
        f"{_SHEDDING}::test_a_saturated_worker_sheds_every_prediction_before_reading_it",
        f"{_SHEDDING}::test_a_request_that_would_pass_the_bound_is_shed_once_its_images_are_counted",
        f"{_SHEDDING}::test_zero_means_no_bound",
    ],
    "api_key": [
        f"{_AUTH}::test_every_model_operation_needs_the_key",
        f"{_AUTH}::test_a_missing_or_wrong_key_is_401",
    ],
}


def _test_functions(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    return {node.name for node in tree.body if isinstance(node, ast.FunctionDef)}


def test_every_setting_has_a_test_of_its_effect() -> None:
    assert sorted(EFFECT_TESTS) == sorted(Settings.model_fields)
    for name, references in EFFECT_TESTS.items():
        assert references, name
        for reference in references:
            file, function = reference.split("::")
            path = Path(__file__).parent / file
            assert path.is_file(), f"{name}: {reference}: no such file"
            assert function in _test_functions(path), f"{name}: {reference}: no such test"


def test_the_batch_wait_that_never_waited_is_gone_and_a_leftover_is_reported(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    # DIGITS_BATCH_MAX_WAIT_MS was documented, but nothing ever waited (issue 10, item 5).
    assert "batch_max_wait_ms" not in Settings.model_fields
    monkeypatch.setenv("DIGITS_BATCH_MAX_WAIT_MS", "5")
    with caplog.at_level(logging.WARNING, logger="service.settings"):
        Settings()
    assert "DIGITS_BATCH_MAX_WAIT_MS is set, but it never had an effect" in caplog.text


# --- the server process ------------------------------------------------------------------

# Linux routes all of 127.0.0.0/8 to the loopback interface: a server bound to this
# address is reachable there but not on 127.0.0.1, unlike one bound to 0.0.0.0.
OTHER_LOOPBACK = "127.0.0.2"


@contextlib.contextmanager
def _server(env: dict[str, str]) -> Iterator[ServerProcess]:
    """`python -m service` on OTHER_LOOPBACK, ready; stopped (SIGTERM) afterwards."""
    with server_process(
        {"DIGITS_MODEL_CARD": str(MODEL_CARD), **env}, host=OTHER_LOOPBACK
    ) as server:
        yield server


def _refused(url: str) -> bool:
    try:
        httpx.get(url, timeout=5)
    except httpx.ConnectError:
        return True
    return False


@pytest.fixture(scope="module")
def single() -> Iterator[ServerProcess]:
    env = {
        "DIGITS_WORKERS": "1",
        "DIGITS_LOG_LEVEL": "trace",
        "DIGITS_ACCESS_LOG": "false",
        "DIGITS_ROOT_PATH": "/digits",
    }
    with _server(env) as server:
        yield server


def test_host_and_port_are_where_the_server_listens(single: ServerProcess) -> None:
    port = single.url.rsplit(":", 1)[1]
    assert httpx.get(single.url + "/healthz").json() == {"status": "ok"}
    assert _refused(f"http://127.0.0.1:{port}/healthz")  # bound to 0.0.0.0, it would answer


def test_log_level_and_access_log_decide_what_is_logged(single: ServerProcess) -> None:
    def completed() -> int:  # uvicorn's TRACE line once a request's app call returns
        return single.output().count("] Completed")

    before = completed()
    for _ in range(3):
        assert httpx.get(single.url + "/readyz").status_code == 200
    deadline = time.monotonic() + 30
    while completed() < before + 3:  # an access line would be written before these
        assert time.monotonic() < deadline, single.output()  # at "info": no TRACE at all
        time.sleep(0.05)
    # With the access log on, each is logged: `"GET /digits/readyz HTTP/1.1" 200 OK`.
    assert '/readyz HTTP/1.1" 200' not in single.output()


def test_access_log_true_logs_each_request() -> None:
    with _server({"DIGITS_WORKERS": "1", "DIGITS_ACCESS_LOG": "true"}) as server:
        for _ in range(3):
            assert httpx.get(server.url + "/readyz").status_code == 200
        deadline = time.monotonic() + 30
        while server.output().count('"GET /readyz HTTP/1.1" 200') < 3:
            assert time.monotonic() < deadline, server.output()
            time.sleep(0.05)


def test_root_path_is_the_prefix_in_the_openapi_servers(single: ServerProcess) -> None:
    servers = httpx.get(single.url + "/openapi.json").json().get("servers")
    assert servers == [{"url": "/digits"}]


def test_workers_is_how_many_processes_serve_the_port() -> None:
    # One more than the default (one per available core), so only the setting explains it.
    workers = len(os.sched_getaffinity(0)) + 1
    env = {"DIGITS_WORKERS": str(workers), "DIGITS_LOG_LEVEL": "warning"}
    with _server(env) as server:
        assert len(children(server.process.pid)) == workers  # the parent supervises
        assert httpx.get(server.url + "/healthz").status_code == 200
        assert _refused(server.url.replace(OTHER_LOOPBACK, "127.0.0.1") + "/healthz")
        server.process.send_signal(signal.SIGTERM)
        assert server.process.wait(timeout=60) == 0, server.output()
        assert "serving " not in server.output()  # the start-up line is INFO: below "warning"


def test_drain_seconds_is_how_long_sigterm_keeps_serving() -> None:
    drain = 30.0  # the default is 5: still serving after 7 s shows the setting
    with server_process({"DIGITS_WORKERS": "1", "DIGITS_DRAIN_SECONDS": str(drain)}) as server:
        signalled = time.monotonic()
        server.process.send_signal(signal.SIGTERM)
        while time.monotonic() < signalled + 7:
            assert httpx.get(server.url + "/readyz", timeout=5).status_code == 503
            time.sleep(0.25)
        assert httpx.get(server.url + "/healthz", timeout=5).status_code == 200
        server.process.send_signal(signal.SIGTERM)  # a second one ends the drain
        assert server.process.wait(timeout=30) == 0, server.output()


def test_shutdown_timeout_seconds_cancels_a_request_still_running() -> None:
    env = {
        "DIGITS_WORKERS": "1",
        "DIGITS_SHUTDOWN_TIMEOUT_SECONDS": "1",  # the default is 20
        "DIGITS_REQUEST_TIMEOUT_SECONDS": "600",  # the stalled body never times out first
    }
    with server_process(env) as server:
        body = json.dumps({"images": [{"data": "x" * 1000}]}).encode()
        head = (
            f"POST /v1/predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n"
        ).encode()
        with socket.create_connection(("127.0.0.1", server.port), timeout=30) as stalled:
            stalled.sendall(head + body[:100])  # ...and the rest never comes
            time.sleep(1.0)  # for the server to read the head and start the request
            server.process.send_signal(signal.SIGTERM)
            # With the default it would wait 20 s for the request.
            assert server.process.wait(timeout=12) == 0, server.output()
        log = server.output()
    assert "Cancel 1 running task(s), timeout graceful shutdown exceeded" in log, log


def test_grpc_port_is_where_every_worker_serves_grpc() -> None:
    # Imported here: only this test of the file needs gRPC.
    import grpc
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    port = free_port(OTHER_LOOPBACK)
    env = {"DIGITS_WORKERS": "2", "DIGITS_GRPC_PORT": str(port), "DIGITS_LOG_LEVEL": "info"}
    with _server(env) as server:
        # Each worker listens on the port itself (SO_REUSEPORT), on `host` only.
        listening = [line for line in server.output().splitlines() if "gRPC Open" in line]
        assert len(listening) == 2, server.output()
        for address, status in [(OTHER_LOOPBACK, None), ("127.0.0.1", "refused")]:
            with grpc.insecure_channel(f"{address}:{port}") as channel:
                check = health_pb2_grpc.HealthStub(channel).Check
                try:
                    answer = check(health_pb2.HealthCheckRequest(), timeout=5).status
                except grpc.RpcError as error:
                    assert status == "refused", error
                    assert error.code() == grpc.StatusCode.UNAVAILABLE
                else:
                    assert status is None and answer == health_pb2.HealthCheckResponse.SERVING
        server.process.send_signal(signal.SIGTERM)
        assert server.process.wait(timeout=60) == 0, server.output()
        assert server.output().count("gRPC server stopped") == 2
