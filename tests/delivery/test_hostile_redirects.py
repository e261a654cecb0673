"""Redirects on real loopback sources, for rules that allow them: what each hop sends (method,
body, secret headers), https → http refused, private targets refused on every hop."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from hookspecs import PostbackRequest
from s2s_plugin.delivery.sender import Sender
from s2s_plugin.settings import DeliverySettings
from tests.support.hostile import HostileSource, answer, response, route_public_name

from .conftest import Hopper, click, convert

BODY = b'{"click": "abc", "token": "SeCrEt-1"}'
HEADERS = {
    "Content-Type": "application/json",
    "Authorization": "Bearer t0k3n",
    "Cookie": "sid=1",
    "Proxy-Authorization": "Basic eA==",
    "X-Api-Key": "k3y",
    "X-Signature": "sig-SeCrEt-1",
    "X-Trace": "t1",
}


def redirect(status: int, location: str):
    return answer(response(status, b"", [("Location", location)], reason="Moved"))


@pytest.fixture
def sender() -> Iterator[Sender]:
    made = Sender(DeliverySettings.from_kwargs(allow_private_targets=True, timeout=2.0, connect_timeout=1.0))
    yield made
    made.close()


@pytest.fixture
def sources() -> Iterator[tuple[HostileSource, HostileSource]]:
    """Two sources: two origins (another port is another origin)."""
    with HostileSource() as first, HostileSource() as second:
        yield first, second


def post(url: str) -> PostbackRequest:
    return PostbackRequest("POST", url, HEADERS, BODY, secrets=("SeCrEt-1",))


@pytest.mark.parametrize("status", [301, 302, 303])
def test_a_303_or_a_301_302_post_becomes_a_get_without_the_body(sender, sources, status):
    source, _ = sources
    source.answers["/pb"] = redirect(status, "/landed")
    result = sender.send(post(source.url + "/pb"), follow_redirects=True, secret_names=["x-api-key"])
    assert result.outcome == "delivered" and "after 1 redirect" in result.reason
    first, landed = source.requests
    assert (first.method, first.body) == ("POST", BODY)
    assert (landed.path, landed.method, landed.body) == ("/landed", "GET", b"")
    assert "content-type" not in landed.headers and "content-length" not in landed.headers
    assert landed.headers["authorization"] == "Bearer t0k3n"  # same origin: nothing secret left it


@pytest.mark.parametrize("status", [307, 308])
def test_a_307_or_308_keeps_method_body_and_headers_within_the_origin(sender, sources, status):
    source, _ = sources
    source.answers["/pb"] = redirect(status, "/landed")
    result = sender.send(post(source.url + "/pb"), follow_redirects=True, secret_names=["x-api-key"])
    assert result.outcome == "delivered"
    _, landed = source.requests
    assert (landed.path, landed.method, landed.body) == ("/landed", "POST", BODY)
    assert landed.headers["authorization"] == "Bearer t0k3n" and landed.headers["x-api-key"] == "k3y"


def test_across_origins_the_body_and_secret_headers_stay_behind(sender, sources):
    source, other = sources
    source.answers["/pb"] = redirect(302, other.url + "/landed")
    result = sender.send(post(source.url + "/pb"), follow_redirects=True, secret_names=["X-Api-Key"])
    assert result.outcome == "delivered", result.reason
    (landed,) = other.requests
    assert (landed.method, landed.body) == ("GET", b"")
    sent = set(landed.headers)
    # Always secret, marked by name (X-Api-Key), holding a marked value (X-Signature): all dropped.
    assert not sent & {"authorization", "cookie", "proxy-authorization", "x-api-key", "x-signature", "content-type"}
    assert landed.headers["x-trace"] == "t1"


@pytest.mark.parametrize("status", [307, 308])
def test_a_307_or_308_with_a_body_to_another_origin_is_refused(sender, sources, status):
    source, other = sources
    source.answers["/pb"] = redirect(status, other.url + "/landed")
    result = sender.send(post(source.url + "/pb"), follow_redirects=True)
    assert result.outcome == "failed" and result.http_status == status
    assert "another origin" in result.reason and "not sent across origins" in result.reason
    assert other.requests == [] and source.count("/pb") == 1


def test_redirect_loops_end_after_five_hops(sender, sources):
    source, _ = sources
    source.answers["/a"] = redirect(302, "/b")
    source.answers["/b"] = redirect(302, "/a")
    result = sender.send(PostbackRequest("GET", source.url + "/a"), follow_redirects=True)
    assert result.outcome == "failed" and result.reason == "more than 5 redirects"
    assert [r.path for r in source.requests] == ["/a", "/b"] * 3


@pytest.mark.parametrize(
    "location",
    [
        "http://127.0.0.1:{port}/inside",
        "http://[::ffff:127.0.0.1]:{port}/inside",
        "http://0x7f000001:{port}/inside",
        "http://localhost:{port}/inside",
        "http://169.254.169.254/latest/meta-data/",
        "http://[fd00:ec2::254]/latest",
        "http://10.0.0.1/",
        "http://[2002:7f00:1::]:{port}/inside",
        "http://[64:ff9b::7f00:1]:{port}/inside",
    ],
)
def test_a_redirect_to_a_private_address_is_refused_with_private_targets_refused(monkeypatch, location):
    # hostile.example is public (it lives on loopback for the test): the first hop goes out, the
    # redirect to an internal address does not.
    route_public_name(monkeypatch)
    made = Sender(DeliverySettings.from_kwargs(allow_private_targets=False, timeout=2.0, connect_timeout=1.0))
    try:
        with HostileSource() as source:
            source.answers["/pb"] = redirect(302, location.format(port=source.port))
            result = made.send(PostbackRequest("GET", source.url_for("hostile.example") + "/pb"), follow_redirects=True)
            assert [r.path for r in source.requests] == ["/pb"]  # /inside never reached
    finally:
        made.close()
    assert result.outcome == "failed" and result.http_status == 302
    assert "private or internal address: refused" in result.reason and "after 1 redirect" in result.reason


def test_the_dispatcher_keeps_a_rules_marked_headers_from_another_origin(make_s2s, host, sources):
    source, other = sources
    source.answers["/pb"] = redirect(302, other.url + "/landed")
    pm, s2s = make_s2s()
    pm.register(Hopper())
    s2s.add_source(
        "exo",
        template="hopper",
        postback_url=source.url + "/pb?c={external_id}",
        statuses=["sale"],
        headers={"X-Api-Key": "k3y", "X-Trace": "t1"},
        secrets=["x-api-key"],
    )
    pm.hook.on_click(click=click("s1"))
    convert(pm, "s1")
    s2s.drain(timeout=5)
    assert source.requests[0].headers["x-api-key"] == "k3y"
    (landed,) = other.requests
    assert "x-api-key" not in landed.headers and landed.headers["x-trace"] == "t1"
    assert [a.outcome for a in host.attempts] == ["delivered"]
