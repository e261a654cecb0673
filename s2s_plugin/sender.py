"""One HTTP attempt of one postback: request, answer, outcome. Network failures become outcomes."""

from __future__ import annotations

import codecs
import dataclasses
import threading
import time
import zlib
from collections.abc import Callable
from typing import Any, Optional
from urllib.parse import urljoin

import httpcore
import httpx

from hookspecs import PostbackRequest

from .hosts import DEFAULT_PORTS
from .policy import DELIVERED, FAILED, RETRY, classify_status, parse_retry_after
from .safety import Resolver, check_target
from .settings import DeliverySettings
from .wire import wire_url

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
    """What one attempt came to. ``outcome`` is ``delivered``, ``retry`` or ``failed``."""

    outcome: str
    reason: str
    http_status: Optional[int] = None
    response_body: Optional[str] = None
    response_truncated: bool = False
    error: Optional[str] = None
    duration_ms: float = 0.0
    retry_after: Optional[float] = None
    gone: bool = False


class PinnedBackend(httpcore.SyncBackend):
    """A network backend that connects only to addresses the target check approved.

    The sender resolves a host name once, checks every address, and pins the name to them here;
    httpcore then connects to a pinned address instead of resolving the name again, so a DNS answer
    that changes between the check and the connection (DNS rebinding) cannot reach an internal
    address. TLS still sends the name (SNI) and verifies the certificate against it.
    """

    def __init__(self) -> None:
        self.pins: dict[tuple[str, int], tuple[str, ...]] = {}

    def pin(self, url: httpcore.URL, addresses: tuple[str, ...]) -> None:
        """Connections to ``url``'s host and port go to ``addresses`` (checked), in order."""
        port = url.port or DEFAULT_PORTS[url.scheme.decode("ascii")]
        self.pins[(url.host.decode("ascii").lower(), port)] = addresses

    def connect_tcp(  # type: ignore[override]
        self, host: str, port: int, timeout: Optional[float] = None, local_address: Optional[str] = None,
        socket_options: Any = None,
    ) -> httpcore.NetworkStream:
        addresses = self.pins.get((host.lower(), port))
        if not addresses:
            raise httpcore.ConnectError(f"{host}:{port} was not checked before connecting: refused")
        error: Optional[Exception] = None
        for address in addresses:
            try:
                return super().connect_tcp(address, port, timeout, local_address, socket_options)
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                error = exc
        assert error is not None
        raise error


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
            "connect": settings.connect_timeout, "read": settings.timeout, "write": settings.timeout, "pool": settings.timeout,
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

    def send(self, request: PostbackRequest, *, success_body: Optional[str] = None, follow_redirects: bool = False) -> AttemptResult:
        """Send ``request`` and classify the answer; never raises for network or HTTP trouble."""
        started = time.perf_counter()

        def elapsed() -> float:
            return round((time.perf_counter() - started) * 1000, 2)

        url = request.url
        for _hop in range(_MAX_REDIRECTS + 1):
            check = check_target(url, allow_private=self.settings.allow_private_targets, resolver=self._resolver)
            if not check.ok:
                return AttemptResult(RETRY if check.retryable else FAILED, check.reason or "target refused", duration_ms=elapsed())
            try:
                answer = self._exchange(request, url, check.addresses, started)
            except (httpcore.TimeoutException, httpx.TimeoutException) as exc:
                return AttemptResult(RETRY, f"the source did not answer in time ({type(exc).__name__})", error=repr(exc), duration_ms=elapsed())
            except (httpcore.UnsupportedProtocol, httpx.InvalidURL, UnicodeError) as exc:
                # An invalid URL or header: sending again will not help.
                return AttemptResult(FAILED, f"the request could not be sent: {exc}", error=repr(exc), duration_ms=elapsed())
            except (httpcore.NetworkError, httpcore.ProtocolError, httpx.TransportError, OSError) as exc:
                return AttemptResult(RETRY, f"could not reach the source: {exc or type(exc).__name__}", error=repr(exc), duration_ms=elapsed())
            location = answer.headers.get("location")
            if follow_redirects and 300 <= answer.status_code < 400 and location:
                url = urljoin(url, location)
                continue
            break
        else:
            return AttemptResult(FAILED, f"more than {_MAX_REDIRECTS} redirects", duration_ms=elapsed())
        return self._classify(request, answer, success_body, elapsed())

    def _exchange(self, request: PostbackRequest, url: str, addresses: tuple[str, ...], started: float) -> Answer:
        limit = self.settings.max_response_bytes
        pool, backend = self._pool()
        target = wire_url(url)
        backend.pin(target, addresses)
        own = {name.lower() for name in request.headers}
        # A header the request sets replaces the default of that name.
        headers = [header for name, header in self._default_headers.items() if name not in own]
        headers += [(name.encode("latin-1"), value.encode("latin-1")) for name, value in request.headers.items()]
        with pool.stream(
            request.method.encode("ascii"),
            target,
            headers=headers,
            content=request.body,
            extensions={"timeout": self._timeouts},
        ) as response:
            chunks: list[bytes] = []
            size = 0
            truncated = False
            for chunk in response.iter_stream():
                chunks.append(chunk)
                size += len(chunk)
                if size > limit:
                    truncated = True
                    break
                if time.perf_counter() - started > self.settings.timeout:
                    # A source trickling its answer byte by byte must not hold the attempt forever.
                    raise httpcore.ReadTimeout("the answer took longer than the timeout to arrive")
            response_headers = httpx.Headers(response.headers)
            raw = _decoded(b"".join(chunks), response_headers.get("content-encoding"))[:limit]
            text = raw.decode(_charset(response_headers.get("content-type")), errors="replace")
            return Answer(response.status, response_headers, text, truncated)

    def _classify(self, request: PostbackRequest, answer: Answer, success_body: Optional[str], duration_ms: float) -> AttemptResult:
        verdict = self.classify_hook(request, answer) if self.classify_hook else None
        if not isinstance(verdict, Verdict):
            verdict = Verdict(verdict)
        error = None
        if verdict.outcome in _HOOK_OUTCOMES:
            outcome = _HOOK_OUTCOMES[verdict.outcome]
            # The body is what such sources explain themselves in ("ERROR: Tag is invalid!").
            snippet = " ".join(answer.text.split())[:120]
            judge = f"plugin {verdict.plugin!r}" if verdict.plugin else "a classify_response hook"
            reason = f"{judge} judged the HTTP {answer.status_code} answer {snippet!r}: {verdict.outcome}"
        else:
            outcome, reason = classify_status(answer.status_code, answer.text, success_body)
        if verdict.failures:
            reason += "; " + "; ".join(f"{f.describe()}, so its verdict was not used" for f in verdict.failures)
            error = "; ".join(f.describe() for f in verdict.failures)
        retry_after = parse_retry_after(answer.headers.get("retry-after")) if outcome == RETRY else None
        return AttemptResult(
            outcome,
            reason,
            http_status=answer.status_code,
            response_body=answer.text,
            response_truncated=answer.truncated,
            error=error,
            duration_ms=duration_ms,
            retry_after=retry_after,
            gone=answer.status_code == 410 and outcome == FAILED,
        )


def _charset(content_type: Optional[str]) -> str:
    """The text encoding a ``Content-Type`` names (UTF-8 when it names none or an unknown one)."""
    for param in (content_type or "").split(";")[1:]:
        key, _, value = param.partition("=")
        if key.strip().lower() == "charset":
            name = value.strip().strip("'\"")
            try:
                return codecs.lookup(name).name
            except LookupError:
                break
    return "utf-8"


def _decoded(raw: bytes, content_encoding: Optional[str]) -> bytes:
    """The body without a gzip or deflate ``Content-Encoding`` (none is asked for; some send it anyway)."""
    coding = (content_encoding or "").strip().lower()
    if coding not in ("gzip", "x-gzip", "deflate"):
        return raw
    try:
        decoder = zlib.decompressobj(zlib.MAX_WBITS | 32)  # gzip or zlib header, detected
        return decoder.decompress(raw)
    except zlib.error:
        try:
            return zlib.decompressobj(-zlib.MAX_WBITS).decompress(raw)  # raw deflate
        except zlib.error:
            return raw
