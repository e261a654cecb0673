"""Operator actions on the outbox: resend by filter, test-send a rule, prune the attempt log."""

from __future__ import annotations

import dataclasses
import datetime as dt
import re
import time
import uuid
from collections.abc import Mapping, Sequence
from decimal import Decimal
from typing import Any, Optional, Protocol, Union

from sqlalchemy import Engine, and_, delete, select

from hookspecs import Click, Conversion, PostbackRequest, PostbackRule, ResolveContext
from s2s_plugin.delivery.sender import Sender
from s2s_plugin.errors import InputError
from s2s_plugin.resolution.causes import Cause
from s2s_plugin.resolution.redact import redact, redact_body, redact_url, secret_values
from s2s_plugin.resolution.resolve import PlannedPostback, fill_delivery_id
from s2s_plugin.resolution.states import PENDING_STATES, RESENDABLE_STATES, DeliveryState
from s2s_plugin.storage import tables as t
from s2s_plugin.storage.rows import epoch

D, A = t.deliveries, t.attempts

#: ``outcome`` filter values for resend, and the delivery states they select.
#: The delivery id a test send renders and sends: no queued delivery has it.
TEST_DELIVERY_ID = 0

RESEND_OUTCOMES = {
    "failed": (DeliveryState.FAILED,),
    "delivered": (DeliveryState.DELIVERED,),
    "retrying": (DeliveryState.DUE,),
}

Moment = Union[float, dt.datetime, str, None]


def to_epoch(moment: Moment, name: str = "time") -> Optional[float]:
    """Epoch seconds from a datetime, epoch seconds, or ISO 8601 text (UTC unless it says otherwise).

    :raises InputError: for text that is not a date or time.
    """
    if moment is None or moment == "":
        return None
    if isinstance(moment, (int, float)):
        return float(moment)
    if isinstance(moment, str):
        try:
            moment = dt.datetime.fromisoformat(moment.strip().replace("Z", "+00:00"))
        except ValueError:
            raise InputError(f"{name} {moment!r} is not a date: use e.g. 2024-05-01 or 2024-05-01T12:00:00Z") from None
    return epoch(moment)


_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|m|min|h|d|w)?\s*$")
_UNIT = {None: 1, "s": 1, "m": 60, "min": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def parse_duration(text: str) -> float:
    """Seconds in ``30d``, ``12h``, ``15m``, ``90s`` or a bare number of seconds.

    :raises InputError: naming the accepted forms.
    """
    found = _DURATION.match(str(text))
    if not found:
        raise InputError(f"{text!r} is not a duration: use e.g. 30d, 12h, 15m or 90s")
    return float(found.group(1)) * _UNIT[found.group(2)]


def matching_deliveries(
    engine: Engine,
    *,
    source_id: Optional[str] = None,
    campaign_id: Optional[str] = None,
    rule_id: Optional[str] = None,
    subid: Optional[str] = None,
    outcome: Optional[str] = None,
    since: Moment = None,
    until: Moment = None,
) -> list[int]:
    """Ids of deliveries matching every given filter (``since``/``until`` on when they were queued).

    :raises InputError: for an outcome other than failed, delivered or retrying.
    """
    where: list[Any] = []
    if outcome:
        if outcome not in RESEND_OUTCOMES:
            raise InputError(f"outcome {outcome!r} cannot be resent: use one of {', '.join(RESEND_OUTCOMES)}")
        where.append(D.c.state.in_(RESEND_OUTCOMES[outcome]))
    else:
        where.append(D.c.state.in_(RESENDABLE_STATES))
    for column, value in ((D.c.source_id, source_id), (D.c.campaign_id, campaign_id), (D.c.rule_id, rule_id)):
        if value:
            where.append(column == value)
    if subid:
        where.append(t.of_subid(subid))
    start, end = to_epoch(since, "since"), to_epoch(until, "until")
    if start is not None:
        where.append(D.c.created_at >= start)
    if end is not None:
        where.append(D.c.created_at < end)
    with engine.connect() as conn:
        return list(conn.execute(select(D.c.id).where(and_(*where)).order_by(D.c.id)).scalars())


@dataclasses.dataclass(frozen=True)
class TestSend:
    """What a test send of a rule did. Not queued and not logged: the operator sees it at once."""

    __test__ = False  # not a pytest test class, whatever its name

    rule_id: str
    outcome: str  # delivered, retry, failed, or skipped when the rule would not fire
    method: str
    url: str
    body: Optional[str]
    http_status: Optional[int]
    response_body: Optional[str]
    reason: str
    duration_ms: float = 0.0
    error: Optional[str] = None
    cause: Optional[str] = None  # the reason's code (``resolution.causes.Cause``), as a delivery would store it

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready fields."""
        return dataclasses.asdict(self)

    def __str__(self) -> str:
        answer = f"HTTP {self.http_status}" if self.http_status else (self.error or "no answer")
        lines = [f"{self.outcome}: {self.reason}", f"{self.method} {self.url}"]
        if self.body:
            lines.append(f"body: {self.body}")
        if self.outcome != "skipped":
            lines.append(f"answer: {answer} {(self.response_body or '').strip()[:200]!r} in {self.duration_ms:.0f} ms")
        return "\n".join(lines)


class Plan(Protocol):
    """Resolves a conversion's postbacks for a set of rules (the service's ``PostbackPlanner``)."""

    def __call__(
        self, conversion: Conversion, click: Optional[Click], rules: Sequence[PostbackRule]
    ) -> list[PlannedPostback]: ...


class RequestPreparer(Protocol):
    """Finishes a request as the dispatcher would (the service's ``RequestBuilder``)."""

    def with_content_type(self, request: PostbackRequest) -> PostbackRequest: ...

    def with_idempotency_key(self, request: PostbackRequest, delivery_id: int) -> PostbackRequest: ...

    def prepare(self, request: PostbackRequest, context: ResolveContext) -> tuple[PostbackRequest, Optional[str]]: ...


def test_send(
    rule: PostbackRule,
    *,
    plan: Plan,
    requests: RequestPreparer,
    sender: Sender,
    success_body: Optional[str] = None,
    status: Optional[str] = None,
    payout: Any = "1.00",
    currency: Optional[str] = "USD",
    external_id: str = "test-click-id",
    tid: Optional[str] = None,
    params: Optional[Mapping[str, str]] = None,
) -> TestSend:
    """Resolve ``rule`` for a made-up click and conversion and send it now, outside the queue.

    :param plan: resolves the made-up conversion as a real one would be (macro hooks included).
    :param requests: adds the headers and runs the ``prepare_request`` hooks as for a delivery.
    :param sender: sends the request (the dispatcher's, with its safety checks and timeouts).
    :param success_body: the rule's template's success text, if it has one.
    """
    rule_id = rule.id
    chosen = status or (rule.statuses[0] if rule.statuses else "sale")
    subid = f"test-{uuid.uuid4().hex[:12]}"
    click = Click(
        subid=subid,
        campaign_id=rule.campaign_id or "test-campaign",
        source_id=rule.source_id,
        params={"external_id": external_id, **dict(params or {})},
        campaign_name=rule.campaign_id or "test-campaign",
    )
    try:
        amount = None if payout in (None, "") else Decimal(str(payout))
    except ArithmeticError:
        raise InputError(f"payout {payout!r} is not a number") from None
    conversion = Conversion(subid=subid, status=chosen, payout=amount, currency=currency, tid=tid, click=click)
    # A test send shows what the rule would send, even while it is disabled or not enabled for the status.
    trial = dataclasses.replace(rule, enabled=True, statuses=tuple(dict.fromkeys([*rule.statuses, chosen])))
    (planned,) = plan(conversion, click, [trial])
    # A test send is no delivery: {delivery_id} (and the idempotency header) say 0, which no
    # queued delivery ever has, so a de-duplicating source never mistakes it for a real one.
    planned = fill_delivery_id(planned, TEST_DELIVERY_ID)
    secrets = rule.secrets
    if planned.state != DeliveryState.DUE:
        return TestSend(
            rule_id,
            "skipped",
            planned.method,
            redact_url(planned.url, secrets),
            redact_body(planned.body, secrets),
            None,
            None,
            planned.reason or "the rule would not fire",
            cause=planned.cause,
        )
    request = PostbackRequest(
        planned.method,
        planned.url,
        dict(planned.headers),
        planned.body.encode() if planned.body else None,
        template=rule.template,
        rule_id=rule.id,
    )
    request = requests.with_idempotency_key(requests.with_content_type(request), TEST_DELIVERY_ID)
    context = ResolveContext(click=click, conversion=conversion, rule=rule)
    request, problem = requests.prepare(request, context)
    body = request.body.decode("utf-8", "replace") if request.body else None
    # What a test send shows is masked as the attempt log is: the answer and errors too.
    values = (*request.secrets, *secret_values(request.url, body, request.headers, secrets))
    url, shown_body = redact(redact_url(request.url, secrets), values) or "", redact(redact_body(body, secrets), values)
    if problem:
        return TestSend(
            rule_id,
            "failed",
            request.method,
            url,
            shown_body,
            None,
            None,
            redact(problem, values) or problem,
            cause=Cause.PLUGIN_FAILED,
        )
    result = sender.send(
        request,
        success_body=success_body,
        follow_redirects=rule.follow_redirects,
        secret_names=secrets,
    )
    reason = result.reason + (f"; {planned.reason}" if planned.reason else "")
    return TestSend(
        rule_id,
        result.outcome,
        request.method,
        url,
        shown_body,
        result.http_status,
        redact(result.response_body, values),
        redact(reason, values) or reason,
        result.duration_ms,
        redact(result.error, values),
        result.cause,
    )


@dataclasses.dataclass(frozen=True)
class Pruned:
    """What ``prune`` removed."""

    attempts: int
    cutoff: float


def prune(engine: Engine, older_than: float, *, batch: int = 5000) -> Pruned:
    """Delete attempt-log rows older than ``older_than`` seconds, in short transactions.

    Kept whatever their age: attempts of deliveries still pending (due or being sent) and attempts
    not yet reported to ``on_postback_sent``. Deliveries, conversions and clicks are kept: they are
    what stops a conversion from firing its postbacks twice.
    """
    if older_than <= 0:
        raise InputError("prune needs a positive age, e.g. 30d")
    cutoff = time.time() - older_than
    pending = select(D.c.id).where(D.c.state.in_(PENDING_STATES))
    removed = 0
    while True:
        with engine.begin() as conn:
            ids = list(
                conn.execute(
                    select(A.c.id)
                    .where(A.c.started_at < cutoff, A.c.reported.is_(True), A.c.delivery_id.not_in(pending))
                    .limit(batch)
                ).scalars()
            )
            if ids:
                conn.execute(delete(A).where(A.c.id.in_(ids)))
        removed += len(ids)
        if len(ids) < batch:
            return Pruned(removed, cutoff)


test_send.__test__ = False  # type: ignore[attr-defined]
