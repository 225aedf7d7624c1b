"""The multi-worker server's processes on a real server (issue 13, items 6, 7 and 8; issue
24, item 5): each worker accepts on its own socket, a dead worker is replaced (up to a
limit), and so is one that stopped answering, SIGHUP is ignored, and a worker gets one
shutdown signal however the server is signalled."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import httpx

from tests.subprocess_server import (
    ESTABLISHED,
    LISTEN,
    REPO_ROOT,
    children,
    server_process,
    server_sockets,
)


def _children(pid: int) -> set[int]:
    return set(children(pid))


def _alive(pid: int) -> bool:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return False
    return "\nState:\tZ" not in status


def _socket_inodes(pid: int) -> set[str]:
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = str(fd.readlink())
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[len("socket:[") : -1])
    return inodes


def _wait_for(condition: Callable[[], bool], what: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, what
        time.sleep(0.05)


def test_each_worker_accepts_on_its_own_socket() -> None:
    # Before: one socket shared by the workers, 32 keep-alive clients split 22:10.
    with server_process({"DIGITS_WORKERS": "2"}) as server:
        workers = _children(server.process.pid)
        listeners = server_sockets(server.port, LISTEN)
        held = {pid: _socket_inodes(pid) & listeners for pid in workers}
        assert len(workers) == 2 and len(listeners) == 2
        assert sorted(len(inodes) for inodes in held.values()) == [1, 1]
        assert not _socket_inodes(server.process.pid) & listeners  # the supervisor: none

        # 64 keep-alive connections, each answered once and left open.
        connections = [socket.create_connection(("127.0.0.1", server.port)) for _ in range(64)]
        try:
            for connection in connections:
                connection.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            for connection in connections:
                connection.settimeout(30)
                assert connection.recv(65536).startswith(b"HTTP/1.1 200 ")
            accepted = server_sockets(server.port, ESTABLISHED)
            split = [len(_socket_inodes(pid) & accepted) for pid in workers]
        finally:
            for connection in connections:
                connection.close()
    # The kernel hashes connections over the two sockets: 64 on one alone has p = 2^-63.
    assert sum(split) == 64 and min(split) >= 1, split


def test_a_dead_worker_is_replaced_and_too_many_deaths_stop_the_server() -> None:
    # Before: a killed worker was reaped in silence and never replaced.
    env = {"DIGITS_WORKERS": "2", "DIGITS_WORKER_RESTART_LIMIT": "1"}  # the default is 5
    with server_process(env) as server:
        first = _children(server.process.pid)
        victim = min(first)
        os.kill(victim, signal.SIGKILL)
        _wait_for(
            lambda: (
                len(_children(server.process.pid) - first) == 1
                and len(_children(server.process.pid)) == 2
            ),
            "the dead worker was not replaced",
        )
        (replacement,) = _children(server.process.pid) - first
        assert f"worker process {victim} died (killed by SIGKILL)" in server.output()
        # Still serving on new connections: none reaches the dead worker's socket.
        for _ in range(20):
            assert httpx.get(server.url + "/readyz", timeout=10).status_code == 200

        # A second death within the minute is over the limit: the server stops, status 1.
        _wait_for(lambda: _alive(replacement), "the replacement did not start")
        os.kill(replacement, signal.SIGKILL)
        assert server.process.wait(timeout=30) == 1, server.output()
        assert "stopping the server, exit status 1" in server.output()


def _answered_by(server_port: int, workers: set[int], count: int) -> dict[int, int]:
    """Open `count` new connections, each must get 200 to `GET /healthz` within 10 s; how
    many each worker holds (they stay open, keep-alive, until counted)."""
    connections = [socket.create_connection(("127.0.0.1", server_port)) for _ in range(count)]
    try:
        for connection in connections:
            connection.settimeout(10)  # a connection queued on a stopped worker hangs
            connection.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            assert connection.recv(65536).startswith(b"HTTP/1.1 200 ")
        accepted = server_sockets(server_port, ESTABLISHED)
        return {pid: len(_socket_inodes(pid) & accepted) for pid in workers}
    finally:
        for connection in connections:
            connection.close()


def test_a_stopped_worker_is_killed_and_replaced() -> None:
    # Before: the supervisor watched for deaths only. With one of two workers stopped
    # (SIGSTOP: a worker stuck in C code looks the same), 3-11 of 20 new connections hung
    # on its socket, for ever, and nothing was logged.
    heartbeat = 2
    env = {
        "DIGITS_WORKERS": "2",
        "DIGITS_WORKER_HEARTBEAT_SECONDS": str(heartbeat),
        "DIGITS_WORKER_RESTART_LIMIT": "1",  # the default is 5
    }
    with server_process(env) as server:
        first = _children(server.process.pid)
        victim = min(first)
        os.kill(victim, signal.SIGSTOP)
        stopped = time.monotonic()
        try:
            _wait_for(
                lambda: not _alive(victim) and len(_children(server.process.pid)) == 2,
                f"the stopped worker was not replaced:\n{server.output()}",
                timeout=heartbeat + 15,
            )
            replaced_after = time.monotonic() - stopped
        finally:
            if _alive(victim):
                os.kill(victim, signal.SIGKILL)  # not left stopped, whatever happened
        (replacement,) = _children(server.process.pid) - first
        assert replaced_after < heartbeat + 5, replaced_after  # its last beat + 2 s + a look
        assert f"worker {victim} did not answer for {heartbeat} s: killed and replaced" in (
            server.output()
        )
        # Every new connection is answered, by the replacement too once it listens.
        _wait_for(
            lambda: len(server_sockets(server.port, LISTEN)) == 2, "the replacement never listened"
        )
        split = _answered_by(server.port, _children(server.process.pid), 20)
        assert sum(split.values()) == 20 and split[replacement] >= 1, split

        # A worker killed for its silence counts as a death: a second one within the minute
        # is over the limit, and the server stops with status 1.
        os.kill(replacement, signal.SIGSTOP)
        assert server.process.wait(timeout=heartbeat + 30) == 1, server.output()
        log = server.output()
    assert f"worker {replacement} did not answer for {heartbeat} s" in log
    assert "2 worker deaths within 60 s" in log and "stopping the server, exit status 1" in log


def test_sighup_is_ignored_and_a_group_sigterm_drains_each_worker_once() -> None:
    # Before: SIGHUP killed the server at once (exit 129), in-flight requests cut; and a
    # worker got SIGTERM twice (its own and the parent's), so its drain ended at once.
    drain = 3.0
    env = {"DIGITS_WORKERS": "2", "DIGITS_DRAIN_SECONDS": str(drain)}
    with server_process(env, new_session=True) as server:
        workers = _children(server.process.pid)
        os.killpg(server.process.pid, signal.SIGHUP)  # the supervisor alone gets it
        for pid in workers:
            os.kill(pid, signal.SIGHUP)
        _wait_for(
            lambda: server.output().count("SIGHUP ignored") == 1 + len(workers),
            f"not logged:\n{server.output()}",
        )
        assert httpx.get(server.url + "/healthz", timeout=10).status_code == 200
        assert _children(server.process.pid) == workers  # none died, none was replaced

        signalled = time.monotonic()
        os.killpg(server.process.pid, signal.SIGTERM)
        while time.monotonic() < signalled + drain * 0.7:
            assert all(_alive(pid) for pid in workers), "a worker cut its drain short"
            status = httpx.get(server.url + "/readyz", timeout=10).status_code
            assert status == 503 or time.monotonic() < signalled + 0.5
            time.sleep(0.1)
        assert server.process.wait(timeout=drain + 30) == 0, server.output()
        assert time.monotonic() - signalled >= drain * 0.9
        log = server.output()
    assert log.count("shutdown signal: draining") == len(workers), log


def test_a_port_another_server_listens_on_is_not_shared() -> None:
    # SO_REUSEPORT lets sockets of the same user share a port: without a check first, a
    # second server started by mistake on the same port would take half its connections.
    with socket.socket() as other:
        other.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        other.bind(("127.0.0.1", 0))
        other.listen()
        port = other.getsockname()[1]
        env = {k: v for k, v in os.environ.items() if not k.startswith("DIGITS_")}
        env.update(DIGITS_WORKERS="2", DIGITS_HOST="127.0.0.1", DIGITS_PORT=str(port))
        result = subprocess.run(
            [sys.executable, "-m", "service"],
            env=env,
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            timeout=120,
        )
    assert result.returncode == 1
    assert f"cannot listen on 127.0.0.1:{port}" in result.stderr
