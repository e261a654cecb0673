"""The sample tracker: its database, its plugin manager, and the domain operations web and CLI share.

The postback plugin is installed through the hooks like any third-party host would install it: the
tracker records clicks and conversions in its own tables first, then calls ``on_click`` and
``on_conversion``; the plugin reports every attempt back through ``on_postback_sent``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import logging
import os
import re
import secrets
import urllib.parse
from collections.abc import Iterator, Mapping, Sequence
from decimal import Decimal
from typing import Any, Optional

import sqlalchemy as sa

import hookspecs
import s2s_plugin
from hookspecs import Click, PostbackRule
from s2s_plugin.errors import ConfigError
from s2s_plugin.hooks.plugins import load_report, make_plugin_manager
from s2s_plugin.resolution.ruleid import RuleId

from . import credentials, db, inbound_settings, rulesettings, visitors
from .credentials import Credentials
from .errors import Conflict, HostError, NotFound
from .handoff import Handed, Handoffs, describe_waiting
from .hostplugin import ATTEMPT_FIELDS, SentPostbacksLog
from .inbound_settings import InboundSettings
from .logs import LogPage, ReceivedFilter, SentFilter, read_page
from .params import row_id_in_range
from .receiving import Receipt, Receiver
from .refusals import RefusalLog

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


def new_subid() -> str:
    """A fresh click id: 16 hex characters, unguessable, safe in any URL."""
    return secrets.token_hex(8)


def jsonable(value: Any) -> Any:
    """Rows and values as JSON-ready types: times as ISO 8601 text, decimals as text."""
    if isinstance(value, dt.datetime):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, Mapping):
        return {k: jsonable(v) for k, v in value.items()}
    return value


def rule_to_dict(rule: PostbackRule) -> dict[str, Any]:
    """A postback rule (a source's or a campaign's postback) as JSON-ready values, with its
    ``content_type`` (the ``Content-Type`` among its headers, "" for none)."""
    return jsonable({**dataclasses.asdict(rule), "content_type": rulesettings.content_type_of(rule)})


def _row_dict(row: Any) -> dict[str, Any]:
    return jsonable(dict(row._mapping))


def _postback_id(postback_id: str) -> str:
    try:
        return str(RuleId.campaign_postback(postback_id))
    except ConfigError:
        return postback_id  # not a campaign postback id: looked up as given, and not found


def _postback_settings(**settings: Any) -> dict[str, Any]:
    """A campaign postback's settings, checked the way the host checks them (URL, method, body,
    content type), as the plugin's ``add_postback`` and ``update_postback`` take them."""
    _check_http_url(settings["url"], "postback URL", fixed_host=True)
    method = (settings.get("method") or "GET").upper()
    if method not in ("GET", "POST"):
        raise HostError(f"method {method!r} must be GET or POST")
    content_type = rulesettings.check_content_type(settings.pop("content_type", None))
    headers = rulesettings.headers_with(settings.pop("headers", None) or {}, content_type)
    return {
        **settings,
        "url": settings["url"].strip(),
        "method": method,
        "statuses": list(settings.get("statuses") or ()),
        "payout_mode": settings.get("payout_mode") or "real",
        "body": rulesettings.check_body(method, settings.get("body")),
        "headers": headers,
        "follow_redirects": bool(settings.get("follow_redirects")),
    }


_SENT_FIELDS = ("id",) + ATTEMPT_FIELDS + ("logged_at", "response_truncated")


@contextlib.contextmanager
def _refused_as_host_error() -> Iterator[None]:
    """The plugin refuses a setting or an operation with a ``ValueError`` whose message says why:
    the tracker's callers (pages, API, command line) show it as a ``HostError``, a 4xx."""
    try:
        yield
    except ValueError as exc:
        raise HostError(str(exc)) from None


def _sent_entry(row: Mapping[str, Any]) -> dict[str, Any]:
    return {name: jsonable(row.get(name)) for name in _SENT_FIELDS}


def _check_http_url(url: str, what: str, *, fixed_host: bool = False) -> str:
    """``url`` stripped, if it is an http(s) URL with a host (and a valid port).

    :param fixed_host: refuse a macro in the host name (a postback URL's values are the click's
        and the network's: they must never choose where the postback goes).
    """
    url = (url or "").strip()
    try:
        parts = urllib.parse.urlsplit(url)
        _ = parts.port  # raises for a port that is not a number from 0 to 65535
    except ValueError:
        raise HostError(f"{what} {url!r} is not an http:// or https:// URL: it cannot be parsed") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise HostError(f"{what} {url!r} is not an http:// or https:// URL")
    if fixed_host and ("{" in parts.netloc or "}" in parts.netloc):
        raise HostError(f"{what} {url!r} has a macro in its host: write the source's own host name there")
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
        geoip_database: Optional[str] = None,
        **delivery: Any,
    ) -> None:
        unknown = set(delivery) - set(DELIVERY_SETTINGS)
        if unknown:
            raise TypeError(f"unknown delivery settings: {', '.join(sorted(unknown))}")
        self.database_url = database_url
        # Country, region, city and ISP of clicks, when a MaxMind-format database is given.
        geoip_path = geoip_database or os.environ.get("SAMPLE_HOST_GEOIP_DB") or None
        self.geoip = visitors.GeoIP(geoip_path) if geoip_path else None
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
        self.handoffs = Handoffs(self.engine, self.pm, self.click)
        self.refusals = RefusalLog(self.engine)
        self.receiver = Receiver(
            self.engine,
            postback_key=lambda: self.credentials().postback_key,
            load_click=self.click,
            handoffs=self.handoffs,
            refusals=self.refusals,
        )

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
            if self.geoip is not None:
                self.geoip.close()

    def __enter__(self) -> Tracker:
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
        payout_mode: str = "real",
        payout_value: Any = None,
        min_payout: Any = None,
        secrets: Optional[Sequence[str]] = None,
        body: Optional[str] = None,
        content_type: Optional[str] = None,
        follow_redirects: Optional[bool] = None,
        placeholders: Optional[Mapping[str, str]] = None,
        click_id_param: Optional[str] = None,
        source_macro: Optional[str] = None,
        parameters: Optional[Mapping[str, str]] = None,
        headers: Optional[Mapping[str, str]] = None,
    ) -> PostbackRule:
        """Add or update a traffic source and its postback (from a template, a URL, or both).

        :param payout_mode: ``real`` (the conversion's payout), ``fixed`` (``payout_value``) or
            ``percent`` (``payout_value`` % of the payout); ``min_payout`` holds back smaller ones.
        :param secrets: names of URL parameters (account keys, tokens) whose values logs and pages
            mask, besides the template's own.
        :param body: a POST body template (macros allowed); ``content_type`` its ``Content-Type``.
        :param follow_redirects: follow the source's redirects; None: as the template says.
        :param placeholders: values for the template's account words (``{"GOAL_ID": "..."}``).
        :param click_id_param: the parameter of the campaign link that carries the source's click
            id, ``source_macro`` the macro the source writes there, ``parameters`` the source's
            other macros by tracker parameter (``{"sub_id_1": "{zoneid}"}``); None: the template's.
        """
        if not _ALIAS.match(source_id or ""):
            raise HostError(f"source id {source_id!r} must be letters, digits, '_', '-' or '.'")
        if not template and not postback_url:
            raise HostError("give the source a --template or a --postback-url")
        if postback_url:
            _check_http_url(postback_url, "postback URL", fixed_host=True)
        if template and template not in self.s2s.templates():
            raise NotFound(f"unknown template {template!r}: `sample-host sources templates` lists them")
        chosen = self.s2s.templates().get(template) if template else None
        method = (method or (chosen.method if chosen else None) or "GET").upper()
        if method not in ("GET", "POST"):
            raise HostError(f"method {method!r} must be GET or POST")
        kwargs: dict[str, Any] = {
            "template": template,
            "postback_url": postback_url,
            "method": method,
            "payout_mode": payout_mode or "real",
            "payout_value": payout_value,
            "min_payout": min_payout,
            "secrets": list(secrets or ()),
            "body": rulesettings.check_body(method, body),
            "headers": rulesettings.headers_with(headers or {}, rulesettings.check_content_type(content_type)),
            "follow_redirects": follow_redirects,
            "placeholders": dict(placeholders or {}) or None,
            "click_id_param": click_id_param or None,
            "source_macro": source_macro or None,
            "parameters": None if parameters is None else dict(parameters),
        }
        if statuses:
            kwargs["statuses"] = list(statuses)
        with _refused_as_host_error():
            return self.s2s.add_source(source_id, **kwargs)

    def edit_source(self, source_id: str, **changes: Any) -> PostbackRule:
        """Change some settings of a source's postback (see ``add_source``); None keeps a setting.

        ``postback_url`` replaces the URL; ``placeholders`` fill the ones still in it.
        """
        unknown = set(changes) - {"postback_url", *rulesettings.POSTBACK_SETTINGS, *rulesettings.SOURCE_SETTINGS}
        if unknown:
            raise HostError(f"a source has no setting {', '.join(sorted(unknown))}")
        rule = self.source(source_id)
        settings = rulesettings.merged(rule, {k: v for k, v in changes.items() if k != "postback_url"})
        settings["url"] = changes.get("postback_url") or rule.url
        headers = {k: v for k, v in rule.headers.items()}
        return self.add_source(
            source_id, template=rule.template, postback_url=settings.pop("url"), headers=headers, **settings
        )

    def source(self, source_id: str) -> PostbackRule:
        """One traffic source's postback rule; raises ``NotFound``."""
        rule = self.s2s.source(source_id)
        if rule is None:
            raise NotFound(f"unknown source {source_id!r}")
        return rule

    def remove_source(self, source_id: str) -> None:
        """Delete a traffic source; refused while campaigns still buy traffic from it."""
        self.source(source_id)
        using = [c["alias"] for c in self.campaigns() if c["source_id"] == source_id]
        if using:
            raise Conflict(
                f"source {source_id!r} is used by campaign(s) {', '.join(using)}: give them another source first"
            )
        self.s2s.remove_source(source_id)

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
        db.check_lengths(db.campaigns, values)
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
            except Exception:
                log.exception("no campaign link for source %r", campaign["source_id"])
        return f"{base_url}/c/{urllib.parse.quote(alias)}"

    def add_postback(
        self,
        alias: str,
        *,
        url: str,
        method: str = "GET",
        statuses: Optional[Sequence[str]] = None,
        payout_mode: str = "real",
        payout_value: Any = None,
        min_payout: Any = None,
        secrets: Optional[Sequence[str]] = None,
        body: Optional[str] = None,
        content_type: Optional[str] = None,
        follow_redirects: bool = False,
    ) -> PostbackRule:
        """Add an S2S postback to a campaign; it fires for the given statuses (default all).

        Payout settings, ``secrets``, ``body``, ``content_type`` and ``follow_redirects`` as for
        ``add_source``.
        """
        self.campaign(alias)
        kwargs = _postback_settings(
            url=url,
            method=method,
            statuses=statuses,
            payout_mode=payout_mode,
            payout_value=payout_value,
            min_payout=min_payout,
            secrets=list(secrets or ()),
            body=body,
            content_type=content_type,
            follow_redirects=follow_redirects,
        )
        if not statuses:
            del kwargs["statuses"]
        with _refused_as_host_error():
            return self.s2s.add_postback(alias, **kwargs)

    def postback(self, postback_id: str) -> PostbackRule:
        """One campaign S2S postback by id (``postback:3`` or ``3``); raises ``NotFound``."""
        rule_id = _postback_id(postback_id)
        for rule in self.s2s.postbacks(campaign_id=None):
            if rule.id == rule_id:
                return rule
        raise NotFound(f"unknown postback {rule_id!r}")

    def update_postback(
        self,
        postback_id: str,
        *,
        url: str,
        method: str,
        statuses: Sequence[str],
        payout_mode: str = "real",
        payout_value: Any = None,
        min_payout: Any = None,
        secrets: Optional[Sequence[str]] = None,
        body: Optional[str] = None,
        content_type: Optional[str] = "",
        follow_redirects: bool = False,
    ) -> PostbackRule:
        """Change every setting of a campaign S2S postback; it needs at least one status."""
        rule = self.postback(postback_id)
        if not statuses:
            raise HostError("choose at least one status for the postback to fire on")
        kwargs = _postback_settings(
            url=url,
            method=method,
            statuses=statuses,
            payout_mode=payout_mode,
            payout_value=payout_value,
            min_payout=min_payout,
            secrets=list(secrets or ()),
            body=body,
            content_type=content_type,
            follow_redirects=follow_redirects,
            headers=rule.headers,
        )
        with _refused_as_host_error():
            return self.s2s.update_postback(rule.id, **kwargs)

    def edit_postback(self, postback_id: str, **changes: Any) -> PostbackRule:
        """Change some settings of a campaign S2S postback (``url`` and those of ``add_postback``);
        None keeps a setting."""
        unknown = set(changes) - {"url", *rulesettings.POSTBACK_SETTINGS}
        if unknown:
            raise HostError(f"a campaign postback has no setting {', '.join(sorted(unknown))}")
        return self.update_postback(postback_id, **rulesettings.merged(self.postback(postback_id), changes))

    def postbacks(self, alias: Optional[str] = None) -> list[PostbackRule]:
        """The campaigns' S2S postbacks, of one campaign when ``alias`` is given."""
        if alias is not None:
            self.campaign(alias)
        return list(self.s2s.postbacks(campaign_id=alias))

    def remove_postback(self, postback_id: str) -> None:
        """Delete a campaign's S2S postback by id (``postback:3`` or ``3``)."""
        self.s2s.remove_postback(self.postback(postback_id).id)

    def rule(self, rule_id: str) -> PostbackRule:
        """A source's (``source:ID``) or campaign's (``postback:N``) postback rule; raises ``NotFound``."""
        kind, _, key = rule_id.partition(":")
        if kind == "source" and key:
            return self.source(key)
        if kind == "postback" and key:
            return self.postback(rule_id)
        raise NotFound(f"unknown postback rule {rule_id!r}: use source:ID or postback:N")

    def test_send(
        self,
        rule_id: str,
        *,
        status: Optional[str] = None,
        payout: Any = "1.00",
        currency: Optional[str] = "USD",
        external_id: str = "test-click-id",
    ) -> Any:
        """Send a rule now with sample values (a made-up click and conversion), outside the queue
        and the logs, and return what the source answered (the plugin's ``TestSend``)."""
        rule = self.rule(rule_id)
        if status is not None and status not in hookspecs.CANONICAL_STATUSES:
            raise HostError(f"status {status!r} must be one of {', '.join(hookspecs.CANONICAL_STATUSES)}")
        with _refused_as_host_error():
            return self.s2s.test_send(
                rule.id,
                status=status,
                payout=payout,
                currency=currency or None,
                external_id=external_id or "test-click-id",
            )

    # --- clicks and conversions --------------------------------------------------------------

    def record_click(
        self,
        alias: str,
        params: Mapping[str, str],
        *,
        ip: Optional[str] = None,
        user_agent: Optional[str] = None,
        accept_language: Optional[str] = None,
        referrer: Optional[str] = None,
    ) -> tuple[Click, str]:
        """Record a click on a campaign link and tell the plugins; return it and its redirect URL.

        The visitor's attributes (``os``, ``browser``, ``language``, ``city``...: see
        ``visitors``) are added to the link's parameters, which win where they name the same one.
        The offer URL's ``{subid}`` is replaced by the new click's subid, URL-encoded.
        """
        campaign = self.campaign(alias)
        attributes = visitors.click_attributes(
            user_agent=user_agent,
            accept_language=accept_language,
            referrer=referrer,
            ip=ip,
            geoip=self.geoip,
        )
        click = Click(
            subid=new_subid(),
            campaign_id=alias,
            source_id=campaign["source_id"],
            params={**attributes, **{str(k): str(v) for k, v in params.items()}},
            country=attributes.get("country"),
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
        except Exception:
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
            country=(row.params or {}).get("country"),  # a click attribute (visitors), kept with the others
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
        Received postbacks log (see ``receiving.Receiver.receive``)."""
        return self.receiver.receive(postback_key, params, method=method, ip=ip)

    def refuse_postback(
        self, postback_key: str, *, ip: Optional[str], method: str = "GET", params: Optional[Mapping[str, str]] = None
    ) -> Optional[Receipt]:
        """The answer for an inbound postback that may not be read at all (address not allowed,
        wrong key), or None when it may: checked before its body is read (``params`` are the
        query's, for the log)."""
        return self.receiver.refuse(postback_key, ip=ip, method=method, params=params)

    def reject_postback(
        self,
        error: HostError,
        params: Mapping[str, str],
        *,
        method: str = "GET",
        ip: Optional[str] = None,
    ) -> Receipt:
        """Log an inbound postback refused before its parameters could be read (a bad body)."""
        return self.receiver.reject(error, params, method=method, ip=ip)

    def hand_over_waiting(self, *, due_only: bool = False) -> Handed:
        """Hand the plugin every recorded conversion it has not taken yet (its ``on_conversion``
        failed before); run at start, periodically by ``serve``, and by ``worker``.

        :param due_only: skip conversions still backing off from a failure (the periodic runs).
        """
        return self.handoffs.hand_over_all(due_only=due_only)

    def hand_over_now(self, conversion_id: int) -> Handed:
        """Hand one waiting conversion (and the rest of its click's) to the plugin now, whatever
        its back-off; raises ``NotFound`` when it is not waiting."""
        if not row_id_in_range(conversion_id):
            raise NotFound(f"conversion #{conversion_id} is not waiting")
        return self.handoffs.hand_over_now(conversion_id)

    def inbound_settings(self) -> InboundSettings:
        """How inbound postbacks are answered and whom they are taken from."""
        return inbound_settings.load(self.engine)

    def set_inbound_settings(
        self, *, response_text: Optional[str] = None, allowed_ips: Optional[Sequence[str]] = None
    ) -> InboundSettings:
        """Change the inbound settings; None keeps a setting, an empty list allows every address.

        :raises HostError: for an entry of ``allowed_ips`` that is not an address or network.
        """
        current = self.inbound_settings()
        changed = InboundSettings(
            response_text=current.response_text
            if response_text is None
            else inbound_settings.clean_response_text(response_text),
            allowed=current.allowed if allowed_ips is None else inbound_settings.parse_networks(allowed_ips),
        )
        inbound_settings.save(self.engine, changed)
        return changed

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
        campaign: Optional[str] = None,
        since: Optional[dt.datetime] = None,
        until: Optional[dt.datetime] = None,
        limit: int = 100,
        cause: Optional[str] = None,
    ) -> list[dict[str, Any]]:
        """The Sent postbacks log, oldest first (the last ``limit`` entries matching the filters;
        ``cause`` is a cause code such as ``timeout``).

        Each entry has every ``PostbackAttempt`` field plus ``id`` and ``logged_at``.
        """
        filters = SentFilter(
            subid=subid, source=source, campaign=campaign, outcome=outcome, since=since, until=until, cause=cause
        )
        table = db.sent_postbacks
        query = sa.select(table).where(*filters.where()).order_by(table.c.id.desc()).limit(max(1, min(limit, 10_000)))
        with self.engine.connect() as conn:
            rows = list(conn.execute(query))
        rows.reverse()
        return [_sent_entry(row._mapping) for row in rows]

    def sent_page(
        self, filters: SentFilter, *, before: Optional[int] = None, after: Optional[int] = None, limit: int = 50
    ) -> LogPage:
        """One page of the Sent postbacks log, newest first (see ``logs.read_page``)."""
        page = read_page(self.engine, db.sent_postbacks, filters.where(), before=before, after=after, limit=limit)
        return dataclasses.replace(page, rows=[_sent_entry(row) for row in page.rows])

    def sent_entry(self, entry_id: int) -> dict[str, Any]:
        """One entry of the Sent postbacks log, with ``attempts``: every entry of its delivery,
        oldest first. Raises ``NotFound``."""
        table = db.sent_postbacks
        if not row_id_in_range(entry_id):
            raise NotFound(f"no Sent postbacks entry #{entry_id}")
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(table).where(table.c.id == entry_id)).first()
            if row is None:
                raise NotFound(f"no Sent postbacks entry #{entry_id}")
            siblings = conn.execute(
                sa.select(table).where(table.c.delivery_id == row.delivery_id).order_by(table.c.id)
            ).all()
        return {**_sent_entry(row._mapping), "attempts": [_sent_entry(r._mapping) for r in siblings]}

    def received_postbacks(
        self,
        *,
        subid: Optional[str] = None,
        outcome: Optional[str] = None,
        since: Optional[dt.datetime] = None,
        until: Optional[dt.datetime] = None,
        limit: int = 100,
    ) -> list[dict[str, Any]]:
        """The Received postbacks log, newest first: every inbound postback and what became of it."""
        filters = ReceivedFilter(subid=subid, outcome=outcome, since=since, until=until)
        table = db.received_postbacks
        query = sa.select(table).where(*filters.where()).order_by(table.c.id.desc()).limit(max(1, min(limit, 10_000)))
        with self.engine.connect() as conn:
            return [_row_dict(r) for r in conn.execute(query)]

    def received_page(
        self, filters: ReceivedFilter, *, before: Optional[int] = None, after: Optional[int] = None, limit: int = 50
    ) -> LogPage:
        """One page of the Received postbacks log, newest first."""
        page = read_page(self.engine, db.received_postbacks, filters.where(), before=before, after=after, limit=limit)
        return dataclasses.replace(page, rows=[jsonable(row) for row in page.rows])

    def explain(self, subid: str) -> Any:
        """Why each postback for this click was sent, retried, skipped or failed (plugin's
        ``Explanation``: ``str()`` for text, ``.to_dict()`` for JSON)."""
        self.click(subid)
        return self.s2s.explain(subid)

    def waiting_notes(self, subid: str) -> list[str]:
        """What ``explain`` adds for this click's conversions the plugin has not taken yet (the
        plugin's own explanation cannot know them): one line each, stuck ones marked."""
        return describe_waiting(self.handoffs.waiting_for(subid))

    def resend(self, delivery_id: int) -> None:
        """Make a delivery due again now (the dispatcher or the next ``drain`` sends it)."""
        if not row_id_in_range(delivery_id):
            raise NotFound(f"unknown delivery {delivery_id}")
        with _refused_as_host_error():
            done = self.s2s.resend(delivery_id)
        if not done:
            raise NotFound(f"unknown delivery {delivery_id}, or it cannot be sent again")
