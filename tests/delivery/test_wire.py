"""``wire_url`` splits plain URLs itself and must give exactly what httpx's parser gives."""

from __future__ import annotations

import httpx
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from s2s_plugin.delivery.wire import _PLAIN, wire_url

_CHARS = "abcXYZ019-._~!$&'()*+,;=:@/?%#[] \"<>\\^`{|}é\t"
_PLAIN_CHARS = "abcXYZ019-._~!$&'()*+,;=:@/?%"  # half the URLs: mostly ones the fast path takes


def _by_httpx(url: str) -> tuple[bytes, bytes, int | None, bytes]:
    parsed = httpx.URL(url)
    return parsed.raw_scheme, parsed.raw_host, parsed.port, parsed.raw_path


@st.composite
def urls(draw: st.DrawFn) -> str:
    chars = draw(st.sampled_from([_CHARS, _PLAIN_CHARS]))
    scheme = draw(st.sampled_from(["http", "https", "HTTP", "Https"]))
    host = draw(
        st.sampled_from(
            ["example.net", "Example.NET", "127.0.0.1", "a-b.c", "x", "pb.example.com", "xn--bcher-kva.example"]
        )
    )
    port = draw(st.sampled_from(["", ":80", ":443", ":8080", ":080", ":65535", ":1"]))
    path = draw(st.text(alphabet=chars.replace("?", "").replace("#", ""), max_size=20))
    query = draw(st.one_of(st.just(""), st.text(alphabet=chars, max_size=30).map(lambda q: "?" + q)))
    return f"{scheme}://{host}{port}{'/' if path and not path.startswith('/') else ''}{path}{query}"


@settings(max_examples=3000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(urls())
@example("http://127.0.0.1:8080/pb?c=123&p=2.50&s=sale")
@example("https://pb.example.com/./a/../b?x=%zz&y=%41")
@example("http://example.net/a.b/c.?q=..")
@example("http://example.net?")
@example("http://example.net//x//?a=1#frag")
def test_wire_url_is_what_httpx_sends(url):
    try:
        expected = _by_httpx(url)
    except httpx.InvalidURL:
        with pytest.raises(httpx.InvalidURL):
            wire_url(url)
        return
    got = wire_url(url)
    assert (got.scheme, got.host, got.port, got.target) == expected


def test_rendered_postback_urls_take_the_fast_path():
    for url in [
        "http://127.0.0.1:8080/pb?c=123&p=2.50&s=sale",
        "https://s.example.com/conversion.php?aid=1&tid=X1%26Y&amount=0.25&goal=%F0%9F%98%80",
        "https://ad.propellerads.com/conversion.php?visitor_id=abc.def_ghi~1",
    ]:
        assert _PLAIN.fullmatch(url), url


@settings(max_examples=1000, deadline=None)
@given(urls())
@example("http://user:pw@h:99/x")
@example("http://h:bad/x")
@example("http://h?q=1")
def test_host_key_from_the_authority_alone_is_the_whole_urls(url):
    from s2s_plugin.resolution.hosts import _key, host_key

    assert host_key(url) == _key.__wrapped__(url)
