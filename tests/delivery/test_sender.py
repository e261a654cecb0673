"""The sender on the wire, against a real loopback source: the request's headers as sent, and
answers decoded as an HTTP client would (content codings, charsets)."""

from __future__ import annotations

import gzip
import zlib

import pytest

from hookspecs import PostbackRequest
from s2s_plugin.delivery.sender import Sender
from s2s_plugin.settings import DeliverySettings
from sample_host.standin import Reply


@pytest.fixture
def sender():
    made = Sender(DeliverySettings.from_kwargs(allow_private_targets=True))
    yield made
    made.close()


def test_a_get_carries_host_accept_and_user_agent_once(sender, standin):
    result = sender.send(PostbackRequest(method="GET", url=standin.url + "/pb?c=1"))
    assert result.outcome == "delivered"
    (request,) = standin.requests
    assert request.headers["host"] == f"127.0.0.1:{standin.port}"
    assert request.headers["accept"] == "*/*"
    assert request.headers["user-agent"] == DeliverySettings().user_agent
    assert "content-length" not in request.headers and "accept-encoding" not in request.headers


def test_a_header_the_request_sets_replaces_the_default_and_a_body_gets_its_length(sender, standin):
    body = b'{"event":"purchase"}'
    request = PostbackRequest(
        method="POST",
        url=standin.url + "/events",
        headers={"User-Agent": "custom/1", "Content-Type": "application/json"},
        body=body,
    )
    assert sender.send(request).outcome == "delivered"
    (seen,) = standin.requests
    assert seen.method == "POST" and seen.body == body
    assert seen.headers["user-agent"] == "custom/1"
    assert seen.headers["content-length"] == str(len(body))
    assert seen.headers["content-type"] == "application/json"


@pytest.mark.parametrize(
    "coding, encode",
    [("gzip", gzip.compress), ("deflate", zlib.compress), ("deflate", lambda raw: zlib.compress(raw)[2:-4])],
    ids=["gzip", "deflate", "raw-deflate"],
)
def test_a_compressed_answer_is_read_decompressed(sender, standin, coding, encode):
    standin.script("/pb", [Reply(200, encode(b"ERROR: Tag is invalid!"), {"Content-Encoding": coding})])
    result = sender.send(PostbackRequest(method="GET", url=standin.url + "/pb"), success_body="OK")
    assert result.response_body == "ERROR: Tag is invalid!"
    assert result.outcome == "failed"  # the success text is looked for in the decoded answer


def test_an_answer_is_decoded_with_the_charset_it_names(sender, standin):
    standin.script(
        "/pb", [Reply(200, "Ошибка: нет клика".encode("cp1251"), {"Content-Type": "text/plain; charset=windows-1251"})]
    )
    result = sender.send(PostbackRequest(method="GET", url=standin.url + "/pb"))
    assert result.response_body == "Ошибка: нет клика"


def test_an_unknown_charset_falls_back_to_utf8(sender, standin):
    standin.script("/pb", [Reply(200, "café", {"Content-Type": "text/plain; charset=no-such-charset"})])
    result = sender.send(PostbackRequest(method="GET", url=standin.url + "/pb"))
    assert result.response_body == "café"


def test_a_source_that_is_not_listening_is_retried(sender, standin):
    url = standin.url + "/pb"
    standin.stop()
    result = sender.send(PostbackRequest(method="GET", url=url))
    assert result.outcome == "retry" and result.reason.startswith("could not reach the source")
