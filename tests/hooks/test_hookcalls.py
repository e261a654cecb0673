"""``s2s_plugin.hooks.hookcalls``: per-implementation calls in pluggy's order, failures kept apart."""

from __future__ import annotations

import logging

import pluggy
import pytest

import hookspecs
from hookspecs import PostbackRequest
from s2s_plugin.hooks import hookcalls


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
        pm.hook.classify_response,
        check=hookcalls.expect_one_of(("delivered", "retry", "failed")),
        request=None,
        response=None,
    )
    assert (first.value, first.plugin) == ("failed", "good")
    assert (
        first.failures[0].describe()
        == "plugin 'odd' failed in classify_response: it returned 'ok', not one of 'delivered', 'retry', 'failed'"
    )


def test_wrappers_are_not_run_as_answers() -> None:
    class Wrapper:
        @hookspecs.hookimpl(wrapper=True)
        def resolve_macro(self, name, argument, context):
            return (yield)

    pm = manager(("wrapper", Wrapper()), ("plain", Macro("v")))
    assert [impl.plugin_name for impl in hookcalls.implementations(pm.hook.resolve_macro)] == ["plain"]
    assert hookcalls.call_first(pm.hook.resolve_macro, name="x", argument=None, context=None).value == "v"


# --- pluggy sees every call: wrappers, tracing, monitoring -------------------------------------


class Watcher:
    """A third party's new-style wrapper around every extension hook: sees each call and result."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, object]] = []

    @hookspecs.hookimpl(wrapper=True)
    def resolve_macro(self, name, argument, context):
        result = yield
        self.seen.append(("resolve_macro", result))
        return result

    @hookspecs.hookimpl(wrapper=True)
    def prepare_request(self, request, context):
        result = yield
        self.seen.append(("prepare_request", [r.url for r in result]))
        return result

    @hookspecs.hookimpl(wrapper=True)
    def classify_response(self, request, response):
        result = yield
        self.seen.append(("classify_response", result))
        return result


def test_a_wrapper_sees_the_call_and_the_answer_that_passed_over_a_failure() -> None:
    watcher = Watcher()
    pm = manager(("second", Macro("second")), ("broken", Macro(error=RuntimeError("down"))), ("watcher", watcher))
    result = hookcalls.call_first(pm.hook.resolve_macro, name="x", argument=None, context=None)
    assert (result.value, result.plugin) == ("second", "second")
    assert [f.plugin for f in result.failures] == ["broken"]
    assert watcher.seen == [("resolve_macro", "second")]


def test_an_old_style_hookwrapper_wraps_the_call_too() -> None:
    outcomes: list[object] = []

    class OldWrapper:
        @hookspecs.hookimpl(hookwrapper=True)
        def resolve_macro(self, name, argument, context):
            outcome = yield
            outcomes.append(outcome.get_result())

    pm = manager(("plain", Macro("v")), ("old", OldWrapper()))
    assert hookcalls.call_first(pm.hook.resolve_macro, name="x", argument=None, context=None).value == "v"
    assert outcomes == ["v"]


def test_a_chain_is_one_pluggy_call_that_a_wrapper_sees() -> None:
    class Append:
        def __init__(self, suffix: str) -> None:
            self.suffix = suffix

        @hookspecs.hookimpl
        def prepare_request(self, request, context):
            return PostbackRequest(request.method, request.url + self.suffix)

    watcher = Watcher()
    pm = manager(("c", Append("/c")), ("b", Append("/b")), ("watcher", watcher))
    chained = hookcalls.call_chain(
        pm.hook.prepare_request, key="request", request=PostbackRequest("GET", "https://x.test"), context=None
    )
    assert chained.value.url == "https://x.test/b/c"
    # Each implementation's answer, in pluggy's order: the second built on the first.
    assert watcher.seen == [("prepare_request", ["https://x.test/b", "https://x.test/b/c"])]


def test_a_wrapper_that_raises_is_a_failure_and_the_answers_stand() -> None:
    class Raising:
        @hookspecs.hookimpl(wrapper=True)
        def resolve_macro(self, name, argument, context):
            yield
            raise RuntimeError("wrapper bug")

    pm = manager(("plain", Macro("v")), ("raising", Raising()))
    result = hookcalls.call_first(pm.hook.resolve_macro, name="x", argument=None, context=None)
    assert result.value == "v"
    assert [f.describe() for f in result.failures] == [
        "plugin 'raising' failed in resolve_macro: RuntimeError: wrapper bug"
    ]


def test_monitoring_and_tracing_see_the_calls() -> None:
    pm = manager(("plain", Macro("v")))
    before: list[str] = []
    undo = pm.add_hookcall_monitoring(lambda name, impls, kwargs: before.append(name), lambda *args: None)
    trace: list[str] = []
    pm.trace.root.setwriter(trace.append)
    undo_tracing = pm.enable_tracing()
    try:
        hookcalls.call_first(pm.hook.resolve_macro, name="x", argument=None, context=None)
    finally:
        undo_tracing()
        undo()
    assert "resolve_macro" in before
    assert any("resolve_macro" in line for line in trace)


def test_outside_the_helpers_a_failure_reaches_the_caller_as_in_pluggy() -> None:
    pm = manager(("broken", Macro(error=RuntimeError("down"))))
    hookcalls.call_first(pm.hook.resolve_macro, name="x", argument=None, context=None)  # guards installed
    with pytest.raises(RuntimeError, match="down"):
        pm.hook.resolve_macro(name="x", argument=None, context=None)


def test_a_plugin_registered_later_is_guarded_too() -> None:
    pm = manager(("plain", Macro("v")))
    hookcalls.call_first(pm.hook.resolve_macro, name="x", argument=None, context=None)
    pm.register(Macro(error=ValueError("late bug")), name="late")
    result = hookcalls.call_first(pm.hook.resolve_macro, name="x", argument=None, context=None)
    assert result.value == "v" and [f.plugin for f in result.failures] == ["late"]


def test_a_delivery_calls_every_extension_hook_through_pluggy(make_s2s, standin) -> None:
    from decimal import Decimal

    from hookspecs import Click, Conversion

    class Stamp:
        @hookspecs.hookimpl
        def prepare_request(self, request, context):
            return PostbackRequest(request.method, request.url + "&stamped=1", request.headers, request.body)

    pm, s2s = make_s2s()
    watcher = Watcher()
    pm.register(Stamp(), name="stamp")
    pm.register(watcher, name="watcher")
    called: list[str] = []
    undo = pm.add_hookcall_monitoring(lambda name, impls, kwargs: called.append(name), lambda *args: None)
    s2s.add_source("exo", postback_url=standin.url + "/pb?cid={external_id}", statuses=["sale"])
    pm.hook.on_click(click=Click(subid="s1", campaign_id="c", source_id="exo", params={"external_id": "X"}))
    pm.hook.on_conversion(conversion=Conversion(subid="s1", status="sale", payout=Decimal("1")))
    s2s.drain(timeout=5)
    undo()
    assert standin.requests[0].params["stamped"] == "1"
    assert [name for name, _ in watcher.seen] == ["prepare_request", "classify_response"]
    assert {"prepare_request", "classify_response", "on_postback_sent"} <= set(called)
