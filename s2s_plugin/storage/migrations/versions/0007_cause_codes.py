"""Cause codes: ``cause`` on deliveries, attempts and conversion events, filled from their reasons.

From this revision on, whoever writes a reason writes its code (``resolution.causes.Cause``) with
it, and readers use the code. Rows written before have only the sentence: this migration reads
each reason once and gives it its code. It is the one place a sentence is read back for its
cause, and it knows the sentences of the versions before this one; a reason it cannot place keeps
a NULL cause.

Revision ID: 0007
Revises: 0006
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterator, Sequence
from typing import Any, Optional

import sqlalchemy as sa
from alembic import op

from s2s_plugin.resolution.causes import Cause

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

_BATCH = 1000

# Sentences of revisions up to 0006, in the order they are told apart: a reason is often several
# sentences joined by "; ", the first naming the cause and the others adding to it.
_PHRASES: tuple[tuple[Cause, re.Pattern[str]], ...] = tuple(
    (cause, re.compile(pattern))
    for cause, pattern in (
        (Cause.LATE_RESULT, r"; recorded late: the claim had expired"),
        (Cause.HOST_NOT_ANSWERING, r"^waiting: source host .* is not answering"),
        (Cause.STATUS_NOT_ENABLED, r"^status \S+ is not enabled for "),
        (Cause.RULE_DISABLED, r"^(source \S+'s postback|campaign .*'s postback #\d+|postback rule .*) is disabled$"),
        (Cause.CLICK_UNKNOWN, r"^click .* is unknown to the postback plugin"),
        (Cause.NO_CLICK_ID, r" needs the source's click id, but "),
        (Cause.PAYOUT_BELOW_MINIMUM, r"^payout .* is below .*'s minimum of "),
        (Cause.MAX_AGE, r"^not sent: the postback was queued .* beyond the maximum age"),
        (Cause.PLUGIN_FAILED, r"^not sent: plugin '[^']+' failed in [a-z_]+"),
        (Cause.INTERNAL_ERROR_SENT, r"^internal error.*(not retried|outcome is unknown|while recording the attempt)"),
        (Cause.INTERNAL_ERROR, r"^(not sent: )?internal error"),
        (Cause.PLUGIN_VERDICT, r"^(plugin '[^']+'|a classify_response hook) judged the HTTP \d+ answer"),
        (Cause.PRIVATE_ADDRESS, r"^host \S+ resolves to .*, a private or internal address"),
        (Cause.DNS_FAILED, r"^host \S+ could not be resolved"),
        (
            Cause.BAD_URL,
            r"^(the URL cannot be parsed|URL scheme .* is refused|the URL has no host name|the URL's host .* is not a "
            r"host name|the URL's port is not a number|.* has URL .*: only http and https postbacks can be sent)",
        ),
        (Cause.BAD_REQUEST, r"^the request could not be sent"),
        (Cause.TIMEOUT, r"^the source did not answer in time"),
        (Cause.TLS_FAILED, r"^could not reach the source: the TLS handshake failed"),
        (Cause.NOT_HTTP, r"^the source's answer is not HTTP"),
        (Cause.CONNECTION_FAILED, r"^(could not reach the source|the connection broke during the source's answer)"),
        (
            Cause.REDIRECT_REFUSED,
            r"^(the source redirected |more than \d+ redirects|the source answered a redirect \(HTTP \d+\) without a Location)",
        ),
        (Cause.REDIRECT_NOT_FOLLOWED, r"^the source answered a redirect \(HTTP \d+\), which is not followed"),
        (Cause.SUCCESS_TEXT_MISSING, r"^the source answered HTTP 2\d\d without "),
        (Cause.HTTP_GONE, r"^the source answered HTTP 410 Gone"),
        (Cause.HTTP_RATE_LIMITED, r"^the source answered HTTP 429, a temporary error"),
        (Cause.HTTP_REQUEST_TIMEOUT, r"^the source answered HTTP 408, a temporary error"),
        (Cause.HTTP_SERVER_ERROR, r"^the source answered HTTP 5\d\d, a temporary error"),
        (Cause.HTTP_REFUSED, r"^the source refused the postback with HTTP \d+"),
        (Cause.ACCEPTED, r"^the source answered HTTP 2\d\d($|;| \(after)"),
        (Cause.UNKNOWN_MACRO, r"^unknown macros? .* rendered empty"),
        (Cause.PLUGIN_FAILED, r"^plugin '[^']+' failed in resolve_macro"),
    )
)

# How an event's reason said that a plugin's postback_rules failed (HookFailure.describe()).
_PLUGIN_FAILED_NOTE = re.compile(r"plugin '[^']+' failed in [a-z_]+")


# Most reasons repeat word for word ("the source answered HTTP 200"): each is read once.
@functools.lru_cache(maxsize=8192)
def classify(reason: Optional[str]) -> Optional[Cause]:
    """The cause an old delivery's or attempt's reason names, or None."""
    if not reason:
        return None
    for cause, pattern in _PHRASES:
        if pattern.search(reason):
            return cause
    return None


def _rows(bind: sa.Connection, table: Any) -> Iterator[Sequence[Any]]:
    """``(id, reason)`` of the rows with a reason and no cause, a batch at a time (by id)."""
    last = 0
    while True:
        batch = bind.execute(
            sa.select(table.c.id, table.c.reason)
            .where(table.c.id > last, table.c.reason.is_not(None))
            .order_by(table.c.id)
            .limit(_BATCH)
        ).all()
        if not batch:
            return
        yield batch
        last = batch[-1].id


def _fill(bind: sa.Connection, name: str, classify_one: Any) -> None:
    table = sa.table(name, sa.column("id", sa.Integer), sa.column("reason", sa.Text), sa.column("cause", sa.String))
    update = table.update().where(table.c.id == sa.bindparam("b_id")).values(cause=sa.bindparam("b_cause"))
    for batch in _rows(bind, table):
        found = [{"b_id": row.id, "b_cause": str(cause)} for row in batch if (cause := classify_one(row.reason))]
        if found:
            bind.execute(update, found)


def upgrade() -> None:
    # Plain ADD COLUMN (a nullable column needs no table copy on SQLite, and a copy would drop
    # the configuration-version triggers of migration 0003 on the rule tables).
    for table in ("s2s_deliveries", "s2s_attempts", "s2s_events"):
        op.add_column(table, sa.Column("cause", sa.String(40)))
    bind = op.get_bind()
    _fill(bind, "s2s_deliveries", classify)
    _fill(bind, "s2s_attempts", classify)
    _fill(bind, "s2s_events", lambda reason: Cause.PLUGIN_FAILED if _PLUGIN_FAILED_NOTE.search(reason) else None)


def downgrade() -> None:
    for table in ("s2s_events", "s2s_attempts", "s2s_deliveries"):
        op.drop_column(table, "cause")
