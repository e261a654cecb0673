"""Safety: schemes, private and metadata targets, DNS resolved once and pinned, redirects checked
hop by hop, truncated answers, marked secrets redacted everywhere the log keeps them."""

from __future__ import annotations

import socket
import time

import pytest
from sqlalchemy import select

from s2s_plugin.delivery import safety
from s2s_plugin.delivery.safety import Resolver, check_target
from s2s_plugin.storage import tables as t
from sample_host.standin import Reply

from .conftest import Hopper, click, convert


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1/x",
        "http://10.1.2.3/",
        "http://169.254.169.254/latest/meta-data",
        "http://[::1]:8080/",
        "http://[::ffff:127.0.0.1]/",
        "http://100.100.100.200/",
        "http://0.0.0.0/",
        "http://[fd00:ec2::254]/",
    ],
)
def test_private_loopback_link_local_and_metadata_refused(url):
    verdict = check_target(url, allow_private=False)
    assert not verdict.ok and "private or internal address" in verdict.reason
    assert check_target(url, allow_private=True).ok


@pytest.mark.parametrize("url", ["ftp://example.net/x", "file:///etc/passwd", "gopher://h/", "javascript:alert(1)"])
def test_only_http_and_https(url):
    verdict = check_target(url, allow_private=True)
    assert not verdict.ok and "only http and https" in verdict.reason


@pytest.fixture
def fake_dns(monkeypatch):
    """``pinned.example`` resolves to 127.0.0.1 once, then to 127.0.0.2 (nobody listens there)."""
    real = socket.getaddrinfo
    lookups: list[str] = []

    def getaddrinfo(host, port, *args, **kwargs):
        if host == "pinned.example":
            lookups.append(host)
            address = "127.0.0.1" if len(lookups) == 1 else "127.0.0.2"
            return [(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP, "", (address, port))]
        return real(host, port, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    return lookups


def test_dns_is_resolved_once_and_the_connection_pinned(make_s2s, standin, host, fake_dns):
    pm, s2s = make_s2s()
    s2s.add_source("exo", postback_url=f"http://pinned.example:{standin.port}/pb?c={{external_id}}", statuses=["sale"])
    pm.hook.on_click(click=click("s1", "X1"))
    convert(pm, "s1")
    s2s.drain(timeout=5)
    (request,) = standin.requests
    assert request.headers["host"] == f"pinned.example:{standin.port}"
    assert fake_dns == ["pinned.example"]  # checked once; the connection did not look it up again
    assert [a.outcome for a in host.attempts] == ["delivered"]


def test_redirects_not_followed_unless_the_template_allows(make_s2s, standin, host):
    standin.script("/pb", [(302, "", {"Location": "/landed"})])
    pm, s2s = make_s2s()
    s2s.add_source("exo", postback_url=standin.url + "/pb?c={external_id}", statuses=["sale"])
    pm.hook.on_click(click=click("s1"))
    convert(pm, "s1")
    s2s.drain(timeout=5)
    assert [r.path for r in standin.requests] == ["/pb"]
    assert host.attempts[0].outcome == "failed" and "not followed" in host.attempts[0].reason


def test_each_redirect_hop_is_checked(make_s2s, standin, host, monkeypatch):
    # 127.0.0.1 counts as public here, 127.0.0.2 as internal: the second hop must be refused.
    monkeypatch.setattr(safety, "is_forbidden_address", lambda address: address == "127.0.0.2")
    standin.script("/pb", [(302, "", {"Location": "/hop2"})])
    standin.script("/hop2", [(302, "", {"Location": f"http://127.0.0.2:{standin.port}/inside"})])
    pm, s2s = make_s2s(allow_private_targets=False)
    pm.register(Hopper())
    s2s.add_source("exo", template="hopper", postback_url=standin.url + "/pb?c={external_id}", statuses=["sale"])
    pm.hook.on_click(click=click("s1"))
    convert(pm, "s1")
    s2s.drain(timeout=5)
    assert [r.path for r in standin.requests] == ["/pb", "/hop2"]  # followed, then refused
    (attempt,) = host.attempts
    assert attempt.outcome == "failed" and "127.0.0.2" in attempt.reason and "private or internal" in attempt.reason


def test_redirect_to_another_scheme_is_refused(make_s2s, standin, host):
    standin.script("/pb", [(301, "", {"Location": "file:///etc/passwd"})])
    pm, s2s = make_s2s()
    pm.register(Hopper())
    s2s.add_source("exo", template="hopper", postback_url=standin.url + "/pb?c={external_id}", statuses=["sale"])
    pm.hook.on_click(click=click("s1"))
    convert(pm, "s1")
    s2s.drain(timeout=5)
    assert host.attempts[0].outcome == "failed" and "only http and https" in host.attempts[0].reason


def test_long_answers_are_stored_truncated_with_a_flag(make_s2s, standin, host):
    standin.set_default(Reply(200, "x" * 40_000))
    pm, s2s = make_s2s()
    s2s.add_source("exo", postback_url=standin.url + "/pb?c={external_id}", statuses=["sale"])
    pm.hook.on_click(click=click("s1"))
    convert(pm, "s1")
    s2s.drain(timeout=5)
    (attempt,) = host.attempts
    assert attempt.response_truncated and len(attempt.response_body) == 16 * 1024
    with s2s.engine.connect() as conn:
        stored = conn.execute(select(t.attempts.c.response_body, t.attempts.c.response_truncated)).one()
    assert len(stored[0]) == 16 * 1024 and stored[1] is True


def test_marked_secrets_are_sent_but_never_logged(make_s2s, standin, host):
    pm, s2s = make_s2s()
    s2s.add_source(
        "exo",
        postback_url=standin.url + "/pb?c={external_id}&api_key=SeCrEt1&Token=SeCrEt2",
        statuses=["sale"],
        secrets=["api_key", "token"],
    )
    s2s.add_postback(
        "summer",
        url=standin.url + "/events",
        method="POST",
        statuses=["sale", "lead"],
        body='{"click": "{external_id}", "auth": {"password": "SeCrEt3"}}',
        secrets=["password"],
    )
    pm.hook.on_click(click=click("s1", "X1"))
    convert(pm, "s1", "lead")  # skipped by the source (lead not enabled): its log entry is redacted too
    convert(pm, "s1", "sale")
    s2s.drain(timeout=5)
    sent = {r.path: r for r in standin.requests}
    assert sent["/pb"].params["api_key"] == "SeCrEt1" and sent["/pb"].params["Token"] == "SeCrEt2"
    assert sent["/events"].json()["auth"]["password"] == "SeCrEt3"
    logged = " ".join(f"{a.url} {a.body} {a.reason}" for a in host.attempts)
    with s2s.engine.connect() as conn:
        logged += " ".join(f"{r.url} {r.body}" for r in conn.execute(select(t.attempts.c.url, t.attempts.c.body)))
    logged += str(s2s.explain("s1")) + str(s2s.explain("s1").to_dict())
    assert "SeCrEt" not in logged
    assert "api_key=[REDACTED]" in logged and "c=X1" in logged and '"password": "[REDACTED]"' in logged


def test_resolver_remembers_a_name_for_its_ttl_and_still_checks_the_answer(monkeypatch):
    answers = {"source.example": "93.184.216.34", "inside.example": "10.0.0.7"}
    lookups: list[str] = []

    def getaddrinfo(host, port, *args, **kwargs):
        lookups.append(host)
        if host not in answers:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return [(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP, "", (answers[host], port))]

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    resolver = Resolver(ttl=0.2)
    for _ in range(3):
        assert check_target("http://source.example/pb", allow_private=False, resolver=resolver).addresses == (
            "93.184.216.34",
        )
    assert lookups == ["source.example"]
    # A remembered private answer is refused every time, like a fresh one.
    for _ in range(2):
        verdict = check_target("http://inside.example/pb", allow_private=False, resolver=resolver)
        assert not verdict.ok and "10.0.0.7" in verdict.reason
    assert lookups.count("inside.example") == 1
    # Failures are not remembered: the next attempt asks again.
    for _ in range(2):
        verdict = check_target("http://missing.example/pb", allow_private=False, resolver=resolver)
        assert not verdict.ok and verdict.retryable
    assert lookups.count("missing.example") == 2
    time.sleep(0.25)
    check_target("http://source.example/pb", allow_private=False, resolver=resolver)
    assert lookups.count("source.example") == 2  # looked up again once its time was up


class FixedResolver:
    """Every name resolves to the given addresses."""

    def __init__(self, *addresses: str) -> None:
        self.answer = addresses

    def addresses(self, host: str, port: int) -> tuple[str, ...]:
        return self.answer


@pytest.mark.parametrize(
    "address",
    [
        "127.0.0.1",
        "10.1.2.3",
        "172.16.0.1",
        "192.168.1.1",
        "169.254.169.254",
        "100.100.100.200",
        "100.64.0.1",
        "0.0.0.0",
        "0.1.2.3",
        "224.0.0.1",
        "239.255.255.250",
        "255.255.255.255",
        "192.0.0.8",
        "192.0.2.1",
        "198.18.0.1",
        "198.51.100.7",
        "203.0.113.9",
        "240.0.0.1",
        "::1",
        "::",
        "fe80::1%eth0",
        "fc00::1",
        "fd00:ec2::254",
        "ff02::1",
        "2001:db8::1",
        "100::1",
        "3fff::1",
        "fec0::1",  # site-local (deprecated, still routed inside some networks)
        "::ffff:127.0.0.1",
        "::ffff:10.0.0.1",
        "::127.0.0.1",
        "::8.8.8.8",  # IPv4-mapped and -compatible
        "2002:7f00:1::",
        "2002:a9fe:a9fe::1",
        "2002:0a00:0001::",  # 6to4 of 127.0.0.1, the metadata address, 10.0.0.1
        "2001:0:4136:e378:8000:63bf:3fff:fdd2",
        "2001:0:7f00:1:8000:63bf:3fff:fdd2",  # Teredo
        "64:ff9b::7f00:1",
        "64:ff9b::a9fe:a9fe",
        "64:ff9b::a00:1",  # NAT64 of 127.0.0.1, the metadata address, 10.0.0.1
        "64:ff9b:1::808:808",  # local-use NAT64
        "::ffff:0:7f00:1",  # IPv4-translated
        "not-an-address",
    ],
)
def test_every_address_that_is_not_globally_routable_is_refused(address):
    assert safety.is_forbidden_address(address)
    verdict = check_target(
        "http://source.example/pb", allow_private=False, resolver=FixedResolver("93.184.216.34", address)
    )
    assert not verdict.ok and address in verdict.reason and "private or internal" in verdict.reason


@pytest.mark.parametrize(
    "address",
    [
        "93.184.216.34",
        "8.8.8.8",
        "1.1.1.1",
        "2606:4700:4700::1111",
        "2a00:1450:4001:80b::200e",
        "::ffff:8.8.8.8",  # IPv4-mapped public address: it is 8.8.8.8
        "2002:0808:0808::1",  # 6to4 of a public address
        "64:ff9b::808:808",  # NAT64 of a public address: how an IPv6-only host reaches an IPv4-only source
    ],
)
def test_globally_routable_addresses_pass(address):
    assert not safety.is_forbidden_address(address)
    assert check_target("http://source.example/pb", allow_private=False, resolver=FixedResolver(address)).ok


@pytest.mark.parametrize(
    "url",
    [
        "http://0x7f000001/",
        "http://2130706433/",
        "http://127.1/",
        "http://[::ffff:7f00:1]/",
        "http://[0:0:0:0:0:ffff:a9fe:a9fe]/",
    ],
)
def test_loopback_and_metadata_in_other_spellings_are_refused(url):
    verdict = check_target(url, allow_private=False)
    assert not verdict.ok and "private or internal" in verdict.reason


@pytest.mark.parametrize(
    "url, words",
    [
        ("http://{_sub_id_1}/pb", "is not a host name"),  # a raw macro in the host part
        ("http://[::1/pb", "cannot be parsed"),
        ("http://ex ample.com/pb", "is not a host name"),
    ],
)
def test_a_url_that_can_never_be_sent_fails_without_retrying(url, words):
    verdict = check_target(url, allow_private=True)
    assert not verdict.ok and not verdict.retryable and words in verdict.reason
