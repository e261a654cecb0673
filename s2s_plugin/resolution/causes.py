"""Cause codes: why a postback was skipped, failed, retried, delayed or delivered, as stored data.

Every delivery (``s2s_deliveries.cause``), every attempt (``s2s_attempts.cause``, also
``PostbackAttempt.cause``) and every conversion event that a plugin's failure marked
(``s2s_events.cause``) carries one of these codes beside its ``reason`` sentence. The code is
what programs read (``explain``, stats, a host's log filters and metrics); the sentence, made
where the cause is found from the code's details, is what people read. Nothing reads a sentence
back to find its cause.

``CAUSES`` gives each code a short label for pages and the setting that fixes it, where one does
(``docs/delivery.md`` has the same table). The values are stored: never rename one; add new codes.

Adding one: a member here and its ``CAUSES`` entry; the code set where the cause is found, beside
its sentence (``PlannedPostback``, ``TargetCheck``, ``AttemptResult`` carry it to the writes); a
row in the docs' table (a test compares them); a scenario that produces it in
``tests/delivery/test_cause_codes.py`` (a test checks every code has one); and, if older versions
wrote its sentence, nothing more: migration 0007 already placed what they wrote.
"""

from __future__ import annotations

import dataclasses
import enum
from typing import Literal, Optional


class Cause(enum.StrEnum):
    """Why a postback was skipped, sent, retried, delayed or given up (stored as its value)."""

    # Skipped: resolution decided not to send (attempt 0).
    STATUS_NOT_ENABLED = "status_not_enabled"
    RULE_DISABLED = "rule_disabled"
    CLICK_UNKNOWN = "click_unknown"
    NO_CLICK_ID = "no_click_id"
    PAYOUT_BELOW_MINIMUM = "payout_below_minimum"
    BAD_URL = "bad_url"  # also refused before sending: no http(s) scheme, no host name, a bad port
    # A note on a postback queued all the same.
    UNKNOWN_MACRO = "unknown_macro"
    # The source answered.
    ACCEPTED = "accepted"
    PLUGIN_VERDICT = "plugin_verdict"
    SUCCESS_TEXT_MISSING = "success_text_missing"
    HTTP_REFUSED = "http_refused"
    HTTP_GONE = "http_gone"
    HTTP_RATE_LIMITED = "http_rate_limited"
    HTTP_REQUEST_TIMEOUT = "http_request_timeout"
    HTTP_SERVER_ERROR = "http_server_error"
    REDIRECT_NOT_FOLLOWED = "redirect_not_followed"
    REDIRECT_REFUSED = "redirect_refused"
    # No usable answer.
    TIMEOUT = "timeout"
    CONNECTION_FAILED = "connection_failed"
    TLS_FAILED = "tls_failed"
    NOT_HTTP = "not_http"
    DNS_FAILED = "dns_failed"
    # Refused before sending.
    PRIVATE_ADDRESS = "private_address"
    BAD_REQUEST = "bad_request"
    # The plugin, its plugins, time and hosts.
    PLUGIN_FAILED = "plugin_failed"
    INTERNAL_ERROR = "internal_error"
    INTERNAL_ERROR_SENT = "internal_error_sent"
    MAX_AGE = "max_age"
    HOST_NOT_ANSWERING = "host_not_answering"
    LATE_RESULT = "late_result"

    @property
    def info(self) -> CauseInfo:
        """The code's label and fix (``CAUSES[self]``)."""
        return CAUSES[self]

    @property
    def label(self) -> str:
        """A few words for a page: "Status not enabled"."""
        return CAUSES[self].label


#: Where the setting that fixes a cause lives: on the postback rule (a source's postback or a
#: campaign's S2S postback), on the traffic source's campaign link, in the delivery settings
#: (``install`` keywords, ``S2S_*`` variables), in the host's integration, in a third-party
#: plugin, or an action on the delivery itself (a resend).
FixScope = Literal["rule", "source", "settings", "host", "plugin", "delivery"]


@dataclasses.dataclass(frozen=True)
class Fix:
    """The setting that fixes a cause: ``setting`` (its name where it lives), ``scope`` (where it
    lives) and ``advice`` (what to do, one sentence).

    For the rule, the source and the host, ``setting`` is one of the names ``explain``'s fixes use
    (``ops.explaintree.SETTINGS``: ``postback_url``, ``statuses``, ``enabled``, ``payout``,
    ``campaign_link``, ``plugin``, ``click``), so a page links a cause to the place it is fixed;
    in the delivery settings it is the setting's keyword (``allow_private_targets``, ``timeout``...).
    """

    setting: str
    scope: FixScope
    advice: str


@dataclasses.dataclass(frozen=True)
class CauseInfo:
    """A cause for people: ``label`` (a few words), ``meaning`` (one sentence), and ``fix`` (None
    when nothing is to be changed: the source's own trouble, retried on its own)."""

    label: str
    meaning: str
    fix: Optional[Fix] = None


def _rule(setting: str, advice: str) -> Fix:
    return Fix(setting, "rule", advice)


def _settings(setting: str, advice: str) -> Fix:
    return Fix(setting, "settings", advice)


CAUSES: dict[Cause, CauseInfo] = {
    Cause.STATUS_NOT_ENABLED: CauseInfo(
        "Status not enabled",
        "The postback does not fire for the conversion's status (a choice, not a fault).",
        _rule("statuses", "Enable the status on the postback if the source should learn of it."),
    ),
    Cause.RULE_DISABLED: CauseInfo(
        "Postback disabled", "The postback is switched off.", _rule("enabled", "Enable the postback.")
    ),
    Cause.CLICK_UNKNOWN: CauseInfo(
        "Click unknown",
        "The plugin never saw the click the conversion is for.",
        Fix("click", "host", "Have the host call on_click for every click, or pass conversion.click."),
    ),
    Cause.NO_CLICK_ID: CauseInfo(
        "No click id",
        "The postback needs the source's click id, which the click did not carry.",
        Fix("campaign_link", "source", "Put the source's click-id macro in the campaign link the source sends."),
    ),
    Cause.PAYOUT_BELOW_MINIMUM: CauseInfo(
        "Payout below minimum",
        "The payout is below the postback's minimum payout.",
        _rule("payout", "Lower or clear the postback's minimum payout."),
    ),
    Cause.BAD_URL: CauseInfo(
        "Bad postback URL",
        "The URL is not an http(s) URL with a host name, or cannot be parsed.",
        _rule("postback_url", "Fix the postback URL."),
    ),
    Cause.UNKNOWN_MACRO: CauseInfo(
        "Unknown macro",
        "A macro in the postback is unknown and was sent empty.",
        _rule("postback_url", "Fix the macro's name in the postback URL or body."),
    ),
    Cause.ACCEPTED: CauseInfo("Delivered", "The source answered 2xx."),
    Cause.PLUGIN_VERDICT: CauseInfo(
        "Judged by a plugin", "A classify_response plugin judged the source's answer (see the response body)."
    ),
    Cause.SUCCESS_TEXT_MISSING: CauseInfo(
        "Success text missing",
        "The source answered 2xx without the text its template expects on success.",
        _rule("postback_url", "Read the source's answer: its parameters are likely wrong."),
    ),
    Cause.HTTP_REFUSED: CauseInfo(
        "Refused (HTTP 4xx)",
        "The source refused the postback with a 4xx answer.",
        _rule("postback_url", "Read the source's answer and fix the postback URL or its parameters."),
    ),
    Cause.HTTP_GONE: CauseInfo(
        "URL retired (HTTP 410)",
        "The source answered 410 Gone: the postback URL is retired; the rule is flagged.",
        _rule("postback_url", "Set the source's current postback URL."),
    ),
    Cause.HTTP_RATE_LIMITED: CauseInfo(
        "Rate limited (HTTP 429)",
        "The source asked to slow down; its Retry-After is honoured.",
        _settings("per_host_concurrency", "Lower per_host_concurrency if the source keeps asking."),
    ),
    Cause.HTTP_REQUEST_TIMEOUT: CauseInfo(
        "Source timed out (HTTP 408)", "The source answered 408 Request Timeout; retried."
    ),
    Cause.HTTP_SERVER_ERROR: CauseInfo(
        "Source error (HTTP 5xx)", "The source answered 5xx, a temporary error; retried."
    ),
    Cause.REDIRECT_NOT_FOLLOWED: CauseInfo(
        "Redirect not followed",
        "The source answered a redirect, and the postback does not follow redirects.",
        _rule("postback_url", "Point the postback at the URL it redirects to (or allow redirects for its template)."),
    ),
    Cause.REDIRECT_REFUSED: CauseInfo(
        "Redirect refused",
        "A redirect was refused: to http from https, a body to another origin, no Location, or too many.",
        _rule("postback_url", "Point the postback at the URL it redirects to."),
    ),
    Cause.TIMEOUT: CauseInfo(
        "Timeout",
        "The source did not answer within the timeout; retried.",
        _settings("timeout", "Raise timeout only if the source is known to be slow."),
    ),
    Cause.CONNECTION_FAILED: CauseInfo(
        "Connection failed", "The source could not be reached, or the connection broke; retried."
    ),
    Cause.TLS_FAILED: CauseInfo(
        "TLS failed",
        "The TLS handshake with the source failed (a certificate or protocol problem); retried.",
        _rule("postback_url", "Check the postback URL's host name and scheme."),
    ),
    Cause.NOT_HTTP: CauseInfo("Not HTTP", "The source's answer is not HTTP; retried."),
    Cause.DNS_FAILED: CauseInfo(
        "Host not found",
        "The postback URL's host name did not resolve; retried.",
        _rule("postback_url", "Check the host name in the postback URL."),
    ),
    Cause.PRIVATE_ADDRESS: CauseInfo(
        "Private address refused",
        "The host resolves to a private, loopback, link-local or metadata address.",
        _settings("allow_private_targets", "Set allow_private_targets only for tests and demos."),
    ),
    Cause.BAD_REQUEST: CauseInfo(
        "Request not sendable",
        "The request could not be sent as it is (an invalid header or URL).",
        _rule("postback_url", "Fix the postback's headers or URL."),
    ),
    Cause.PLUGIN_FAILED: CauseInfo(
        "A plugin failed",
        "A third-party plugin raised or answered wrongly (named in the reason).",
        Fix("plugin", "plugin", "Fix or remove the plugin (s2s-postback plugins lists them)."),
    ),
    Cause.INTERNAL_ERROR: CauseInfo(
        "Internal error (not sent)", "An error in the plugin before anything was sent; retried."
    ),
    Cause.INTERNAL_ERROR_SENT: CauseInfo(
        "Internal error (maybe sent)",
        "An error in the plugin after the request may have reached the source; not retried.",
        Fix("resend", "delivery", "Resend the postback once the cause is fixed."),
    ),
    Cause.MAX_AGE: CauseInfo(
        "Too old (max_age)",
        "The postback became older than max_age before it could be sent.",
        _settings("max_age", "Resend it, or raise max_age."),
    ),
    Cause.HOST_NOT_ANSWERING: CauseInfo(
        "Source host not answering",
        "The source's host failed repeatedly: its postbacks wait for a probe without spending attempts.",
    ),
    Cause.LATE_RESULT: CauseInfo(
        "Recorded late",
        "The attempt outlived its claim, which another worker took over; logged without changing the delivery.",
        _settings("lease_seconds", "Raise lease_seconds above the longest attempt."),
    ),
}


def cause_of(value: Optional[str]) -> Optional[Cause]:
    """The ``Cause`` of a stored code; None for None or a code this version does not know."""
    if value is None:
        return None
    try:
        return Cause(value)
    except ValueError:
        return None
