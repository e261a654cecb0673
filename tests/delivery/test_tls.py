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
from s2s_plugin.sender import Sender
from s2s_plugin.settings import DeliverySettings


class _Answer(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802 (the stdlib's name)
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
    """A sender that trusts the test CA, with ``pinned.example`` resolving to 127.0.0.1."""
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
    made = Sender(DeliverySettings.from_kwargs(allow_private_targets=True))
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
