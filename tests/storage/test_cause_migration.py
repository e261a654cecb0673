"""Migration 0007: deliveries, attempts and events written before cause codes get the code their
reason names, on SQLite and on a real PostgreSQL."""

from __future__ import annotations

import time

from sqlalchemy import insert, select

from s2s_plugin.resolution.causes import Cause
from s2s_plugin.storage import migrate
from s2s_plugin.storage import tables as t
from s2s_plugin.storage.db import make_engine

# Reasons as revision 0006's code wrote them, and the cause each names.
OLD_REASONS: list[tuple[str, Cause | None]] = [
    ("status lead is not enabled for source exo's postback (enabled: sale)", Cause.STATUS_NOT_ENABLED),
    ("campaign summer's postback #3 is disabled", Cause.RULE_DISABLED),
    ("source exo's postback is disabled", Cause.RULE_DISABLED),
    (
        "click abc is unknown to the postback plugin: the host must call on_click for every click, or pass "
        "conversion.click",
        Cause.CLICK_UNKNOWN,
    ),
    (
        "source exo's postback needs the source's click id, but the click has no external_id: put "
        "external_id={conversions_tracking} in the campaign link",
        Cause.NO_CLICK_ID,
    ),
    ("payout 0.5 is below source exo's postback's minimum of 1", Cause.PAYOUT_BELOW_MINIMUM),
    ("source exo's postback has URL 'ftp://x/': only http and https postbacks can be sent", Cause.BAD_URL),
    ("unknown macro {clickid} rendered empty (did you mean {external_id}?)", Cause.UNKNOWN_MACRO),
    ("the source answered HTTP 200", Cause.ACCEPTED),
    ("the source answered HTTP 204 (after 1 redirect)", Cause.ACCEPTED),
    (
        "the source answered HTTP 200; source host pb.example answers again: its waiting postbacks are due now",
        Cause.ACCEPTED,
    ),
    ("the source answered HTTP 200 without 'OK': 'ERROR bad tag'", Cause.SUCCESS_TEXT_MISSING),
    ("plugin 'strict' judged the HTTP 200 answer 'ERROR: Tag is invalid!': failed", Cause.PLUGIN_VERDICT),
    ("the source refused the postback with HTTP 400", Cause.HTTP_REFUSED),
    ("the source answered HTTP 410 Gone: the postback URL is retired; the rule is flagged", Cause.HTTP_GONE),
    (
        "the source answered HTTP 429, a temporary error; retrying in 30 s (the source asked for 30 s with Retry-After)",
        Cause.HTTP_RATE_LIMITED,
    ),
    ("the source answered HTTP 408, a temporary error; retrying in 5 s", Cause.HTTP_REQUEST_TIMEOUT),
    ("the source answered HTTP 503, a temporary error; gave up after 8 attempts", Cause.HTTP_SERVER_ERROR),
    (
        "the source answered a redirect (HTTP 302), which is not followed: fix the postback URL or allow redirects "
        "for this template",
        Cause.REDIRECT_NOT_FOLLOWED,
    ),
    (
        "the source redirected from https to http (HTTP 301): refused, the postback would travel unencrypted; fix "
        "the postback URL",
        Cause.REDIRECT_REFUSED,
    ),
    ("more than 5 redirects", Cause.REDIRECT_REFUSED),
    ("the source did not answer in time (ReadTimeout, timeout 15 s); retrying in 5 s", Cause.TIMEOUT),
    ("could not reach the source: [Errno 111] Connection refused; retrying in 5 min", Cause.CONNECTION_FAILED),
    ("could not reach the source: the connection closed without an answer", Cause.CONNECTION_FAILED),
    ("could not reach the source: the TLS handshake failed: [SSL] record layer failure", Cause.TLS_FAILED),
    ("the source's answer is not HTTP (12 bytes, then: illegal status line)", Cause.NOT_HTTP),
    ("host pb.invalid could not be resolved ([Errno -2] Name or service not known)", Cause.DNS_FAILED),
    (
        "host pb.example resolves to 10.0.0.5, a private or internal address: refused (set allow_private_targets "
        "to allow it)",
        Cause.PRIVATE_ADDRESS,
    ),
    ("URL scheme 'ftp' is refused: only http and https", Cause.BAD_URL),
    ("the request could not be sent: Illegal header value b'x\\n'", Cause.BAD_REQUEST),
    (
        "not sent: plugin 'signer' failed in prepare_request: KeyError: 'token'; retrying in 5 s",
        Cause.PLUGIN_FAILED,
    ),
    (
        "plugin 'macros' failed in resolve_macro for {zone}, so the next plugin or the built-in value was used",
        Cause.PLUGIN_FAILED,
    ),
    ("not sent: internal error: LookupError: unknown encoding: base64; retrying in 5 s", Cause.INTERNAL_ERROR),
    (
        "internal error while reading the answer: ValueError: x; not retried, as the source may have received the "
        "postback: resend it once the cause is fixed",
        Cause.INTERNAL_ERROR_SENT,
    ),
    (
        "not sent: the postback was queued 4.0 d ago, beyond the maximum age of 3.0 d; resend it to try again",
        Cause.MAX_AGE,
    ),
    (
        "waiting: source host pb.example is not answering since 12:00:00 UTC; next probe at 12:00:05 UTC; no attempt "
        "is spent meanwhile",
        Cause.HOST_NOT_ANSWERING,
    ),
    (
        "the source answered HTTP 200; recorded late: the claim had expired and was taken over, so this result did "
        "not change the delivery",
        Cause.LATE_RESULT,
    ),
    ("something no version ever wrote", None),
]


def test_upgrade_to_0007_gives_old_rows_their_cause_codes(any_database_url):
    engine = make_engine(any_database_url)
    migrate.upgrade(engine, "0006")
    now = time.time()
    with engine.begin() as conn:
        for n, (reason, _cause) in enumerate(OLD_REASONS, start=1):
            delivery_id = conn.execute(
                insert(t.deliveries).values(
                    conversion_id=n,
                    subid=f"s{n}",
                    status="sale",
                    rule_id="source:exo",
                    method="GET",
                    url="https://pb.example/x",
                    state="failed",
                    reason=reason,
                    created_at=now,
                    updated_at=now,
                )
            ).inserted_primary_key[0]
            conn.execute(
                insert(t.attempts).values(
                    delivery_id=delivery_id, attempt=1, outcome="failed", reason=reason, started_at=now, reported=True
                )
            )
        conn.execute(
            insert(t.deliveries).values(
                conversion_id=999,
                subid="q",
                status="sale",
                rule_id="source:exo",
                method="GET",
                url="https://pb.example/x",
                state="due",
                created_at=now,
                updated_at=now,
            )
        )
        for subid, reason in (
            ("e1", "first conversion of this click"),
            (
                "e2",
                "first conversion of this click; plugin 'rules' failed in postback_rules: RuntimeError: db down; "
                "its postback rules were not resolved",
            ),
        ):
            conn.execute(
                insert(t.events).values(subid=subid, status="sale", decision="new", reason=reason, created_at=now)
            )

    assert migrate.upgrade(engine) == ("0006", migrate.head_revision())
    with engine.connect() as conn:
        deliveries = dict(conn.execute(select(t.deliveries.c.reason, t.deliveries.c.cause)).all())
        attempts = dict(conn.execute(select(t.attempts.c.reason, t.attempts.c.cause)).all())
        events = dict(conn.execute(select(t.events.c.subid, t.events.c.cause)).all())
    expected = {reason: (str(cause) if cause else None) for reason, cause in OLD_REASONS}
    assert {r: deliveries[r] for r in expected} == expected
    assert attempts == expected
    assert deliveries[None] is None  # a queued delivery with nothing to say keeps no cause
    assert events == {"e1": None, "e2": "plugin_failed"}
    # Every code the catalogue has for a delivery or an attempt is placed from some old sentence.
    assert {cause for _reason, cause in OLD_REASONS if cause} == set(Cause)

    migrate.downgrade(engine, "0006")
    with engine.connect() as conn:
        assert conn.exec_driver_sql("SELECT count(*) FROM s2s_deliveries").scalar() == len(OLD_REASONS) + 1
    engine.dispose()
