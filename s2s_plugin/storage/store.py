"""Durable storage: postback configuration, remembered clicks, conversions and the outbox writes.

``record_conversion`` is the whole of ``on_conversion``'s work: one short transaction, no network.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Sequence
from decimal import Decimal
from typing import Any, Optional

from sqlalchemy import bindparam, delete, insert, select, update

from hookspecs import Click, Conversion, PostbackRule
from s2s_plugin.errors import ConfigError
from s2s_plugin.resolution.causes import Cause
from s2s_plugin.resolution.hosts import host_key
from s2s_plugin.resolution.money import format_amount
from s2s_plugin.resolution.redact import join_secrets, redact_body, redact_url
from s2s_plugin.resolution.resolve import PlannedPostback, fill_delivery_id, uses_delivery_id
from s2s_plugin.resolution.ruleid import RuleId
from s2s_plugin.resolution.states import DeliveryState
from s2s_plugin.resolution.statuses import KnownConversion, StatusDecision, decide
from s2s_plugin.storage import tables as t
from s2s_plugin.storage.database import Database
from s2s_plugin.storage.queue import notify_compiled
from s2s_plugin.storage.rawsql import RawStatement, RawTransaction, compile_raw, compile_raw_insert
from s2s_plugin.storage.rows import click_from_row, click_values, dumps, postback_rule, source_rule
from s2s_plugin.storage.rulecache import MISSING, RuleCache

#: ``planner(conversion, click, rules)``: resolution, injected so this module stays free of hooks.
Planner = Callable[[Conversion, Optional[Click], Sequence[PostbackRule]], list[PlannedPostback]]


@dataclasses.dataclass(frozen=True)
class Recorded:
    """What ``record_conversion`` did: the status decision and the deliveries it queued or skipped."""

    decision: StatusDecision
    queued: int = 0
    skipped: int = 0


def _amount(value: Optional[Decimal]) -> Optional[str]:
    return None if value is None else format_amount(value)


class Store:
    """The plugin's tables behind domain operations. Thread-safe: each call takes its own connection.

    ``on_click`` and ``on_conversion`` run statements compiled once (see ``rawsql``) in the
    database's transactions; configuration changes and reads are plain Core on its engine.
    """

    def __init__(self, database: Database) -> None:
        self.database = database
        self.engine = database.engine
        self._insert = database.insert
        # on_conversion's statements, built once with bound parameters: building a statement with
        # inline values costs more than running it (the enqueue path is a few hundred microseconds).
        upsert = self._insert(t.clicks)
        self._upsert_click = upsert.on_conflict_do_update(
            index_elements=["subid"], set_={c.name: upsert.excluded[c.name] for c in t.clicks.c if c.name != "subid"}
        )
        click_query = select(t.clicks).where(t.clicks.c.subid == bindparam("b_subid"))
        self._rule_cache = database.rules
        # on_conversion's statements run on the DB-API connection, compiled once (see rawsql).
        dialect = database.dialect
        self._raw_upsert_click = compile_raw(self._upsert_click, dialect, [c.name for c in t.clicks.c])
        self._raw_click = compile_raw(click_query, dialect)
        # The click a conversion is for, with the configuration's version (one statement less per
        # conversion). Locks the click row on PostgreSQL, so two reports for one click are decided in turn.
        version = select(t.config_version.c.version).where(t.config_version.c.id == 1).scalar_subquery()
        click_for_conversion = select(t.clicks, version.label("config_version")).where(
            t.clicks.c.subid == bindparam("b_subid")
        )
        self._raw_click_locked = compile_raw(
            click_for_conversion.with_for_update(of=t.clicks) if dialect.name == "postgresql" else click_for_conversion,
            dialect,
        )
        self._raw_known = compile_raw(
            select(t.conversions.c.id, t.conversions.c.tid, t.conversions.c.status)
            .where(t.conversions.c.subid == bindparam("b_subid"))
            .order_by(t.conversions.c.id),
            dialect,
        )
        self._raw_source = compile_raw(select(t.sources).where(t.sources.c.source_id == bindparam("b_source")), dialect)
        self._raw_campaign_postbacks = compile_raw(
            select(t.postbacks).where(t.postbacks.c.campaign_id == bindparam("b_campaign")).order_by(t.postbacks.c.id),
            dialect,
        )
        self._raw_new_conversion = compile_raw_insert(insert(t.conversions), dialect, _NEW_CONVERSION_COLUMNS)
        self._raw_conversion_updates: dict[tuple[str, ...], RawStatement] = {}
        self._raw_event = compile_raw(insert(t.events), dialect, [c.name for c in t.events.c if c.name != "id"])
        # ON CONFLICT: a repeated status change finds its deliveries already queued.
        self._raw_queue_delivery = compile_raw_insert(
            self._insert(t.deliveries).on_conflict_do_nothing(index_elements=["conversion_id", "status", "rule_id"]),
            dialect,
            _DELIVERY_COLUMNS,
        )
        self._raw_skip_attempt = compile_raw(insert(t.attempts), dialect, _SKIP_ATTEMPT_COLUMNS)
        # {delivery_id} is known once the delivery is inserted: its request is rewritten at once.
        self._raw_fill_delivery_id = compile_raw(
            update(t.deliveries).where(t.deliveries.c.id == bindparam("b_id")), dialect, ("url", "body", "headers")
        )

    def create_tables(self) -> None:
        """Bring the plugin's tables up to date: create them, or run the pending migrations."""
        from s2s_plugin.storage.migrate import upgrade

        upgrade(self.engine)

    # --- configuration ------------------------------------------------------------------

    def upsert_source(self, source_id: str, values: dict[str, Any]) -> PostbackRule:
        """Create or replace the postback of source ``source_id``."""
        self._rule_cache.clear()
        now = time.time()
        row = {**values, "source_id": source_id, "updated_at": now}
        stmt = self._insert(t.sources).values(**row, created_at=now)
        stmt = stmt.on_conflict_do_update(index_elements=["source_id"], set_=row)
        with self.engine.begin() as conn:
            conn.execute(stmt)
            return source_rule(conn.execute(select(t.sources).where(t.sources.c.source_id == source_id)).one())

    def delete_source(self, source_id: str) -> bool:
        """Remove a source's postback; False when there was none."""
        self._rule_cache.clear()
        with self.engine.begin() as conn:
            return conn.execute(delete(t.sources).where(t.sources.c.source_id == source_id)).rowcount > 0

    def get_source(self, source_id: str) -> Optional[PostbackRule]:
        """The postback rule of one source, or None."""
        with self.engine.connect() as conn:
            row = conn.execute(select(t.sources).where(t.sources.c.source_id == source_id)).first()
        return source_rule(row) if row else None

    def list_sources(self) -> list[PostbackRule]:
        """Every source's postback rule, by source id."""
        with self.engine.connect() as conn:
            return [source_rule(r) for r in conn.execute(select(t.sources).order_by(t.sources.c.source_id))]

    def insert_postback(self, values: dict[str, Any]) -> PostbackRule:
        """Add a campaign S2S postback."""
        self._rule_cache.clear()
        now = time.time()
        with self.engine.begin() as conn:
            pk = conn.execute(insert(t.postbacks).values(**values, created_at=now, updated_at=now)).inserted_primary_key
            assert pk is not None  # an INSERT always has its primary key
            pk = pk[0]
            return postback_rule(conn.execute(select(t.postbacks).where(t.postbacks.c.id == pk)).one())

    def update_postback(self, postback_id: int, values: dict[str, Any]) -> PostbackRule:
        """Change a campaign S2S postback.

        :raises ConfigError: when there is no such postback.
        """
        self._rule_cache.clear()
        with self.engine.begin() as conn:
            done = conn.execute(
                update(t.postbacks).where(t.postbacks.c.id == postback_id).values(**values, updated_at=time.time())
            ).rowcount
            if not done:
                raise ConfigError(f"there is no postback postback:{postback_id}")
            return postback_rule(conn.execute(select(t.postbacks).where(t.postbacks.c.id == postback_id)).one())

    def delete_postback(self, postback_id: int) -> bool:
        """Remove a campaign S2S postback; False when there was none."""
        self._rule_cache.clear()
        with self.engine.begin() as conn:
            return conn.execute(delete(t.postbacks).where(t.postbacks.c.id == postback_id)).rowcount > 0

    def list_postbacks(self, campaign_id: Optional[str] = None) -> list[PostbackRule]:
        """Campaign S2S postbacks, of one campaign or of all."""
        query = select(t.postbacks).order_by(t.postbacks.c.campaign_id, t.postbacks.c.id)
        if campaign_id is not None:
            query = query.where(t.postbacks.c.campaign_id == campaign_id)
        with self.engine.connect() as conn:
            return [postback_rule(r) for r in conn.execute(query)]

    def mark_rule_gone(self, rule_id: str) -> None:
        """Flag a rule whose target answered 410 Gone, for the operator to see."""
        self._rule_cache.clear()
        parsed = RuleId.parse(rule_id)
        with self.engine.begin() as conn:
            if parsed.kind == "source":
                conn.execute(update(t.sources).where(t.sources.c.source_id == parsed.key).values(gone=True))
            elif parsed.kind == "postback" and parsed.key.isdigit():
                conn.execute(update(t.postbacks).where(t.postbacks.c.id == parsed.postback_pk).values(gone=True))

    def rules_for_click(self, tx: RawTransaction, click: Optional[Click], version: Optional[int]) -> list[PostbackRule]:
        """The click's source postback and its campaign's S2S postbacks, read in transaction ``tx``
        unless cached under the configuration's ``version`` (read in ``tx`` too)."""
        if click is None:
            return []
        cache = self._rule_cache
        if version is None:  # the version row is gone: nothing tells a change, so cache nothing
            cache = RuleCache()
        rules: list[PostbackRule] = []
        if click.source_id:
            source = cache.get(version, "source", click.source_id)
            if source is MISSING:
                row = tx.first(self._raw_source, {"b_source": click.source_id})
                source = source_rule(row) if row is not None else None
                cache.put(version, "source", click.source_id, source)
            if source is not None:
                rules.append(source)
        campaign = cache.get(version, "campaign", click.campaign_id)
        if campaign is MISSING:
            campaign = [
                postback_rule(r) for r in tx.all(self._raw_campaign_postbacks, {"b_campaign": click.campaign_id})
            ]
            cache.put(version, "campaign", click.campaign_id, campaign)
        rules.extend(campaign)
        return rules

    # --- clicks -------------------------------------------------------------------------

    def save_click(self, click: Click) -> None:
        """Remember a click (a repeat of the same subid replaces it)."""
        with self.database.transaction() as tx:
            tx.execute(self._raw_upsert_click, click_values(click))

    def load_click(self, subid: str) -> Optional[Click]:
        """The remembered click, or None."""
        # Runs for every delivery when a prepare_request hook is installed: a plain read, not a
        # transaction that waits for the write turn.
        with self.database.reading() as read:
            row = read.first(self._raw_click, {"b_subid": subid})
        return click_from_row(row) if row else None

    # --- conversions and the outbox -----------------------------------------------------

    def record_conversion(
        self,
        conversion: Conversion,
        *,
        extra_rules: Sequence[PostbackRule],
        planner: Planner,
        first_delay: float,
        note: Optional[str] = None,
    ) -> Recorded:
        """Decide what the conversion means and queue its postbacks, all in one transaction.

        ``note`` (a plugin that failed to give its postback rules) is added to the event's reason
        when the conversion fires postbacks, and the event's cause is then ``plugin_failed``, so
        ``explain`` shows it.
        """
        now = time.time()
        subid = conversion.subid
        with self.database.transaction() as tx:
            if conversion.click is not None:
                tx.execute(self._raw_upsert_click, click_values(conversion.click))
            # Locks the click row on PostgreSQL, so two reports for one click are decided in turn.
            row = tx.first(self._raw_click_locked, {"b_subid": subid})
            click = click_from_row(row) if row is not None else conversion.click
            config_version = row.config_version if row is not None else None
            known = [KnownConversion(*r) for r in tx.all(self._raw_known, {"b_subid": subid})]
            decision = decide(known, conversion.tid, conversion.status)
            payout = _amount(conversion.payout)
            conversion_id = self._apply_decision(tx, conversion, decision, payout, now)
            noted = bool(note) and decision.fires
            tx.execute(
                self._raw_event,
                {
                    "subid": subid,
                    "conversion_id": conversion_id,
                    "tid": conversion.tid,
                    "status": conversion.status,
                    "original_status": conversion.original_status,
                    "payout": payout,
                    "decision": decision.kind,
                    "reason": f"{decision.reason}; {note}" if noted else decision.reason,
                    "cause": Cause.PLUGIN_FAILED if noted else None,
                    "created_at": now,
                },
            )
            if not decision.fires or conversion_id is None:
                return Recorded(decision)
            # {original_status} is what the network said, even when the decision renamed it (a "sale"
            # with a new tid fires as a rebill).
            fired = dataclasses.replace(
                conversion,
                status=decision.status,
                click=click,
                original_status=conversion.original_status or conversion.status,
            )
            rules = self.rules_for_click(tx, click, config_version) + list(extra_rules)
            queued = skipped = 0
            for planned in planner(fired, click, rules):
                values = self._delivery_values(fired, conversion_id, click, planned, payout, now, first_delay)
                delivery_id = tx.insert(self._raw_queue_delivery, values)
                if delivery_id is None:
                    continue  # already queued for this (conversion, status, rule)
                if uses_delivery_id(planned):
                    planned = fill_delivery_id(planned, delivery_id)
                    tx.execute(
                        self._raw_fill_delivery_id,
                        {
                            "b_id": delivery_id,
                            "url": planned.url,
                            "body": planned.body,
                            "headers": dumps(planned.headers) if planned.headers else None,
                        },
                    )
                if planned.state == DeliveryState.SKIPPED:
                    skipped += 1
                    secrets = planned.rule.secrets
                    tx.execute(
                        self._raw_skip_attempt,
                        {
                            "delivery_id": delivery_id,
                            "attempt": 0,
                            "outcome": "skipped",
                            "method": planned.method,
                            "url": redact_url(planned.url, secrets),
                            "body": redact_body(planned.body, secrets),
                            "reason": planned.reason,
                            "cause": planned.cause,
                            "started_at": now,
                            "reported": False,
                            "response_truncated": False,
                        },
                    )
                else:
                    queued += 1
            if queued and tx.dialect_name == "postgresql":
                # Wakes listening PostgreSQL workers when the transaction commits.
                tx.execute(self.database.compiled(notify_compiled))
            return Recorded(decision, queued, skipped)

    def _apply_decision(
        self, tx: RawTransaction, conversion: Conversion, decision: StatusDecision, payout: Optional[str], now: float
    ) -> Optional[int]:
        values = {
            "status": decision.status,
            "original_status": conversion.original_status,
            "currency": conversion.currency,
            "updated_at": now,
        }
        if conversion.payout is not None:
            values["payout"] = payout
        if decision.kind == "new":
            return tx.insert(
                self._raw_new_conversion,
                {
                    **values,
                    "subid": conversion.subid,
                    "tid": (conversion.tid or "").strip(),
                    "params": dumps(conversion.params),
                    "created_at": now,
                    "payout": payout,
                },
            )
        if decision.kind == "change":
            if decision.adopt_tid:
                values["tid"] = (conversion.tid or "").strip()
            tx.execute(self._conversion_update(tuple(values)), {**values, "b_id": decision.conversion_id})
        elif decision.adopt_tid and decision.conversion_id is not None:
            # A repeat or a reordered report that carried the tid the conversion lacked: keep the tid,
            # so the next new tid on this click is recognised as a rebill.
            values = {"tid": (conversion.tid or "").strip(), "updated_at": now}
            tx.execute(self._conversion_update(tuple(values)), {**values, "b_id": decision.conversion_id})
        return decision.conversion_id

    def _conversion_update(self, columns: tuple[str, ...]) -> RawStatement:
        """``UPDATE s2s_conversions SET <columns> WHERE id = :b_id``, compiled on first use."""
        statement = self._raw_conversion_updates.get(columns)
        if statement is None:
            update_one = update(t.conversions).where(t.conversions.c.id == bindparam("b_id"))
            statement = compile_raw(update_one, self.engine.dialect, columns)
            self._raw_conversion_updates[columns] = statement
        return statement

    def _delivery_values(
        self,
        conversion: Conversion,
        conversion_id: int,
        click: Optional[Click],
        planned: PlannedPostback,
        payout: Optional[str],
        now: float,
        first_delay: float,
    ) -> dict[str, Any]:
        rule = planned.rule
        due = planned.state == DeliveryState.DUE
        return {
            "conversion_id": conversion_id,
            "subid": conversion.subid,
            "tid": (conversion.tid or "").strip() or None,
            "status": conversion.status,
            "rule_id": rule.id,
            "rule_url": rule.url,
            "template": rule.template,
            "source_id": rule.source_id or (click.source_id if click else None),
            "campaign_id": rule.campaign_id or (click.campaign_id if click else None),
            "payout": payout,
            "currency": conversion.currency,
            "method": planned.method,
            "url": planned.url,
            "body": planned.body,
            "headers": dumps(planned.headers) if planned.headers else None,
            "follow_redirects": rule.follow_redirects,
            "state": DeliveryState.DUE if due else DeliveryState.SKIPPED,
            "attempts": 0,
            "retry_base": 0,
            "next_attempt_at": now + first_delay if due else None,
            "lease_token": 0,
            "reason": planned.reason,
            "cause": planned.cause,
            "resolve_note": planned.reason if due else None,
            "host": host_key(planned.url),
            "lane": 0,
            "age_from": now,
            "secrets": join_secrets(rule.secrets) if rule.secrets else None,
            "created_at": now,
            "updated_at": now,
        }


#: Columns of a new conversion row (all but its id).
_NEW_CONVERSION_COLUMNS = (
    "subid",
    "tid",
    "status",
    "original_status",
    "payout",
    "currency",
    "params",
    "created_at",
    "updated_at",
)
#: Columns ``_delivery_values`` gives (the others keep their defaults).
_DELIVERY_COLUMNS = (
    "conversion_id",
    "subid",
    "tid",
    "status",
    "rule_id",
    "rule_url",
    "template",
    "source_id",
    "campaign_id",
    "payout",
    "currency",
    "method",
    "url",
    "body",
    "headers",
    "follow_redirects",
    "state",
    "attempts",
    "retry_base",
    "next_attempt_at",
    "lease_token",
    "reason",
    "cause",
    "resolve_note",
    "host",
    "lane",
    "age_from",
    "secrets",
    "created_at",
    "updated_at",
)
#: Columns of the attempt a skipped delivery records.
_SKIP_ATTEMPT_COLUMNS = (
    "delivery_id",
    "attempt",
    "outcome",
    "method",
    "url",
    "body",
    "reason",
    "cause",
    "started_at",
    "reported",
    "response_truncated",
)
