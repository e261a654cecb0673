"""The inbound postback endpoint's logic: who may send, what is read, what is recorded, what is
answered. Every request ends in the Received postbacks log (refused probes counted, see
``refusals``), and every valid conversion is stored before anything else can fail.
"""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import logging
import re
from collections.abc import Callable, Mapping
from typing import Any, Optional

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from hookspecs import Click, Conversion

from . import db, inbound_settings
from .errors import Forbidden, HostError
from .handoff import Handoffs
from .inbound import parse_postback
from .refusals import ADDRESS_NOT_ALLOWED, WRONG_KEY, RefusalLog

log = logging.getLogger(__name__)

#: Inbound ``sub_id_N`` parameters update the click's own (Keitaro does the same).
_SUB_ID = re.compile(r"^sub_id_([1-9]|[12][0-9]|30)$")

#: What the Received postbacks log keeps of a request's parameters: enough to debug, bounded.
_LOGGED_PARAMS = 50
_LOGGED_VALUE = 300


@dataclasses.dataclass(frozen=True)
class Receipt:
    """The host's answer to an inbound postback: HTTP status and a one-line plain-text body."""

    http_status: int
    text: str
    conversion_id: Optional[int] = None


def _clip(value: Any, size: int) -> Optional[str]:
    if value is None or value == "":
        return None
    text = str(value).replace("\x00", "\ufffd")  # PostgreSQL stores no NUL: the log shows where it was
    return text if len(text) <= size else text[: size - 1] + "…"


def logged_params(params: Mapping[str, str]) -> dict[str, str]:
    """The parameters as the log keeps them: at most 50, names and values clipped."""
    kept = list(params.items())[:_LOGGED_PARAMS]
    return {(_clip(k, 100) or ""): (_clip(v, _LOGGED_VALUE) or "") for k, v in kept}


def success_text(settings: inbound_settings.InboundSettings, params: Mapping[str, str]) -> str:
    """The answer to an accepted postback: the request's ``return=`` (Keitaro's custom success
    message), else the configured response text."""
    wanted = params.get("return")
    return inbound_settings.clean_response_text(wanted) if wanted and wanted.strip() else settings.response_text


def repeat_key(subid: str, status: str, tid: Optional[str]) -> str:
    """What makes an inbound conversion the same as one already recorded: its click, its status
    and the network's transaction id (none counts as one value). Payout and other parameters do
    not count: a network retrying its postback may round or reformat them."""
    return hashlib.sha256("\x1f".join((subid, status, tid or "")).encode()).hexdigest()


class Receiver:
    """Reads inbound postbacks for one tracker.

    :param postback_key: the current key (read per request: ``init`` may create it later).
    :param load_click: the recorded click for a subid; raises ``NotFound``.
    """

    def __init__(
        self,
        engine: Engine,
        *,
        postback_key: Callable[[], str],
        load_click: Callable[[str], Click],
        handoffs: Handoffs,
        refusals: RefusalLog,
    ) -> None:
        self._engine = engine
        self._postback_key = postback_key
        self._load_click = load_click
        self.handoffs = handoffs
        self.refusals = refusals

    def settings(self) -> inbound_settings.InboundSettings:
        """The endpoint's current settings."""
        return inbound_settings.load(self._engine)

    def refuse(
        self, postback_key: str, *, ip: Optional[str], method: str = "GET", params: Optional[Mapping[str, str]] = None
    ) -> Optional[Receipt]:
        """The answer for a request that may not be read at all (address not allowed, wrong key),
        or None when it may. Checked before the body is read."""
        address = ip or "unknown"
        if not self.settings().allows(ip):
            error = Forbidden(f"address {address} may not send postbacks: it is not in the tracker's allow-list")
            return self._refused(ADDRESS_NOT_ALLOWED, address, error, method, params or {})
        expected = self._postback_key()
        if not hmac.compare_digest(postback_key.encode(), expected.encode()):
            error = Forbidden("wrong postback key: use the postback URL shown by `sample-host init`")
            return self._refused(WRONG_KEY, address, error, method, params or {})
        return None

    def _refused(self, kind: str, ip: str, error: HostError, method: str, params: Mapping[str, str]) -> Receipt:
        if self.refusals.throttle(ip):
            return Receipt(429, "too many refused postbacks from this address: slow down")
        if self.refusals.record(kind, ip):
            self._log(self._record(params, method, ip), "rejected", error.http_status, str(error))
        return Receipt(error.http_status, str(error))

    def receive(
        self, postback_key: str, params: Mapping[str, str], *, method: str = "GET", ip: Optional[str] = None
    ) -> Receipt:
        """Handle one conversion postback from an affiliate network.

        The conversion is stored (with its hand-over mark) before the plugin is called, so a
        failing plugin never loses it: the network gets its success answer, and the tracker hands
        the conversion over again on its own (see ``handoff``).
        """
        params = {str(k): str(v) for k, v in params.items()}
        refused = self.refuse(postback_key, ip=ip, method=method, params=params)
        if refused is not None:
            return refused
        record = self._record(params, method, ip)
        settings = self.settings()
        try:
            inbound = parse_postback(params)
            click = self._load_click(inbound.subid)
        except HostError as exc:
            self._log(record, "rejected", exc.http_status, str(exc))
            return Receipt(exc.http_status, str(exc))

        if inbound.status is None:
            reason = f"status {inbound.original_status!r} is ignored (ignore_status)"
            self._log(record, "ignored", 200, reason)
            answer = success_text(settings, params) if params.get("return") else f"{settings.response_text}: {reason}"
            return Receipt(200, answer)

        click = self._update_sub_ids(click, inbound.params)
        conversion = Conversion(
            subid=inbound.subid,
            status=inbound.status,
            payout=inbound.payout,
            currency=inbound.currency,
            tid=inbound.tid,
            original_status=inbound.original_status,
            params=inbound.params,
            # {conversion_datetime} and {date:...} are the network's time when it says when.
            created_at=inbound.converted_at or db.utcnow(),
            click=click,
        )
        stored = self._store(conversion, record, converted=inbound.converted_at is not None)
        if stored.repeat_of is not None:
            reason = f"repeat of conversion #{stored.repeat_of} (same subid, status and tid): not recorded again"
            self._log(record, "ignored", 200, reason, conversion_id=stored.repeat_of)
            # The network's retry is a good moment to try a conversion still waiting for the plugin.
            self.handoffs.hand_over(conversion.subid)
            return Receipt(200, success_text(settings, params), stored.repeat_of)
        handed = self.handoffs.hand_over(conversion.subid)
        if not handed.complete:
            reason = (
                f"{conversion.status} recorded; the postback plugin did not take it yet ({handed.error}): "
                "the tracker hands it over again on its own"
            )
            with self._engine.begin() as conn:
                conn.execute(
                    sa.update(db.received_postbacks)
                    .where(db.received_postbacks.c.id == stored.received_id)
                    .values(reason=reason)
                )
        return Receipt(200, success_text(settings, params), stored.conversion_id)

    def _store(self, conversion: Conversion, record: dict[str, Any], converted: bool = False) -> _Stored:
        """Record a conversion with its hand-over mark and its log entry, in one transaction, or
        find the one it repeats. Two copies arriving at once meet at the unique key: the one that
        loses finds the other's row."""
        key = repeat_key(conversion.subid, conversion.status, conversion.tid)
        table = db.conversions
        for _ in range(2):
            with self._engine.connect() as conn:
                existing = conn.execute(sa.select(table.c.id).where(table.c.repeat_key == key)).scalar()
            if existing is not None:
                return _Stored(conversion_id=existing, repeat_of=existing)
            try:
                with self._engine.begin() as conn:
                    conversion_id = conn.execute(
                        sa.insert(table).values(
                            subid=conversion.subid,
                            tid=conversion.tid,
                            status=conversion.status,
                            original_status=conversion.original_status,
                            payout=None if conversion.payout is None else str(conversion.payout),
                            currency=conversion.currency,
                            params=dict(conversion.params),
                            created_at=db.utcnow() if converted else conversion.created_at,
                            converted_at=conversion.created_at if converted else None,
                            repeat_key=key,
                        )
                    ).inserted_primary_key[0]
                    Handoffs.mark(conn, conversion_id, conversion.subid)
                    received_id = conn.execute(
                        sa.insert(db.received_postbacks).values(
                            **record,
                            outcome="accepted",
                            http_status=200,
                            conversion_id=conversion_id,
                            reason=f"{conversion.status} recorded"
                            + (
                                f" (converted at {conversion.created_at:%Y-%m-%d %H:%M:%S} UTC, the network says)"
                                if converted
                                else ""
                            ),
                        )
                    ).inserted_primary_key[0]
                return _Stored(conversion_id=conversion_id, received_id=received_id)
            except sa.exc.IntegrityError:
                continue  # the same conversion was recorded meanwhile: the next pass finds it
        raise RuntimeError(f"conversion {key} neither recorded nor found")

    def reject(
        self, error: HostError, params: Mapping[str, str], *, method: str = "GET", ip: Optional[str] = None
    ) -> Receipt:
        """Log an inbound postback whose parameters could not be read (a bad body)."""
        params = {str(k): str(v) for k, v in params.items()}
        self._log(self._record(params, method, ip), "rejected", error.http_status, str(error))
        return Receipt(error.http_status, str(error))

    def _update_sub_ids(self, click: Click, params: Mapping[str, str]) -> Click:
        updates = {name: value for name, value in params.items() if _SUB_ID.match(name) and value.strip()}
        if not updates or all(click.params.get(k) == v for k, v in updates.items()):
            return click
        merged = {**click.params, **updates}
        with self._engine.begin() as conn:
            conn.execute(sa.update(db.clicks).where(db.clicks.c.subid == click.subid).values(params=merged))
        return dataclasses.replace(click, params=merged)

    @staticmethod
    def _record(params: Mapping[str, str], method: str, ip: Optional[str]) -> dict[str, Any]:
        return {
            "received_at": db.utcnow(),
            "method": method.upper()[:8],
            "subid": _clip(params.get("subid"), 200),
            "status": _clip(params.get("status"), 100),
            "params": logged_params(params),
            "ip": _clip(ip, 64),
        }

    def _log(
        self, record: dict[str, Any], outcome: str, http_status: int, reason: str, conversion_id: Optional[int] = None
    ) -> None:
        with self._engine.begin() as conn:
            conn.execute(
                sa.insert(db.received_postbacks).values(
                    **record, outcome=outcome, http_status=http_status, reason=reason, conversion_id=conversion_id
                )
            )


@dataclasses.dataclass(frozen=True)
class _Stored:
    """Where an accepted conversion went: its row, and whether it repeats one recorded before."""

    conversion_id: int
    received_id: Optional[int] = None
    repeat_of: Optional[int] = None
