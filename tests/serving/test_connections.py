"""Connection limits of ``shipyard serve``, seen from raw sockets: nobody holds a connection.

A client that never finishes its request headers (the "slowloris" attack) is
closed after ``--header-timeout``; an idle keep-alive connection after
``--keep-alive-timeout``; beyond ``--max-connections`` new requests answer 503.
Each socket waits at most 30 s for the server to act, so a server that never
closes fails the test instead of hanging it.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator

import httpx
import pytest
from serving_helpers import IrisRegistry, ServeProcess, serve_process

PARTIAL = b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: "
FULL = b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
WAIT = 30.0


@pytest.fixture
def strict_server(iris: IrisRegistry) -> Iterator[ServeProcess]:
    server = serve_process(
        iris, "iris", "--header-timeout", "1", "--keep-alive-timeout", "1", "--workers", "2"
    )
    try:
        yield server.wait_ready()
    finally:
        server.stop()


def _connect(server: ServeProcess) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=WAIT)
    sock.settimeout(WAIT)
    return sock


def _closed_by_server(sock: socket.socket) -> bool:
    """True once the server closed the connection (EOF or reset) without answering."""
    try:
        while True:
            data = sock.recv(4096)
            if not data:
                return True
            if data.startswith(b"HTTP/1.1 "):
                return False  # it answered instead
    except ConnectionResetError:
        return True
    except TimeoutError:
        return False


def _read_response(sock: socket.socket) -> bytes:
    data = b""
    while b"\r\n\r\n" not in data:
        data += sock.recv(4096)
    head, _, body = data.partition(b"\r\n\r\n")
    length = next(
        int(line.split(b":")[1])
        for line in head.split(b"\r\n")
        if line.lower().startswith(b"content-length")
    )
    while len(body) < length:
        body += sock.recv(4096)
    return head


def test_incomplete_headers_are_closed(strict_server: ServeProcess) -> None:
    sockets = [_connect(strict_server) for _ in range(50)]
    try:
        for sock in sockets:
            sock.sendall(PARTIAL)
        silent = _connect(strict_server)  # connects and never sends a byte
        sockets.append(silent)
        assert all(_closed_by_server(sock) for sock in sockets)
    finally:
        for sock in sockets:
            sock.close()
    assert httpx.get(strict_server.url + "/health", timeout=10).status_code == 200


def test_a_kept_alive_connection_is_closed_when_idle_or_slow(strict_server: ServeProcess) -> None:
    with _connect(strict_server) as idle, _connect(strict_server) as slow:
        for sock in (idle, slow):
            sock.sendall(FULL)
            assert _read_response(sock).startswith(b"HTTP/1.1 200")
        slow.sendall(PARTIAL)  # starts a second request and never finishes its headers
        assert _closed_by_server(idle)
        assert _closed_by_server(slow)


def test_headers_sent_in_pieces_within_the_deadline_are_answered(
    strict_server: ServeProcess,
) -> None:
    with _connect(strict_server) as sock:
        for piece in (FULL[:10], FULL[10:25], FULL[25:]):
            sock.sendall(piece)
        assert _read_response(sock).startswith(b"HTTP/1.1 200")


def test_connections_beyond_the_limit_answer_503(iris: IrisRegistry) -> None:
    server = serve_process(iris, "iris", "--max-connections", "4", "--header-timeout", "60")
    server.wait_ready()
    held: list[socket.socket] = []
    try:
        for _ in range(3):
            held.append(_connect(server))
            held[-1].sendall(PARTIAL)
        with _connect(server) as fourth:  # four connections: still within the limit
            fourth.sendall(FULL)
            assert _read_response(fourth).startswith(b"HTTP/1.1 200")
        held.append(_connect(server))
        held[-1].sendall(PARTIAL)
        with _connect(server) as fifth:
            fifth.sendall(FULL)
            assert _read_response(fifth).startswith(b"HTTP/1.1 503")
        for sock in held:
            sock.close()
        held.clear()
        # The server notices the closes on its own schedule: it serves again once it has.
        deadline = time.monotonic() + WAIT
        while httpx.get(server.url + "/health", timeout=10).status_code != 200:
            assert time.monotonic() < deadline, "closed connections still counted"
            time.sleep(0.05)
    finally:
        for sock in held:
            sock.close()
        server.stop()
