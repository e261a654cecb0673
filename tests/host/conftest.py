"""Fixtures for the sample host: a tracker on a temporary SQLite file, its app on a real port."""

from __future__ import annotations

import contextlib
import dataclasses
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

import hookspecs
from sample_host.app import create_app
from sample_host.standin import StandInSource
from sample_host.tracker import Tracker

#: Retries fast enough for a test to watch a source recover.
FAST_RETRIES = [0, 0.1, 0.2, 0.3]


@pytest.fixture
def database_url(tmp_path: Path) -> str:
    """A fresh SQLite database file for this test."""
    return f"sqlite:///{tmp_path / 'tracker.db'}"


def test_tracker(database_url: str, **options: Any) -> Tracker:
    """A tracker that may post to loopback, with fast retries (the caller closes it)."""
    return Tracker(
        database_url,
        allow_private_targets=True,
        retry_schedule=FAST_RETRIES,
        connect_timeout=2.0,
        timeout=5.0,
        load_plugins=False,
        **options,
    )


test_tracker.__test__ = False  # a factory, not a test


@pytest.fixture
def tracker(database_url: str) -> Iterator[Tracker]:
    """A tracker that may post to loopback, with fast retries, closed after the test."""
    with test_tracker(database_url) as instance:
        yield instance


@pytest.fixture
def any_tracker(any_database_url: str) -> Iterator[Tracker]:
    """``tracker`` on SQLite and on PostgreSQL."""
    with test_tracker(any_database_url) as instance:
        yield instance


class Broken:
    """A plugin whose on_conversion fails, like a plugin whose database is down: the tracker keeps
    the conversion and hands it over later."""

    @hookspecs.hookimpl
    def on_conversion(self, conversion: hookspecs.Conversion) -> None:
        raise RuntimeError("disk full")


@dataclasses.dataclass
class Host:
    """The tracker's app served on loopback, with clients for its public and API endpoints."""

    base_url: str
    tracker: Tracker
    api_token: str
    postback_key: str
    admin_password: str
    client: httpx.Client
    api: httpx.Client

    def click(self, campaign: str, **params: str) -> str:
        """Click the campaign link; return the new subid."""
        response = self.client.get(f"/c/{campaign}", params=params)
        assert response.status_code == 302, response.text
        return response.headers["x-subid"]

    def postback(self, **params: str) -> httpx.Response:
        """Send an inbound conversion postback with the right key."""
        return self.client.get(f"/{self.postback_key}/postback", params=params)

    def sent(self, **filters: str) -> list[dict[str, Any]]:
        """The Sent postbacks log through the API."""
        response = self.api.get("/api/sent-postbacks", params=filters)
        assert response.status_code == 200, response.text
        return response.json()["items"]

    def received(self, **filters: str) -> list[dict[str, Any]]:
        """The Received postbacks log through the API."""
        response = self.api.get("/api/received-postbacks", params=filters)
        assert response.status_code == 200, response.text
        return response.json()["items"]


@contextlib.contextmanager
def serve_host(tracker: Tracker, serve_asgi: Callable[..., str], **app_options: Any) -> Iterator[Host]:
    """The tracker's ASGI app under uvicorn on a free loopback port (dispatcher off: tests drain),
    with its clients, closed on exit."""
    creds = tracker.init()
    app_options.setdefault("handoff_interval", 3600)  # tests hand over explicitly
    base_url = serve_asgi(create_app(tracker, **app_options))
    with (
        httpx.Client(base_url=base_url, follow_redirects=False, timeout=10) as client,
        httpx.Client(base_url=base_url, headers={"Authorization": f"Bearer {creds.api_token}"}, timeout=10) as api,
    ):
        yield Host(base_url, tracker, creds.api_token, creds.postback_key, creds.admin_password, client, api)


@pytest.fixture
def host(tracker: Tracker, serve_asgi: Callable[..., str]) -> Iterator[Host]:
    """The tracker's ASGI app under uvicorn on a free loopback port (dispatcher off: tests drain)."""
    with serve_host(tracker, serve_asgi) as served:
        yield served


@pytest.fixture
def any_host(any_tracker: Tracker, serve_asgi: Callable[..., str]) -> Iterator[Host]:
    """``host`` on SQLite and on PostgreSQL."""
    with serve_host(any_tracker, serve_asgi) as served:
        yield served


@pytest.fixture
def exo_campaign(host: Host, standin: StandInSource) -> str:
    """Source ``exo`` (ExoClick template, pointed at the stand-in) and its campaign ``summer``."""
    host.tracker.add_source(
        "exo",
        template="exoclick",
        postback_url=f"{standin.url}/tag.php?goal=g1&tag={{external_id}}&value={{revenue}}",
        statuses=["sale"],
    )
    host.tracker.add_campaign("summer", source_id="exo", offer_url="https://offer.example/lp?click={subid}")
    return "summer"


CSRF_TOKEN = re.compile(r'name="csrf_token" value="([^"]+)"')


class Admin:
    """A signed-in session on the pages, without a browser: ``post`` sends forms with the session's
    CSRF token, as the pages' own forms do."""

    def __init__(self, client: httpx.Client) -> None:
        self.client = client
        self._token: str | None = None

    @property
    def token(self) -> str:
        if self._token is None:
            found = CSRF_TOKEN.search(self.client.get("/campaigns").text)
            assert found, "no CSRF token on the campaigns page"
            self._token = found.group(1)
        return self._token

    def get(self, path: str, **kwargs: Any) -> httpx.Response:
        return self.client.get(path, **kwargs)

    def post(self, path: str, data: dict[str, Any] | None = None, **kwargs: Any) -> httpx.Response:
        return self.client.post(path, data={"csrf_token": self.token, **(data or {})}, **kwargs)


def sign_in(base_url: str, password: str) -> httpx.Client:
    """An httpx client signed in through the sign-in form (not following redirects)."""
    client = httpx.Client(base_url=base_url, follow_redirects=False, timeout=10)
    form = client.get("/login")
    token = CSRF_TOKEN.search(form.text)
    assert token, form.text
    answer = client.post("/login", data={"csrf_token": token.group(1), "password": password, "next": "/campaigns"})
    assert answer.status_code == 303 and answer.headers["location"] == "/campaigns", answer.text
    return client


@pytest.fixture
def admin(host: Host) -> Iterator[Admin]:
    """The host's pages, signed in as admin."""
    client = sign_in(host.base_url, host.admin_password)
    try:
        yield Admin(client)
    finally:
        client.close()
