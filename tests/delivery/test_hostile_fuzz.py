"""Any bytes at all as a source's answer: ``send()`` always comes back with an outcome and a
reason that can be stored, and never reaches its catch-all for unexpected errors. Generated
answers (raw bytes, and HTTP-shaped ones with hostile headers and bodies) on a real loopback
source."""

from __future__ import annotations

import gzip
import zlib
from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hookspecs import PostbackRequest
from s2s_plugin.delivery.sender import Sender
from s2s_plugin.settings import DeliverySettings
from tests.support.hostile import HostileSource, answer

_HEADER_VALUES = {
    "Content-Type": st.one_of(
        st.sampled_from(
            [
                "text/plain; charset=base64",
                "text/html; charset=utf-7",
                "text/plain; charset=idna",
                'text/plain; charset="windows-1251"',
                "text/plain; charset=",
                "; charset=utf-16",
                "text/plain;;;charset",
            ]
        ),
        st.text(max_size=40).map(lambda text: f"text/plain; charset={text}"),
    ),
    "Content-Encoding": st.sampled_from(["gzip", "x-gzip", "deflate", "br", "gzip, gzip", "identity", "GZIP ", ""]),
    "Content-Length": st.one_of(
        st.integers(min_value=-5, max_value=10**12).map(str), st.sampled_from(["", "abc", "1,1", "0x10"])
    ),
    "Transfer-Encoding": st.sampled_from(["chunked", "gzip, chunked", "identity", "chunked, chunked"]),
    "Location": st.sampled_from(
        ["/ok", "//", "http://[::1", "http://10.0.0.1/", "file:///etc/passwd", "/ok#x", "\u00e9", ""]
    ),
    "Retry-After": st.one_of(
        st.sampled_from(["\u00b2", "-1", "1e400", "Fri, 31 Dec 9999 23:59:59 GMT", "Mon, 32 Foo"]), st.text(max_size=20)
    ),
    "Connection": st.sampled_from(["close", "keep-alive", "upgrade"]),
}


@st.composite
def http_answers(draw: st.DrawFn) -> bytes:
    status = draw(st.integers(min_value=0, max_value=1200))
    raw = draw(st.binary(max_size=200))
    body = draw(st.sampled_from([lambda b: b, gzip.compress, zlib.compress, lambda b: zlib.compress(b)[2:-4]]))(raw)
    names = draw(st.lists(st.sampled_from(sorted(_HEADER_VALUES)), max_size=5))
    head = "".join(f"{name}: {draw(_HEADER_VALUES[name])}\r\n" for name in names)
    prefix = draw(st.sampled_from([b"", b"HTTP/1.1 100 Continue\r\n\r\n", b"HTTP/1.1 103 Early Hints\r\n\r\n"]))
    return prefix + f"HTTP/1.1 {status} X\r\n{head}\r\n".encode("utf-8", "replace") + body


@pytest.fixture(scope="module")
def source() -> Iterator[HostileSource]:
    with HostileSource() as started:
        yield started


@pytest.fixture(scope="module")
def sender() -> Iterator[Sender]:
    made = Sender(DeliverySettings.from_kwargs(allow_private_targets=True, timeout=1.0, connect_timeout=1.0))
    yield made
    made.close()


@settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow]
)
@given(data=st.one_of(http_answers(), st.binary(max_size=300)), follow=st.booleans())
def test_any_answer_ends_as_an_outcome_with_a_storable_reason(source, sender, data, follow):
    source.answers["/pb"] = answer(data)
    result = sender.send(PostbackRequest("GET", source.url + "/pb"), follow_redirects=follow)
    assert result.outcome in ("delivered", "retry", "failed") and result.reason
    assert "internal error" not in result.reason, result.reason
    for text in (result.reason, result.response_body or ""):
        text.encode("utf-8")  # no lone surrogate
        assert "\x00" not in text
    assert len(result.response_body or "") <= 16 * 1024
