"""``s2s_plugin.hookcalls``: per-implementation calls in pluggy's order, failures kept apart."""

from __future__ import annotations

import logging

import pluggy
import pytest

import hookspecs
from hookspecs import PostbackRequest
from s2s_plugin import hookcalls


def manager(*plugins: tuple[str, object]) -> pluggy.PluginManager:
    pm = pluggy.PluginManager(hookspecs.PROJECT_NAME)
    pm.add_hookspecs(hookspecs)
    for name, plugin in plugins:
        pm.register(plugin, name=name)
    return pm


class Macro:
    def __init__(self, value: str | None = None, error: Exception | None = None) -> None:
        self.value, self.error, self.calls = value, error, 0

    @hookspecs.hookimpl
    def resolve_macro(self, name, argument, context):
        self.calls += 1
        if self.error is not None:
            raise self.error
        return self.value


def test_first_result_follows_pluggys_order_and_passes_over_a_failure(caplog: pytest.LogCaptureFixture) -> None:
    first, broken, second = Macro("first"), Macro(error=RuntimeError("db down")), Macro("second")
    # pluggy calls the last registered first: broken, then first; second is never asked.
    pm = manager(("second", second), ("first", first), ("broken", broken))
    with caplog.at_level(logging.WARNING, "s2s_postback.plugins"):
        result = hookcalls.call_first(pm.hook.resolve_macro, name="x", argument=None, context=None)
    assert (result.value, result.plugin) == ("first", "first")
    assert [f.plugin for f in result.failures] == ["broken"]
    assert result.failures[0].describe() == "plugin 'broken' failed in resolve_macro: RuntimeError: db down"
    assert second.calls == 0
    assert "plugin 'broken' failed in resolve_macro" in caplog.text


def test_tryfirst_and_trylast_are_honoured() -> None:
    class Early:
        @hookspecs.hookimpl(tryfirst=True)
        def resolve_macro(self, name, argument, context):
            return "early"

    class Late:
        @hookspecs.hookimpl(trylast=True)
        def resolve_macro(self, name, argument, context):
            return "late"

    pm = manager(("early", Early()), ("late", Late()))
    assert [impl.plugin_name for impl in hookcalls.implementations(pm.hook.resolve_macro)] == ["early", "late"]
    assert hookcalls.call_first(pm.hook.resolve_macro, name="x", argument=None, context=None).value == "early"


def test_an_implementation_may_take_fewer_arguments() -> None:
    class OnlyName:
        @hookspecs.hookimpl
        def resolve_macro(self, name):
            return name.upper()

    pm = manager(("only_name", OnlyName()))
    assert hookcalls.call_first(pm.hook.resolve_macro, name="goal", argument=None, context=None).value == "GOAL"


def test_collect_keeps_every_answer_and_every_failure() -> None:
    class Rules:
        def __init__(self, answer):
            self.answer = answer

        @hookspecs.hookimpl
        def postback_rules(self, conversion, click):
            if isinstance(self.answer, Exception):
                raise self.answer
            return self.answer

    rule = hookspecs.PostbackRule(id="a:1", url="https://example.net/")
    pm = manager(("a", Rules([rule])), ("none", Rules(None)), ("bad", Rules(ValueError("no"))), ("wrong", Rules("a:1")))
    collected = hookcalls.call_collect(
        pm.hook.postback_rules,
        check=hookcalls.expect_list_of(hookspecs.PostbackRule, "PostbackRule"),
        conversion=None,
        click=None,
    )
    assert collected.results == [("a", [rule])]
    assert {f.plugin: f.describe() for f in collected.failures} == {
        "bad": "plugin 'bad' failed in postback_rules: ValueError: no",
        "wrong": "plugin 'wrong' failed in postback_rules: it returned str 'a:1', not a list of PostbackRule",
    }


def test_chain_gives_each_implementation_the_previous_result() -> None:
    class Append:
        def __init__(self, suffix: str, fail: bool = False) -> None:
            self.suffix, self.fail = suffix, fail

        @hookspecs.hookimpl
        def prepare_request(self, request, context):
            if self.fail:
                raise KeyError("token")
            return PostbackRequest(request.method, request.url + self.suffix)

    class Unchanged:
        @hookspecs.hookimpl
        def prepare_request(self, request, context):
            return None

    pm = manager(("c", Append("/c")), ("broken", Append("", fail=True)), ("same", Unchanged()), ("b", Append("/b")))
    chained = hookcalls.call_chain(
        pm.hook.prepare_request, key="request", request=PostbackRequest("GET", "https://x.test"), context=None
    )
    assert chained.value.url == "https://x.test/b/c"
    assert chained.changed_by == ["b", "c"]
    assert [f.plugin for f in chained.failures] == ["broken"]


def test_a_wrong_answer_is_a_failure_of_that_plugin() -> None:
    class Says:
        def __init__(self, verdict):
            self.verdict = verdict

        @hookspecs.hookimpl
        def classify_response(self, request, response):
            return self.verdict

    pm = manager(("good", Says("failed")), ("odd", Says("ok")))
    first = hookcalls.call_first(
        pm.hook.classify_response, check=hookcalls.expect_one_of(("delivered", "retry", "failed")), request=None, response=None
    )
    assert (first.value, first.plugin) == ("failed", "good")
    assert first.failures[0].describe() == "plugin 'odd' failed in classify_response: it returned 'ok', not one of 'delivered', 'retry', 'failed'"
    assert hookcalls.is_failure_note("status sale; " + first.failures[0].describe())
    assert not hookcalls.is_failure_note("the source answered HTTP 200")


def test_wrappers_are_not_run_as_answers() -> None:
    class Wrapper:
        @hookspecs.hookimpl(wrapper=True)
        def resolve_macro(self, name, argument, context):
            return (yield)

    pm = manager(("wrapper", Wrapper()), ("plain", Macro("v")))
    assert [impl.plugin_name for impl in hookcalls.implementations(pm.hook.resolve_macro)] == ["plain"]
    assert hookcalls.call_first(pm.hook.resolve_macro, name="x", argument=None, context=None).value == "v"
