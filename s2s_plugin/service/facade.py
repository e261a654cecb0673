"""``PostbackService``: the facade a host calls, built by ``s2s_plugin.service.build.build_service``."""

from __future__ import annotations

import dataclasses
import json
import logging
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Optional

import pluggy
from sqlalchemy import Engine, select

import hookspecs
from hookspecs import Click, Conversion, PostbackAttempt, PostbackRequest, PostbackRule, ResolveContext, SourceTemplate
from s2s_plugin.delivery.dispatcher import Dispatcher, headers_of
from s2s_plugin.delivery.sender import Answer, Sender, Verdict
from s2s_plugin.errors import ConfigError, InputError
from s2s_plugin.hooks import hookcalls
from s2s_plugin.ops import operations
from s2s_plugin.ops.explain import Explanation, explain_subid
from s2s_plugin.ops.stats import OutboxStats, outbox_stats
from s2s_plugin.platforms import PLATFORMS
from s2s_plugin.resolution.causes import Cause
from s2s_plugin.resolution.links import check_macro, check_param_name, check_parameters, link_settings
from s2s_plugin.resolution.lint import LintWarning, lint, lint_rule
from s2s_plugin.resolution.money import check_payout_settings, coerce_payout
from s2s_plugin.resolution.redact import join_secrets
from s2s_plugin.resolution.resolve import PlannedPostback, plan
from s2s_plugin.resolution.ruleid import RuleId
from s2s_plugin.resolution.statuses import check_status
from s2s_plugin.resolution.templates import campaign_link as templates_campaign_link
from s2s_plugin.resolution.templates import fill_placeholders, find_template, source_templates
from s2s_plugin.settings import DeliverySettings
from s2s_plugin.storage import queue
from s2s_plugin.storage import tables as t
from s2s_plugin.storage.rows import attempt_from_rows, conversion_for_delivery
from s2s_plugin.storage.store import Recorded, Store

log = logging.getLogger("s2s_postback")


def _statuses(statuses: Optional[Iterable[str]], default: Sequence[str]) -> str:
    chosen = [check_status(s.strip().lower()) for s in (statuses if statuses is not None else default)]
    return ",".join(dict.fromkeys(chosen))


def _method(method: Optional[str]) -> str:
    chosen = (method or "GET").upper()
    if chosen not in ("GET", "POST"):
        raise ConfigError(f"method {method!r} is not supported: use GET or POST")
    return chosen


class PostbackService:
    """The postback plugin inside one host: configuration, the hook implementations, delivery.

    Create it with ``install`` (or ``build_service``). It implements ``on_click`` and
    ``on_conversion`` and calls ``on_postback_sent`` for every attempt and every skipped postback.
    """

    def __init__(self, pm: pluggy.PluginManager, settings: DeliverySettings, engine: Engine) -> None:
        self.pm = pm
        self.settings = settings
        self.engine = engine
        self.store = Store(self.engine)
        self._library: Optional[dict[str, SourceTemplate]] = None
        #: Plugins that failed while the template library was built (their templates are missing).
        self.template_failures: list[hookcalls.HookFailure] = []
        self.dispatcher = Dispatcher(
            self.engine,
            settings,
            Sender(settings, classify_hook=self._classify_hook),
            build=self._build_request,
            report=self._report,
            on_gone=self.store.mark_rule_gone,
            attempt_from_rows=attempt_from_rows,
        )

    def create_tables(self) -> None:
        """Create the plugin's tables when they are missing."""
        self.store.create_tables()

    # --- templates ----------------------------------------------------------------------

    def templates(self) -> dict[str, SourceTemplate]:
        """The template library: built-in templates plus ``register_source_templates``.

        Built on first use. A plugin whose hook fails is left out (logged, and kept in
        ``template_failures``); the other plugins' templates are still added.
        """
        if self._library is None:
            self._library, self.template_failures = source_templates(self.pm)
        return self._library

    def template(self, name: str) -> SourceTemplate:
        """One template by name. :raises ConfigError: naming the known ones."""
        found = find_template(self.templates(), name)
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
        return templates_campaign_link(find_template(self.templates(), name), base_url, campaign_alias, rule)

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
        library = self.templates()
        if isinstance(rule_or_url, PostbackRule):
            return lint_rule(rule_or_url, library)
        return lint(rule_or_url, body=body, method=method, template=find_template(library, template), library=library)

    def _linted(self, rule: PostbackRule, what: str) -> PostbackRule:
        warnings = tuple(str(w) for w in lint_rule(rule, self.templates()))
        for warning in warnings:
            log.warning("%s: %s", what, warning)
        return dataclasses.replace(rule, warnings=warnings)

    # --- configuration ------------------------------------------------------------------

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
        chosen = find_template(self.templates(), template)
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

    # --- hooks --------------------------------------------------------------------------

    @hookspecs.hookimpl
    def on_click(self, click: Click) -> None:
        """Remember the click so its conversions resolve by subid alone."""
        self.store.save_click(click)

    @hookspecs.hookimpl
    def on_conversion(self, conversion: Conversion) -> None:
        """Resolve the conversion's postbacks and queue them durably. No network I/O."""
        self.record(conversion)

    def record(self, conversion: Conversion) -> Recorded:
        """``on_conversion``, returning what was decided and queued (for hosts and tests)."""
        check_status(conversion.status)
        if conversion.payout is not None:
            # Hosts may pass floats or strings; a float must not leak noise into a postback.
            payout = coerce_payout(conversion.payout)
            if payout is not conversion.payout:
                conversion = dataclasses.replace(conversion, payout=payout)
        extra: list[PostbackRule] = []
        note = ""
        if self.pm.hook.postback_rules.get_hookimpls():
            # The click is loaded for postback_rules hooks only; the store loads it in its transaction.
            collected = hookcalls.call_collect(
                self.pm.hook.postback_rules,
                check=hookcalls.expect_list_of(PostbackRule, "PostbackRule"),
                conversion=conversion,
                click=conversion.click or self.store.load_click(conversion.subid),
            )
            extra = [rule for _plugin, batch in collected.results for rule in batch]
            # A failing postback_rules cannot be re-run later: say so on the conversion's event,
            # where explain shows it, instead of failing the whole conversion.
            note = "; ".join(f"{f.describe()}; its postback rules were not resolved" for f in collected.failures)
        recorded = self.store.record_conversion(
            conversion,
            extra_rules=extra,
            planner=self._plan,
            first_delay=self.settings.retry_schedule[0],
            note=note or None,
        )
        if recorded.skipped:
            self.dispatcher.report_soon()
        elif recorded.queued:
            self.dispatcher.wake()
        return recorded

    def _plan(
        self, conversion: Conversion, click: Optional[Click], rules: Sequence[PostbackRule]
    ) -> list[PlannedPostback]:
        """``resolve.plan`` with the ``resolve_macro`` hooks; a failing one is noted on its postback."""
        notes: dict[str, list[str]] = {}

        def macro_hook(name: str, argument: Optional[str], context: ResolveContext) -> Optional[str]:
            first = hookcalls.call_first(self.pm.hook.resolve_macro, name=name, argument=argument, context=context)
            for failure in first.failures:
                note = f"{failure.describe()} for {{{name}}}, so the next plugin or the built-in value was used"
                if note not in notes.setdefault(context.rule.id, []):
                    notes[context.rule.id].append(note)
            return first.value

        # Without resolve_macro implementations every macro has its built-in value: no hook call per macro.
        hooked = bool(hookcalls.implementations(self.pm.hook.resolve_macro))
        planned = plan(conversion, click, rules, templates=self.templates(), macro_hook=macro_hook if hooked else None)
        return [_with_notes(p, notes.get(p.rule.id)) for p in planned] if notes else planned

    def _report(self, attempt: PostbackAttempt) -> None:
        """``on_postback_sent`` to every implementation: one host log failing (logged, naming the
        plugin) does not keep the attempt from the others."""
        hookcalls.call_collect(self.pm.hook.on_postback_sent, attempt=attempt)

    def _classify_hook(self, request: PostbackRequest, response: Answer) -> Verdict:
        first = hookcalls.call_first(
            self.pm.hook.classify_response,
            check=hookcalls.expect_one_of(("delivered", "retry", "failed")),
            request=request,
            response=response,
        )
        return Verdict(first.value, first.plugin, tuple(first.failures))

    def _build_request(
        self, row: Any
    ) -> tuple[PostbackRequest, Optional[ResolveContext], Optional[str], Optional[str]]:
        """The request for a claimed delivery, after ``prepare_request`` hooks; with the template's
        success text, and a problem sentence when a hook failed."""
        request = self.with_idempotency_key(
            self.with_content_type(
                PostbackRequest(
                    method=row.method,
                    url=row.url,
                    headers=headers_of(row) if row.headers else {},
                    body=row.body.encode("utf-8") if row.body else None,
                    template=row.template,
                    rule_id=row.rule_id,
                )
            ),
            row.id,
        )
        success_body = None
        if row.template:
            chosen = self.templates().get(row.template)
            success_body = chosen.success_body if chosen else None
        if not self._may_prepare(row.template):  # the common case: no click to load
            return request, None, success_body, None
        click = self.store.load_click(row.subid)
        rule = PostbackRule(
            id=row.rule_id,
            url=row.rule_url or row.url,
            method=row.method,
            source_id=row.source_id,
            campaign_id=row.campaign_id,
            template=row.template,
        )
        context = ResolveContext(click=click, conversion=conversion_for_delivery(row, click), rule=rule)
        request, problem = self.prepare(request, context)
        return request, context, success_body, problem

    def _may_prepare(self, template: Optional[str]) -> bool:
        """Whether a ``prepare_request`` hook may change a request of ``template``: any third-party
        implementation may; the built-in platforms change only their own templates' requests, so
        a plain postback loads no click for them."""
        for impl in self.pm.hook.prepare_request.get_hookimpls():
            if impl.plugin_name not in PLATFORMS or template == PLATFORMS[impl.plugin_name].NAME:
                return True
        return False

    @staticmethod
    def with_content_type(request: PostbackRequest) -> PostbackRequest:
        """The request with a ``Content-Type`` for its body (JSON or form), unless it has one."""
        if request.body and "content-type" not in {k.lower() for k in request.headers}:
            kind = (
                "application/json"
                if request.body.lstrip().startswith((b"{", b"["))
                else "application/x-www-form-urlencoded"
            )
            request = dataclasses.replace(request, headers={**request.headers, "Content-Type": kind})
        return request

    def with_idempotency_key(self, request: PostbackRequest, delivery_id: int) -> PostbackRequest:
        """The request with the ``idempotency_header`` setting's header carrying the delivery's id
        (the same for every retry and resend of it), unless the request sets that header itself."""
        name = self.settings.idempotency_header
        if not name or name.lower() in {key.lower() for key in request.headers}:
            return request
        return dataclasses.replace(request, headers={**request.headers, name: str(delivery_id)})

    def prepare(self, request: PostbackRequest, context: ResolveContext) -> tuple[PostbackRequest, Optional[str]]:
        """Run the ``prepare_request`` hooks in turn; the final request, and a problem sentence
        naming the plugins that failed (the request must then not be sent)."""
        chained = hookcalls.call_chain(
            self.pm.hook.prepare_request,
            key="request",
            check=hookcalls.expect(PostbackRequest, "a PostbackRequest"),
            request=request,
            context=context,
        )
        # Sending a request a plugin could not prepare (no token, no signature) would be wrong:
        # the attempt is not made and the delivery retries on its schedule (see docs/hooks.md).
        return chained.value, "; ".join(f.describe() for f in chained.failures) or None

    # --- delivery -----------------------------------------------------------------------

    def drain(self, timeout: float = 10.0) -> int:
        """Deliver, in this thread, everything due now or falling due within ``timeout`` seconds.

        :return: how many attempts were started.
        """
        return self.dispatcher.drain(timeout)

    def start(self) -> None:
        """Start the background dispatcher inside the host process."""
        self.dispatcher.start()

    def close(self) -> None:
        """Stop the dispatcher (attempts in flight finish) and release the database."""
        self.dispatcher.close()
        self.engine.dispose()

    def resend(self, delivery_id: int) -> bool:
        """Send a delivery again now (delivered, failed or waiting); False when it cannot be."""
        done = queue.make_due(self.engine, [delivery_id]) > 0
        if done:
            self.dispatcher.wake()
        return done

    def resend_matching(
        self,
        *,
        source_id: Optional[str] = None,
        campaign_id: Optional[str] = None,
        rule_id: Optional[str] = None,
        subid: Optional[str] = None,
        outcome: Optional[str] = None,
        since: operations.Moment = None,
        until: operations.Moment = None,
        dry_run: bool = False,
    ) -> list[int]:
        """Send again every delivery matching all the given filters; returns their ids.

        ``outcome`` is ``failed``, ``delivered`` or ``retrying``; ``since``/``until`` (datetimes,
        epoch seconds or ISO text) bound when the deliveries were queued. With no filter at all
        nothing is resent: pass at least one. ``dry_run`` only lists them.

        :raises InputError: for an unknown outcome, a bad time, or no filter.
        """
        if all(v in (None, "") for v in (source_id, campaign_id, rule_id, subid, outcome, since, until)):
            raise InputError("resend needs a filter (source, campaign, rule, subid, outcome or a time range)")
        ids = operations.matching_deliveries(
            self.engine,
            source_id=source_id,
            campaign_id=campaign_id,
            rule_id=rule_id,
            subid=subid,
            outcome=outcome,
            since=since,
            until=until,
        )
        if ids and not dry_run:
            queue.make_due(self.engine, ids)
            self.dispatcher.wake()
        return ids

    def test_send(self, rule_id: str, **sample: Any) -> operations.TestSend:
        """Send rule ``rule_id`` (``source:ID`` or ``postback:N``) now for a made-up click and
        conversion, outside the queue and the log, and say what the source answered.

        Sample values (keywords): ``status``, ``payout``, ``currency``, ``external_id``, ``tid``,
        ``params`` (more click parameters for macros).

        :raises ConfigError: for an unknown rule.
        """
        return operations.test_send(self, rule_id, **sample)

    def prune(self, older_than: Any) -> operations.Pruned:
        """Delete attempt-log entries older than ``older_than`` (seconds, or text like ``30d``).

        Pending deliveries' attempts and unreported attempts are kept; see ``operations.prune``.
        """
        seconds = operations.parse_duration(older_than) if isinstance(older_than, str) else float(older_than)
        return operations.prune(self.engine, seconds)

    # --- the log ------------------------------------------------------------------------

    def attempts(
        self,
        subid: Optional[str] = None,
        outcome: Optional[str] = None,
        source_id: Optional[str] = None,
        limit: int = 100,
    ) -> list[PostbackAttempt]:
        """The plugin's own attempt log, newest first."""
        A, D = t.attempts, t.deliveries
        query = (
            select(A.c.id, D.c.id)
            .select_from(A.join(D, D.c.id == A.c.delivery_id))
            .order_by(A.c.id.desc())
            .limit(limit)
        )
        if subid:
            query = query.where(t.of_subid(subid))
        if outcome:
            query = query.where(A.c.outcome == outcome)
        if source_id:
            query = query.where(D.c.source_id == source_id)
        with self.engine.connect() as conn:
            rows = conn.execute(query).all()
            attempts = {r.id: r for r in conn.execute(select(A).where(A.c.id.in_([r[0] for r in rows])))}
            deliveries = {r.id: r for r in conn.execute(select(D).where(D.c.id.in_([r[1] for r in rows])))}
        return [attempt_from_rows(attempts[a], deliveries[d]) for a, d in rows]

    def explain(self, subid: str) -> Explanation:
        """Why each postback for this click was sent, retried, skipped or failed: failing step first."""
        return explain_subid(self, subid)

    def stats(self) -> OutboxStats:
        """The outbox at this moment, for monitoring: deliveries per state, how many are due now,
        and how long the most overdue one has waited."""
        return outbox_stats(self.engine)


def _with_notes(planned: PlannedPostback, notes: Optional[list[str]]) -> PlannedPostback:
    if not notes:
        return planned
    reason = "; ".join(([planned.reason] if planned.reason else []) + notes)
    # A skip keeps its own cause; on a due postback, the failing resolve_macro plugin is the note.
    return dataclasses.replace(planned, reason=reason, cause=planned.cause or Cause.PLUGIN_FAILED)


def _postback_pk(rule_id: str | int) -> int:
    return RuleId.campaign_postback(rule_id).postback_pk
