"""TLS to a pinned address: the connection goes to the checked IP, yet the name is still what the
source is asked for (SNI) and what its certificate must match. A real TLS server on loopback."""

from __future__ import annotations

import http.server
import socket
import ssl
import threading
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import trustme

from hookspecs import PostbackRequest
from s2s_plugin.delivery.sender import Sender
from s2s_plugin.settings import DeliverySettings
from tests.support.hostile import HostileSource, answer, reset, response


class _Answer(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"OK")

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture
def tls_source(ca: trustme.CA) -> Iterator[Any]:
    """``tls_source(name)``: an HTTPS server on 127.0.0.1 whose certificate is for ``name``;
    returns ``(port, names_asked)``, the SNI names clients sent."""
    servers: list[http.server.ThreadingHTTPServer] = []

    def start(name: str) -> tuple[int, list[str]]:
        asked: list[str] = []
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ca.issue_cert(name).configure_cert(context)
        context.sni_callback = lambda _sock, server_name, _ctx: asked.append(server_name)
        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Answer)
        server.socket = context.wrap_socket(server.socket, server_side=True)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return server.server_address[1], asked

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


@pytest.fixture
def sender(ca: trustme.CA, monkeypatch: pytest.MonkeyPatch) -> Iterator[Sender]:
    """A sender that trusts the test CA, with ``pinned.example`` resolving to 127.0.0.1; 1 s timeouts."""
    real_context, real_lookup = httpx.create_ssl_context, socket.getaddrinfo

    def trusting_context(*args: Any, **kwargs: Any) -> ssl.SSLContext:
        context = real_context(*args, **kwargs)
        ca.configure_trust(context)
        return context

    def lookup(host: str, port: Any, *args: Any, **kwargs: Any) -> Any:
        if host == "pinned.example":
            return [(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP, "", ("127.0.0.1", port))]
        return real_lookup(host, port, *args, **kwargs)

    monkeypatch.setattr(httpx, "create_ssl_context", trusting_context)
    monkeypatch.setattr(socket, "getaddrinfo", lookup)
    made = Sender(DeliverySettings.from_kwargs(allow_private_targets=True, timeout=1.0, connect_timeout=1.0))
    yield made
    made.close()


def test_a_pinned_https_connection_asks_for_the_name_and_accepts_its_certificate(sender, tls_source):
    port, asked = tls_source("pinned.example")
    result = sender.send(PostbackRequest(method="GET", url=f"https://pinned.example:{port}/pb?c=1"))
    assert result.outcome == "delivered", result.reason
    assert asked == ["pinned.example"]  # SNI carries the name, not the pinned address


def test_a_certificate_for_another_name_is_refused_on_a_pinned_connection(sender, tls_source):
    port, asked = tls_source("other.example")
    result = sender.send(PostbackRequest(method="GET", url=f"https://pinned.example:{port}/pb?c=1"))
    assert result.outcome == "retry" and result.http_status is None
    assert "Hostname mismatch" in result.reason, result.reason  # the CA is trusted: only the name is wrong
    assert asked == ["pinned.example"]


# --- TLS that goes wrong: each ends as an attempt with a reason, on a raw-socket source --------


def _tls_context(ca: trustme.CA, name: str) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert(name).configure_cert(context)
    return context


def _swallow_then_reset(sock: socket.socket) -> bool:
    sock.recv(4096)  # the ClientHello
    reset(sock)
    return True


def _stall(source_stopping: Any) -> Any:
    def on_connect(sock: socket.socket) -> bool:
        sock.recv(4096)
        source_stopping.wait(5)
        return True

    return on_connect


def test_plain_http_on_an_https_url_is_retried_with_the_tls_error(sender):
    with HostileSource() as source:  # speaks plain HTTP: answers the ClientHello with a 400
        result = sender.send(PostbackRequest("GET", f"https://pinned.example:{source.port}/pb"))
        assert source.requests == []
    assert result.outcome == "retry" and result.http_status is None
    assert "TLS handshake failed" in result.reason and "WRONG_VERSION_NUMBER" in result.reason.upper()
    assert result.cause == "tls_failed"


def test_a_handshake_reset_is_retried(sender):
    with HostileSource(on_connect=_swallow_then_reset) as source:
        result = sender.send(PostbackRequest("GET", f"https://pinned.example:{source.port}/pb"))
    assert result.outcome == "retry" and "TLS handshake failed" in result.reason and "reset" in result.reason.lower()


def test_a_handshake_that_never_finishes_ends_at_the_timeout(sender):
    source = HostileSource()
    source.on_connect = _stall(source.stopping)
    with source:
        result = sender.send(PostbackRequest("GET", f"https://pinned.example:{source.port}/pb"))
    assert result.outcome == "retry" and "did not answer in time" in result.reason
    assert result.duration_ms < 2500


def test_a_certificate_from_an_unknown_authority_is_refused(sender):
    with HostileSource(tls=_tls_context(trustme.CA(), "pinned.example")) as source:
        result = sender.send(PostbackRequest("GET", f"https://pinned.example:{source.port}/pb"))
        assert source.requests == []
    assert result.outcome == "retry" and "CERTIFICATE_VERIFY_FAILED" in result.reason
    assert result.cause == "tls_failed"


def test_an_https_source_redirecting_to_http_is_refused(sender, ca):
    with HostileSource() as plain, HostileSource(tls=_tls_context(ca, "pinned.example")) as secure:
        secure.answers["/pb"] = answer(response(301, b"", [("Location", f"http://pinned.example:{plain.port}/pb")]))
        result = sender.send(
            PostbackRequest("GET", f"https://pinned.example:{secure.port}/pb?c=1"), follow_redirects=True
        )
        assert secure.count("/pb") == 1 and plain.requests == []  # the postback never went out in clear
    assert result.outcome == "failed" and result.http_status == 301 and "https to http" in result.reason


def test_an_https_source_answers_through_the_hostile_source(sender, ca):
    # The raw-socket source serves TLS as a real one: the failures above are the TLS ones.
    with HostileSource(tls=_tls_context(ca, "pinned.example")) as secure:
        result = sender.send(PostbackRequest("GET", f"https://pinned.example:{secure.port}/pb"))
    assert result.outcome == "delivered" and result.response_body == "OK"
