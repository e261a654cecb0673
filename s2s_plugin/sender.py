"""One HTTP attempt of one postback: request, answer, outcome. Network failures become outcomes."""

from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Callable
from typing import Any, Optional
from urllib.parse import urljoin

import httpcore
import httpx

from hookspecs import PostbackRequest

from .policy import DELIVERED, FAILED, RETRY, classify_status, parse_retry_after
from .safety import check_target
from .settings import DeliverySettings

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

    def pin(self, url: str, addresses: tuple[str, ...]) -> None:
        """Connections to ``url``'s host and port go to ``addresses`` (checked), in order."""
        target = httpx.URL(url)
        port = target.port or (443 if target.scheme == "https" else 80)
        self.pins[(target.host.lower(), port)] = addresses

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


class _PinnedTransport(httpx.HTTPTransport):
    """httpx's transport over a connection pool that uses a ``PinnedBackend``."""

    def __init__(self, backend: PinnedBackend, limits: httpx.Limits, ssl_context: Any) -> None:
        super().__init__(limits=limits, trust_env=False)
        self._pool = httpcore.ConnectionPool(
            ssl_context=ssl_context,
            max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections,
            keepalive_expiry=limits.keepalive_expiry,
            network_backend=backend,
        )


class Sender:
    """Sends postback requests with one pooled ``httpx.Client`` per thread.

    Sync clients in threads deliver more per second than one ``AsyncClient`` at high concurrency,
    and a thread each keeps a slow source from blocking the others' connections. Every hop is
    checked (``safety.check_target``) and the connection pinned to the checked addresses.
    """

    def __init__(self, settings: DeliverySettings, classify_hook: Optional[ClassifyHook] = None) -> None:
        self.settings = settings
        self.classify_hook = classify_hook
        self._local = threading.local()
        self._clients: list[httpx.Client] = []
        self._lock = threading.Lock()
        self._shared_ssl: Any = None

    def _client(self) -> tuple[httpx.Client, PinnedBackend]:
        client = getattr(self._local, "client", None)
        if client is None:
            backend = PinnedBackend()
            # One attempt at a time per thread: a few keep-alive connections (to the hosts this
            # thread talks to most) are all it can use.
            limits = httpx.Limits(max_connections=8, max_keepalive_connections=8, keepalive_expiry=30.0)
            client = httpx.Client(
                transport=_PinnedTransport(backend, limits, self._ssl_context()),
                timeout=httpx.Timeout(self.settings.timeout, connect=self.settings.connect_timeout),
                headers={"User-Agent": self.settings.user_agent},
                follow_redirects=False,
                trust_env=False,
            )
            self._local.client = client
            self._local.backend = backend
            with self._lock:
                self._clients.append(client)
        return client, self._local.backend

    def _ssl_context(self) -> Any:
        # One TLS context for every thread's client: building one loads the CA bundle (tens of
        # milliseconds of CPU), which 32 threads starting at once turned into a second of delay
        # for the first postbacks. An SSLContext is safe to share between connections and threads.
        with self._lock:
            if self._shared_ssl is None:
                self._shared_ssl = httpx.create_ssl_context(trust_env=False)
            return self._shared_ssl

    def close(self) -> None:
        """Close every thread's client."""
        with self._lock:
            clients, self._clients = self._clients, []
        for client in clients:
            client.close()

    def send(self, request: PostbackRequest, *, success_body: Optional[str] = None, follow_redirects: bool = False) -> AttemptResult:
        """Send ``request`` and classify the answer; never raises for network or HTTP trouble."""
        started = time.perf_counter()

        def elapsed() -> float:
            return round((time.perf_counter() - started) * 1000, 2)

        url = request.url
        for _hop in range(_MAX_REDIRECTS + 1):
            check = check_target(url, allow_private=self.settings.allow_private_targets)
            if not check.ok:
                return AttemptResult(RETRY if check.retryable else FAILED, check.reason or "target refused", duration_ms=elapsed())
            try:
                answer = self._exchange(dataclasses.replace(request, url=url), check.addresses, started)
            except httpx.TimeoutException as exc:
                return AttemptResult(RETRY, f"the source did not answer in time ({type(exc).__name__})", error=repr(exc), duration_ms=elapsed())
            except (httpx.TransportError, OSError) as exc:
                return AttemptResult(RETRY, f"could not reach the source: {exc or type(exc).__name__}", error=repr(exc), duration_ms=elapsed())
            except httpx.HTTPError as exc:  # an invalid URL or header: sending again will not help
                return AttemptResult(FAILED, f"the request could not be sent: {exc}", error=repr(exc), duration_ms=elapsed())
            location = answer.headers.get("location")
            if follow_redirects and 300 <= answer.status_code < 400 and location:
                url = urljoin(url, location)
                continue
            break
        else:
            return AttemptResult(FAILED, f"more than {_MAX_REDIRECTS} redirects", duration_ms=elapsed())
        return self._classify(request, answer, success_body, elapsed())

    def _exchange(self, request: PostbackRequest, addresses: tuple[str, ...], started: float) -> Answer:
        limit = self.settings.max_response_bytes
        client, backend = self._client()
        backend.pin(request.url, addresses)
        with client.stream(request.method, request.url, headers=dict(request.headers), content=request.body) as response:
            chunks: list[bytes] = []
            size = 0
            truncated = False
            for chunk in response.iter_bytes():
                chunks.append(chunk)
                size += len(chunk)
                if size > limit:
                    truncated = True
                    break
                if time.perf_counter() - started > self.settings.timeout:
                    # A source trickling its answer byte by byte must not hold the attempt forever.
                    raise httpx.ReadTimeout("the answer took longer than the timeout to arrive")
            raw = b"".join(chunks)[:limit]
            text = raw.decode(response.encoding or "utf-8", errors="replace")
            return Answer(response.status_code, response.headers, text, truncated)

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
