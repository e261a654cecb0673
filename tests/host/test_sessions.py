"""Admin sessions and the throttles against the running app (httpx to uvicorn on loopback): a
session ends a fixed time after sign-in whatever is written to it, sign-out ends every copy of its
cookie, guesses sent in parallel are counted before any hashing and only a few hash at once, and an
IPv6 client's /64 neighbours share its throttles."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from sample_host import credentials
from sample_host.app import create_app
from sample_host.security import SESSION_COOKIE, SignInThrottle
from sample_host.tracker import Tracker

from .conftest import CSRF_TOKEN, Admin, Host, sign_in


def test_a_copied_cookie_stops_working_after_sign_out(host: Host) -> None:
    owner = sign_in(host.base_url, host.admin_password)
    copied = httpx.Client(
        base_url=host.base_url, follow_redirects=False, cookies={SESSION_COOKIE: owner.cookies[SESSION_COOKIE]}
    )
    try:
        assert copied.get("/campaigns").status_code == 200  # a copy works while the session lives
        assert Admin(owner).post("/logout").status_code == 303
        for client in (copied, owner):
            refused = client.get("/campaigns")
            assert refused.status_code == 303 and refused.headers["location"].startswith("/login")
        # The copy cannot act either: its form posts are refused before anything happens.
        token = CSRF_TOKEN.search(copied.get("/login").text).group(1)
        assert copied.post("/settings", data={"csrf_token": token, "response_text": "pwned"}).status_code == 403
        assert host.tracker.inbound_settings().response_text == "OK"
    finally:
        owner.close()
        copied.close()


def test_a_session_ends_a_fixed_time_after_sign_in_whatever_is_written_to_it(
    tracker: Tracker, serve_asgi: Callable[..., str]
) -> None:
    password = tracker.init().admin_password
    base_url = serve_asgi(create_app(tracker, handoff_interval=3600, session_lifetime=2))
    admin = Admin(sign_in(base_url, password))
    signed_in_at = time.monotonic()
    answers: list[tuple[float, int]] = []
    try:
        while time.monotonic() - signed_in_at < 4.0:
            # A form that writes to the session (a flash message), so each answer sets a fresh cookie.
            saved = admin.post("/settings", {"response_text": "OK", "allowed_ips": ""})
            answers.append((time.monotonic() - signed_in_at, saved.status_code))
            if saved.status_code != 303 or saved.headers["location"] != "/settings":
                break
            time.sleep(0.2)
    finally:
        admin.client.close()
    ended_at, status = answers[-1]
    # Refused once its 2 s had passed (not before), although every answer had rewritten the cookie.
    assert status == 403 and ended_at >= 1.9, answers
    assert all(code == 303 for _, code in answers[:-1]) and len(answers) >= 4, answers


@pytest.fixture
def slow_checks(monkeypatch: pytest.MonkeyPatch) -> dict[str, int]:
    """Make each password check take two seconds and count them and their most at once."""
    seen = {"checks": 0, "now": 0, "most": 0}
    lock = threading.Lock()
    real = credentials.check_admin_password

    def slow(engine: Any, password: str) -> bool:
        with lock:
            seen["checks"] += 1
            seen["now"] += 1
            seen["most"] = max(seen["most"], seen["now"])
        try:
            time.sleep(2.0)
            return real(engine, password)
        finally:
            with lock:
                seen["now"] -= 1

    monkeypatch.setattr(credentials, "check_admin_password", slow)
    return seen


def _login_form(base_url: str, **headers: str) -> tuple[httpx.Client, str]:
    client = httpx.Client(base_url=base_url, follow_redirects=False, timeout=10, headers=headers)
    return client, CSRF_TOKEN.search(client.get("/login").text).group(1)


def test_parallel_guesses_are_counted_before_hashing_and_few_hash_at_once(
    tracker: Tracker, serve_asgi: Callable[..., str], slow_checks: dict[str, int]
) -> None:
    password = tracker.init().admin_password
    throttle = SignInThrottle(limit=5, window=60, concurrent=2)
    base_url = serve_asgi(create_app(tracker, handoff_interval=3600, signin_throttle=throttle))
    forms = [_login_form(base_url) for _ in range(20)]
    start = threading.Barrier(len(forms))
    answers: list[tuple[int, float]] = []

    def guess(client: httpx.Client, token: str, n: int) -> None:
        start.wait(timeout=10)
        began = time.monotonic()
        response = client.post("/login", data={"csrf_token": token, "password": f"guess-{n}"})
        answers.append((response.status_code, time.monotonic() - began))

    threads = [threading.Thread(target=guess, args=(*form, n)) for n, form in enumerate(forms)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    codes = sorted(code for code, _ in answers)
    # Exactly five attempts got past the count; of those, no more than two hashed at once, and
    # the ones that found both slots taken were told so at once instead of queueing.
    assert codes.count(429) == 15 and codes.count(401) + codes.count(503) == 5, codes
    assert slow_checks["most"] <= 2 and slow_checks["checks"] == codes.count(401)
    assert codes.count(503) >= 1, codes
    assert all(seconds < 1.5 for code, seconds in answers if code in (429, 503)), answers  # not queued
    # The right password waits too now: the client has had its five attempts.
    client, token = forms[0]
    assert client.post("/login", data={"csrf_token": token, "password": password}).status_code == 429
    for client, _ in forms:
        client.close()


@pytest.fixture
def proxied(tracker: Tracker, serve_asgi: Callable[..., str]) -> Iterator[tuple[str, str, str]]:
    """The app behind a trusted proxy on loopback (uvicorn takes the client address from
    X-Forwarded-For), with a sign-in throttle of 3: (base URL, admin password, postback key)."""
    creds = tracker.init()
    tracker.refusals.limit = 3
    app = create_app(tracker, handoff_interval=3600, signin_throttle=SignInThrottle(limit=3, window=60))
    yield serve_asgi(app, proxy_headers=True, forwarded_allow_ips="127.0.0.1"), creds.admin_password, creds.postback_key


def test_an_ipv6_clients_64_neighbours_share_its_sign_in_throttle(proxied: tuple[str, str, str]) -> None:
    base_url, password, _ = proxied

    def sign_in_from(address: str, secret: str) -> int:
        client, token = _login_form(base_url, **{"X-Forwarded-For": address})
        try:
            return client.post("/login", data={"csrf_token": token, "password": secret}).status_code
        finally:
            client.close()

    # Each guess from a new address in the same /64: the client is the network, not the address.
    assert [sign_in_from(f"2001:db8:1:2::{n:x}", "guess") for n in range(1, 5)] == [401, 401, 401, 429]
    assert sign_in_from("2001:db8:1:2:ffff::1", password) == 429
    assert sign_in_from("2001:db8:1:3::1", password) == 303  # the next /64 is someone else
    assert sign_in_from("203.0.113.9", "guess") == 401


def test_an_ipv6_clients_64_neighbours_share_its_refusal_throttle(proxied: tuple[str, str, str]) -> None:
    base_url, _, _ = proxied
    with httpx.Client(base_url=base_url) as client:
        codes = [
            client.get(
                "/wrong-key/postback", params={"subid": "x"}, headers={"X-Forwarded-For": f"2001:db8:5:6::{n}"}
            ).status_code
            for n in range(1, 6)
        ]
        assert codes == [403, 403, 403, 429, 429]
        other = client.get("/wrong-key/postback", headers={"X-Forwarded-For": "2001:db8:5:7::1"})
        assert other.status_code == 403
