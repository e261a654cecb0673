"""One HTTP attempt of one postback: request, answer, outcome.

``Sender.send`` never raises: network failures, broken answers and even the sender's own bugs
become an ``AttemptResult`` with an outcome and a reason. An exception here would leave the
delivery's claim to expire and the postback to be sent again, unrecorded, at every expiry.
"""

from __future__ import annotations

import codecs
import dataclasses
import functools
import logging
import threading
import time
import zlib
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Optional

import httpcore
import httpx

from hookspecs import PostbackRequest
from s2s_plugin.delivery.policy import DELIVERED, FAILED, RETRY, classify_status, parse_retry_after
from s2s_plugin.delivery.redirects import FOLLOWED, next_hop
from s2s_plugin.delivery.safety import Resolver, check_target
from s2s_plugin.delivery.wire import wire_url
from s2s_plugin.resolution.causes import Cause
from s2s_plugin.resolution.hosts import DEFAULT_PORTS
from s2s_plugin.settings import DeliverySettings

log = logging.getLogger("s2s_postback.delivery")

_MAX_REDIRECTS = 5
_HOOK_OUTCOMES = {"delivered": DELIVERED, "retry": RETRY, "failed": FAILED}


@dataclasses.dataclass(frozen=True)
class Verdict:
    """What the ``classify_response`` hooks made of an answer.

    ``outcome`` is ``delivered``, ``retry``, ``failed`` or None (the default rules apply);
    ``plugin`` names the plugin that decided; ``failures`` are the plugins that raised meanwhile.
    """

    outcome: Optional[str] = None
    plugin: Optional[str] = None
    failures: tuple[Any, ...] = ()


#: ``hook(request, response) -> Verdict`` (or the bare outcome string): ``classify_response``.
ClassifyHook = Callable[[PostbackRequest, "Answer"], "Verdict | Optional[str]"]


@dataclasses.dataclass(frozen=True)
class Answer:
    """A source's answer as ``classify_response`` sees it: ``status_code``, ``headers``, ``text``."""

    status_code: int
    headers: httpx.Headers
    text: str
    truncated: bool = False


@dataclasses.dataclass(frozen=True)
class AttemptResult:
    """What one attempt came to. ``outcome`` is ``delivered``, ``retry`` or ``failed``; ``cause``
    is why, as a code, and ``reason`` says it in a sentence."""

    outcome: str
    reason: str
    cause: Cause
    http_status: Optional[int] = None
    response_body: Optional[str] = None
    response_truncated: bool = False
    error: Optional[str] = None
    duration_ms: float = 0.0
    retry_after: Optional[float] = None
    gone: bool = False


class _Progress:
    """How far an attempt got, for the reason of an error nobody expected: whether the request
    may have reached the source (then it is not retried) and what the sender was doing."""

    __slots__ = ("hops", "sent", "status", "step")

    def __init__(self) -> None:
        self.step = "checking the target"
        self.sent = False
        self.status: Optional[int] = None
        self.hops = 0


class PinnedBackend(httpcore.SyncBackend):
    """A network backend that connects only to addresses the target check approved.

    The sender resolves a host name once, checks every address, and pins the name to them here;
    httpcore then connects to a pinned address instead of resolving the name again, so a DNS answer
    that changes between the check and the connection (DNS rebinding) cannot reach an internal
    address. TLS still sends the name (SNI) and verifies the certificate against it.

    Its connections also stop at the attempt's ``deadline`` (``time.perf_counter()`` seconds): a
    source that drips its answer, or sends 1xx answers forever, each within the read timeout, must
    not hold the attempt longer than the timeout. ``received`` counts the answer's bytes so far.
    """

    def __init__(self) -> None:
        self.pins: dict[tuple[str, int], tuple[str, ...]] = {}
        self.deadline = 0.0
        self.received = 0

    def pin(self, url: httpcore.URL, addresses: tuple[str, ...]) -> None:
        """Connections to ``url``'s host and port go to ``addresses`` (checked), in order."""
        port = url.port or DEFAULT_PORTS[url.scheme.decode("ascii")]
        self.pins[(url.host.decode("ascii").lower(), port)] = addresses

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: Optional[float] = None,
        local_address: Optional[str] = None,
        socket_options: Any = None,
    ) -> httpcore.NetworkStream:
        addresses = self.pins.get((host.lower(), port))
        if not addresses:
            raise httpcore.ConnectError(f"{host}:{port} was not checked before connecting: refused")
        error: Optional[Exception] = None
        for address in addresses:
            try:
                return _BoundedStream(super().connect_tcp(address, port, timeout, local_address, socket_options), self)
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                error = exc
        assert error is not None
        raise error


class TLSFailed(httpcore.ConnectError):
    """The TLS handshake with the source failed (a certificate or protocol problem)."""


class _BoundedStream(httpcore.NetworkStream):
    """A connection whose every read, write and TLS handshake ends by its backend's deadline."""

    __slots__ = ("_backend", "_stream")

    def __init__(self, stream: httpcore.NetworkStream, backend: PinnedBackend) -> None:
        self._stream = stream
        self._backend = backend

    def _time_left(self, timeout: Optional[float], error: type[Exception]) -> float:
        left = self._backend.deadline - time.perf_counter()
        if left <= 0:
            raise error("the source took longer than the timeout")
        return left if timeout is None or timeout > left else timeout

    def read(self, max_bytes: int, timeout: Optional[float] = None) -> bytes:
        data = self._stream.read(max_bytes, self._time_left(timeout, httpcore.ReadTimeout))
        self._backend.received += len(data)
        return data

    def write(self, buffer: bytes, timeout: Optional[float] = None) -> None:
        self._stream.write(buffer, self._time_left(timeout, httpcore.WriteTimeout))

    def close(self) -> None:
        self._stream.close()

    def start_tls(
        self, ssl_context: Any, server_hostname: Optional[str] = None, timeout: Optional[float] = None
    ) -> httpcore.NetworkStream:
        try:
            stream = self._stream.start_tls(
                ssl_context, server_hostname, self._time_left(timeout, httpcore.ConnectTimeout)
            )
        except httpcore.ConnectError as exc:
            raise TLSFailed(f"the TLS handshake failed: {exc}") from exc
        return _BoundedStream(stream, self._backend)

    def get_extra_info(self, info: str) -> Any:
        return self._stream.get_extra_info(info)


class Sender:
    """Sends postback requests over one httpcore connection pool per thread.

    httpcore is the transport under httpx; a request sent on it directly costs about half the CPU
    of the same request through ``httpx.Client`` (no URL re-parsing, cookie jar, auth or event
    hooks per request), and a dispatcher's throughput against a fast source is bound by that CPU.
    Sync pools in threads deliver more per second than one async client at high concurrency, and
    a thread each keeps a slow source from blocking the others' connections. Every hop is checked
    (``safety.check_target``) and the connection pinned to the checked addresses.
    """

    def __init__(self, settings: DeliverySettings, classify_hook: Optional[ClassifyHook] = None) -> None:
        self.settings = settings
        self.classify_hook = classify_hook
        self._local = threading.local()
        self._pools: list[httpcore.ConnectionPool] = []
        self._lock = threading.Lock()
        self._shared_ssl: Any = None
        self._timeouts = {
            "connect": settings.connect_timeout,
            "read": settings.timeout,
            "write": settings.timeout,
            "pool": settings.timeout,
        }
        self._resolver = Resolver()
        #: lowercase name -> (name, value) as sent, unless the request sets a header of that name.
        self._default_headers = {
            "accept": (b"Accept", b"*/*"),
            "user-agent": (b"User-Agent", settings.user_agent.encode("latin-1", "replace")),
        }

    def _pool(self) -> tuple[httpcore.ConnectionPool, PinnedBackend]:
        pool = getattr(self._local, "pool", None)
        if pool is None:
            backend = PinnedBackend()
            # One attempt at a time per thread: a few keep-alive connections (to the hosts this
            # thread talks to most) are all it can use.
            pool = httpcore.ConnectionPool(
                ssl_context=self._ssl_context(),
                max_connections=8,
                max_keepalive_connections=8,
                keepalive_expiry=30.0,
                network_backend=backend,
            )
            self._local.pool = pool
            self._local.backend = backend
            with self._lock:
                self._pools.append(pool)
        return pool, self._local.backend

    def _ssl_context(self) -> Any:
        # One TLS context for every thread's pool: building one loads the CA bundle (tens of
        # milliseconds of CPU), which 32 threads starting at once turned into a second of delay
        # for the first postbacks. An SSLContext is safe to share between connections and threads.
        with self._lock:
            if self._shared_ssl is None:
                self._shared_ssl = httpx.create_ssl_context(trust_env=False)
            return self._shared_ssl

    def close(self) -> None:
        """Close every thread's connection pool."""
        with self._lock:
            pools, self._pools = self._pools, []
        for pool in pools:
            pool.close()

    def send(
        self,
        request: PostbackRequest,
        *,
        success_body: Optional[str] = None,
        follow_redirects: bool = False,
        secret_names: Iterable[str] = (),
    ) -> AttemptResult:
        """Send ``request`` and classify the answer. Never raises (but for KeyboardInterrupt and
        the like): whatever goes wrong, even in the sender itself, is an outcome with a reason.

        :param follow_redirects: follow 301, 302, 303, 307 and 308 (``redirects`` says how).
        :param secret_names: header names the rule marks secret: not sent across origins.
        """
        started = time.perf_counter()
        progress = _Progress()
        try:
            return self._send(request, success_body, follow_redirects, secret_names, started, progress)
        except Exception as exc:
            log.exception("internal error while %s (a postback of rule %s)", progress.step, request.rule_id)
            return _internal_error(exc, progress, _elapsed(started))

    def _send(
        self,
        request: PostbackRequest,
        success_body: Optional[str],
        follow_redirects: bool,
        secret_names: Iterable[str],
        started: float,
        progress: _Progress,
    ) -> AttemptResult:
        deadline = started + self.settings.timeout
        method, url, headers, body = request.method, request.url, request.headers, request.body
        while True:
            progress.step = "checking the target"
            check = check_target(url, allow_private=self.settings.allow_private_targets, resolver=self._resolver)
            if not check.ok:
                return AttemptResult(
                    RETRY if check.retryable else FAILED,
                    _after_redirects(check.reason or "target refused", progress.hops),
                    check.cause or Cause.BAD_URL,
                    http_status=progress.status,
                    duration_ms=_elapsed(started),
                )
            try:
                answer, cut = self._exchange(method, url, headers, body, check.addresses, deadline, progress)
            except (httpcore.UnsupportedProtocol, httpcore.LocalProtocolError, httpx.InvalidURL, UnicodeError) as exc:
                # An invalid URL or header: sending again will not help.
                return AttemptResult(
                    FAILED,
                    f"the request could not be sent: {exc}",
                    Cause.BAD_REQUEST,
                    error=repr(exc),
                    duration_ms=_elapsed(started),
                )
            except (httpcore.TimeoutException, httpcore.NetworkError, httpcore.ProtocolError, OSError) as exc:
                cause, why = self._unanswered(exc)
                return AttemptResult(
                    RETRY,
                    _after_redirects(why, progress.hops),
                    cause,
                    error=repr(exc),
                    duration_ms=_elapsed(started),
                )
            if not (follow_redirects and answer.status_code in FOLLOWED):
                break
            progress.step = "following a redirect"
            location = answer.headers.get("location", "").strip()
            if not location:
                return AttemptResult(
                    FAILED,
                    _after_redirects(
                        f"the source answered a redirect (HTTP {answer.status_code}) without a Location", progress.hops
                    ),
                    Cause.REDIRECT_REFUSED,
                    http_status=answer.status_code,
                    response_body=answer.text,
                    duration_ms=_elapsed(started),
                )
            if progress.hops == _MAX_REDIRECTS:
                return AttemptResult(
                    FAILED,
                    f"more than {_MAX_REDIRECTS} redirects",
                    Cause.REDIRECT_REFUSED,
                    http_status=answer.status_code,
                    duration_ms=_elapsed(started),
                )
            hop = next_hop(
                url,
                answer.status_code,
                location,
                method,
                headers,
                body,
                secret_names=secret_names,
                secret_values=request.secrets,
            )
            if hop.refused:
                return AttemptResult(
                    FAILED,
                    hop.refused,
                    Cause.REDIRECT_REFUSED,
                    http_status=answer.status_code,
                    duration_ms=_elapsed(started),
                )
            method, url, headers, body = hop.method, hop.url, hop.headers, hop.body
            progress.hops += 1
        progress.step = "classifying the answer"
        return self._classify(request, answer, cut, success_body, progress.hops, _elapsed(started))

    def _exchange(
        self,
        method: str,
        url: str,
        headers: Mapping[str, str],
        body: Optional[bytes],
        addresses: tuple[str, ...],
        deadline: float,
        progress: _Progress,
    ) -> tuple[Answer, Optional[Exception]]:
        """One request and its answer: the answer, and what cut its body short (None when whole)."""
        limit = self.settings.max_response_bytes
        pool, backend = self._pool()
        target = wire_url(url)
        backend.pin(target, addresses)
        backend.deadline, backend.received = deadline, 0
        # A header the request sets replaces the default of that name.
        own = {name.lower() for name in headers}
        wire_headers = [header for name, header in self._default_headers.items() if name not in own]
        wire_headers += [(name.encode("latin-1"), value.encode("latin-1")) for name, value in headers.items()]
        progress.step, progress.sent = "sending the request", True
        with pool.stream(
            method.encode("ascii"),
            target,
            headers=wire_headers,
            content=body,
            extensions={"timeout": self._timeouts},
        ) as response:
            progress.step, progress.status = "reading the answer", response.status
            chunks: list[bytes] = []
            size = 0
            truncated = False
            cut: Optional[Exception] = None
            try:
                for chunk in response.iter_stream():
                    chunks.append(chunk)
                    size += len(chunk)
                    if size > limit:
                        truncated = True
                        break
            except (httpcore.TimeoutException, httpcore.NetworkError, httpcore.ProtocolError) as exc:
                # The status arrived, so the source took the request: its answer counts as far as it got.
                cut = exc
        if cut is None and not truncated:
            _close_if_overfed(pool, response.extensions.get("network_stream"))
        progress.step = "decoding the answer"
        response_headers = httpx.Headers(response.headers)
        raw, over = _decoded(b"".join(chunks), response_headers.get("content-encoding"), limit)
        return Answer(
            response.status, response_headers, _text(raw, response_headers.get("content-type")), truncated or over
        ), cut

    def _unanswered(self, exc: Exception) -> tuple[Cause, str]:
        """Why no answer came, for an exception raised before the status line was read."""
        if isinstance(exc, httpcore.TimeoutException):
            return (
                Cause.TIMEOUT,
                f"the source did not answer in time ({type(exc).__name__}, timeout {self.settings.timeout:g} s)",
            )
        received = self._local.backend.received
        if isinstance(exc, httpcore.RemoteProtocolError):
            if not received:
                return Cause.CONNECTION_FAILED, "could not reach the source: the connection closed without an answer"
            return Cause.NOT_HTTP, f"the source's answer is not HTTP ({received} bytes, then: {exc})"
        if received and isinstance(exc, httpcore.NetworkError):
            return (
                Cause.CONNECTION_FAILED,
                f"the connection broke during the source's answer ({received} bytes): {exc or type(exc).__name__}",
            )
        cause = Cause.TLS_FAILED if isinstance(exc, TLSFailed) else Cause.CONNECTION_FAILED
        return cause, f"could not reach the source: {exc or type(exc).__name__}"

    def _classify(
        self,
        request: PostbackRequest,
        answer: Answer,
        cut: Optional[Exception],
        success_body: Optional[str],
        hops: int,
        duration_ms: float,
    ) -> AttemptResult:
        error = None
        try:
            verdict = self.classify_hook(request, answer) if self.classify_hook else None
        except Exception as exc:
            log.exception("classify_response failed")
            verdict, error = None, f"internal error while classifying the answer: {type(exc).__name__}: {exc}"
        if not isinstance(verdict, Verdict):
            verdict = Verdict(verdict)
        if verdict.outcome in _HOOK_OUTCOMES:
            outcome = _HOOK_OUTCOMES[verdict.outcome]
            # The body is what such sources explain themselves in ("ERROR: Tag is invalid!").
            snippet = " ".join(answer.text.split())[:120]
            judge = f"plugin {verdict.plugin!r}" if verdict.plugin else "a classify_response hook"
            reason = f"{judge} judged the HTTP {answer.status_code} answer {snippet!r}: {verdict.outcome}"
            cause = Cause.PLUGIN_VERDICT
        else:
            outcome, cause, reason = classify_status(answer.status_code, answer.text, success_body)
        if error:
            reason += f"; {error}, so the default rules judged it"
        if verdict.failures:
            reason += "; " + "; ".join(f"{f.describe()}, so its verdict was not used" for f in verdict.failures)
            error = "; ".join(f.describe() for f in verdict.failures)
        if cut is not None:
            reason += f"; its body was cut short: {_cut_reason(cut, self.settings.timeout)}"
            error = error or repr(cut)
        reason = _after_redirects(reason, hops)
        retry_after = _retry_after(answer.headers.get("retry-after")) if outcome == RETRY else None
        return AttemptResult(
            outcome,
            reason,
            cause,
            http_status=answer.status_code,
            response_body=answer.text,
            response_truncated=answer.truncated,
            error=error,
            duration_ms=duration_ms,
            retry_after=retry_after,
            gone=answer.status_code == 410 and outcome == FAILED,
        )


def _close_if_overfed(pool: httpcore.ConnectionPool, stream: Any) -> None:
    """Close the connection an answer came on when bytes past the answer's end came with it.

    A source whose Content-Length is shorter than its body leaves the rest in the parser's buffer
    (when it arrives with the answer); on a kept-alive connection it would be read as the answer
    to the next postback, which would then be retried though the source took it. Browsers do not
    reuse such a connection either. (httpcore keeps the connection objects private: if they
    change, this finds nothing and the socket-readable check httpcore makes itself remains.)
    """
    for connection in pool.connections:
        http11 = getattr(connection, "_connection", None)
        if getattr(http11, "_network_stream", None) is stream:
            parser = getattr(http11, "_h11_state", None)
            if http11 is not None and parser is not None and parser.trailing_data[0]:
                http11.close()
            return


def _elapsed(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 2)


def _after_redirects(reason: str, hops: int) -> str:
    return f"{reason} (after {hops} redirect{'s' if hops > 1 else ''})" if hops else reason


def _cut_reason(exc: Exception, timeout: float) -> str:
    if isinstance(exc, httpcore.TimeoutException):
        return f"the rest did not arrive within the timeout ({timeout:g} s)"
    return str(exc) or type(exc).__name__


def _internal_error(exc: Exception, progress: _Progress, duration_ms: float) -> AttemptResult:
    """The attempt an unexpected exception ends as: failed once the request may have reached the
    source (sending it again could count the conversion twice), else retried."""
    reason = f"internal error while {progress.step}: {type(exc).__name__}: {exc}"
    if progress.sent:
        reason += "; not retried, as the source may have received the postback: resend it once the cause is fixed"
    return AttemptResult(
        FAILED if progress.sent else RETRY,
        reason,
        Cause.INTERNAL_ERROR_SENT if progress.sent else Cause.INTERNAL_ERROR,
        http_status=progress.status,
        error=repr(exc),
        duration_ms=duration_ms,
    )


def _retry_after(value: Optional[str]) -> Optional[float]:
    try:
        return parse_retry_after(value)
    except (ArithmeticError, ValueError):  # "Retry-After: ²" and other oddities: no hint
        return None


# The encodings of the WHATWG Encoding Standard (what browsers decode), as Python names them.
# Anything else (base64, rot13, idna, utf-7, unicode_escape: not text encodings, not decodable
# with replacement, or decoding to lone surrogates no database column takes) is read as UTF-8.
_TEXT_ENCODINGS = frozenset(
    codecs.lookup(name).name
    for name in (
        "utf-8",
        "utf-8-sig",
        "utf-16",
        "utf-16-le",
        "utf-16-be",
        "ibm866",
        "iso-8859-1",
        "iso-8859-2",
        "iso-8859-3",
        "iso-8859-4",
        "iso-8859-5",
        "iso-8859-6",
        "iso-8859-7",
        "iso-8859-8",
        "iso-8859-10",
        "iso-8859-13",
        "iso-8859-14",
        "iso-8859-15",
        "iso-8859-16",
        "koi8-r",
        "koi8-u",
        "mac-roman",
        "mac-cyrillic",
        "cp874",
        "cp1250",
        "cp1251",
        "cp1252",
        "cp1253",
        "cp1254",
        "cp1255",
        "cp1256",
        "cp1257",
        "cp1258",
        "gbk",
        "gb2312",
        "gb18030",
        "big5",
        "big5hkscs",
        "euc-jp",
        "iso-2022-jp",
        "shift_jis",
        "cp932",
        "euc-kr",
        "cp949",
        "ascii",
    )
)


@functools.lru_cache(maxsize=256)
def _charset(content_type: Optional[str]) -> str:
    """The text encoding a ``Content-Type`` names (UTF-8 when it names none or one not listed above)."""
    for param in (content_type or "").split(";")[1:]:
        key, _, value = param.partition("=")
        if key.strip().lower() == "charset":
            try:
                name = codecs.lookup(value.strip().strip("'\"")).name
            except (LookupError, ValueError):
                break
            return name if name in _TEXT_ENCODINGS else "utf-8"
    return "utf-8"


def _text(raw: bytes, content_type: Optional[str]) -> str:
    """The answer's text: bad bytes replaced, and no NUL (PostgreSQL's text columns take none)."""
    text = raw.decode(_charset(content_type), "replace")
    return text.replace("\x00", "\ufffd") if "\x00" in text else text


def _decoded(raw: bytes, content_encoding: Optional[str], limit: int) -> tuple[bytes, bool]:
    """The body without a gzip or deflate ``Content-Encoding`` (none is asked for; some send it
    anyway), at most ``limit`` bytes of it, and whether there was more.

    The decompressor stops at ``limit``: a few KiB of a decompression bomb would otherwise
    become megabytes before being cut.
    """
    coding = (content_encoding or "").strip().lower()
    if coding not in ("gzip", "x-gzip", "deflate"):
        return raw[:limit], False
    for wbits in (zlib.MAX_WBITS | 32, -zlib.MAX_WBITS):  # a gzip or zlib header, detected; raw deflate
        try:
            decoded = zlib.decompressobj(wbits).decompress(raw, limit + 1)
        except zlib.error:
            continue
        return decoded[:limit], len(decoded) > limit
    return raw[:limit], False
