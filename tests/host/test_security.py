"""Security of the sample host: every route refuses a visitor who has not signed in, sessions are
HttpOnly SameSite cookies tied to the password, every form needs its CSRF token, nothing secret is
shown or logged."""

from __future__ import annotations

import base64
import json
import logging
import re
from collections.abc import Iterator

import httpx
from starlette.routing import Mount, Route

from sample_host import credentials
from sample_host.app import create_app
from sample_host.logfilter import MASK, hide_postback_key

from .conftest import CSRF_TOKEN, Admin, Host, sign_in

#: Routes anyone may call: the campaign link, the inbound postback (its key protects it), sign-in.
PUBLIC = {"/c/{campaign_alias}", "/{postback_key}/postback", "/login"}

_PARAM = re.compile(r"{(\w+)(?::(\w+))?}")


def _sample_path(path: str) -> str:
    """A concrete path for a route pattern: ints get 1, anything else a word."""
    return _PARAM.sub(lambda m: "1" if m.group(2) == "int" else "source:x" if m.group(1) == "rule_id" else "x", path)


def _walk(routes: list, prefix: str = "") -> Iterator[tuple[str, str, str]]:
    """(pattern, concrete path, method) for every route of the app, mounts included."""
    for route in routes:
        if isinstance(route, Mount):
            if route.path == "/static":
                continue
            yield from _walk(route.routes, prefix + route.path)
        elif isinstance(route, Route):
            pattern = prefix + route.path
            for method in sorted((route.methods or {"GET"}) - {"HEAD"}):
                yield pattern, _sample_path(pattern), method


def _routes(host: Host) -> list[tuple[str, str, str]]:
    app = create_app(host.tracker)
    return list(_walk(app.routes))


def _refused(response: httpx.Response) -> bool:
    if response.status_code in (401, 403):
        return True
    return response.status_code in (302, 303) and response.headers["location"].startswith("/login")


def test_every_page_and_api_route_refuses_a_visitor_who_has_not_signed_in(host: Host) -> None:
    walked = _routes(host)
    patterns = {pattern for pattern, _, _ in walked}
    # The walk really covers the app: pages, API, metrics, and the public ones it skips.
    assert {"/campaigns", "/sent/{entry_id:int}", "/api/sent-postbacks", "/metrics", "/settings"} <= patterns
    assert patterns >= PUBLIC
    checked = []
    for pattern, path, method in walked:
        if pattern in PUBLIC:
            continue
        for headers in ({}, {"Authorization": "Bearer wrong"}, {"Cookie": "sample_host_session=forged"}):
            response = host.client.request(
                method, path, headers=headers, data={"csrf_token": "x"} if method == "POST" else None
            )
            assert _refused(response), (method, path, headers, response.status_code, response.text[:200])
            assert "<table" not in response.text and host.api_token not in response.text
        checked.append((method, pattern))
    assert len(checked) >= 35


def test_a_page_session_does_not_open_the_api_and_the_token_does_not_open_pages(host: Host, admin: Admin) -> None:
    assert admin.get("/api/sources").status_code == 401
    assert admin.get("/metrics").status_code == 401
    assert host.api.get("/campaigns").status_code == 303


def test_the_session_cookie_is_httponly_samesite_and_signed(host: Host) -> None:
    client = httpx.Client(base_url=host.base_url)
    form = client.get("/login")
    token = CSRF_TOKEN.search(form.text).group(1)
    answer = client.post("/login", data={"csrf_token": token, "password": host.admin_password}, follow_redirects=False)
    cookie = answer.headers["set-cookie"]
    assert cookie.startswith("sample_host_session=")
    flags = {part.strip().split("=")[0].lower() for part in cookie.split(";")}
    assert {"httponly", "samesite", "path", "max-age"} <= flags and "samesite=lax" in cookie.lower()
    # Tampering with the signed payload (say, to claim a session) is refused.
    value = cookie.split(";")[0].split("=", 1)[1]
    payload, rest = value.split(".", 1)
    data = json.loads(base64.b64decode(payload))
    data["pw"] = "0" * 16
    forged = base64.b64encode(json.dumps(data).encode()).decode() + "." + rest
    assert client.get("/campaigns", follow_redirects=False).status_code == 200
    client.close()
    with httpx.Client(base_url=host.base_url, cookies={"sample_host_session": forged}) as forger:
        assert forger.get("/campaigns", follow_redirects=False).status_code == 303


def test_secure_cookies_when_served_over_https(tracker, serve_asgi) -> None:
    creds = tracker.init()
    base_url = serve_asgi(create_app(tracker, secure_cookies=True))
    with httpx.Client(base_url=base_url) as client:
        token = CSRF_TOKEN.search(client.get("/login").text).group(1)
        answer = client.post("/login", data={"csrf_token": token, "password": creds.admin_password})
    assert "secure" in answer.headers["set-cookie"].lower()


def test_every_form_post_needs_the_sessions_csrf_token(host: Host, admin: Admin, exo_campaign: str) -> None:
    posts = [
        (pattern, path)
        for pattern, path, method in _routes(host)
        if method == "POST" and pattern not in PUBLIC and not pattern.startswith("/api")
    ]
    assert len(posts) >= 12
    before = (host.tracker.campaigns(), host.tracker.sources(), host.tracker.inbound_settings())
    for pattern, path in posts:
        for data in ({}, {"csrf_token": "not-the-token"}):
            response = admin.client.post(path, data={**data, "alias": "evil", "url": "https://evil.example/"})
            assert response.status_code == 403, (pattern, response.status_code)
            assert "form expired" in response.text
    assert (host.tracker.campaigns(), host.tracker.sources(), host.tracker.inbound_settings()) == before
    assert admin.get("/campaigns").status_code == 200  # still signed in: nothing was signed out either


def test_sign_in_with_a_wrong_password_is_refused_and_throttled(host: Host) -> None:
    client = httpx.Client(base_url=host.base_url)
    token = CSRF_TOKEN.search(client.get("/login").text).group(1)
    codes = [client.post("/login", data={"csrf_token": token, "password": f"guess{n}"}).status_code for n in range(11)]
    assert codes == [401] * 10 + [429]
    # Even the right password waits now, from this address.
    assert client.post("/login", data={"csrf_token": token, "password": host.admin_password}).status_code == 429
    assert "Wrong password" not in client.get("/login").text
    client.close()


def test_sign_in_goes_only_to_local_pages(host: Host) -> None:
    client = httpx.Client(base_url=host.base_url)
    token = CSRF_TOKEN.search(client.get("/login").text).group(1)
    answer = client.post(
        "/login",
        data={"csrf_token": token, "password": host.admin_password, "next": "//evil.example/phish"},
        follow_redirects=False,
    )
    assert answer.headers["location"] == "/dashboard"
    client.close()


def test_a_new_password_signs_every_session_out(host: Host, admin: Admin) -> None:
    assert admin.get("/campaigns").status_code == 200
    password = credentials.reset_admin_password(host.tracker.engine)
    assert admin.get("/campaigns").status_code == 303
    again = sign_in(host.base_url, password)
    assert again.get("/campaigns").status_code == 200
    again.close()


def test_sign_out_ends_the_session(host: Host, admin: Admin) -> None:
    assert admin.post("/logout").status_code == 303
    assert admin.get("/campaigns").headers["location"].startswith("/login")


def test_answers_carry_security_headers_and_pages_are_not_cached(host: Host, admin: Admin) -> None:
    page = admin.get("/sent")
    assert "script-src" not in page.headers["content-security-policy"]  # default-src 'none' forbids scripts
    assert "default-src 'none'" in page.headers["content-security-policy"]
    assert page.headers["x-frame-options"] == "DENY" and page.headers["x-content-type-options"] == "nosniff"
    assert page.headers["cache-control"] == "no-store"
    css = host.client.get("/static/style.css")
    assert css.status_code == 200 and "no-store" not in css.headers.get("cache-control", "")
    assert "<script" not in page.text


def test_no_page_shows_the_api_token_or_the_admin_password(host: Host, admin: Admin, exo_campaign: str) -> None:
    subid = host.click("summer", external_id="x")
    host.postback(subid=subid)
    host.tracker.s2s.drain(timeout=5)
    entry = host.sent()[0]["id"]
    pages = [
        "/campaigns",
        "/campaigns/summer",
        "/campaigns/summer/postbacks",
        "/sources",
        "/sources/exo",
        "/sent",
        f"/sent/{entry}",
        "/received",
        f"/explain?subid={subid}",
        "/settings",
        "/rules/source:exo/test",
    ]
    for path in pages:
        text = admin.get(path).text
        assert admin.get(path).status_code == 200, path
        assert host.api_token not in text and host.admin_password not in text, path
    settings = admin.get("/settings").text
    assert host.api_token[:4] + "…" in settings  # masked
    # The postback key is only on the settings page, folded away, for the operator to give networks.
    assert [path for path in pages if host.postback_key in admin.get(path).text] == ["/settings"]


class _Lines(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


def test_a_sources_account_key_is_masked_outside_its_own_edit_form(host: Host, admin: Admin) -> None:
    host.tracker.add_source(
        "ts",
        template="trafficstars",
        postback_url="https://tsyndicate.example/api/v1/cpa/action?clickid={external_id}&key=ACCT-SECRET-1",
    )
    host.tracker.add_campaign("dating", source_id="ts", offer_url="https://offer.example/")
    added = admin.post(
        "/campaigns/dating/postbacks",
        {
            "url": "https://partner.example/pb?c={external_id}&api_key=PARTNER-2",
            "statuses": "sale",
            "payout_mode": "real",
            "secrets": "api_key",
        },
    )
    assert added.status_code == 303 and host.tracker.postbacks("dating")[0].secrets == ("api_key",)
    for path in ("/sources", "/campaigns/dating/postbacks", "/rules/source:ts/test"):
        text = admin.get(path).text
        assert "ACCT-SECRET-1" not in text and "PARTNER-2" not in text and "[REDACTED]" in text, path
    assert "ACCT-SECRET-1" in admin.get("/sources/ts").text  # the operator edits the URL there


def test_the_access_log_never_shows_the_postback_key() -> None:
    key = "0123456789abcdef0123456789abcdef"
    access = logging.getLogger("uvicorn.access")
    lines, level = _Lines(), access.level
    access.addHandler(lines)
    access.setLevel(logging.INFO)
    secret_filter = hide_postback_key(key)
    try:
        access.info('%s - "%s %s HTTP/%s" %d', "203.0.113.9:5000", "GET", f"/{key}/postback?subid=1", "1.1", 200)
    finally:
        for name in ("uvicorn.access", "uvicorn.error"):
            logging.getLogger(name).removeFilter(secret_filter)
        access.removeHandler(lines)
        access.setLevel(level)
    assert lines.lines == [f'203.0.113.9:5000 - "GET /{MASK}/postback?subid=1 HTTP/1.1" 200']


def test_no_route_answers_500_to_a_signed_in_admin_with_odd_values(host: Host, admin: Admin) -> None:
    for pattern, path, method in _routes(host):
        if pattern in PUBLIC or pattern.startswith("/api") or pattern == "/logout":
            continue
        for odd in ("x", "%C3%A9%20%22", "postback:abc"):
            concrete = path.replace("/x", f"/{odd}").replace("source:x", odd)
            if method == "GET":
                response = admin.get(concrete, params={"subid": odd, "before": "1", "template": odd})
            else:
                response = admin.post(
                    concrete,
                    {
                        "url": odd,
                        "statuses": odd,
                        "payout_mode": odd,
                        "id": odd,
                        "offer_url": odd,
                        "alias": odd,
                        "allowed_ips": "1.2.3.4",
                    },
                )
            assert response.status_code < 500, (method, concrete, response.status_code, response.text[:300])
