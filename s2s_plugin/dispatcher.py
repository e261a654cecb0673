"""The delivery dispatcher: claims due postbacks, sends them on a thread pool, records every outcome.

The same loop serves ``drain()`` (in the caller's thread, until nothing is due), the background
dispatcher of ``start()`` and the ``s2s-postback worker`` process.
"""

from __future__ import annotations

import collections
import concurrent.futures
import logging
import random
import threading
import time
from collections.abc import Callable
from typing import Any, Optional
from urllib.parse import urlsplit

from hookspecs import PostbackAttempt, PostbackRequest, ResolveContext

from . import queue
from .policy import DELIVERED, RETRY, next_delay
from .redact import redact
from .rows import aware, loads
from .sender import AttemptResult, Sender
from .settings import DeliverySettings

log = logging.getLogger("s2s_postback.delivery")

#: Attempts not reported this long after they were made belong to a worker that died: report them.
_ORPHAN_REPORT_AFTER = 300.0


class Dispatcher:
    """Claims and delivers due postbacks with at most ``max_concurrency`` in flight.

    :param build: ``build(row) -> (request, context, success_body, problem)`` for a claimed delivery
        row; ``problem`` (a sentence naming the failing plugin) means the request must not be sent.
    :param report: called with every ``PostbackAttempt`` (``on_postback_sent``).
    :param on_gone: called with a rule id whose target answered 410 Gone.
    """

    def __init__(
        self,
        engine: Any,
        settings: DeliverySettings,
        sender: Sender,
        build: Callable[[Any], tuple[PostbackRequest, Optional[ResolveContext], Optional[str], Optional[str]]],
        report: Callable[[PostbackAttempt], None],
        on_gone: Callable[[str], None],
        attempt_from_rows: Callable[[Any, Any], PostbackAttempt],
    ) -> None:
        self.engine = engine
        self.settings = settings
        self.sender = sender
        self._build = build
        self._report = report
        self._on_gone = on_gone
        self._attempt_from_rows = attempt_from_rows
        self._pool = concurrent.futures.ThreadPoolExecutor(settings.max_concurrency, thread_name_prefix="s2s-send")
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._in_flight: dict[concurrent.futures.Future[None], Any] = {}
        self._per_host: collections.Counter[str] = collections.Counter()
        self._waiting: collections.deque[Any] = collections.deque()
        self._thread: Optional[threading.Thread] = None
        self._rng = random.Random()

    # --- public -------------------------------------------------------------------------

    def wake(self) -> None:
        """New work may be due: look now instead of at the next poll."""
        self._wake.set()

    def drain(self, timeout: float) -> int:
        """Deliver what is due now and what falls due within ``timeout`` seconds; attempts made."""
        deadline = time.monotonic() + timeout
        made = 0
        while True:
            self.report_pending()
            made += self._fill()
            if self._busy():
                self._wait(min(0.5, max(0.0, deadline - time.monotonic())))
            else:
                next_due = queue.next_due_at(self.engine)
                if next_due is None:
                    break
                pause = next_due - time.time()
                if time.monotonic() + max(pause, 0) > deadline:
                    break
                if pause > 0:
                    self._wait(pause)
            if time.monotonic() >= deadline:
                self._finish_in_flight(max(0.0, self.settings.timeout + 1))
                break
        self.report_pending()
        return made

    def start(self) -> None:
        """Run the dispatcher in a background thread until ``close()``."""
        if self._thread is not None:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="s2s-dispatcher", daemon=True)
        self._thread.start()

    def close(self, grace: float = 10.0) -> None:
        """Stop claiming, let attempts in flight finish (up to ``grace`` s), release the rest."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(grace + self.settings.timeout)
            self._thread = None
        self._finish_in_flight(grace)
        with self._lock:
            waiting, self._waiting = list(self._waiting), collections.deque()
        for row in waiting:
            queue.release(self.engine, row)
        self._pool.shutdown(wait=True, cancel_futures=True)
        self.sender.close()

    def report_pending(self) -> None:
        """Report skips, and attempts whose worker died before reporting them, to ``on_postback_sent``."""
        for attempt_row, delivery_row in queue.take_unreported(self.engine, older_than=_ORPHAN_REPORT_AFTER):
            self._safe_report(self._attempt_from_rows(attempt_row, delivery_row))

    # --- the loop -----------------------------------------------------------------------

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.report_pending()
                self._fill()
            except Exception:  # a database hiccup must not kill the dispatcher: log, back off, go on
                log.exception("dispatcher loop failed; retrying")
                self._stop.wait(self.settings.poll_interval)
                continue
            self._wait(self.settings.poll_interval)

    def _busy(self) -> bool:
        with self._lock:
            return bool(self._in_flight or self._waiting)

    def _wait(self, seconds: float) -> None:
        self._wake.wait(seconds)
        self._wake.clear()

    def _fill(self) -> int:
        """Claim as much as there is room for, then start what per-host limits allow."""
        with self._lock:
            room = self.settings.max_concurrency - len(self._in_flight) - len(self._waiting)
        if room > 0 and not self._stop.is_set():
            rows = queue.claim(self.engine, room, self.settings.lease_seconds)
            with self._lock:
                self._waiting.extend(rows)
        return self._start_waiting()

    def _start_waiting(self) -> int:
        started = 0
        with self._lock:
            keep: collections.deque[Any] = collections.deque()
            while self._waiting:
                row = self._waiting.popleft()
                host = _host_key(row.url)
                if self._per_host[host] >= self.settings.per_host_concurrency:
                    keep.append(row)
                    continue
                self._per_host[host] += 1
                future = self._pool.submit(self._deliver, row)
                self._in_flight[future] = row
                future.add_done_callback(self._done)
                started += 1
            self._waiting = keep
        return started

    def _done(self, future: concurrent.futures.Future[None]) -> None:
        with self._lock:
            row = self._in_flight.pop(future, None)
            if row is not None:
                self._per_host[_host_key(row.url)] -= 1
        if future.exception() is not None:
            log.error("delivery %s crashed", getattr(row, "id", "?"), exc_info=future.exception())
        self._start_waiting()
        self._wake.set()

    def _finish_in_flight(self, grace: float) -> None:
        with self._lock:
            futures = list(self._in_flight)
        if futures:
            concurrent.futures.wait(futures, timeout=grace)

    # --- one delivery -------------------------------------------------------------------

    def _deliver(self, row: Any) -> None:
        started_at = time.time()
        request, _context, success_body, problem = self._build(row)
        if problem:
            # A plugin could not prepare the request (see docs/hooks.md): nothing is sent, and the
            # delivery retries on its schedule, so a fixed plugin or setting still delivers it.
            result = AttemptResult(RETRY, f"not sent: {problem}", error=problem)
        else:
            result = self.sender.send(request, success_body=success_body, follow_redirects=bool(row.follow_redirects))
        attempt_no = row.attempts + 1
        state, next_at, reason = self._decide(row, result, attempt_no)
        if row.resolve_note:
            reason = f"{reason}; {row.resolve_note}"
        secrets = request.secrets
        reason = redact(reason, secrets) or reason
        attempt_values = {
            "attempt": attempt_no,
            "outcome": {"delivered": "delivered", "due": "retrying"}.get(state, "failed"),
            "method": request.method,
            "url": redact(request.url, secrets),
            "body": redact(request.body.decode("utf-8", "replace"), secrets) if request.body else None,
            "http_status": result.http_status,
            "response_body": redact(result.response_body, secrets),
            "response_truncated": result.response_truncated,
            "error": redact(result.error, secrets),
            "reason": reason,
            "duration_ms": result.duration_ms,
            "started_at": started_at,
            "next_attempt_at": next_at,
            "reported": False,
        }
        attempt_id = queue.complete(
            self.engine, row, queue.Completion(state, next_at, attempt_values, result.http_status, reason)
        )
        if attempt_id is None:
            log.warning("delivery %s: lease lost before completion; its result was discarded", row.id)
            return
        if result.gone:
            self._on_gone(row.rule_id)
        attempt = PostbackAttempt(
            delivery_id=row.id, subid=row.subid, tid=row.tid, status=row.status, source_id=row.source_id,
            campaign_id=row.campaign_id, rule_id=row.rule_id, method=request.method, url=attempt_values["url"],
            body=attempt_values["body"], attempt=attempt_no, outcome=attempt_values["outcome"],
            http_status=result.http_status, response_body=attempt_values["response_body"], error=attempt_values["error"],
            reason=reason, duration_ms=result.duration_ms, started_at=aware(started_at),
            next_attempt_at=aware(next_at), response_truncated=result.response_truncated,
        )
        self._safe_report(attempt)
        queue.mark_reported(self.engine, attempt_id)

    def _decide(self, row: Any, result: AttemptResult, attempt_no: int) -> tuple[str, Optional[float], str]:
        if result.outcome == DELIVERED:
            return "delivered", None, result.reason
        if result.outcome == RETRY:
            delay = self._next_delay(row, result, attempt_no)
            if delay is None:
                return "failed", None, f"{result.reason}; gave up after {attempt_no} attempts"
            return "due", time.time() + delay, f"{result.reason}; retrying in {_human(delay)}"
        return "failed", None, result.reason

    def _next_delay(self, row: Any, result: AttemptResult, attempt_no: int) -> Optional[float]:
        return next_delay(
            self.settings.retry_schedule,
            attempt_no - (row.retry_base or 0),
            retry_after=result.retry_after,
            retry_after_cap=self.settings.retry_after_cap,
            jitter=self.settings.jitter,
            rng=self._rng,
        )

    def _safe_report(self, attempt: PostbackAttempt) -> None:
        try:
            self._report(attempt)
        except Exception:  # a host's log failing must not stop delivery
            log.exception("on_postback_sent failed for delivery %s attempt %s", attempt.delivery_id, attempt.attempt)


def _host_key(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.hostname}:{parts.port or ''}"


def _human(seconds: float) -> str:
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def headers_of(row: Any) -> dict[str, str]:
    """A delivery row's stored headers."""
    return {str(k): str(v) for k, v in loads(row.headers).items()}
