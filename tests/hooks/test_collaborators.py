"""The service's collaborators used on their own, each with only the inputs it needs: no
``PostbackService``, no dispatcher, no other collaborator."""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pluggy
import pytest
from sqlalchemy import select

import hookspecs
from hookspecs import Conversion, SourceTemplate
from s2s_plugin import ConfigError, InputError
from s2s_plugin.service.inspection import Inspection
from s2s_plugin.service.library import TemplateLibrary
from s2s_plugin.service.planning import PostbackPlanner
from s2s_plugin.service.recording import Recorder
from s2s_plugin.service.rules import Rules
from s2s_plugin.storage import tables as t
from s2s_plugin.storage.database import Database
from s2s_plugin.storage.store import Store
from tests.hooks.support import make_click


class AcmeTemplates:
    """A source plugin bringing one template."""

    @hookspecs.hookimpl
    def register_source_templates(self) -> list[SourceTemplate]:
        return [
            SourceTemplate(
                name="acme",
                postback_url="https://acme.example/pb?click={external_id}&sum={revenue}",
                click_id_param="external_id",
                source_macro="{acme_click}",
                statuses=("sale",),
            )
        ]


@pytest.fixture
def pm() -> pluggy.PluginManager:
    manager = pluggy.PluginManager(hookspecs.PROJECT_NAME)
    manager.add_hookspecs(hookspecs)
    manager.register(AcmeTemplates(), name="acme")
    return manager


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    database = Database(f"sqlite:///{tmp_path / 'rules.db'}")
    store = Store(database)
    store.create_tables()
    yield store
    database.close()


def test_rules_alone_keep_sources_and_campaign_postbacks(pm: pluggy.PluginManager, store: Store) -> None:
    rules = Rules(store, TemplateLibrary(pm))
    assert "acme" in rules.templates()
    source = rules.add_source("acme-traffic", template="acme")
    assert source.url == "https://acme.example/pb?click={external_id}&sum={revenue}"
    assert source.statuses == ("sale",)
    assert rules.rule("source:acme-traffic") == source
    postback = rules.add_postback("summer", "https://example.net/pb?cid={externl_id}", statuses=["lead"])
    assert any("did you mean" in warning and "{external_id}" in warning for warning in postback.warnings)
    assert rules.rule(postback.id).url == "https://example.net/pb?cid={externl_id}"
    assert rules.campaign_link("acme-traffic", "https://t.example", "summer") == (
        "https://t.example/c/summer?external_id={acme_click}"
    )
    assert rules.remove_postback(postback.id) is True
    with pytest.raises(ConfigError, match="there is no postback rule"):
        rules.rule(postback.id)
    with pytest.raises(ConfigError, match="unknown template 'nope'"):
        rules.add_source("other", template="nope")


def test_the_template_library_is_built_when_first_asked_for(pm: pluggy.PluginManager) -> None:
    library = TemplateLibrary(pm)

    class Later:
        @hookspecs.hookimpl
        def register_source_templates(self) -> list[SourceTemplate]:
            return [SourceTemplate(name="later", postback_url="https://later.example/pb?c={external_id}")]

    pm.register(Later(), name="later")  # registered after the library was made: still in it
    assert library.get("later") is not None
    assert library.find("ACME") is not None and library.find(None) is None
    assert library.failures == []


class Signals:
    """Stands in for the dispatcher: counts what the recorder told it."""

    def __init__(self) -> None:
        self.woken = 0
        self.reports = 0

    def wake(self) -> None:
        self.woken += 1

    def report_soon(self) -> None:
        self.reports += 1


def test_the_recorder_alone_queues_and_skips_without_a_dispatcher(pm: pluggy.PluginManager, store: Store) -> None:
    library = TemplateLibrary(pm)
    Rules(store, library).add_postback("summer", "https://example.net/pb?cid={external_id}&p={revenue}")
    signals = Signals()
    recorder = Recorder(pm, store, PostbackPlanner(pm, library), first_delay=0.0, signals=signals)

    recorder.on_click(make_click("with-id", "ext-1", source=None))
    recorded = recorder.record(Conversion(subid="with-id", status="sale", payout=2.5))  # a float: no noise
    assert (recorded.queued, recorded.skipped, signals.woken, signals.reports) == (1, 0, 1, 0)
    with store.engine.connect() as conn:
        (url,) = conn.execute(select(t.deliveries.c.url)).scalars()
    assert url == "https://example.net/pb?cid=ext-1&p=2.5"

    recorder.on_click(make_click("no-id", None, source=None))
    recorded = recorder.record(Conversion(subid="no-id", status="sale", payout=Decimal("1")))
    assert (recorded.queued, recorded.skipped, signals.woken, signals.reports) == (0, 1, 1, 1)

    with pytest.raises(InputError, match="status 'won' is not one of"):
        recorder.record(Conversion(subid="with-id", status="won"))


def test_inspection_alone_explains_and_counts_what_the_recorder_did(pm: pluggy.PluginManager, store: Store) -> None:
    library = TemplateLibrary(pm)
    Rules(store, library).add_postback("summer", "https://example.net/pb?cid={external_id}")
    recorder = Recorder(pm, store, PostbackPlanner(pm, library), first_delay=0.0, signals=Signals())
    recorder.on_click(make_click("no-id", None, source=None))
    recorder.record(Conversion(subid="no-id", status="sale"))
    inspection = Inspection(store.engine, store, library)

    explanation = inspection.explain("no-id")
    assert "external_id" in explanation.headline
    assert inspection.explain("never-seen").headline.startswith("Click never-seen is unknown")
    stats = inspection.stats()
    assert stats.by_state.get("skipped") == 1 and stats.due_now == 0
    (skipped,) = inspection.attempts(subid="no-id")
    assert (skipped.outcome, skipped.attempt, skipped.rule_id) == ("skipped", 0, "postback:1")
    assert inspection.attempts(outcome="delivered") == []
