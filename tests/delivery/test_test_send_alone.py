"""``ops.operations.test_send`` needs no service: a rule, a planner, something that prepares the
request, and a sender. Here with no database at all, and a preparer standing in for the
``RequestBuilder`` that signs the request as a ``prepare_request`` plugin would."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Optional

import pluggy

import hookspecs
from hookspecs import Click, Conversion, PostbackRequest, PostbackRule, ResolveContext
from s2s_plugin.delivery.sender import Sender
from s2s_plugin.ops.operations import TEST_DELIVERY_ID, test_send
from s2s_plugin.resolution.resolve import PlannedPostback, plan
from s2s_plugin.service.library import TemplateLibrary
from s2s_plugin.service.planning import PostbackPlanner
from s2s_plugin.settings import DeliverySettings


class SigningPreparer:
    """Adds a signature header; remembers the delivery id it was given."""

    def __init__(self, problem: Optional[str] = None) -> None:
        self.problem = problem
        self.delivery_ids: list[int] = []

    def with_content_type(self, request: PostbackRequest) -> PostbackRequest:
        return request

    def with_idempotency_key(self, request: PostbackRequest, delivery_id: int) -> PostbackRequest:
        self.delivery_ids.append(delivery_id)
        return request

    def prepare(self, request: PostbackRequest, context: ResolveContext) -> tuple[PostbackRequest, Optional[str]]:
        signed = dataclasses.replace(request, headers={**request.headers, "X-Sig": f"sig-{context.click.subid}"})
        return signed, self.problem


def _sender() -> Sender:
    return Sender(DeliverySettings(allow_private_targets=True, timeout=5.0, connect_timeout=2.0))


def test_a_test_send_with_only_a_rule_a_planner_a_preparer_and_a_sender(standin) -> None:
    standin.script("/pb", [(200, "OK")])
    pm = pluggy.PluginManager(hookspecs.PROJECT_NAME)
    pm.add_hookspecs(hookspecs)
    rule = PostbackRule(id="source:acme", url=standin.url + "/pb?c={external_id}&p={revenue}", source_id="acme")
    preparer = SigningPreparer()
    sender = _sender()
    try:
        result = test_send(
            rule,
            plan=PostbackPlanner(pm, TemplateLibrary(pm)),
            requests=preparer,
            sender=sender,
            payout="3.5",
            external_id="click-9",
        )
    finally:
        sender.close()
    assert (result.rule_id, result.outcome, result.http_status) == ("source:acme", "delivered", 200)
    (request,) = standin.requests
    assert request.params == {"c": "click-9", "p": "3.5"}
    assert request.headers["x-sig"].startswith("sig-test-")
    assert preparer.delivery_ids == [TEST_DELIVERY_ID]


def test_a_test_send_a_plugin_could_not_prepare_is_not_sent(standin) -> None:
    def plain_plan(
        conversion: Conversion, click: Optional[Click], rules: Sequence[PostbackRule]
    ) -> list[PlannedPostback]:
        return plan(conversion, click, rules)

    rule = PostbackRule(id="postback:7", url=standin.url + "/pb?c={external_id}", campaign_id="summer")
    sender = _sender()
    try:
        result = test_send(rule, plan=plain_plan, requests=SigningPreparer(problem="plugin acme failed"), sender=sender)
    finally:
        sender.close()
    assert (result.outcome, result.reason, result.http_status) == ("failed", "plugin acme failed", None)
    assert standin.requests == []
