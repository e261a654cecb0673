"""A stand-in traffic source: a real HTTP server on loopback that records postbacks.

The demo and the tests need somewhere to send postbacks to that behaves like a traffic source's
postback endpoint, including the ways real ones misbehave: they answer 503 for a while, stall,
ask to be called later with ``Retry-After``, or drop the connection. ``StandInSource`` records
every request exactly as it arrived (the raw query string included, so percent-encoding can be
checked byte for byte) and answers from a script programmed per path prefix::

    with StandInSource() as source:
        source.script("/exo", [(503, "busy"), (503, "busy")], default=(200, "OK"))
        ...  # point a postback at source.url + "/exo?tag={external_id}"
        first, second, third = source.wait_for(3, timeout=10)
        assert third.raw_query == "tag=abc%26def"

It runs stdlib ``http.server`` in daemon threads, speaks HTTP/1.1 with keep-alive so clients can
pool connections, and logs nothing. ``python -m sample_host.standin --port 8099`` serves one in
the foreground (for benchmarks that want the source in another process).
"""

from __future__ import annotations

import argparse
import json
import socket
import struct
import sys
import threading
import time
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs

__all__ = ["RESET", "RecordedRequest", "Reply", "StandInSource"]


@dataclass(frozen=True)
class Reply:
    """One scripted answer of the stand-in source.

    :param status: HTTP status code to answer with.
    :param body: response body (``str`` is sent as UTF-8).
    :param headers: extra response headers.
    :param delay: seconds to wait before answering (or before resetting); a stall longer than the
        client's timeout makes the client time out. ``stop()`` cuts a pending delay short.
    :param retry_after: value of a ``Retry-After`` header (seconds or an HTTP date), if any.
    :param reset: close the connection without answering (an abortive close, so the client sees
        a reset or a disconnect rather than a response).
    """

    status: int = 200
    body: str | bytes = "OK"
    headers: Mapping[str, str] = field(default_factory=dict)
    delay: float = 0.0
    retry_after: int | float | str | None = None
    reset: bool = False

    @classmethod
    def coerce(cls, spec: Reply | int | str | tuple | Mapping[str, Any]) -> Reply:
        """Build a ``Reply`` from the short forms scripts use.

        Accepted: a ``Reply``; an ``int`` status; ``"reset"``; a tuple ``(status, body)`` or
        ``(status, body, headers)``; a mapping of ``Reply`` fields.
        """
        if isinstance(spec, Reply):
            return spec
        if isinstance(spec, bool):
            raise TypeError(f"cannot use {spec!r} as a scripted reply")
        if isinstance(spec, int):
            return cls(status=spec, body="")
        if isinstance(spec, str):
            if spec == "reset":
                return RESET
            raise ValueError(f"unknown scripted reply {spec!r}: use a status, a tuple or 'reset'")
        if isinstance(spec, tuple):
            if not 1 <= len(spec) <= 3:
                raise ValueError(f"a scripted reply tuple is (status, body[, headers]), got {spec!r}")
            status = spec[0]
            body = spec[1] if len(spec) > 1 else ""
            headers = spec[2] if len(spec) > 2 else {}
            return cls(status=status, body=body, headers=dict(headers))
        if isinstance(spec, Mapping):
            return cls(**spec)
        raise TypeError(f"cannot use {spec!r} as a scripted reply")

    def body_bytes(self) -> bytes:
        """The body as bytes."""
        return self.body.encode("utf-8") if isinstance(self.body, str) else bytes(self.body)


RESET = Reply(status=0, body=b"", reset=True)
"""A reply that drops the connection without answering."""

DEFAULT_REPLY = Reply(200, "OK")


class _Headers(Mapping[str, str]):
    """Read-only, case-insensitive request headers that keep the names as received."""

    def __init__(self, items: Iterable[tuple[str, str]]) -> None:
        self._items = tuple(items)
        self._by_name: dict[str, str] = {}
        for name, value in self._items:
            key = name.lower()
            # A repeated header reads as one comma-joined value, as HTTP defines it.
            self._by_name[key] = f"{self._by_name[key]}, {value}" if key in self._by_name else value

    def __getitem__(self, name: str) -> str:
        return self._by_name[name.lower()]

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name.lower() in self._by_name

    def __iter__(self) -> Iterator[str]:
        return iter(self._by_name)

    def __len__(self) -> int:
        return len(self._by_name)

    def items_as_received(self) -> tuple[tuple[str, str], ...]:
        """The header lines in order, names spelled as the client sent them."""
        return self._items

    def __repr__(self) -> str:
        return f"Headers({dict(self._items)!r})"


@dataclass(frozen=True)
class RecordedRequest:
    """One request the stand-in source received, exactly as it arrived.

    ``raw_query`` is the query string byte for byte as the client sent it (no decoding, no
    re-encoding), so tests can assert the exact encoding of substituted macros. ``query`` holds
    the decoded parameters, every value kept (``{"a": ["1", "2"]}``); ``params`` the first value of each.
    """

    method: str
    target: str
    path: str
    raw_query: str
    query: dict[str, list[str]]
    headers: _Headers
    body: bytes
    received_at: datetime
    monotonic: float
    client: tuple[str, int]
    reply: Reply
    http_version: str = "HTTP/1.1"

    @property
    def params(self) -> dict[str, str]:
        """Decoded query parameters, first value of each."""
        return {name: values[0] for name, values in self.query.items()}

    @property
    def url(self) -> str:
        """The request target as received (path and raw query)."""
        return self.target

    def param(self, name: str, default: str | None = None) -> str | None:
        """First decoded value of query parameter ``name``, or ``default``."""
        values = self.query.get(name)
        return values[0] if values else default

    def text(self) -> str:
        """The body decoded as UTF-8."""
        return self.body.decode("utf-8", errors="replace")

    def json(self) -> Any:
        """The body parsed as JSON."""
        return json.loads(self.body)

    def form(self) -> dict[str, list[str]]:
        """The body parsed as ``application/x-www-form-urlencoded``."""
        return parse_qs(self.text(), keep_blank_values=True)

    def describe(self) -> str:
        """One line for failure messages: method, target and the answer it got."""
        answer = "reset" if self.reply.reset else str(self.reply.status)
        return f"{self.method} {self.target} -> {answer}"


@dataclass
class _Script:
    replies: list[Reply]
    default: Reply | None
    served: int = 0


class StandInSource:
    """A programmable HTTP server on loopback standing in for a traffic source.

    Thread-safe: the server answers each connection in its own thread while tests read
    ``requests`` and change scripts from theirs. Use it as a context manager, or call
    ``start()`` and ``stop()``; after ``stop()`` it can be started again on the same port
    (a source that goes down and comes back).

    :param host: address to listen on (loopback by default).
    :param port: port to listen on; 0 picks a free one.
    :param default: the answer for paths without a script, and for scripts without a default
        once their replies are used up.
    :param keep_requests: record every request (the default); when false only ``count`` is kept,
        for long benchmark runs where the records would only cost memory.
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        default: Any = DEFAULT_REPLY,
        keep_requests: bool = True,
    ) -> None:
        self.host = host
        self.keep_requests = keep_requests
        self._count = 0
        self._port = port
        self._default = Reply.coerce(default)
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._requests: list[RecordedRequest] = []
        self._scripts: dict[str, _Script] = {}
        self._connections: set[socket.socket] = set()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> StandInSource:
        """Start serving in a daemon thread; returns ``self``. Starting twice is an error."""
        if self._server is not None:
            raise RuntimeError("the stand-in source is already running; stop() it first")
        self._stopping.clear()
        server = _Server((self.host, self._port), _Handler)
        server.standin = self
        self._port = server.server_address[1]
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"standin-source:{self._port}",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving, drop open (keep-alive) connections and cut pending delays short.

        Recorded requests and scripts are kept; ``start()`` again serves on the same port.
        """
        server, thread = self._server, self._thread
        if server is None:
            return
        self._stopping.set()
        server.shutdown()
        server.server_close()
        with self._lock:
            connections = list(self._connections)
        for conn in connections:
            # Wakes handler threads blocked on an idle keep-alive connection, so a pooled client
            # connection cannot keep reaching a source that is meant to be down.
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        if thread is not None:
            thread.join(timeout=5)
        self._server = None
        self._thread = None

    def __enter__(self) -> StandInSource:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def running(self) -> bool:
        """Whether the server is accepting connections."""
        return self._server is not None

    @property
    def port(self) -> int:
        """The port served on (known once started)."""
        return self._port

    @property
    def url(self) -> str:
        """Base URL without a trailing slash, e.g. ``http://127.0.0.1:40123``."""
        if not self._port:
            raise RuntimeError("the stand-in source has no port yet: start() it first")
        return f"http://{self.host}:{self._port}"

    # -- scripting -------------------------------------------------------------------------

    def script(self, prefix: str, replies: Iterable[Any] = (), default: Any = None) -> None:
        """Program the answers for request paths starting with ``prefix``.

        ``replies`` are used in order, one per request; after them ``default`` answers every
        request (the source-wide default when ``None``). The longest matching prefix wins.
        Scripting a prefix again replaces its script and restarts its count.

        Example: ``script("/exo", [(503, "busy"), (503, "busy")], default=(200, "OK"))``.
        """
        if not prefix.startswith("/"):
            raise ValueError(f"a script prefix is a path and starts with '/', got {prefix!r}")
        script = _Script(
            replies=[Reply.coerce(r) for r in replies],
            default=None if default is None else Reply.coerce(default),
        )
        with self._lock:
            self._scripts[prefix] = script

    def set_default(self, reply: Any) -> None:
        """Change the answer for paths that have no script."""
        coerced = Reply.coerce(reply)
        with self._lock:
            self._default = coerced

    def unscript(self, prefix: str | None = None) -> None:
        """Remove the script for ``prefix``, or every script when ``None``."""
        with self._lock:
            if prefix is None:
                self._scripts.clear()
            else:
                self._scripts.pop(prefix, None)

    def _next_reply(self, path: str) -> Reply:
        # Called with the lock held.
        matches = [p for p in self._scripts if path.startswith(p)]
        if not matches:
            return self._default
        script = self._scripts[max(matches, key=len)]
        if script.served < len(script.replies):
            reply = script.replies[script.served]
        else:
            reply = script.default or self._default
        script.served += 1
        return reply

    # -- what was received -------------------------------------------------------------------

    @property
    def requests(self) -> list[RecordedRequest]:
        """A snapshot of every request received so far, in arrival order."""
        with self._lock:
            return list(self._requests)

    @property
    def count(self) -> int:
        """How many requests arrived since start or the last ``clear()`` (recorded or not)."""
        with self._lock:
            return self._count

    def requests_for(self, prefix: str) -> list[RecordedRequest]:
        """The requests whose path starts with ``prefix``, in arrival order."""
        with self._lock:
            return [r for r in self._requests if r.path.startswith(prefix)]

    def clear(self, scripts: bool = False) -> None:
        """Forget the recorded requests (and every script too when ``scripts`` is true)."""
        with self._lock:
            self._requests.clear()
            self._count = 0
            if scripts:
                self._scripts.clear()

    def wait_for(self, count: int, timeout: float = 5.0, prefix: str = "/") -> list[RecordedRequest]:
        """Wait until at least ``count`` requests under ``prefix`` arrived; return them all.

        Raises ``TimeoutError`` listing what did arrive when ``timeout`` seconds pass first.
        With ``keep_requests=False`` it waits for ``count`` requests in all and returns ``[]``.
        """
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                matching = [r for r in self._requests if r.path.startswith(prefix)]
                # Without records (keep_requests=False) only the total count can be waited for.
                got = len(matching) if self.keep_requests else self._count
                if got >= count:
                    return matching
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    seen = "; ".join(r.describe() for r in matching) or "nothing"
                    raise TimeoutError(
                        f"the stand-in source got {got} of {count} expected requests "
                        f"under {prefix!r} within {timeout:g}s: {seen}"
                    )
                self._changed.wait(remaining)

    def _record(self, request: RecordedRequest) -> None:
        with self._changed:
            self._count += 1
            if self.keep_requests:
                self._requests.append(request)
            self._changed.notify_all()

    def __repr__(self) -> str:
        state = self.url if self.running else "stopped"
        return f"<StandInSource {state}, {len(self._requests)} requests>"


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    # Handler threads are daemons tracked through their connections; stop() closes those.
    block_on_close = False
    standin: StandInSource

    def handle_error(self, request: Any, client_address: Any) -> None:
        # Clients dropping connections is normal here (timeouts, resets): stay quiet.
        pass


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "StandInSource/1"
    sys_version = ""
    server: _Server

    def setup(self) -> None:
        super().setup()
        standin = self.server.standin
        with standin._lock:
            standin._connections.add(self.connection)

    def finish(self) -> None:
        standin = self.server.standin
        with standin._lock:
            standin._connections.discard(self.connection)
        try:
            super().finish()
        except OSError:
            pass

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def handle_one_request(self) -> None:
        try:
            super().handle_one_request()
        except (ConnectionError, TimeoutError):
            self.close_connection = True

    def __getattr__(self, name: str) -> Any:
        # Answer every method (GET, POST, PUT, PATCH, DELETE, HEAD, OPTIONS...) the same way.
        if name.startswith("do_"):
            return self._serve
        raise AttributeError(name)

    def _read_body(self) -> bytes:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            chunks = []
            while True:
                size_line = self.rfile.readline(65537)
                size = int(size_line.split(b";", 1)[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline(65537) not in (b"\r\n", b"\n", b""):
                        pass  # trailers
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline(65537)
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length > 0 else b""

    def _serve(self) -> None:
        standin = self.server.standin
        body = self._read_body()
        target = self.path
        path, _, raw_query = target.partition("?")
        with standin._lock:
            reply = standin._next_reply(path)
        standin._record(
            RecordedRequest(
                method=self.command,
                target=target,
                path=path,
                raw_query=raw_query,
                query=parse_qs(raw_query, keep_blank_values=True),
                headers=_Headers(self.headers.items()),
                body=body,
                received_at=datetime.now(UTC),
                monotonic=time.monotonic(),
                client=self.client_address[:2],
                reply=reply,
                http_version=self.request_version,
            )
        )
        if reply.delay > 0 and standin._stopping.wait(reply.delay):
            self._abort()  # stopped while stalling: the source went away
            return
        if reply.reset:
            self._abort()
            return
        payload = reply.body_bytes()
        self.send_response(reply.status)
        for name, value in reply.headers.items():
            self.send_header(name, value)
        if reply.retry_after is not None:
            self.send_header("Retry-After", str(reply.retry_after))
        if not any(name.lower() == "content-type" for name in reply.headers):
            self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(payload)

    def _abort(self) -> None:
        """Drop the connection with a TCP reset instead of an answer."""
        self.close_connection = True
        try:
            # Linger 0 turns the close into an RST: the client sees the connection reset.
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.connection.close()
        except OSError:
            pass


def main(argv: list[str] | None = None) -> int:
    """Serve a stand-in source in the foreground until interrupted."""
    parser = argparse.ArgumentParser(prog="python -m sample_host.standin", description=__doc__.split("\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port (printed)")
    parser.add_argument("--status", type=int, default=200, help="status of every answer")
    parser.add_argument("--body", default="OK", help="body of every answer")
    parser.add_argument("--delay", type=float, default=0.0, help="seconds before each answer")
    args = parser.parse_args(argv)
    source = StandInSource(
        args.host,
        args.port,
        default=Reply(args.status, args.body, delay=args.delay),
        keep_requests=False,
    )
    source.start()
    print(source.url, flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        source.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
