"""The hostile-source catalogue against the bare sender: every broken answer a real endpoint can
give ends as an outcome with a clear reason, and ``send()`` never raises.

The sender runs as in production (private targets refused): ``hostile.example`` is a public
name whose connections ``route_public_name`` brings to the loopback source.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from hookspecs import PostbackRequest
from s2s_plugin.delivery import sender as sender_module
from s2s_plugin.delivery.sender import Sender
from s2s_plugin.settings import DeliverySettings
from tests.support.hostile import CASES, CATALOGUE, HostileSource, route_public_name, warm_up

LIMIT = 16 * 1024


@pytest.fixture(scope="module")
def source() -> Iterator[HostileSource]:
    warm_up()
    with HostileSource({f"/{case.name}": case.answer for case in CATALOGUE}) as started:
        yield started


@pytest.fixture
def sender(monkeypatch: pytest.MonkeyPatch) -> Iterator[Sender]:
    route_public_name(monkeypatch)
    made = Sender(DeliverySettings.from_kwargs(allow_private_targets=False, timeout=1.0, connect_timeout=1.0))
    yield made
    made.close()


@pytest.mark.parametrize("case", CATALOGUE, ids=lambda case: case.name)
def test_a_hostile_answer_ends_as_an_outcome_with_a_reason(sender, source, case):
    path = f"/{case.name}"
    before = source.count(path)
    result = sender.send(
        PostbackRequest("GET", source.url_for("hostile.example") + path + "?c=1"),
        follow_redirects=case.follow_redirects,
    )
    print(f"{case.name}: {result.outcome} ({result.http_status}): {result.reason}")
    assert (result.outcome, result.http_status) == (case.outcome, case.http_status), result.reason
    assert case.reason in result.reason and result.cause == case.cause
    assert source.count(path) - before == case.hops  # what reached the source: once per hop, never more
    if case.body is not None:
        assert result.response_body == case.body
    assert result.response_truncated == case.truncated
    if result.response_body:
        result.response_body.encode("utf-8")  # storable: no lone surrogate
        assert "\x00" not in result.response_body and len(result.response_body) <= LIMIT


def test_bytes_past_a_short_content_length_do_not_become_the_next_answer(sender):
    # The source says Content-Length: 2 and writes more, keeping the connection open: the rest
    # must not be read as the answer to the next postback on that connection.
    with HostileSource({"/pb": CASES["length-shorter"].answer}) as source:
        url = source.url_for("hostile.example") + "/pb"
        results = [sender.send(PostbackRequest("GET", url)) for _ in range(3)]
        assert [(r.outcome, r.http_status, r.response_body) for r in results] == [("delivered", 200, "OK")] * 3
        assert source.count("/pb") == 3


def test_an_internal_error_after_sending_fails_the_attempt_without_a_resend(sender, monkeypatch):
    # The defect this guards against: decoding raised LookupError, send() raised, and the claim
    # expired and the postback went out again unrecorded at every expiry.
    def broken(raw, content_type):
        raise LookupError("unknown encoding: base64")

    monkeypatch.setattr(sender_module, "_text", broken)
    with HostileSource() as source:
        result = sender.send(PostbackRequest("GET", source.url_for("hostile.example") + "/pb"))
        assert source.count("/pb") == 1
    assert result.outcome == "failed" and result.http_status == 200
    assert result.reason.startswith(
        "internal error while decoding the answer: LookupError: unknown encoding: base64; not retried"
    )
    assert "not retried" in result.reason and "LookupError" in result.error


def test_an_internal_error_before_sending_is_retried(sender, monkeypatch):
    def broken(url):
        raise RuntimeError("a bug")

    monkeypatch.setattr(sender_module, "wire_url", broken)
    with HostileSource() as source:
        result = sender.send(PostbackRequest("GET", source.url_for("hostile.example") + "/pb"))
        assert source.count("/pb") == 0
    assert result.outcome == "retry" and result.http_status is None
    assert result.reason == "internal error while checking the target: RuntimeError: a bug" or result.reason.startswith(
        "internal error while sending the request: RuntimeError: a bug"
    )


def test_a_classify_hook_that_raises_leaves_the_answer_to_the_default_rules(monkeypatch):
    route_public_name(monkeypatch)

    def hook(request, answer):
        raise ValueError("boom")

    made = Sender(DeliverySettings.from_kwargs(timeout=1.0), classify_hook=hook)
    try:
        with HostileSource() as source:
            result = made.send(PostbackRequest("GET", source.url_for("hostile.example") + "/pb"))
    finally:
        made.close()
    assert result.outcome == "delivered" and result.http_status == 200
    assert "internal error while classifying the answer: ValueError: boom" in result.reason


@pytest.mark.parametrize(
    "headers, words",
    [
        ({"X-Token": "a\r\nInjected: 1"}, "could not be sent"),  # header injection: h11 refuses it
        ({"X-Name": "Ωmega"}, "could not be sent"),  # not latin-1
    ],
)
def test_a_request_that_cannot_be_sent_fails_at_once_and_reaches_nobody(sender, headers, words):
    with HostileSource() as source:
        result = sender.send(PostbackRequest("GET", source.url_for("hostile.example") + "/pb", headers))
        assert source.requests == []
    assert result.outcome == "failed" and words in result.reason and result.cause == "bad_request"
