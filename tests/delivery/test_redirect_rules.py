"""Redirect rules (``s2s_plugin.delivery.redirects``), pure: methods, bodies and secret headers per hop."""

from __future__ import annotations

import pytest

from s2s_plugin.delivery.redirects import next_hop

HEADERS = {
    "Authorization": "Bearer t0k3n",
    "Cookie": "sid=1",
    "Proxy-Authorization": "Basic eA==",
    "X-Api-Key": "k3y",
    "X-Signed": "sig-SeCrEt",
    "Content-Type": "application/json",
    "X-Trace": "t1",
}
BODY = b'{"click": "abc"}'


def hop(url, status, location, method="POST", headers=HEADERS, body=BODY):
    return next_hop(url, status, location, method, headers, body, secret_names=["x-api-key"], secret_values=["SeCrEt"])


@pytest.mark.parametrize("status", [307, 308])
def test_307_and_308_keep_method_body_and_headers_within_the_origin(status):
    moved = hop("https://s.example/pb", status, "/v2/pb?x=1#frag")
    assert (moved.url, moved.method, moved.body, moved.refused) == ("https://s.example/v2/pb?x=1", "POST", BODY, None)
    assert moved.headers == HEADERS


@pytest.mark.parametrize("status", [307, 308])
def test_307_and_308_with_a_body_to_another_origin_are_refused(status):
    moved = hop("https://s.example/pb", status, "https://elsewhere.example/pb")
    assert moved.refused and "another origin" in moved.refused and "elsewhere.example" in moved.refused


@pytest.mark.parametrize(
    "status, method, becomes",
    [
        (303, "POST", "GET"),
        (303, "PUT", "GET"),
        (301, "POST", "GET"),
        (302, "POST", "GET"),
    ],
)
def test_303_and_a_301_or_302_post_become_a_get_without_a_body(status, method, becomes):
    moved = hop("https://s.example/pb", status, "/next", method=method)
    assert (moved.method, moved.body, moved.refused) == (becomes, None, None)
    assert "Content-Type" not in moved.headers and moved.headers["Authorization"] == "Bearer t0k3n"  # same origin


@pytest.mark.parametrize("status, method", [(303, "HEAD"), (301, "PUT"), (302, "GET"), (301, "GET")])
def test_other_methods_keep_theirs(status, method):
    body = None if method in ("GET", "HEAD") else BODY
    moved = hop("https://s.example/pb", status, "/next", method=method, body=body)
    assert (moved.method, moved.body, moved.refused) == (method, body, None)


def test_across_origins_secret_headers_are_dropped():
    moved = hop("https://s.example/pb", 302, "https://other.example/pb")
    assert moved.method == "GET" and moved.body is None and not moved.refused
    # Authorization, Cookie, Proxy-Authorization always; X-Api-Key by name; X-Signed by its value.
    assert moved.headers == {"X-Trace": "t1"}


def test_a_get_across_origins_keeps_its_plain_headers():
    moved = hop("http://s.example/pb", 301, "http://s.example:8080/pb", method="GET", body=None)
    assert moved.url == "http://s.example:8080/pb" and moved.headers == {
        "X-Trace": "t1",
        "Content-Type": "application/json",
    }


def test_https_to_http_is_refused():
    moved = hop("https://s.example/pb", 301, "http://s.example/pb", method="GET", body=None)
    assert moved.refused and "https to http" in moved.refused


def test_http_to_https_on_the_same_host_is_the_same_origin():
    moved = hop("http://s.example/pb", 308, "https://s.example/pb")
    assert (moved.url, moved.method, moved.body, moved.headers, moved.refused) == (
        "https://s.example/pb",
        "POST",
        BODY,
        HEADERS,
        None,
    )


def test_a_location_that_is_not_a_url_is_refused():
    moved = hop("https://s.example/pb", 302, "http://[::1/x")
    assert moved.refused and "not a URL" in moved.refused
