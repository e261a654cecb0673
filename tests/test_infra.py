"""The shared test infrastructure does what the other tests rely on."""

from __future__ import annotations

import asyncio
import os
import socket
import threading
import time

import httpx
import pytest
import sqlalchemy as sa

from tests.support import RESET, Reply, StandInSource, uvicorn_server

# -- stand-in source ------------------------------------------------------------------------


def test_standin_records_the_raw_query_exactly_as_sent(standin: StandInSource) -> None:
    raw = "cid=a%26b%3Dc%23d&p=2.5&name=%D0%BA%D0%B8%D1%97%D0%B2+x%20y&empty=&dup=1&dup=2"
    response = httpx.get(f"{standin.url}/exo/pb?{raw}", headers={"X-Token": "t0k"})

    assert response.status_code == 200 and response.text == "OK"
    [request] = standin.wait_for(1)
    assert request.method == "GET"
    assert request.path == "/exo/pb"
    assert request.raw_query == raw
    assert request.target == f"/exo/pb?{raw}"
    assert request.params == {"cid": "a&b=c#d", "p": "2.5", "name": "київ x y", "empty": "", "dup": "1"}
    assert request.query["dup"] == ["1", "2"]
    assert request.headers["x-token"] == "t0k" and request.headers["X-TOKEN"] == "t0k"
    assert request.received_at.tzinfo is not None


def test_standin_records_post_bodies(standin: StandInSource) -> None:
    httpx.post(f"{standin.url}/json", json={"click_id": "abc", "payout": "1.5"})
    httpx.post(f"{standin.url}/form", data={"a": "1 2"})

    first, second = standin.wait_for(2)
    assert first.method == "POST" and first.json() == {"click_id": "abc", "payout": "1.5"}
    assert first.headers["content-type"] == "application/json"
    assert second.form() == {"a": ["1 2"]}


def test_standin_plays_its_script_in_order_then_the_default(standin: StandInSource) -> None:
    standin.script("/exo", [(503, "busy"), Reply(429, "slow down", retry_after=7)], default=(200, "OK"))
    standin.script("/exo/special", [404])

    with httpx.Client(base_url=standin.url) as client:
        answers = [client.get(f"/exo?n={i}") for i in range(4)]
        special = client.get("/exo/special/x")
        unscripted = client.get("/elsewhere")

    assert [(r.status_code, r.text) for r in answers] == [(503, "busy"), (429, "slow down"), (200, "OK"), (200, "OK")]
    assert answers[1].headers["retry-after"] == "7"
    assert special.status_code == 404  # the longest prefix wins
    assert unscripted.status_code == 200
    assert [r.reply.status for r in standin.requests] == [503, 429, 200, 200, 404, 200]


def test_standin_keeps_connections_alive(standin: StandInSource) -> None:
    with httpx.Client(base_url=standin.url) as client:
        for _ in range(5):
            client.get("/pb")

    assert len({r.client for r in standin.wait_for(5)}) == 1


def test_standin_delays_its_answer(standin: StandInSource) -> None:
    standin.script("/slow", [Reply(200, "late", delay=0.4)])

    started = time.monotonic()
    response = httpx.get(f"{standin.url}/slow")
    assert response.text == "late"
    assert time.monotonic() - started >= 0.4

    standin.script("/stall", [Reply(200, delay=5)])
    with pytest.raises(httpx.ReadTimeout):
        httpx.get(f"{standin.url}/stall", timeout=0.3)


def test_standin_resets_the_connection(standin: StandInSource) -> None:
    standin.script("/flaky", [RESET, "reset"])

    with httpx.Client(base_url=standin.url) as client:
        for _ in range(2):
            with pytest.raises((httpx.ReadError, httpx.RemoteProtocolError)):
                client.get("/flaky")
        assert client.get("/flaky").status_code == 200
    assert [r.reply.reset for r in standin.wait_for(3)] == [True, True, False]


def test_standin_wait_for_times_out_naming_what_arrived(standin: StandInSource) -> None:
    httpx.get(f"{standin.url}/one")
    with pytest.raises(TimeoutError, match=r"got 1 of 2 expected requests.*GET /one -> 200"):
        standin.wait_for(2, timeout=0.2)


def test_standin_wait_for_wakes_on_arrival(standin: StandInSource) -> None:
    threading.Timer(0.2, lambda: httpx.get(f"{standin.url}/later")).start()
    [request] = standin.wait_for(1, timeout=5, prefix="/later")
    assert request.path == "/later"


def test_standin_stop_drops_pooled_connections_and_restarts_on_the_same_port() -> None:
    source = StandInSource().start()
    url = source.url
    with httpx.Client(base_url=url) as client:
        assert client.get("/a").status_code == 200
        source.stop()
        with pytest.raises(httpx.TransportError):
            client.get("/b")
        source.start()
        try:
            assert source.url == url
            assert client.get("/c").status_code == 200
        finally:
            source.stop()
    assert [r.path for r in source.requests] == ["/a", "/c"]


def test_standin_stop_cuts_a_stall_short() -> None:
    source = StandInSource().start()
    source.script("/stall", [Reply(200, delay=30)])
    errors: list[Exception] = []

    def call() -> None:
        try:
            httpx.get(f"{source.url}/stall", timeout=10)
        except httpx.TransportError as exc:
            errors.append(exc)

    caller = threading.Thread(target=call)
    caller.start()
    source.wait_for(1)
    started = time.monotonic()
    source.stop()
    caller.join(timeout=5)
    assert not caller.is_alive() and errors
    assert time.monotonic() - started < 5


def test_standin_clear_and_count(standin: StandInSource) -> None:
    httpx.get(f"{standin.url}/x")
    assert standin.count == 1
    standin.clear()
    assert standin.requests == [] and standin.count == 0


def test_standin_does_not_log_requests(capfd: pytest.CaptureFixture[str]) -> None:
    with StandInSource() as source:
        httpx.get(f"{source.url}/quiet")
        source.script("/reset", [RESET])
        with pytest.raises(httpx.TransportError):
            httpx.get(f"{source.url}/reset")
    out, err = capfd.readouterr()
    assert out == "" and err == ""


def test_reply_short_forms() -> None:
    assert Reply.coerce(503) == Reply(503, "")
    assert Reply.coerce((200, "OK")) == Reply(200, "OK")
    assert Reply.coerce((302, "", {"Location": "/x"})).headers == {"Location": "/x"}
    assert Reply.coerce("reset").reset
    assert Reply.coerce({"status": 429, "retry_after": 3}).retry_after == 3
    with pytest.raises(ValueError):
        Reply.coerce("busy")


# -- uvicorn --------------------------------------------------------------------------------


async def _hello_app(scope, receive, send):  # type: ignore[no-untyped-def]
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            await send({"type": message["type"] + ".complete"})
            if message["type"] == "lifespan.shutdown":
                return
    body = b"<html><head><title>s2s stand-in page</title></head><body><h1>hello</h1></body></html>"
    await send(
        {"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/html; charset=utf-8")]}
    )
    await send({"type": "http.response.body", "body": body})


def test_uvicorn_server_serves_and_shuts_down() -> None:
    with uvicorn_server(_hello_app) as base_url:
        assert base_url.startswith("http://127.0.0.1:")
        response = httpx.get(base_url + "/")
        assert response.status_code == 200 and b"hello" in response.content
        port = int(base_url.rsplit(":", 1)[1])
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", port), timeout=1).close()


def test_uvicorn_server_reports_a_failed_startup() -> None:
    async def broken(scope, receive, send):  # type: ignore[no-untyped-def]
        if scope["type"] == "lifespan":
            await receive()
            await send({"type": "lifespan.startup.failed", "message": "no database"})

    with pytest.raises(RuntimeError, match="did not start"), uvicorn_server(broken, lifespan="on"):
        pass


def test_serve_asgi_fixture(serve_asgi) -> None:  # type: ignore[no-untyped-def]
    first, second = serve_asgi(_hello_app), serve_asgi(_hello_app)
    assert first != second
    assert httpx.get(second).status_code == 200


# -- PostgreSQL -----------------------------------------------------------------------------


def test_postgres_answers_through_sqlalchemy(postgres_url: str) -> None:
    assert postgres_url.startswith("postgresql+psycopg://")
    engine = sa.create_engine(postgres_url)
    try:
        with engine.connect() as conn:
            assert conn.execute(sa.text("select 1")).scalar() == 1
            assert conn.execute(sa.text("show fsync")).scalar() in ("off", "on")
    finally:
        engine.dispose()


def test_fresh_pg_url_is_a_new_empty_database(fresh_pg_url: str, postgres_url: str) -> None:
    assert fresh_pg_url != postgres_url
    engine = sa.create_engine(fresh_pg_url)
    try:
        with engine.begin() as conn:
            tables = conn.execute(
                sa.text("select count(*) from information_schema.tables where table_schema = 'public'")
            ).scalar()
            assert tables == 0
            conn.execute(sa.text("create table t (id serial primary key)"))
            # FOR UPDATE SKIP LOCKED is what the delivery queue relies on.
            conn.execute(sa.text("select id from t for update skip locked"))
    finally:
        engine.dispose()


@pytest.mark.skipif(bool(os.environ.get("S2S_TEST_POSTGRES_URL")), reason="the server is not ours")
def test_postgres_listens_on_loopback_only(postgres_url: str) -> None:
    engine = sa.create_engine(postgres_url)
    try:
        with engine.connect() as conn:
            assert conn.execute(sa.text("select current_setting('listen_addresses')")).scalar() == "127.0.0.1"
    finally:
        engine.dispose()


# -- browser --------------------------------------------------------------------------------


def test_browser_reads_the_title_of_a_page_served_by_uvicorn(page, serve_asgi) -> None:  # type: ignore[no-untyped-def]
    base_url = serve_asgi(_hello_app)
    page.goto(base_url + "/")
    assert page.title() == "s2s stand-in page"
    assert page.locator("h1").inner_text() == "hello"


def test_browser_is_shared_and_contexts_are_not(browser, serve_asgi) -> None:  # type: ignore[no-untyped-def]
    base_url = serve_asgi(_hello_app)
    context = browser.new_context()
    try:
        tab = context.new_page()
        tab.goto(base_url + "/")
        context.add_cookies([{"name": "k", "value": "v", "url": base_url}])
        assert tab.title() == "s2s stand-in page"
    finally:
        context.close()


def test_asyncio_run_still_works_after_browser_tests() -> None:
    # A shared Playwright browser must not leave its event loop marked as running.
    async def answer() -> int:
        await asyncio.sleep(0)
        return 42

    assert asyncio.run(answer()) == 42
