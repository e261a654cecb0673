"""The two example plugins, pip-installed, end to end through the sample host on a real port.

``bash .ci/run`` installs ``examples/*`` into the test environment; the sample host finds them
through the ``s2s_postback`` entry points like any third-party plugin, and the postbacks go to a
stand-in source on loopback.
"""

from __future__ import annotations

import dataclasses
import importlib.metadata
import json
import logging
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from click.testing import CliRunner

from sample_host.app import create_app
from sample_host.cli import main as sample_host_cli
from sample_host.standin import StandInSource
from sample_host.tracker import Tracker

EXAMPLES = {"exoclick": "s2s-exoclick", "json_events": "s2s-json-events"}
TOKEN = "tt-secret-4f2a9c71"


@pytest.fixture(scope="module", autouse=True)
def examples_installed() -> None:
    """The examples must be installed as packages: that is what this module tests."""
    found = {ep.name for ep in importlib.metadata.entry_points(group="s2s_postback")}
    missing = [dist for name, dist in EXAMPLES.items() if name not in found]
    if missing:
        pytest.fail(
            f"example plugins not installed: {', '.join(missing)}; run "
            "`pip install -e examples/s2s-exoclick -e examples/s2s-json-events` (bash .ci/run does)",
            pytrace=False,
        )


@dataclasses.dataclass
class Host:
    tracker: Tracker
    client: httpx.Client
    api: httpx.Client
    postback_key: str
    database_url: str

    def click(self, campaign: str, headers: dict[str, str] | None = None, **params: str) -> str:
        response = self.client.get(f"/c/{campaign}", params=params, headers=headers)
        assert response.status_code == 302, response.text
        return response.headers["x-subid"]

    def convert(self, **params: str) -> None:
        response = self.client.get(f"/{self.postback_key}/postback", params=params)
        assert response.status_code == 200, response.text

    def sent(self, subid: str) -> list[dict[str, Any]]:
        response = self.api.get("/api/sent-postbacks", params={"subid": subid})
        assert response.status_code == 200, response.text
        return sorted(response.json()["items"], key=lambda item: item["attempt"])

    def add(self, path: str, **body: Any) -> None:
        response = self.api.post(path, json=body)
        assert response.status_code == 201, response.text


@pytest.fixture
def host(tmp_path: Path, serve_asgi: Callable[..., str]) -> Iterator[Host]:
    """The sample host with every installed plugin loaded, served on loopback."""
    database_url = f"sqlite:///{tmp_path / 'tracker.db'}"
    with Tracker(database_url, allow_private_targets=True, retry_schedule=[0, 0.05, 0.05], timeout=5.0) as tracker:
        assert {"exoclick", "json_events"} <= set(tracker.plugins)
        creds = tracker.init()
        base_url = serve_asgi(create_app(tracker))
        with (
            httpx.Client(base_url=base_url, timeout=10) as client,
            httpx.Client(base_url=base_url, headers={"Authorization": f"Bearer {creds.api_token}"}, timeout=10) as api,
        ):
            yield Host(tracker, client, api, creds.postback_key, database_url)


# --- s2s-exoclick ---------------------------------------------------------------------------


@pytest.fixture
def exo(host: Host, standin: StandInSource) -> Host:
    host.add(
        "/api/sources",
        id="exo",
        template="exoclick",
        postback_url=standin.url + "/tag.php?goal=g1&tag={external_id}&value={revenue}",
        statuses=["sale"],
    )
    host.add("/api/campaigns", alias="summer", source_id="exo", offer_url="https://offer.example/?s={subid}")
    return host


@pytest.mark.parametrize(
    ("answer", "outcome", "reason"),
    [
        ("OK", "delivered", "plugin 'exoclick' judged the HTTP 200 answer 'OK': delivered"),
        (
            "ERROR: This conversion has already been notified and saved.",
            "delivered",
            "plugin 'exoclick' judged the HTTP 200 answer 'ERROR: This conversion has already been notified and saved.': delivered",
        ),
        (
            "ERROR: Tag is invalid!",
            "failed",
            "plugin 'exoclick' judged the HTTP 200 answer 'ERROR: Tag is invalid!': failed",
        ),
    ],
)
def test_exoclick_answers_decide_the_outcome(
    exo: Host, standin: StandInSource, answer: str, outcome: str, reason: str
) -> None:
    standin.script("/tag.php", [(200, answer)])
    subid = exo.click("summer", external_id="EXO-1")
    exo.convert(subid=subid, status="sale", payout="1.5")
    exo.tracker.s2s.drain(timeout=5)
    (request,) = standin.requests  # one attempt: neither answer is worth a retry
    assert request.target == "/tag.php?goal=g1&tag=EXO-1&value=1.5"
    (attempt,) = exo.sent(subid)
    assert (attempt["outcome"], attempt["http_status"], attempt["reason"]) == (outcome, 200, reason)
    if outcome == "failed":
        assert "ERROR: Tag is invalid!" in exo.api.get(f"/api/explain/{subid}").text


def test_exoclick_template_comes_from_the_plugin(exo: Host) -> None:
    templates = {t["name"]: t for t in exo.api.get("/api/templates").json()["items"]}
    assert "s2s-exoclick plugin reads the answer" in templates["exoclick"]["notes"]
    assert "tiktok-events" in templates


# --- s2s-json-events ------------------------------------------------------------------------


@pytest.fixture
def tiktok(host: Host, standin: StandInSource, monkeypatch: pytest.MonkeyPatch) -> Host:
    monkeypatch.setenv("S2S_TIKTOK_ACCESS_TOKEN", TOKEN)
    monkeypatch.delenv("S2S_TIKTOK_EVENTS", raising=False)
    url = (
        standin.url
        + "/open_api/v1.3/event/track/?event_source_id=C0PIX&ttclid={external_id}&value={revenue}&currency={currency}"
    )
    host.add("/api/sources", id="tiktok", template="tiktok-events", postback_url=url, statuses=["lead", "sale"])
    host.add("/api/campaigns", alias="tt", source_id="tiktok", offer_url="https://offer.example/?s={subid}")
    return host


def test_json_events_sends_tiktoks_json_post_with_the_token_and_never_logs_it(
    tiktok: Host, standin: StandInSource, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    standin.script(
        "/open_api/",
        [(200, json.dumps({"code": 40100, "message": f"rate limited: {TOKEN}"}))],
        default=(200, '{"code": 0, "message": "OK", "data": {}}'),
    )
    subid = tiktok.click("tt", headers={"User-Agent": "Mozilla/5.0 (test)"}, ttclid="E.C.P.xyz")
    tiktok.convert(subid=subid, status="sale", payout="4.20", currency="USD", tid="T-1")
    tiktok.tracker.s2s.drain(timeout=5)

    first, second = standin.requests
    assert (second.method, second.target) == ("POST", "/open_api/v1.3/event/track/")
    assert second.headers["access-token"] == TOKEN and second.headers["content-type"] == "application/json"
    body = second.json()
    assert body["event_source_id"] == "C0PIX"
    (event,) = body["data"]
    assert (event["event"], event["event_id"]) == ("CompletePayment", "T-1")
    assert event["user"]["ttclid"] == "E.C.P.xyz" and event["user"]["user_agent"] == "Mozilla/5.0 (test)"
    assert event["properties"] == {"value": 4.2, "currency": "USD"}
    assert first.body == second.body  # the retry sends the same event: TikTok counts it once

    attempts = tiktok.sent(subid)
    assert [(a["attempt"], a["outcome"], a["method"]) for a in attempts] == [
        (1, "retrying", "POST"),
        (2, "delivered", "POST"),
    ]
    assert attempts[0]["reason"].startswith("plugin 'json_events' judged the HTTP 200 answer")
    assert "[REDACTED]" in attempts[0]["response_body"]
    logs = CliRunner().invoke(sample_host_cli, ["logs", "--db", tiktok.database_url, "--json"])
    explain = tiktok.api.get(f"/api/explain/{subid}")
    assert logs.exit_code == 0 and subid in logs.output and explain.status_code == 200
    for text in (json.dumps(attempts), logs.output, explain.text, caplog.text):
        assert TOKEN not in text


def test_json_events_without_a_token_retries_naming_the_plugin_then_delivers(
    tiktok: Host, standin: StandInSource, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("S2S_TIKTOK_ACCESS_TOKEN")
    standin.set_default((200, '{"code": 0, "message": "OK"}'))
    subid = tiktok.click("tt", ttclid="E.C.P.1")
    tiktok.convert(subid=subid, status="lead")
    tiktok.tracker.s2s.drain(timeout=0.01)
    assert standin.requests == []
    (attempt,) = tiktok.sent(subid)
    assert attempt["outcome"] == "retrying"
    assert (
        "not sent: plugin 'json_events' failed in prepare_request: RuntimeError: S2S_TIKTOK_ACCESS_TOKEN is not set"
        in attempt["reason"]
    )
    monkeypatch.setenv("S2S_TIKTOK_ACCESS_TOKEN", TOKEN)  # the operator sets it; the delivery was kept
    tiktok.tracker.s2s.drain(timeout=5)
    (request,) = standin.requests
    assert request.json()["data"][0]["event"] == "SubmitForm"
    assert [a["outcome"] for a in tiktok.sent(subid)] == ["retrying", "delivered"]


def test_json_events_click_without_ttclid_is_skipped_with_the_reason(tiktok: Host, standin: StandInSource) -> None:
    subid = tiktok.click("tt")
    tiktok.convert(subid=subid, status="sale", payout="3")
    tiktok.tracker.s2s.drain(timeout=5)
    assert standin.requests == []
    (attempt,) = tiktok.sent(subid)
    assert attempt["outcome"] == "skipped" and "ttclid" in attempt["reason"]
