"""Delivery control: the dispatcher's loop (drain, start, close), resends, test sends, pruning."""

from __future__ import annotations

from typing import Any, Optional

from s2s_plugin.delivery.dispatcher import Dispatcher
from s2s_plugin.errors import InputError
from s2s_plugin.ops import operations
from s2s_plugin.service.library import TemplateLibrary
from s2s_plugin.service.planning import PostbackPlanner
from s2s_plugin.service.requests import RequestBuilder
from s2s_plugin.service.rules import Rules
from s2s_plugin.storage import queue
from s2s_plugin.storage.database import Database


class DeliveryControl:
    """What an operator or a host does to deliveries: run the dispatcher, send again, try a rule.

    :param database: the outbox's database (resends and pruning write to it); ``close`` closes it.
    :param dispatcher: the dispatcher to run and to wake after a resend; its sender makes test sends.
    :param rules: to find the rule a test send names.
    :param planner: resolves a test send's made-up conversion as a real one would be.
    :param requests: prepares a test send's request as the dispatcher's would be.
    :param library: templates, for a test send's success text.
    """

    def __init__(
        self,
        database: Database,
        dispatcher: Dispatcher,
        *,
        rules: Rules,
        planner: PostbackPlanner,
        requests: RequestBuilder,
        library: TemplateLibrary,
    ) -> None:
        self._database = database
        self._dispatcher = dispatcher
        self._rules = rules
        self._planner = planner
        self._requests = requests
        self._library = library

    def drain(self, timeout: float = 10.0) -> int:
        """Deliver, in this thread, everything due now or falling due within ``timeout`` seconds.

        :return: how many attempts were started.
        """
        return self._dispatcher.drain(timeout)

    def start(self) -> None:
        """Start the background dispatcher inside the host process."""
        self._dispatcher.start()

    def close(self) -> None:
        """Stop the dispatcher (attempts in flight finish) and release the database."""
        self._dispatcher.close()
        self._database.close()

    def resend(self, delivery_id: int) -> bool:
        """Send a delivery again now (delivered, failed or waiting); False when it cannot be."""
        done = queue.make_due(self._database, [delivery_id]) > 0
        if done:
            self._dispatcher.wake()
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
            self._database.engine,
            source_id=source_id,
            campaign_id=campaign_id,
            rule_id=rule_id,
            subid=subid,
            outcome=outcome,
            since=since,
            until=until,
        )
        if ids and not dry_run:
            queue.make_due(self._database, ids)
            self._dispatcher.wake()
        return ids

    def test_send(self, rule_id: str, **sample: Any) -> operations.TestSend:
        """Send rule ``rule_id`` (``source:ID`` or ``postback:N``) now for a made-up click and
        conversion, outside the queue and the log, and say what the source answered.

        Sample values (keywords): ``status``, ``payout``, ``currency``, ``external_id``, ``tid``,
        ``params`` (more click parameters for macros).

        :raises ConfigError: for an unknown rule.
        """
        rule = self._rules.rule(rule_id)
        template = self._library.get(rule.template)
        return operations.test_send(
            rule,
            plan=self._planner,
            requests=self._requests,
            sender=self._dispatcher.sender,
            success_body=template.success_body if template else None,
            **sample,
        )

    def prune(self, older_than: Any) -> operations.Pruned:
        """Delete attempt-log entries older than ``older_than`` (seconds, or text like ``30d``).

        Pending deliveries' attempts and unreported attempts are kept; see ``operations.prune``.
        """
        seconds = operations.parse_duration(older_than) if isinstance(older_than, str) else float(older_than)
        return operations.prune(self._database.engine, seconds)
