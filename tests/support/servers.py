"""Real servers on loopback for the tests: free ports and ASGI apps under uvicorn."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import uvicorn


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that was free on ``host`` a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


class _ThreadServer(uvicorn.Server):
    """A uvicorn server meant for a background thread: it never touches signal handlers."""

    def install_signal_handlers(self) -> None:  # uvicorn < 0.29
        pass

    @contextmanager
    def capture_signals(self) -> Iterator[None]:  # uvicorn >= 0.29
        yield


@contextmanager
def uvicorn_server(app: Any, *, host: str = "127.0.0.1", startup_timeout: float = 10.0, **config: Any) -> Iterator[str]:
    """Serve the ASGI ``app`` on a free loopback port in a background thread.

    Yields the base URL (``http://127.0.0.1:PORT``, no trailing slash) once the server accepts
    connections, and shuts it down cleanly (lifespan shutdown included) on exit. Extra keyword
    arguments go to ``uvicorn.Config`` (``lifespan="off"``, ``timeout_graceful_shutdown=...``).

        with uvicorn_server(app) as base_url:
            httpx.get(base_url + "/health")
    """
    # Binding the socket here, before uvicorn starts, means the port is known and cannot be taken.
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, 0))
    port = sock.getsockname()[1]
    config.setdefault("log_level", "warning")
    config.setdefault("access_log", False)
    config.setdefault("timeout_graceful_shutdown", 5)
    server = _ThreadServer(uvicorn.Config(app, host=host, port=port, **config))
    failure: list[BaseException] = []

    def run() -> None:
        try:
            server.run(sockets=[sock])
        except BaseException as exc:
            failure.append(exc)

    thread = threading.Thread(target=run, name=f"uvicorn:{port}", daemon=True)
    thread.start()
    deadline = time.monotonic() + startup_timeout
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            server.should_exit = True
            thread.join(timeout=5)
            sock.close()
            reason = repr(failure[0]) if failure else "see the log above (lifespan startup failed?)"
            raise RuntimeError(f"uvicorn did not start the app on port {port}: {reason}")
        time.sleep(0.01)
    try:
        yield f"http://{host}:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=15)
        sock.close()
        if thread.is_alive():
            raise RuntimeError(f"uvicorn on port {port} did not shut down within 15 s")
