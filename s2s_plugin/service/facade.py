"""``PostbackService``: the facade a host calls, built by ``s2s_plugin.service.build.build_service``."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, Optional

import pluggy

import hookspecs
from hookspecs import Click, Conversion, PostbackAttempt, PostbackRequest, PostbackRule, ResolveContext, SourceTemplate
from s2s_plugin.delivery.dispatcher import Dispatcher
from s2s_plugin.hooks import hookcalls
from s2s_plugin.ops import operations
from s2s_plugin.ops.explain import Explanation
from s2s_plugin.ops.health import DeliveryHealth
from s2s_plugin.ops.stats import OutboxStats
from s2s_plugin.resolution.lint import LintWarning
from s2s_plugin.service.control import DeliveryControl
from s2s_plugin.service.inspection import Inspection
from s2s_plugin.service.planning import PostbackPlanner
from s2s_plugin.service.recording import Recorder
from s2s_plugin.service.requests import RequestBuilder
from s2s_plugin.service.rules import Rules
from s2s_plugin.settings import DeliverySettings
from s2s_plugin.storage.database import Database
from s2s_plugin.storage.store import Recorded, Store


class PostbackService:
    """The postback plugin inside one host: configuration, the hook implementations, delivery.

    Create it with ``install`` (or ``build_service``). It implements ``on_click`` and
    ``on_conversion`` and calls ``on_postback_sent`` for every attempt and every skipped postback.

    A thin facade: each method hands its work to one collaborator, reachable as an attribute for
    hosts that want only one part: ``rules`` (``Rules``), ``recorder`` (``Recorder``), ``requests``
    (``RequestBuilder``), ``delivery`` (``DeliveryControl``) and ``inspection`` (``Inspection``).
    """

    def __init__(
        self,
        pm: pluggy.PluginManager,
        settings: DeliverySettings,
        *,
        database: Database,
        store: Store,
        dispatcher: Dispatcher,
        rules: Rules,
        planner: PostbackPlanner,
        recorder: Recorder,
        requests: RequestBuilder,
        delivery: DeliveryControl,
        inspection: Inspection,
    ) -> None:
        self.pm = pm
        self.settings = settings
        #: The one database object (its ``engine`` for plain Core reads), closed by ``close``.
        self.database = database
        self.engine = database.engine
        self.store = store
        self.dispatcher = dispatcher
        #: Templates and postback rules.
        self.rules = rules
        self.planner = planner
        #: Clicks and conversions (the hook implementations delegate to it).
        self.recorder = recorder
        #: Requests for claimed deliveries (the dispatcher's ``build``).
        self.requests = requests
        #: The dispatcher's loop, resends, test sends and pruning.
        self.delivery = delivery
        #: The attempt log, ``explain`` and the outbox's figures.
        self.inspection = inspection

    def create_tables(self) -> None:
        """Create the plugin's tables when they are missing."""
        self.store.create_tables()

    # --- rules (``Rules``) ---------------------------------------------------------------

    @property
    def template_failures(self) -> list[hookcalls.HookFailure]:
        """Plugins that failed while the template library was built (their templates are missing)."""
        return self.rules.library.failures

    def templates(self) -> dict[str, SourceTemplate]:
        """The template library: built-in templates plus ``register_source_templates``
        (``Rules.templates``)."""
        return self.rules.templates()

    def template(self, name: str) -> SourceTemplate:
        """One template by name. :raises ConfigError: naming the known ones."""
        return self.rules.template(name)

    def campaign_link(
        self, source_id: Optional[str], base_url: str, campaign_alias: str, template: Optional[str] = None
    ) -> str:
        """The campaign link to give the source (``Rules.campaign_link``)."""
        return self.rules.campaign_link(source_id, base_url, campaign_alias, template)

    def lint(
        self,
        rule_or_url: PostbackRule | str,
        *,
        body: Optional[str] = None,
        method: str = "GET",
        template: Optional[str] = None,
    ) -> list[LintWarning]:
        """What in a postback (a rule, or a URL with its body) will not work as intended (``Rules.lint``)."""
        return self.rules.lint(rule_or_url, body=body, method=method, template=template)

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
        """Create or replace a traffic source's postback (``Rules.add_source``: every argument
        explained there). The returned rule's ``warnings`` list what the template linter found.

        :raises ConfigError: for an unknown template, no URL, an unknown status or payout mode, a
            bad parameter name or macro.
        """
        return self.rules.add_source(
            source_id,
            template=template,
            postback_url=postback_url,
            statuses=statuses,
            method=method,
            payout_mode=payout_mode,
            payout_value=payout_value,
            min_payout=min_payout,
            body=body,
            headers=headers,
            secrets=secrets,
            placeholders=placeholders,
            follow_redirects=follow_redirects,
            click_id_param=click_id_param,
            source_macro=source_macro,
            parameters=parameters,
        )

    def remove_source(self, source_id: str) -> bool:
        """Remove a source's postback; False when it had none."""
        return self.rules.remove_source(source_id)

    def source(self, source_id: str) -> Optional[PostbackRule]:
        """A source's postback rule, or None."""
        return self.rules.source(source_id)

    def sources(self) -> list[PostbackRule]:
        """Every source's postback rule."""
        return self.rules.sources()

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
        """Add an S2S postback to a campaign, fired for every click of the campaign
        (``Rules.add_postback``)."""
        return self.rules.add_postback(
            campaign_id,
            url,
            method=method,
            statuses=statuses,
            payout_mode=payout_mode,
            payout_value=payout_value,
            min_payout=min_payout,
            body=body,
            name=name,
            secrets=secrets,
            headers=headers,
            follow_redirects=follow_redirects,
        )

    def update_postback(self, rule_id: str, **changes: Any) -> PostbackRule:
        """Change a campaign postback (``url``, ``method``, ``statuses``, payout settings, ``body``,
        ``headers``, ``follow_redirects``, ``secrets``, ``enabled``)."""
        return self.rules.update_postback(rule_id, **changes)

    def remove_postback(self, rule_id: str) -> bool:
        """Remove a campaign postback; False when there was none."""
        return self.rules.remove_postback(rule_id)

    def postbacks(self, campaign_id: Optional[str] = None) -> list[PostbackRule]:
        """Campaign postbacks, of one campaign or all."""
        return self.rules.postbacks(campaign_id)

    # --- hooks (``Recorder``) ------------------------------------------------------------

    @hookspecs.hookimpl
    def on_click(self, click: Click) -> None:
        """Remember the click so its conversions resolve by subid alone."""
        self.recorder.on_click(click)

    @hookspecs.hookimpl
    def on_conversion(self, conversion: Conversion) -> None:
        """Resolve the conversion's postbacks and queue them durably. No network I/O."""
        self.recorder.record(conversion)

    def record(self, conversion: Conversion) -> Recorded:
        """``on_conversion``, returning what was decided and queued (for hosts and tests)."""
        return self.recorder.record(conversion)

    # --- requests (``RequestBuilder``) ----------------------------------------------------

    @staticmethod
    def with_content_type(request: PostbackRequest) -> PostbackRequest:
        """The request with a ``Content-Type`` for its body (JSON or form), unless it has one."""
        return RequestBuilder.with_content_type(request)

    def with_idempotency_key(self, request: PostbackRequest, delivery_id: int) -> PostbackRequest:
        """The request with the ``idempotency_header`` setting's header carrying the delivery's id."""
        return self.requests.with_idempotency_key(request, delivery_id)

    def prepare(self, request: PostbackRequest, context: ResolveContext) -> tuple[PostbackRequest, Optional[str]]:
        """Run the ``prepare_request`` hooks in turn; the final request, and a problem sentence
        naming the plugins that failed (the request must then not be sent)."""
        return self.requests.prepare(request, context)

    # --- delivery (``DeliveryControl``) ---------------------------------------------------

    def drain(self, timeout: float = 10.0) -> int:
        """Deliver, in this thread, everything due now or falling due within ``timeout`` seconds.

        :return: how many attempts were started.
        """
        return self.delivery.drain(timeout)

    def start(self) -> None:
        """Start the background dispatcher inside the host process."""
        self.delivery.start()

    def close(self) -> None:
        """Stop the dispatcher (attempts in flight finish) and release the database."""
        self.delivery.close()

    def resend(self, delivery_id: int) -> bool:
        """Send a delivery again now (delivered, failed or waiting); False when it cannot be."""
        return self.delivery.resend(delivery_id)

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
        return self.delivery.resend_matching(
            source_id=source_id,
            campaign_id=campaign_id,
            rule_id=rule_id,
            subid=subid,
            outcome=outcome,
            since=since,
            until=until,
            dry_run=dry_run,
        )

    def test_send(self, rule_id: str, **sample: Any) -> operations.TestSend:
        """Send rule ``rule_id`` (``source:ID`` or ``postback:N``) now for a made-up click and
        conversion, outside the queue and the log, and say what the source answered.

        Sample values (keywords): ``status``, ``payout``, ``currency``, ``external_id``, ``tid``,
        ``params`` (more click parameters for macros).

        :raises ConfigError: for an unknown rule.
        """
        return self.delivery.test_send(rule_id, **sample)

    def prune(self, older_than: Any) -> operations.Pruned:
        """Delete attempt-log entries older than ``older_than`` (seconds, or text like ``30d``).

        Pending deliveries' attempts and unreported attempts are kept; see ``operations.prune``.
        """
        return self.delivery.prune(older_than)

    # --- the log (``Inspection``) ---------------------------------------------------------

    def attempts(
        self,
        subid: Optional[str] = None,
        outcome: Optional[str] = None,
        source_id: Optional[str] = None,
        limit: int = 100,
        cause: Optional[str] = None,
    ) -> list[PostbackAttempt]:
        """The plugin's own attempt log, newest first; ``cause`` keeps the attempts with that cause
        code (``timeout``, ``http_refused``...: ``resolution.causes.Cause``)."""
        return self.inspection.attempts(subid, outcome, source_id, limit, cause)

    def explain(self, subid: str) -> Explanation:
        """Why each postback for this click was sent, retried, skipped or failed: failing step first."""
        return self.inspection.explain(subid)

    def stats(self) -> OutboxStats:
        """The outbox at this moment, for monitoring: deliveries per state, how many are due now,
        and how long the most overdue one has waited."""
        return self.inspection.stats()

    def health(self, window_seconds: float = 86400.0, bucket_seconds: Optional[float] = None) -> DeliveryHealth:
        """Delivery health per postback over the last ``window_seconds``: what the sample host's
        dashboard shows (see ``Inspection.health``)."""
        return self.inspection.health(window_seconds, bucket_seconds)
