"""Postback rules: the template library, sources' and campaigns' postbacks (validated, linted),
and the campaign links to give sources."""

from __future__ import annotations

import dataclasses
import json
import logging
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Optional

from hookspecs import PostbackRule, SourceTemplate
from s2s_plugin.errors import ConfigError
from s2s_plugin.resolution.links import check_macro, check_param_name, check_parameters, link_settings
from s2s_plugin.resolution.lint import LintWarning, lint, lint_rule
from s2s_plugin.resolution.money import check_payout_settings
from s2s_plugin.resolution.redact import join_secrets
from s2s_plugin.resolution.ruleid import RuleId
from s2s_plugin.resolution.statuses import check_status
from s2s_plugin.resolution.templates import campaign_link as templates_campaign_link
from s2s_plugin.resolution.templates import fill_placeholders
from s2s_plugin.service.library import TemplateLibrary
from s2s_plugin.storage.store import Store

log = logging.getLogger("s2s_postback")


class Rules:
    """Sources' and campaigns' postback rules, and the templates they are made from.

    Needs only the store (where rules live) and the template library. Every rule saved is checked
    (statuses, method, payout settings, parameter names) and linted; warnings are logged and
    returned on the rule's ``warnings``, never refused.
    """

    def __init__(self, store: Store, library: TemplateLibrary) -> None:
        self.store = store
        self.library = library

    # --- templates ----------------------------------------------------------------------

    def templates(self) -> dict[str, SourceTemplate]:
        """The template library: built-in templates plus ``register_source_templates``.

        Built on first use. A plugin whose hook fails is left out (logged, and kept in the
        library's ``failures``); the other plugins' templates are still added.
        """
        return self.library.all()

    def template(self, name: str) -> SourceTemplate:
        """One template by name. :raises ConfigError: naming the known ones."""
        found = self.library.find(name)
        assert found is not None
        return found

    def campaign_link(
        self, source_id: Optional[str], base_url: str, campaign_alias: str, template: Optional[str] = None
    ) -> str:
        """The campaign link to give the source: its click-id macro in the click-id parameter, then
        its parameter table, ``https://HOST/c/summer?external_id={conversions_tracking}&sub_id_1={zoneid}``.

        :param source_id: a configured source (its own settings, else its template's), or None.
        :param template: a template name, used when the source has none (or there is no source).
        :raises ConfigError: for an unknown template.
        """
        rule = self.store.get_source(source_id) if source_id else None
        name = (rule.template if rule else None) or template
        return templates_campaign_link(self.library.find(name), base_url, campaign_alias, rule)

    def lint(
        self,
        rule_or_url: PostbackRule | str,
        *,
        body: Optional[str] = None,
        method: str = "GET",
        template: Optional[str] = None,
    ) -> list[LintWarning]:
        """What in a postback (a rule, or a URL with its body) will not work as intended.

        Warnings never stop a postback from being saved: ``add_source`` and ``add_postback`` log
        them and return them on the rule's ``warnings``.
        """
        library = self.library.all()
        if isinstance(rule_or_url, PostbackRule):
            return lint_rule(rule_or_url, library)
        return lint(rule_or_url, body=body, method=method, template=self.library.find(template), library=library)

    def _linted(self, rule: PostbackRule, what: str) -> PostbackRule:
        warnings = tuple(str(w) for w in lint_rule(rule, self.library.all()))
        for warning in warnings:
            log.warning("%s: %s", what, warning)
        return dataclasses.replace(rule, warnings=warnings)

    # --- configuration ------------------------------------------------------------------

    def rule(self, rule_id: str) -> PostbackRule:
        """A source's (``source:ID``) or campaign's (``postback:N``) postback rule.

        :raises ConfigError: when there is no such rule.
        """
        parsed = RuleId.parse(rule_id)
        rule = None
        if parsed.kind == "source":
            rule = self.store.get_source(parsed.key)
        elif parsed.kind == "postback":
            rule = next((r for r in self.store.list_postbacks() if r.id == str(parsed)), None)
        if rule is None:
            raise ConfigError(f"there is no postback rule {rule_id!r}: use source:ID or postback:N")
        return rule

    def add_source(
        self,
        source_id: str,
        template: Optional[str] = None,
        postback_url: Optional[str] = None,
        statuses: Optional[Iterable[str]] = None,
        method: Optional[str] = None,
        payout_mode: str = "real",
        payout_value: Any = None,
        min_payout: Any = None,
        body: Optional[str] = None,
        headers: Optional[dict[str, str]] = None,
        secrets: Optional[Iterable[str]] = None,
        placeholders: Optional[Mapping[str, str]] = None,
        follow_redirects: Optional[bool] = None,
        click_id_param: Optional[str] = None,
        source_macro: Optional[str] = None,
        parameters: Optional[Mapping[str, str]] = None,
    ) -> PostbackRule:
        """Create or replace a traffic source's postback.

        The returned rule's ``warnings`` list what the template linter found (also logged).

        :param template: a template name; its URL, method and default statuses are used where the
            arguments are None.
        :param placeholders: values for the template's account-specific words
            (``{"GOAL_ID": "1b9b..."}`` for ExoClick); see ``templates show NAME``.
        :param secrets: names of query parameters, body fields or headers whose values the log
            redacts (added to the template's own).
        :param follow_redirects: follow the source's redirects (each hop checked like the first);
            None: as the template says (no for a custom source).
        :param click_id_param: the tracker parameter that receives the source's click id; None:
            the template's (``external_id`` for a custom source).
        :param source_macro: the macro the source writes for its click id; None: the template's.
        :param parameters: the source's parameter table, tracker parameter → the source's macro
            (``{"sub_id_1": "{zoneid}"}``), carried by its campaign link; None: the template's.
        :raises ConfigError: for an unknown template, no URL, an unknown status or payout mode, a
            bad parameter name or macro.
        """
        chosen = self.library.find(template)
        url = postback_url or (chosen.postback_url if chosen else None)
        if not url:
            raise ConfigError(f"source {source_id!r} needs a postback URL or a template")
        if placeholders:
            if chosen is None:
                raise ConfigError("placeholders fill a template's URL: name the template too")
            url = fill_placeholders(url, chosen, placeholders)
        payout_mode, payout_value, min_payout = check_payout_settings(payout_mode, payout_value, min_payout)
        link = link_settings(chosen)
        param = check_param_name(click_id_param, "click-id parameter") if click_id_param else link.click_id_param
        macro = check_macro(source_macro, param) if source_macro else link.source_macro
        table = check_parameters(link.parameters if parameters is None else parameters, param)
        if follow_redirects is None:
            follow_redirects = bool(chosen.follow_redirects) if chosen else False
        rule = self.store.upsert_source(
            source_id,
            {
                "template": chosen.name if chosen else None,
                "url": url,
                "method": _method(method or (chosen.method if chosen else None)),
                "statuses": _statuses(statuses, chosen.statuses if chosen else ("sale",)),
                "payout_mode": payout_mode,
                "payout_value": payout_value,
                "min_payout": min_payout,
                "body": body,
                "headers": None if not headers else json.dumps(headers),
                "follow_redirects": bool(follow_redirects),
                "enabled": True,
                "secrets": join_secrets([*(chosen.secrets if chosen else ()), *(secrets or ())]),
                "click_id_param": param,
                "source_macro": macro,
                "parameters": json.dumps(table),
            },
        )
        return self._linted(rule, f"source {source_id}'s postback")

    def remove_source(self, source_id: str) -> bool:
        """Remove a source's postback; False when it had none."""
        return self.store.delete_source(source_id)

    def source(self, source_id: str) -> Optional[PostbackRule]:
        """A source's postback rule, or None."""
        return self.store.get_source(source_id)

    def sources(self) -> list[PostbackRule]:
        """Every source's postback rule."""
        return self.store.list_sources()

    def add_postback(
        self,
        campaign_id: str,
        url: str,
        method: str = "GET",
        statuses: Optional[Iterable[str]] = None,
        payout_mode: str = "real",
        payout_value: Any = None,
        min_payout: Any = None,
        body: Optional[str] = None,
        name: Optional[str] = None,
        secrets: Optional[Iterable[str]] = None,
        headers: Optional[dict[str, str]] = None,
        follow_redirects: bool = False,
    ) -> PostbackRule:
        """Add an S2S postback to a campaign (fires for every click of the campaign).

        :param secrets: names of query parameters or body fields whose values the log redacts.
        :param headers: request headers (a ``Content-Type`` for the body, a token); macros allowed.
        :param follow_redirects: follow the target's redirects (each hop checked like the first).
        """
        if not url:
            raise ConfigError("a postback needs a URL")
        payout_mode, payout_value, min_payout = check_payout_settings(payout_mode, payout_value, min_payout)
        rule = self.store.insert_postback(
            {
                "campaign_id": campaign_id,
                "name": name,
                "url": url,
                "method": _method(method),
                "statuses": _statuses(statuses, ("lead", "sale", "rejected", "rebill")),
                "payout_mode": payout_mode,
                "payout_value": payout_value,
                "min_payout": min_payout,
                "body": body,
                "headers": None if not headers else json.dumps(headers),
                "follow_redirects": bool(follow_redirects),
                "enabled": True,
                "secrets": join_secrets(secrets or ()),
            }
        )
        return self._linted(rule, f"campaign {campaign_id}'s postback {rule.id}")

    def update_postback(self, rule_id: str, **changes: Any) -> PostbackRule:
        """Change a campaign postback (``url``, ``method``, ``statuses``, payout settings, ``body``,
        ``headers``, ``follow_redirects``, ``secrets``, ``enabled``)."""
        pk = _postback_pk(rule_id)
        values: dict[str, Any] = {}
        for key, value in changes.items():
            if key == "statuses":
                values[key] = _statuses(value, ())
            elif key == "method":
                values[key] = _method(value)
            elif key == "secrets":
                values[key] = join_secrets(value or ())
            elif key == "headers":
                values[key] = json.dumps(dict(value)) if value else None
            elif key == "follow_redirects":
                values[key] = bool(value)
            elif key in ("url", "payout_mode", "payout_value", "min_payout", "body", "enabled", "name", "campaign_id"):
                values[key] = value
            else:
                raise ConfigError(f"a postback has no setting {key!r}")
        if {"payout_mode", "payout_value", "min_payout"} & set(values):
            # Checked together: a mode change needs the amount it reports.
            current = next((r for r in self.store.list_postbacks() if r.id == str(RuleId.of_postback(pk))), None)
            mode = values.get("payout_mode", current.payout_mode if current else "real")
            amount = values.get("payout_value", current.payout_value if current else None)
            minimum = values.get("min_payout", current.min_payout if current else None)
            values["payout_mode"], values["payout_value"], values["min_payout"] = check_payout_settings(
                mode, amount, minimum
            )
        rule = self.store.update_postback(pk, values)
        return (
            self._linted(rule, f"campaign {rule.campaign_id}'s postback {rule.id}")
            if "url" in values or "body" in values
            else rule
        )

    def remove_postback(self, rule_id: str) -> bool:
        """Remove a campaign postback; False when there was none."""
        return self.store.delete_postback(_postback_pk(rule_id))

    def postbacks(self, campaign_id: Optional[str] = None) -> list[PostbackRule]:
        """Campaign postbacks, of one campaign or all."""
        return self.store.list_postbacks(campaign_id)


def _statuses(statuses: Optional[Iterable[str]], default: Sequence[str]) -> str:
    chosen = [check_status(s.strip().lower()) for s in (statuses if statuses is not None else default)]
    return ",".join(dict.fromkeys(chosen))


def _method(method: Optional[str]) -> str:
    chosen = (method or "GET").upper()
    if chosen not in ("GET", "POST"):
        raise ConfigError(f"method {method!r} is not supported: use GET or POST")
    return chosen


def _postback_pk(rule_id: str | int) -> int:
    return RuleId.campaign_postback(rule_id).postback_pk
