"""Conversions between table rows and the hook contract's dataclasses."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Mapping
from typing import Any, Optional

from hookspecs import Click, Conversion, PostbackAttempt, PostbackRule
from s2s_plugin.resolution.money import to_decimal
from s2s_plugin.resolution.redact import parse_secrets
from s2s_plugin.resolution.ruleid import RuleId


def epoch(moment: Optional[dt.datetime]) -> Optional[float]:
    """Epoch seconds of an aware (or UTC-naive) datetime."""
    if moment is None:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)
    return moment.timestamp()


def aware(seconds: Optional[float]) -> Optional[dt.datetime]:
    """An aware UTC datetime from epoch seconds."""
    return None if seconds is None else dt.datetime.fromtimestamp(seconds, dt.UTC)


def moment(seconds: float) -> dt.datetime:
    """An aware UTC datetime from epoch seconds that a row always has (``created_at``)."""
    return dt.datetime.fromtimestamp(seconds, dt.UTC)


def dumps(value: Optional[Mapping[str, Any]]) -> str:
    """JSON text of a mapping (stable key order, unicode kept)."""
    if not value:
        return "{}"  # most conversions carry no parameters: skip the encoder
    return json.dumps(dict(value or {}), ensure_ascii=False, sort_keys=True, default=str)


def loads(text: Optional[str]) -> dict[str, Any]:
    """A mapping from JSON text; empty for None."""
    return json.loads(text) if text else {}


def split_statuses(text: str) -> tuple[str, ...]:
    """``"lead,sale"`` → ``("lead", "sale")``."""
    return tuple(part for part in (text or "").split(",") if part)


def _rule(row: Any, **identity: Any) -> PostbackRule:
    """The columns a source's postback and a campaign postback share, plus ``identity``."""
    return PostbackRule(
        url=row.url,
        method=row.method,
        statuses=split_statuses(row.statuses),
        payout_mode=row.payout_mode,
        payout_value=to_decimal(row.payout_value),
        min_payout=to_decimal(row.min_payout),
        body=row.body,
        headers=loads(row.headers),
        follow_redirects=bool(row.follow_redirects),
        enabled=bool(row.enabled),
        secrets=parse_secrets(row.secrets),
        **identity,
    )


def source_rule(row: Any) -> PostbackRule:
    """The postback rule of a ``s2s_sources`` row, with the source's campaign-link settings."""
    return _rule(
        row,
        id=str(RuleId.of_source(row.source_id)),
        source_id=row.source_id,
        template=row.template,
        name=row.template,
        click_id_param=row.click_id_param,
        source_macro=row.source_macro,
        parameters=None if row.parameters is None else loads(row.parameters),
    )


def postback_rule(row: Any) -> PostbackRule:
    """The postback rule of a ``s2s_postbacks`` row."""
    return _rule(row, id=str(RuleId.of_postback(row.id)), campaign_id=row.campaign_id, name=row.name)


def click_values(click: Click) -> dict[str, Any]:
    """Column values of a ``s2s_clicks`` row for ``click``."""
    return {
        "subid": click.subid,
        "campaign_id": click.campaign_id,
        "campaign_name": click.campaign_name,
        "source_id": click.source_id,
        "params": dumps({k: str(v) for k, v in click.params.items()}),
        "ip": click.ip,
        "user_agent": click.user_agent,
        "country": click.country,
        "created_at": epoch(click.created_at),
    }


def click_from_row(row: Any) -> Click:
    """The ``Click`` of a ``s2s_clicks`` row."""
    return Click(
        subid=row.subid,
        campaign_id=row.campaign_id,
        source_id=row.source_id,
        params=loads(row.params),
        created_at=moment(row.created_at),
        ip=row.ip,
        user_agent=row.user_agent,
        country=row.country,
        campaign_name=row.campaign_name,
    )


def conversion_for_delivery(row: Any, click: Optional[Click], created_at: Optional[float] = None) -> Conversion:
    """The conversion as it was when a delivery was resolved (its status, payout and tid)."""
    return Conversion(
        subid=row.subid,
        status=row.status,
        payout=to_decimal(row.payout),
        currency=row.currency,
        tid=row.tid or None,
        original_status=None,
        params={},
        created_at=moment(created_at if created_at is not None else row.created_at),
        click=click,
    )


def attempt_from_rows(attempt: Any, delivery: Any) -> PostbackAttempt:
    """The ``PostbackAttempt`` of a ``s2s_attempts`` row and its delivery."""
    return PostbackAttempt(
        delivery_id=delivery.id,
        subid=delivery.subid,
        tid=delivery.tid or None,
        status=delivery.status,
        source_id=delivery.source_id,
        campaign_id=delivery.campaign_id,
        rule_id=delivery.rule_id,
        method=attempt.method or delivery.method,
        url=attempt.url or delivery.url,
        body=attempt.body,
        attempt=attempt.attempt,
        outcome=attempt.outcome,
        http_status=attempt.http_status,
        response_body=attempt.response_body,
        error=attempt.error,
        reason=attempt.reason,
        duration_ms=attempt.duration_ms,
        started_at=aware(attempt.started_at),
        next_attempt_at=aware(attempt.next_attempt_at),
        response_truncated=bool(attempt.response_truncated),
        cause=attempt.cause,
    )
