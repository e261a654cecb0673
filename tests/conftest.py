"""Fixtures shared by every test: real servers, a real PostgreSQL, a real browser.

- ``standin``: a started ``StandInSource`` (a scriptable traffic source on loopback).
- ``standin_factory``: call it for more stand-in sources; all are stopped after the test.
- ``serve_asgi``: ``serve_asgi(app) -> base_url`` runs an ASGI app under uvicorn on loopback.
- ``postgres_server`` / ``postgres_url``: one PostgreSQL server for the whole run
  (``S2S_TEST_POSTGRES_URL`` to use an existing one), and a database on it.
- ``fresh_pg_url``: a new empty database per test, dropped after it.
- ``browser`` / ``page``: headless Debian Chromium through Playwright; a new context per ``page``.

Nothing here skips: a missing PostgreSQL or Chromium fails the tests that need it, with the
command that installs it.
"""

from __future__ import annotations

import atexit
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from typing import Any

import pytest

from tests.support import (
    BrowserSession,
    BrowserUnavailable,
    PostgresUnavailable,
    StandInSource,
    server_from_environment,
    uvicorn_server,
)
from tests.support.plugin_host import RecordingHost, install_for_test

# -- stand-in traffic source ----------------------------------------------------------------


@pytest.fixture
def standin() -> Iterator[StandInSource]:
    """A started stand-in traffic source on a free loopback port, stopped after the test."""
    with StandInSource() as source:
        yield source


@pytest.fixture
def standin_factory() -> Iterator[Callable[..., StandInSource]]:
    """``standin_factory(**kwargs)`` starts another ``StandInSource``; all stop after the test."""
    with ExitStack() as stack:
        yield lambda **kwargs: stack.enter_context(StandInSource(**kwargs))


# -- ASGI apps on a real port ---------------------------------------------------------------


@pytest.fixture
def serve_asgi() -> Iterator[Callable[..., str]]:
    """``serve_asgi(app, **uvicorn_config) -> base_url``; every server shuts down after the test."""
    with ExitStack() as stack:
        yield lambda app, **config: stack.enter_context(uvicorn_server(app, **config))


# -- PostgreSQL -----------------------------------------------------------------------------


@pytest.fixture
def host() -> RecordingHost:
    """A host that records every ``on_postback_sent`` report."""
    return RecordingHost()


@pytest.fixture
def make_s2s(tmp_path: Any, host: RecordingHost) -> Iterator[Callable[..., Any]]:
    """``make_s2s(database_url=None, **settings) -> (pm, service)``; SQLite file by default; closed after."""
    made: list[Any] = []

    def factory(database_url: str | None = None, **settings: Any) -> tuple[Any, Any]:
        pm, service = install_for_test(host, database_url or f"sqlite:///{tmp_path}/s2s.db", **settings)
        made.append(service)
        return pm, service

    yield factory
    for service in made:
        service.close()


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[Any]:
    """The PostgreSQL server of this test run (``PostgresServer`` or ``ExternalPostgres``).

    Offers ``database_url``, ``url(dbname)``, ``create_database()``, ``drop_database(name)``.
    """
    server = server_from_environment()
    try:
        server.start()
    except PostgresUnavailable as exc:
        pytest.fail(str(exc), pytrace=False)
    # Also on an abrupt exit (KeyboardInterrupt during teardown): never leave a postgres behind.
    atexit.register(server.stop)
    try:
        yield server
    finally:
        server.stop()
        atexit.unregister(server.stop)


@pytest.fixture(scope="session")
def postgres_url(postgres_server: Any) -> str:
    """SQLAlchemy URL (``postgresql+psycopg://...``) of a database on the run's PostgreSQL server."""
    return postgres_server.database_url


@pytest.fixture
def fresh_pg_url(postgres_server: Any) -> Iterator[str]:
    """SQLAlchemy URL of a new, empty database for this test only, dropped afterwards."""
    url = postgres_server.create_database()
    try:
        yield url
    finally:
        postgres_server.drop_database(url.rsplit("/", 1)[1])


@pytest.fixture(params=["sqlite", "postgresql"])
def any_database_url(request: pytest.FixtureRequest, tmp_path: Any) -> str:
    """A fresh database for this test, once on SQLite (a file of its own) and once on PostgreSQL."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'database.db'}"
    return request.getfixturevalue("fresh_pg_url")


# -- browser --------------------------------------------------------------------------------

_browser_session: BrowserSession | None = None


def _uses_browser(item: pytest.Item) -> bool:
    return "browser" in getattr(item, "fixturenames", ())


@pytest.hookimpl(wrapper=True)
def pytest_runtest_setup(item: pytest.Item) -> Any:
    # Playwright's loop must look running while a browser test (and its fixtures) use it, and
    # only then: see tests/support/browser.py.
    if _browser_session is not None and _uses_browser(item):
        _browser_session.activate()
    return (yield)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_teardown(item: pytest.Item, nextitem: pytest.Item | None) -> Any:
    if _browser_session is not None and _uses_browser(item):
        _browser_session.activate()
    try:
        return (yield)
    finally:
        if _browser_session is not None:
            _browser_session.deactivate()


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    """A headless Chromium (Debian's ``/usr/bin/chromium``) driven by Playwright's sync API.

    Started by the first test that asks for it and shared by the rest of the run; open pages in
    a context of your own (or use ``page``) so tests do not share cookies.
    """
    global _browser_session
    session = BrowserSession()
    try:
        launched = session.start()
    except BrowserUnavailable as exc:
        pytest.fail(str(exc), pytrace=False)
    _browser_session = session
    try:
        yield launched
    finally:
        _browser_session = None
        session.stop()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    """A fresh page in a fresh browser context (own cookies and storage), closed after the test."""
    context = browser.new_context()
    context.set_default_timeout(10_000)
    try:
        yield context.new_page()
    finally:
        context.close()
