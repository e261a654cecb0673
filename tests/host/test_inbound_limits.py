"""Inbound postbacks that do not fit: values longer than their columns, NUL bytes, deeply nested
JSON and bodies over the size limit get a one-line 4xx, the same on SQLite and PostgreSQL, and a
body over the limit is refused while it streams in, without a Content-Length (inbound postbacks,
the API, and every form, sign-in included)."""

from __future__ import annotations

import socket
import urllib.parse
from collections.abc import Iterator

import pytest

from sample_host.app import MAX_POSTBACK_BODY, MAX_REQUEST_BODY
from sample_host.params import MAX_JSON_DEPTH
from sample_host.security import SESSION_COOKIE
from sample_host.standin import StandInSource

from .conftest import Admin, Host


@pytest.fixture
def subid(any_host: Host, standin: StandInSource) -> str:
    """A click on campaign ``summer`` (source ``exo``, pointed at the stand-in)."""
    any_host.tracker.add_source("exo", template="exoclick", postback_url=f"{standin.url}/t?tag={{external_id}}")
    any_host.tracker.add_campaign("summer", source_id="exo", offer_url="https://offer.example/?s={subid}")
    return any_host.click("summer", external_id="x")


@pytest.mark.parametrize(
    ("params", "fragment"),
    [
        ({"tid": "t" * 201}, "tid is 201 characters long: at most 200 fit"),
        ({"status": "s" * 101, "sale_status": "s" * 101}, "status is 101 characters long: at most 100 fit"),
        ({"tid": "a\x00b"}, "parameter 'tid' holds a NUL byte"),
        ({"sub_id_1": "\x00"}, "parameter 'sub_id_1' holds a NUL byte"),
    ],
)
def test_values_that_do_not_fit_their_columns_get_a_400_on_both_databases(
    any_host: Host, subid: str, params: dict, fragment: str
) -> None:
    response = any_host.postback(subid=subid, **params)
    assert response.status_code == 400, response.text
    assert response.text.count("\n") == 1 and fragment in response.text
    (logged,) = any_host.received()
    assert (logged["outcome"], logged["http_status"]) == ("rejected", 400) and fragment in logged["reason"]
    assert "\x00" not in str(logged["params"])
    assert any_host.tracker.conversions() == []
    # The longest values that fit are taken.
    fits = any_host.postback(subid=subid, status="sale", tid="t" * 200)
    assert fits.status_code == 200 and any_host.tracker.conversions()[0]["tid"] == "t" * 200


@pytest.mark.parametrize("depth", [MAX_JSON_DEPTH + 1, 100_000 // 2])
def test_deeply_nested_json_is_a_400(any_host: Host, depth: int) -> None:
    body = '{"subid": ' + "[" * depth + "]" * depth + "}"
    inbound = any_host.client.post(
        f"/{any_host.postback_key}/postback",
        content=body[:MAX_POSTBACK_BODY],
        headers={"Content-Type": "application/json"},
    )
    assert inbound.status_code == 400 and "nests JSON more than 16 levels deep" in inbound.text
    api = any_host.api.post("/api/campaigns", content=body, headers={"Content-Type": "application/json"})
    assert api.status_code == 400 and "nests JSON more than 16 levels deep" in api.json()["error"]


def _read_answer(sock: socket.socket) -> bytes:
    """An HTTP answer's head and body, read until the server closes or the body is complete."""
    data = b""
    while b"\r\n\r\n" not in data or len(data.split(b"\r\n\r\n", 1)[1]) < _content_length(data):
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    return data


def _content_length(data: bytes) -> int:
    for line in data.split(b"\r\n\r\n", 1)[0].split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            return int(value)
    return 0


@pytest.fixture
def raw(host: Host) -> Iterator[socket.socket]:
    """A raw TCP connection to the host, for requests httpx would not send."""
    address = urllib.parse.urlsplit(host.base_url)
    with socket.create_connection((address.hostname, address.port), timeout=5) as sock:
        yield sock


def test_a_chunked_body_over_the_limit_is_refused_before_it_ends(host: Host, raw: socket.socket) -> None:
    raw.sendall(
        f"POST /{host.postback_key}/postback HTTP/1.1\r\nHost: tracker\r\n"
        "Content-Type: application/x-www-form-urlencoded\r\nTransfer-Encoding: chunked\r\n\r\n".encode()
        + b"6\r\nsubid=\r\n"
    )
    chunk = b"a" * 8192
    for _ in range(MAX_POSTBACK_BODY // len(chunk) + 2):
        raw.sendall(b"%x\r\n%s\r\n" % (len(chunk), chunk))
    # The body has not ended (no last chunk): the answer comes anyway, so it was not read to the end.
    answer = _read_answer(raw)
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 413"), answer[:200]
    assert body == f"body is larger than {MAX_POSTBACK_BODY} bytes: send the few parameters needed only\n".encode()
    (logged,) = host.received()
    assert (logged["outcome"], logged["http_status"]) == ("rejected", 413)


def test_a_declared_length_over_the_limit_is_refused_before_the_body_is_sent(host: Host, raw: socket.socket) -> None:
    raw.sendall(
        f"POST /{host.postback_key}/postback HTTP/1.1\r\nHost: tracker\r\n"
        f"Content-Type: application/json\r\nContent-Length: {10 * MAX_POSTBACK_BODY}\r\n\r\n".encode()
    )
    assert _read_answer(raw).startswith(b"HTTP/1.1 413")


def test_a_chunked_api_body_over_its_limit_is_a_413(host: Host) -> None:
    def body() -> Iterator[bytes]:  # httpx sends a generator chunked, without a Content-Length
        yield b'{"alias": "x", "name": "'
        for _ in range(64):
            yield b"n" * 8192
        yield b'"}'

    response = host.api.post("/api/campaigns", content=body(), headers={"Content-Type": "application/json"})
    assert response.status_code == 413 and "larger than" in response.json()["error"]
    assert host.tracker.campaigns() == []


def _chunked_post(sock: socket.socket, path: str, total: int, cookie: str = "") -> bytes:
    """POST a form body of ``total`` bytes in chunks, without the last chunk; return the answer."""
    head = (
        f"POST {path} HTTP/1.1\r\nHost: tracker\r\nContent-Type: application/x-www-form-urlencoded\r\n"
        f"Transfer-Encoding: chunked\r\n{cookie}\r\n"
    )
    sock.sendall(head.encode() + b"6\r\npass=x\r\n")
    chunk = b"a" * 65536
    for _ in range(total // len(chunk)):
        sock.sendall(b"%x\r\n%s\r\n" % (len(chunk), chunk))
    return _read_answer(sock)


@pytest.mark.parametrize("path", ["/login", "/settings"])
def test_a_chunked_form_over_the_request_limit_is_a_413_before_it_ends(
    host: Host, admin: Admin, raw: socket.socket, path: str
) -> None:
    cookie = f"Cookie: {SESSION_COOKIE}={admin.client.cookies[SESSION_COOKIE]}\r\n"
    answer = _chunked_post(raw, path, MAX_REQUEST_BODY + 65536, cookie)
    assert answer.startswith(b"HTTP/1.1 413"), answer[:300]
    assert f"body is larger than {MAX_REQUEST_BODY} bytes".encode() in answer
    assert host.tracker.inbound_settings().response_text == "OK"


def test_a_declared_form_length_over_the_request_limit_is_a_413(host: Host, raw: socket.socket) -> None:
    raw.sendall(
        f"POST /login HTTP/1.1\r\nHost: tracker\r\nContent-Type: application/x-www-form-urlencoded\r\n"
        f"Content-Length: {MAX_REQUEST_BODY + 1}\r\n\r\n".encode()
    )
    assert _read_answer(raw).startswith(b"HTTP/1.1 413")
