"""A hostile traffic source on loopback: raw sockets, one broken answer per path.

Real postback endpoints answer in every broken way HTTP allows, and in some it does not: charsets
that are not text encodings, decompression bombs, lengths that lie, resets, 1xx answers, bodies
dripped a byte at a time. ``HostileSource`` reads each request itself (so it counts exactly what
reached it) and lets an ``Answer`` write whatever bytes it likes back, or reset the connection.

``CATALOGUE`` lists the broken answers with what the sender must make of each: the outcome and
words its reason must contain. The tests run every case through the bare ``Sender`` and through
the real dispatcher, counting requests received against attempts recorded.

    with HostileSource({"/pb": CASES["charset-base64"].answer}) as source:
        sender.send(PostbackRequest("GET", source.url + "/pb"))
"""

from __future__ import annotations

import dataclasses
import functools
import socket
import ssl
import struct
import threading
import zlib
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Optional

import httpcore

#: How long a dripping answer waits between two bytes (tests set the sender's timeout to about 1 s).
DRIP_PAUSE = 0.25

#: How many bytes a decompression bomb holds once decompressed.
BOMB_SIZE = 64 * 1024 * 1024

#: A globally routable address that ``route_public_name`` sends to loopback instead.
PUBLIC_ADDRESS = "93.184.216.34"


@dataclasses.dataclass(frozen=True)
class ReceivedRequest:
    """A request as it reached the source: ``path`` without the query, headers lower-cased."""

    method: str
    path: str
    query: str
    headers: dict[str, str]
    body: bytes


class Exchange:
    """One request on one connection, for an ``Answer`` to reply to."""

    def __init__(self, source: HostileSource, sock: socket.socket, request: ReceivedRequest) -> None:
        self.source = source
        self.sock = sock
        self.request = request
        #: Set by an answer that leaves the connection open for the next request.
        self.keep_alive = False

    def send(self, data: bytes) -> None:
        """Write ``data``; a client that has gone away is not an error here."""
        try:
            self.sock.sendall(data)
        except OSError:
            pass

    def drip(self, data: bytes, pause: float = DRIP_PAUSE) -> None:
        """Write ``data`` a byte at a time, ``pause`` seconds apart, until the client leaves."""
        for index in range(len(data)):
            if self.source.stopping.wait(pause):
                return
            try:
                self.sock.sendall(data[index : index + 1])
            except OSError:
                return

    def reset(self) -> None:
        """Close with a TCP reset (RST) instead of an orderly close."""
        reset(self.sock)


Answer = Callable[[Exchange], None]


def reset(sock: socket.socket) -> None:
    """Close ``sock`` with a TCP reset: SO_LINGER on with a zero timeout makes close() send RST."""
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        sock.close()
    except OSError:
        pass


def response(
    status: int = 200,
    body: bytes = b"OK",
    headers: Iterable[tuple[str, str]] = (),
    *,
    reason: str = "OK",
    close: bool = True,
) -> bytes:
    """A well-formed HTTP/1.1 answer; a Content-Length is added unless ``headers`` frame the body.

    ``close`` says ``Connection: close``, as a server that closes after answering must: else the
    client may send its next request on the connection as it closes, and see a reset.
    """
    headers = list(headers)
    names = {name.lower() for name, _ in headers}
    if "content-length" not in names and "transfer-encoding" not in names:
        headers.append(("Content-Length", str(len(body))))
    if close:
        headers.append(("Connection", "close"))
    head = f"HTTP/1.1 {status} {reason}\r\n" + "".join(f"{name}: {value}\r\n" for name, value in headers) + "\r\n"
    return head.encode("latin-1") + body


def route_public_name(monkeypatch: Any, name: str = "hostile.example") -> None:
    """Make ``name`` a public host that lives on loopback, for tests that keep the private-address
    check on: it resolves to ``PUBLIC_ADDRESS`` (which passes the check), and connections to that
    address reach 127.0.0.1 instead. Everything else resolves and connects as usual."""
    real_lookup, real_connect = socket.getaddrinfo, httpcore.SyncBackend.connect_tcp

    def lookup(host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
        if host == name:
            return [(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP, "", (PUBLIC_ADDRESS, port))]
        return real_lookup(host, port, *args, **kwargs)

    def connect(self: Any, host: str, port: int, *args: Any, **kwargs: Any) -> Any:
        return real_connect(self, "127.0.0.1" if host == PUBLIC_ADDRESS else host, port, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", lookup)
    monkeypatch.setattr(httpcore.SyncBackend, "connect_tcp", connect)


def answer(data: bytes) -> Answer:
    """An answer that writes ``data`` and closes."""
    return lambda exchange: exchange.send(data)


class HostileSource:
    """A raw-socket HTTP source on a free loopback port, answering each path with its ``Answer``.

    ``requests`` lists every request that reached it (head and body read whole). ``tls`` serves
    HTTPS with that context; ``on_connect(sock) -> bool`` sees each connection first and returns
    True when it dealt with it (a TLS handshake reset, say). Paths without an answer get 200 "OK".
    """

    def __init__(
        self,
        answers: Optional[Mapping[str, Answer]] = None,
        *,
        tls: Optional[ssl.SSLContext] = None,
        on_connect: Optional[Callable[[socket.socket], bool]] = None,
    ) -> None:
        self.answers: dict[str, Answer] = dict(answers or {})
        self.tls = tls
        self.on_connect = on_connect
        self.requests: list[ReceivedRequest] = []
        #: Connections accepted (a TLS failure reaches the source as a connection, not a request).
        self.connections = 0
        self.stopping = threading.Event()
        self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(128)
        self.port: int = self._listener.getsockname()[1]
        self._connections: set[socket.socket] = set()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._accept, name=f"hostile:{self.port}", daemon=True)

    @property
    def url(self) -> str:
        """``http://127.0.0.1:PORT`` (``https://`` when serving TLS), no trailing slash."""
        return f"{'https' if self.tls else 'http'}://127.0.0.1:{self.port}"

    def url_for(self, name: str) -> str:
        """The source's base URL under host ``name`` (see ``route_public_name``)."""
        return f"{'https' if self.tls else 'http'}://{name}:{self.port}"

    def count(self, path: str) -> int:
        """How many requests for ``path`` reached the source."""
        return sum(1 for request in list(self.requests) if request.path == path)

    def start(self) -> HostileSource:
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop accepting, end dripping answers and close every open connection."""
        self.stopping.set()
        try:
            self._listener.shutdown(socket.SHUT_RDWR)  # wakes the thread blocked in accept()
        except OSError:
            pass
        try:
            self._listener.close()
        except OSError:
            pass
        with self._lock:
            connections = list(self._connections)
        for sock in connections:
            try:
                sock.close()
            except OSError:
                pass
        self._thread.join(timeout=5)

    def __enter__(self) -> HostileSource:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- serving ------------------------------------------------------------------------------

    def _accept(self) -> None:
        while not self.stopping.is_set():
            try:
                sock, _ = self._listener.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(sock,), daemon=True).start()

    def _serve(self, sock: socket.socket) -> None:
        with self._lock:
            self._connections.add(sock)
            self.connections += 1
        try:
            sock.settimeout(10)
            if self.on_connect is not None and self.on_connect(sock):
                return
            if self.tls is not None:
                try:
                    sock = self.tls.wrap_socket(sock, server_side=True)
                except (OSError, ssl.SSLError):
                    return
                with self._lock:
                    self._connections.add(sock)
            buffered = b""
            while not self.stopping.is_set():
                request, buffered = _read_request(sock, buffered)
                if request is None:
                    return
                self.requests.append(request)
                exchange = Exchange(self, sock, request)
                self.answers.get(request.path, answer(response()))(exchange)
                if not exchange.keep_alive:
                    return
        except OSError:
            return
        finally:
            with self._lock:
                self._connections.discard(sock)
            try:
                sock.close()
            except OSError:
                pass


def _read_request(sock: socket.socket, buffered: bytes) -> tuple[Optional[ReceivedRequest], bytes]:
    """The next request on ``sock`` (None when the client closed or sent something else), and
    what was read past it."""
    while b"\r\n\r\n" not in buffered:
        if buffered and not buffered[:1].isalpha():
            # Not HTTP (a TLS ClientHello on a plain port): answer as a plain HTTP server would.
            try:
                sock.sendall(response(400, b"not HTTP", reason="Bad Request"))
            except OSError:
                pass
            return None, b""
        chunk = sock.recv(65536)
        if not chunk:
            return None, b""
        buffered += chunk
    head, _, rest = buffered.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    method, target, _version = (lines[0].split(" ") + ["", ""])[:3]
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    length = int(headers.get("content-length") or 0)
    while len(rest) < length:
        chunk = sock.recv(65536)
        if not chunk:
            return None, b""
        rest += chunk
    path, _, query = target.partition("?")
    return ReceivedRequest(method, path, query, headers, rest[:length]), rest[length:]


# --- the catalogue ------------------------------------------------------------------------------


_BOMB_LOCK = threading.Lock()


@functools.cache
def _deflate_zeros() -> bytes:
    compressor = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
    return compressor.compress(bytes(BOMB_SIZE)) + compressor.flush()


def _deflated_zeros() -> bytes:
    with _BOMB_LOCK:  # many connections at once must not each compress 64 MiB
        return _deflate_zeros()


def bomb(coding: str) -> bytes:
    """``BOMB_SIZE`` zeros compressed with ``coding`` (gzip, x-gzip, deflate or raw-deflate): about
    64 KiB that a decompressor without a bound turns into 64 MiB."""
    raw = _deflated_zeros()  # compressed once; the framings only add a header and a checksum
    if coding in ("gzip", "x-gzip"):
        trailer = struct.pack("<II", zlib.crc32(bytes(BOMB_SIZE)), BOMB_SIZE & 0xFFFFFFFF)
        return b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x02\xff" + raw + trailer
    if coding == "deflate":
        return b"\x78\xda" + raw + struct.pack(">I", zlib.adler32(bytes(BOMB_SIZE)))
    return raw


def warm_up() -> None:
    """Compress the bombs now (most of a second, once per process), so that no answer waits for it
    while a sender's timeout runs."""
    _deflated_zeros()


def _bomb(coding: str) -> Answer:
    def send(exchange: Exchange) -> None:
        name = "deflate" if coding == "raw-deflate" else coding
        exchange.send(response(200, bomb(coding), [("Content-Encoding", name), ("Content-Type", "text/plain")]))

    return send


def _short_length(exchange: Exchange) -> None:
    # Content-Length says 2; the rest stays on the connection as if it were the next answer.
    exchange.send(response(200, b"OK, and bytes past the length", [("Content-Length", "2")], close=False))
    exchange.keep_alive = True


def _drip_body(exchange: Exchange) -> None:
    exchange.send(response(200, b"", [("Content-Length", "64")]))
    exchange.drip(b"x" * 64)


def _endless_1xx(exchange: Exchange) -> None:
    while not exchange.source.stopping.wait(DRIP_PAUSE):
        try:
            exchange.sock.sendall(b"HTTP/1.1 100 Continue\r\n\r\n")
        except OSError:
            return


def _endless_body(exchange: Exchange) -> None:
    # No length, no chunks: the body runs until the connection closes, which it never does.
    exchange.send(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\n")
    while not exchange.source.stopping.is_set():
        try:
            exchange.sock.sendall(b"x" * 65536)
        except OSError:
            return


def _reset_in_body(exchange: Exchange) -> None:
    exchange.send(response(200, b"", [("Content-Length", "100")]) + b"OK, and then")
    exchange.reset()  # what arrived before the reset is still read (Linux queues it ahead of the error)


def _redirect_loop(exchange: Exchange) -> None:
    hop = int(exchange.request.query.rpartition("hop=")[2] or 0) if "hop=" in exchange.request.query else 0
    exchange.send(response(302, b"", [("Location", f"/redirect-loop?hop={hop + 1}")], reason="Found"))


def _redirect_private(exchange: Exchange) -> None:
    exchange.send(response(302, b"", [("Location", "http://169.254.169.254/latest/meta-data/")], reason="Found"))


@dataclasses.dataclass(frozen=True)
class Case:
    """A broken answer and what the sender must make of it.

    ``outcome`` is the sender's (``delivered``, ``retry``, ``failed``); ``reason`` is words its
    reason must contain, ``cause`` its cause code; ``body`` the answer's text as recorded,
    ``truncated`` whether it was cut at the size limit; ``hops`` the requests one attempt makes (redirects make several).
    """

    name: str
    answer: Answer
    outcome: str
    reason: str
    http_status: Optional[int] = None
    body: Optional[str] = None
    truncated: bool = False
    hops: int = 1
    follow_redirects: bool = False
    #: the cause code the attempt is recorded with (``resolution.causes.Cause``)
    cause: str = "accepted"


def _charset(name: str, body: bytes) -> Answer:
    return answer(response(200, body, [("Content-Type", f"text/plain; charset={name}")]))


CATALOGUE: tuple[Case, ...] = (
    # Charsets that are not text encodings, or that cannot decode with replacement: read as UTF-8.
    Case("charset-base64", _charset("base64", b"OK"), "delivered", "HTTP 200", 200, "OK"),
    Case("charset-rot13", _charset("rot13", b"OK"), "delivered", "HTTP 200", 200, "OK"),
    Case("charset-idna", _charset("idna", b"a..b"), "delivered", "HTTP 200", 200, "a..b"),
    Case("charset-undefined", _charset("undefined", b"OK"), "delivered", "HTTP 200", 200, "OK"),
    # These decode to lone surrogates, which no database column takes.
    Case("charset-utf-7", _charset("utf-7", b"+2AA-OK"), "delivered", "HTTP 200", 200, "+2AA-OK"),
    Case("charset-unicode-escape", _charset("unicode_escape", b"\\ud800OK"), "delivered", "HTTP 200", 200, "\\ud800OK"),
    # Bytes that are not UTF-8, and a NUL (PostgreSQL text takes none).
    Case(
        "invalid-bytes",
        _charset("utf-8", b"\xff\xfe\x00OK\xc3("),
        "delivered",
        "HTTP 200",
        200,
        "\ufffd\ufffd\ufffdOK\ufffd(",
    ),
    Case("bomb-gzip", _bomb("gzip"), "delivered", "HTTP 200", 200, "\ufffd" * 16384, truncated=True),
    Case("bomb-x-gzip", _bomb("x-gzip"), "delivered", "HTTP 200", 200, "\ufffd" * 16384, truncated=True),
    Case("bomb-deflate", _bomb("deflate"), "delivered", "HTTP 200", 200, "\ufffd" * 16384, truncated=True),
    Case("bomb-raw-deflate", _bomb("raw-deflate"), "delivered", "HTTP 200", 200, "\ufffd" * 16384, truncated=True),
    # The status arrived: the source took the postback, so the answer counts though its body broke.
    Case(
        "length-longer", answer(response(200, b"OK", [("Content-Length", "100")])), "delivered", "cut short", 200, "OK"
    ),
    Case("length-shorter", _short_length, "delivered", "HTTP 200", 200, "OK"),
    Case(
        "chunked-bad-size",
        answer(response(200, b"zz\r\nOK\r\n0\r\n\r\n", [("Transfer-Encoding", "chunked")])),
        "delivered",
        "cut short",
        200,
        "",
    ),
    Case(
        "chunked-cut",
        answer(response(200, b"10\r\nOK", [("Transfer-Encoding", "chunked")])),
        "delivered",
        "cut short",
        200,
        "OK",
    ),
    Case("reset-in-body", _reset_in_body, "delivered", "cut short", 200, "OK, and then"),
    Case("drip-body", _drip_body, "delivered", "timeout", 200),
    # No status: the source may or may not have taken it. Retried, and each try recorded.
    Case("not-http", answer(b"SSH-2.0-OpenSSH_9.6\r\n"), "retry", "not HTTP", cause="not_http"),
    Case("reset-before-answer", lambda exchange: exchange.reset(), "retry", "reset", cause="connection_failed"),
    Case(
        "reset-in-head",
        lambda exchange: (exchange.send(b"HTTP/1.1 200 OK\r\nContent-"), exchange.reset()),
        "retry",
        "broke during the source's answer",
        cause="connection_failed",
    ),
    Case("close-no-answer", lambda exchange: None, "retry", "without an answer", cause="connection_failed"),
    Case("drip-head", lambda exchange: exchange.drip(response(200, b"OK")), "retry", "in time", cause="timeout"),
    Case("endless-100-continue", _endless_1xx, "retry", "in time", cause="timeout"),
    Case(
        "huge-head",
        answer(response(200, b"OK", [(f"X-Junk-{i}", "j" * 100) for i in range(2000)])),
        "retry",
        "not HTTP",
        cause="not_http",
    ),
    Case(
        "conflicting-lengths",
        answer(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 9\r\n\r\nOK"),
        "retry",
        "not HTTP",
        cause="not_http",
    ),
    Case(
        "bad-status-line",
        answer(b"HTTP/1.1 2000 OK\r\nContent-Length: 2\r\n\r\nOK"),
        "retry",
        "not HTTP",
        cause="not_http",
    ),
    # Well-formed oddities: read as any answer.
    Case("endless-body", _endless_body, "delivered", "HTTP 200", 200, "x" * 16384, truncated=True),
    Case(
        "unknown-encoding",
        answer(response(200, b"\x8b\x02\x80OK\x03", [("Content-Encoding", "br")])),
        "delivered",
        "HTTP 200",
        200,
        "\ufffd\x02\ufffdOK\x03",
    ),
    Case(
        "fake-gzip",
        answer(response(200, b"OK, not gzip", [("Content-Encoding", "gzip")])),
        "delivered",
        "HTTP 200",
        200,
        "OK, not gzip",
    ),
    Case(
        "many-headers",
        answer(response(200, b"OK", [(f"X-Junk-{i}", "j") for i in range(500)])),
        "delivered",
        "HTTP 200",
        200,
        "OK",
    ),
    Case(
        "1xx-then-200",
        answer(
            b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </s.css>\r\n\r\n" + response(200, b"OK")
        ),
        "delivered",
        "HTTP 200",
        200,
        "OK",
    ),
    # An upgrade nobody asked for is no answer either.
    Case(
        "101-switching",
        answer(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\nOK"),
        "retry",
        "not HTTP",
        cause="not_http",
    ),
    Case(
        "status-999",
        answer(response(999, b"huh", reason="Whatever")),
        "retry",
        "HTTP 999",
        999,
        cause="http_server_error",
    ),
    Case(
        "retry-after-superscript",
        answer(response(503, b"busy", [("Retry-After", "\u00b2")])),
        "retry",
        "HTTP 503",
        503,
        cause="http_server_error",
    ),
    Case(
        "redirect-loop",
        _redirect_loop,
        "failed",
        "more than 5 redirects",
        302,
        hops=6,
        follow_redirects=True,
        cause="redirect_refused",
    ),
    Case(
        "redirect-no-location",
        answer(response(302, b"moved", reason="Found")),
        "failed",
        "without a Location",
        302,
        follow_redirects=True,
        cause="redirect_refused",
    ),
    Case(
        "redirect-not-a-url",
        answer(response(302, b"", [("Location", "http://[::1/pb")], reason="Found")),
        "failed",
        "not a URL",
        302,
        follow_redirects=True,
        cause="redirect_refused",
    ),
    Case(
        "redirect-private",
        _redirect_private,
        "failed",
        "private or internal",
        302,
        hops=1,
        follow_redirects=True,
        cause="private_address",
    ),
)

CASES: dict[str, Case] = {case.name: case for case in CATALOGUE}
