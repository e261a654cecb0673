"""Recording clicks and conversions: the work behind ``on_click`` and ``on_conversion``.

Nothing here touches the network: a conversion's postbacks are resolved and written to the
outbox in one transaction, and the dispatcher is only told there is work.
"""

from __future__ import annotations

import dataclasses
from typing import Protocol

import pluggy

from hookspecs import Click, Conversion, PostbackRule
from s2s_plugin.hooks import hookcalls
from s2s_plugin.resolution.money import coerce_payout
from s2s_plugin.resolution.statuses import check_status
from s2s_plugin.service.planning import PostbackPlanner
from s2s_plugin.storage.store import Recorded, Store


class Signals(Protocol):
    """What a recorder tells the dispatcher (``Dispatcher`` is one)."""

    def wake(self) -> None:
        """New deliveries are due."""

    def report_soon(self) -> None:
        """Skipped postbacks wait to be reported through ``on_postback_sent``."""


class Recorder:
    """Clicks and conversions into the store, each conversion's postbacks planned and queued.

    :param pm: for the ``postback_rules`` hooks (and, through ``planner``, ``resolve_macro``).
    :param first_delay: seconds before a new delivery's first attempt (the retry schedule's first).
    :param signals: told when new deliveries are due or skipped ones wait to be reported.
    """

    def __init__(
        self,
        pm: pluggy.PluginManager,
        store: Store,
        planner: PostbackPlanner,
        *,
        first_delay: float,
        signals: Signals,
    ) -> None:
        self._pm = pm
        self._store = store
        self._planner = planner
        self._first_delay = first_delay
        self._signals = signals

    def on_click(self, click: Click) -> None:
        """Remember the click so its conversions resolve by subid alone."""
        self._store.save_click(click)

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
        if self._pm.hook.postback_rules.get_hookimpls():
            # The click is loaded for postback_rules hooks only; the store loads it in its transaction.
            collected = hookcalls.call_collect(
                self._pm.hook.postback_rules,
                check=hookcalls.expect_list_of(PostbackRule, "PostbackRule"),
                conversion=conversion,
                click=conversion.click or self._store.load_click(conversion.subid),
            )
            extra = [rule for _plugin, batch in collected.results for rule in batch]
            # A failing postback_rules cannot be re-run later: say so on the conversion's event,
            # where explain shows it, instead of failing the whole conversion.
            note = "; ".join(f"{f.describe()}; its postback rules were not resolved" for f in collected.failures)
        recorded = self._store.record_conversion(
            conversion,
            extra_rules=extra,
            planner=self._planner,
            first_delay=self._first_delay,
            note=note or None,
        )
        if recorded.skipped:
            self._signals.report_soon()
        elif recorded.queued:
            self._signals.wake()
        return recorded
