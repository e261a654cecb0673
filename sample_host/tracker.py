"""The sample tracker: its database, its plugin manager, and the domain operations web and CLI share.

The postback plugin is installed through the hooks like any third-party host would install it: the
tracker records clicks and conversions in its own tables first, then calls ``on_click`` and
``on_conversion``; the plugin reports every attempt back through ``on_postback_sent``.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hmac
import logging
import re
import secrets
import urllib.parse
from collections.abc import Mapping, Sequence
from decimal import Decimal
from typing import Any, Optional

import sqlalchemy as sa

import hookspecs
import s2s_plugin
from hookspecs import Click, Conversion, PostbackRule
from s2s_plugin.plugins import load_report, make_plugin_manager

from . import credentials, db
from .credentials import Credentials
from .errors import Forbidden, HostError, NotFound
from .hostplugin import ATTEMPT_FIELDS, SentPostbacksLog
from .inbound import parse_postback

log = logging.getLogger(__name__)

_ALIAS = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")

#: Delivery settings passed through to ``s2s_plugin.install`` (names fixed by the plugin).
DELIVERY_SETTINGS = (
    "retry_schedule",
    "connect_timeout",
    "timeout",
    "max_concurrency",
    "per_host_concurrency",
)


@dataclasses.dataclass(frozen=True)
class Receipt:
    """The host's answer to an inbound postback: HTTP status and a one-line plain-text body."""

    http_status: int
    text: str
    conversion_id: Optional[int] = None


def new_subid() -> str:
    """A fresh click id: 16 hex characters, unguessable, safe in any URL."""
    return secrets.token_hex(8)


def _jsonable(value: Any) -> Any:
    if isinstance(value, dt.datetime):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, Mapping):
        return {k: _jsonable(v) for k, v in value.items()}
    return value


def rule_to_dict(rule: PostbackRule) -> dict[str, Any]:
    """A postback rule (a source's or a campaign's postback) as JSON-ready values."""
    return _jsonable(dataclasses.asdict(rule))


def _row_dict(row: Any) -> dict[str, Any]:
    return _jsonable(dict(row._mapping))


def _check_http_url(url: str, what: str) -> str:
    url = (url or "").strip()
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise HostError(f"{what} {url!r} is not an http:// or https:// URL")
    return url


class Tracker:
    """One tracker instance: database, plugin manager (``pm``) and postback service (``s2s``).

    :param database_url: SQLAlchemy URL shared by the host's tables and the plugin's ``s2s_`` tables.
    :param allow_private_targets: let postbacks go to loopback and private addresses (demo, tests).
    :param delivery: ``retry_schedule``, ``connect_timeout``, ``timeout``, ``max_concurrency``,
        ``per_host_concurrency``, passed to ``s2s_plugin.install``.
    """

    def __init__(
        self,
        database_url: str,
        *,
        allow_private_targets: bool = False,
        load_plugins: bool = True,
        **delivery: Any,
    ) -> None:
        unknown = set(delivery) - set(DELIVERY_SETTINGS)
        if unknown:
            raise TypeError(f"unknown delivery settings: {', '.join(sorted(unknown))}")
        self.database_url = database_url
        self.engine = db.make_engine(database_url)
        db.create_tables(self.engine)
        self.sent_log = SentPostbacksLog(self.engine)
        # The pluggy way: the hook contract, the installed third-party plugins (a broken one is
        # skipped with a warning; S2S_PLUGINS_STRICT, S2S_DISABLE_PLUGINS), then the host's own.
        self.pm = make_plugin_manager(load_entrypoints=load_plugins, builtins={"sample_host": self.sent_log})
        self.plugins = [info.name for info in load_report(self.pm).loaded]
        self.s2s = s2s_plugin.install(
            self.pm,
            database_url=database_url,
            allow_private_targets=allow_private_targets,
            **{k: v for k, v in delivery.items() if v is not None},
        )
        # A misspelt hook name in any registered plugin fails here, loudly, not silently later.
        self.pm.check_pending()

    # --- lifecycle --------------------------------------------------------------------------

    def init(self) -> Credentials:
        """Create the secrets if this database has none; the admin password is set only then."""
        return credentials.ensure(self.engine)

    def credentials(self) -> Credentials:
        """The API token and postback key, created on first use."""
        return credentials.ensure(self.engine)

    def close(self) -> None:
        """Stop the delivery dispatcher (if started) and release the database."""
        try:
            self.s2s.close()
        finally:
            self.engine.dispose()

    def __enter__(self) -> "Tracker":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    # --- sources, campaigns, postbacks -------------------------------------------------------

    def add_source(
        self,
        source_id: str,
        *,
        template: Optional[str] = None,
        postback_url: Optional[str] = None,
        statuses: Optional[Sequence[str]] = None,
        method: Optional[str] = None,
    ) -> PostbackRule:
        """Add or update a traffic source and its postback (from a template, a URL, or both)."""
        if not _ALIAS.match(source_id or ""):
            raise HostError(f"source id {source_id!r} must be letters, digits, '_', '-' or '.'")
        if not template and not postback_url:
            raise HostError("give the source a --template or a --postback-url")
        if postback_url:
            _check_http_url(postback_url, "postback URL")
        if template and template not in self.s2s.templates():
            raise NotFound(f"unknown template {template!r}: `sample-host sources templates` lists them")
        kwargs: dict[str, Any] = {"template": template, "postback_url": postback_url}
        if statuses:
            kwargs["statuses"] = list(statuses)
        if method:
            kwargs["method"] = method.upper()
        try:
            return self.s2s.add_source(source_id, **kwargs)
        except ValueError as exc:
            raise HostError(str(exc)) from None

    def sources(self) -> list[PostbackRule]:
        """Every traffic source with its postback rule."""
        return list(self.s2s.sources())

    def templates(self) -> dict[str, hookspecs.SourceTemplate]:
        """The source template library (built-in and from plugins), by name."""
        return dict(self.s2s.templates())

    def add_campaign(
        self, alias: str, *, source_id: Optional[str], offer_url: str, name: Optional[str] = None
    ) -> dict[str, Any]:
        """Add or update a campaign; its link is ``/c/{alias}``, its offer URL may use ``{subid}``."""
        if not _ALIAS.match(alias or ""):
            raise HostError(f"campaign alias {alias!r} must be letters, digits, '_', '-' or '.'")
        offer_url = _check_http_url(offer_url, "offer URL")
        if source_id and self.s2s.source(source_id) is None:
            raise NotFound(f"unknown source {source_id!r}: add it first with `sample-host sources add`")
        values = {"name": name or alias, "source_id": source_id or None, "offer_url": offer_url}
        with self.engine.begin() as conn:
            updated = conn.execute(
                sa.update(db.campaigns).where(db.campaigns.c.alias == alias).values(**values)
            ).rowcount
            if not updated:
                conn.execute(sa.insert(db.campaigns).values(alias=alias, created_at=db.utcnow(), **values))
        return self.campaign(alias)

    def campaign(self, alias: str) -> dict[str, Any]:
        """One campaign as a dict; raises ``NotFound``."""
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(db.campaigns).where(db.campaigns.c.alias == alias)).first()
        if row is None:
            raise NotFound(f"unknown campaign {alias!r}")
        return _row_dict(row)

    def campaigns(self) -> list[dict[str, Any]]:
        """Every campaign, oldest first."""
        with self.engine.connect() as conn:
            rows = conn.execute(sa.select(db.campaigns).order_by(db.campaigns.c.created_at))
            return [_row_dict(r) for r in rows]

    def campaign_link(self, alias: str, base_url: str) -> str:
        """The link to give the campaign's traffic source, with the source's click-id macro."""
        campaign = self.campaign(alias)
        base_url = base_url.rstrip("/")
        if campaign["source_id"]:
            try:
                return self.s2s.campaign_link(campaign["source_id"], base_url=base_url, campaign_alias=alias)
            except Exception:  # noqa: BLE001  (a link is a convenience; fall back to the bare one)
                log.exception("no campaign link for source %r", campaign["source_id"])
        return f"{base_url}/c/{urllib.parse.quote(alias)}"

    def add_postback(
        self,
        alias: str,
        *,
        url: str,
        method: str = "GET",
        statuses: Optional[Sequence[str]] = None,
    ) -> PostbackRule:
        """Add an S2S postback to a campaign; it fires for the given statuses (default all)."""
        self.campaign(alias)
        _check_http_url(url, "postback URL")
        method = (method or "GET").upper()
        if method not in ("GET", "POST"):
            raise HostError(f"method {method!r} must be GET or POST")
        kwargs: dict[str, Any] = {"url": url, "method": method}
        if statuses:
            kwargs["statuses"] = list(statuses)
        try:
            return self.s2s.add_postback(alias, **kwargs)
        except ValueError as exc:
            raise HostError(str(exc)) from None

    def postbacks(self, alias: Optional[str] = None) -> list[PostbackRule]:
        """The campaigns' S2S postbacks, of one campaign when ``alias`` is given."""
        if alias is not None:
            self.campaign(alias)
        return list(self.s2s.postbacks(campaign_id=alias))

    def remove_postback(self, postback_id: str) -> None:
        """Delete a campaign's S2S postback by id (``postback:3`` or ``3``)."""
        if not postback_id.startswith("postback:"):
            postback_id = f"postback:{postback_id}"
        if not any(rule.id == postback_id for rule in self.s2s.postbacks(campaign_id=None)):
            raise NotFound(f"unknown postback {postback_id!r}")
        self.s2s.remove_postback(postback_id)

    # --- clicks and conversions --------------------------------------------------------------

    def record_click(
        self,
        alias: str,
        params: Mapping[str, str],
        *,
        ip: Optional[str] = None,
        user_agent: Optional[str] = None,
    ) -> tuple[Click, str]:
        """Record a click on a campaign link and tell the plugins; return it and its redirect URL.

        The offer URL's ``{subid}`` is replaced by the new click's subid, URL-encoded.
        """
        campaign = self.campaign(alias)
        click = Click(
            subid=new_subid(),
            campaign_id=alias,
            source_id=campaign["source_id"],
            params={str(k): str(v) for k, v in params.items()},
            created_at=db.utcnow(),
            ip=ip,
            user_agent=user_agent,
            campaign_name=campaign["name"],
        )
        with self.engine.begin() as conn:
            conn.execute(
                sa.insert(db.clicks).values(
                    subid=click.subid,
                    campaign=alias,
                    source=click.source_id,
                    params=dict(click.params),
                    ip=ip,
                    ua=user_agent,
                    created_at=click.created_at,
                )
            )
        try:
            self.pm.hook.on_click(click=click)
        except Exception:  # noqa: BLE001
            # The click is recorded and every conversion carries it to the plugin again, so a
            # failing plugin must not cost the visitor their redirect.
            log.exception("on_click failed for subid %s", click.subid)
        redirect = campaign["offer_url"].replace("{subid}", urllib.parse.quote(click.subid, safe=""))
        return click, redirect

    def click(self, subid: str) -> Click:
        """The recorded click with this subid; raises ``NotFound``."""
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(db.clicks).where(db.clicks.c.subid == subid)).first()
            campaign_name = None
            if row is not None:
                campaign_name = conn.execute(
                    sa.select(db.campaigns.c.name).where(db.campaigns.c.alias == row.campaign)
                ).scalar()
        if row is None:
            raise NotFound(f"unknown subid {subid!r}: no click was recorded with it")
        return Click(
            subid=row.subid,
            campaign_id=row.campaign,
            source_id=row.source,
            params=dict(row.params or {}),
            created_at=row.created_at,
            ip=row.ip,
            user_agent=row.ua,
            campaign_name=campaign_name,
        )

    def receive_postback(
        self,
        postback_key: str,
        params: Mapping[str, str],
        *,
        method: str = "GET",
        ip: Optional[str] = None,
    ) -> Receipt:
        """Handle a conversion postback from an affiliate network; every call lands in the
        Received postbacks log.

        A valid conversion is stored in the host's tables before ``on_conversion`` is called, so a
        failing plugin cannot lose it; the network is then asked to send it again (503), which the
        plugin's once-per-status rule makes harmless.
        """
        params = {str(k): str(v) for k, v in params.items()}
        record = {
            "received_at": db.utcnow(),
            "method": method.upper()[:8],
            "subid": (params.get("subid") or None),
            "status": params.get("status"),
            "params": params,
            "ip": ip,
        }
        try:
            expected = self.credentials().postback_key
            if not hmac.compare_digest(postback_key.encode(), expected.encode()):
                raise Forbidden("wrong postback key: use the postback URL shown by `sample-host init`")
            inbound = parse_postback(params)
            click = self.click(inbound.subid)
        except HostError as exc:
            self._log_received(record, "rejected", exc.http_status, str(exc))
            return Receipt(exc.http_status, str(exc))

        if inbound.status is None:
            reason = f"status {inbound.original_status!r} is ignored (ignore_status)"
            self._log_received(record, "ignored", 200, reason)
            return Receipt(200, f"OK: {reason}")

        conversion = Conversion(
            subid=inbound.subid,
            status=inbound.status,
            payout=inbound.payout,
            currency=inbound.currency,
            tid=inbound.tid,
            original_status=inbound.original_status,
            params=inbound.params,
            created_at=db.utcnow(),
            click=click,
        )
        with self.engine.begin() as conn:
            conversion_id = conn.execute(
                sa.insert(db.conversions).values(
                    subid=conversion.subid,
                    tid=conversion.tid,
                    status=conversion.status,
                    original_status=conversion.original_status,
                    payout=None if conversion.payout is None else str(conversion.payout),
                    currency=conversion.currency,
                    params=dict(conversion.params),
                    created_at=conversion.created_at,
                )
            ).inserted_primary_key[0]
            received_id = conn.execute(
                sa.insert(db.received_postbacks).values(
                    **record, outcome="accepted", http_status=200, conversion_id=conversion_id,
                    reason=f"{conversion.status} recorded",
                )
            ).inserted_primary_key[0]
        try:
            self.pm.hook.on_conversion(conversion=conversion)
        except Exception as exc:  # noqa: BLE001
            log.exception("on_conversion failed for subid %s", conversion.subid)
            reason = "conversion recorded but its postbacks could not be queued; send it again later"
            with self.engine.begin() as conn:
                conn.execute(
                    sa.update(db.received_postbacks)
                    .where(db.received_postbacks.c.id == received_id)
                    .values(outcome="error", http_status=503, reason=f"{reason} ({type(exc).__name__})")
                )
            return Receipt(503, reason, conversion_id)
        return Receipt(200, "OK", conversion_id)

    def reject_postback(
        self,
        error: HostError,
        params: Mapping[str, str],
        *,
        method: str = "GET",
        ip: Optional[str] = None,
    ) -> Receipt:
        """Log an inbound postback refused before its parameters could be read (a bad body)."""
        params = {str(k): str(v) for k, v in params.items()}
        record = {
            "received_at": db.utcnow(),
            "method": method.upper()[:8],
            "subid": params.get("subid") or None,
            "status": params.get("status"),
            "params": params,
            "ip": ip,
        }
        self._log_received(record, "rejected", error.http_status, str(error))
        return Receipt(error.http_status, str(error))

    def _log_received(self, record: dict[str, Any], outcome: str, http_status: int, reason: str) -> None:
        with self.engine.begin() as conn:
            conn.execute(
                sa.insert(db.received_postbacks).values(
                    **record, outcome=outcome, http_status=http_status, reason=reason
                )
            )

    def conversions(self, subid: Optional[str] = None, limit: int = 100) -> list[dict[str, Any]]:
        """Recorded conversions (every accepted status change), newest first."""
        query = sa.select(db.conversions).order_by(db.conversions.c.id.desc()).limit(limit)
        if subid:
            query = query.where(db.conversions.c.subid == subid)
        with self.engine.connect() as conn:
            return [_row_dict(r) for r in conn.execute(query)]

    # --- logs and operations -----------------------------------------------------------------

    def sent_postbacks(
        self,
        *,
        subid: Optional[str] = None,
        outcome: Optional[str] = None,
        source: Optional[str] = None,
        since: Optional[dt.datetime] = None,
        until: Optional[dt.datetime] = None,
        limit: int = 100,
    ) -> list[dict[str, Any]]:
        """The Sent postbacks log, oldest first (the last ``limit`` entries matching the filters).

        Each entry has every ``PostbackAttempt`` field plus ``id`` and ``logged_at``.
        """
        if outcome and outcome not in hookspecs.OUTCOMES:
            raise HostError(f"outcome {outcome!r} must be one of {', '.join(hookspecs.OUTCOMES)}")
        table = db.sent_postbacks
        query = sa.select(table).order_by(table.c.id.desc()).limit(max(1, min(limit, 10_000)))
        if subid:
            query = query.where(table.c.subid == subid)
        if outcome:
            query = query.where(table.c.outcome == outcome)
        if source:
            query = query.where(table.c.source_id == source)
        if since:
            query = query.where(table.c.logged_at >= since)
        if until:
            query = query.where(table.c.logged_at < until)
        with self.engine.connect() as conn:
            rows = list(conn.execute(query))
        rows.reverse()
        fields = ("id",) + ATTEMPT_FIELDS + ("logged_at",)
        return [{name: _jsonable(row._mapping.get(name)) for name in fields} for row in rows]

    def received_postbacks(
        self, *, subid: Optional[str] = None, outcome: Optional[str] = None, limit: int = 100
    ) -> list[dict[str, Any]]:
        """The Received postbacks log, newest first: every inbound postback and what became of it."""
        table = db.received_postbacks
        query = sa.select(table).order_by(table.c.id.desc()).limit(max(1, min(limit, 10_000)))
        if subid:
            query = query.where(table.c.subid == subid)
        if outcome:
            query = query.where(table.c.outcome == outcome)
        with self.engine.connect() as conn:
            return [_row_dict(r) for r in conn.execute(query)]

    def explain(self, subid: str) -> Any:
        """Why each postback for this click was sent, retried, skipped or failed (plugin's
        ``Explanation``: ``str()`` for text, ``.to_dict()`` for JSON)."""
        self.click(subid)
        return self.s2s.explain(subid)

    def resend(self, delivery_id: int) -> None:
        """Make a delivery due again now (the dispatcher or the next ``drain`` sends it)."""
        try:
            done = self.s2s.resend(delivery_id)
        except ValueError as exc:
            raise HostError(str(exc)) from None
        if not done:
            raise NotFound(f"unknown delivery {delivery_id}, or it cannot be sent again")
