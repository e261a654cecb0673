"""Every postback setting (method, body and content type, payout mode, amount and minimum,
placeholders, secrets, redirects) and a source's campaign link (click-id parameter and macro,
parameter table) set from the CLI and the JSON API, each checked on the request the stand-in
source receives through the real app."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner, Result

from sample_host.cli import main
from sample_host.standin import StandInSource
from sample_host.tracker import Tracker

from .conftest import Host


@pytest.fixture
def run(database_url: str, monkeypatch: pytest.MonkeyPatch):
    """``run(*args)`` runs ``sample-host`` against this test's database."""
    monkeypatch.setenv("SAMPLE_HOST_DB", database_url)
    monkeypatch.setenv("S2S_DISABLE_PLUGINS", "*")

    def invoke(*args: str) -> Result:
        return CliRunner().invoke(main, list(args), catch_exceptions=False)

    return invoke


def _ok(result: Result) -> str:
    assert result.exit_code == 0, (result.output, result.stderr)
    return result.stdout


def test_sources_add_from_a_template_prints_the_campaign_link(run) -> None:
    out = _ok(
        run(
            "sources",
            "add",
            "roll",
            "--template",
            "rollerads",
            "--placeholder",
            "ACCOUNT_NUMBER=77",
            "--placeholder",
            "TRACKING_KEY=k 1",
            "--base-url",
            "https://trk.example",
        )
    )
    assert "source roll: GET https://trk.roller.ad/conversion/aid/77/k%201?click_id={external_id}" in out
    assert (
        "campaign link: https://trk.example/c/CAMPAIGN?external_id={clickid}&ad_campaign_id={campaignid}"
        "&creative_id={creativeid}&source={accid}&cost={cost}&sub_id_1={zoneid}"
    ) in out
    _ok(run("campaigns", "add", "summer", "--source", "roll", "--offer-url", "https://offer.example/"))
    out = _ok(run("sources", "edit", "roll", "--base-url", "https://trk.example", "--param", "sub_id_1={zoneid}"))
    assert "campaign link for summer: https://trk.example/c/summer?external_id={clickid}&sub_id_1={zoneid}\n" in out


def test_every_setting_from_the_cli_reaches_the_wire(
    run, database_url: str, standin: StandInSource, serve_asgi
) -> None:
    _ok(
        run(
            "sources",
            "add",
            "own",
            "--postback-url",
            f"{standin.url}/pb?t=TOKEN_VALUE",
            "--method",
            "post",
            "--body",
            '{"click": "{external_id}", "zone": "{sub_id_1}", "p": "{revenue}"}',
            "--content-type",
            "application/vnd.own+json",
            "--payout-mode",
            "percent",
            "--amount",
            "50",
            "--min-payout",
            "1",
            "--secret",
            "t",
            "--follow-redirects",
            "--status",
            "sale",
            "--click-id-param",
            "clickid",
            "--source-macro",
            "[CLICK]",
            "--param",
            "sub_id_1=[ZONE]",
        )
    )
    rule = json.loads(_ok(run("sources", "list", "--json")))[0]
    assert {
        k: rule[k]
        for k in (
            "method",
            "payout_mode",
            "payout_value",
            "min_payout",
            "content_type",
            "secrets",
            "follow_redirects",
            "click_id_param",
            "source_macro",
            "parameters",
        )
    } == {
        "method": "POST",
        "payout_mode": "percent",
        "payout_value": "50",
        "min_payout": "1",
        "content_type": "application/vnd.own+json",
        "secrets": ["t"],
        "follow_redirects": True,
        "click_id_param": "clickid",
        "source_macro": "[CLICK]",
        "parameters": {"sub_id_1": "[ZONE]"},
    }
    out = _ok(run("campaigns", "add", "summer", "--source", "own", "--offer-url", "https://offer.example/"))
    assert "/c/summer?clickid=[CLICK]&sub_id_1=[ZONE]" in out

    with Tracker(database_url, allow_private_targets=True, retry_schedule=[0], load_plugins=False) as tracker:
        from sample_host.app import create_app

        base = serve_asgi(create_app(tracker, handoff_interval=3600))
        creds = tracker.init()
        import httpx

        with httpx.Client(base_url=base) as client:
            cheap = client.get("/c/summer", params={"clickid": "CK1", "sub_id_1": "z7"}).headers["x-subid"]
            paid = client.get("/c/summer", params={"clickid": "CK2", "sub_id_1": "z8"}).headers["x-subid"]
            for subid, payout in ((cheap, "1.5"), (paid, "4")):  # 50 %: 0.75 is below the minimum, 2 is not
                assert (
                    client.get(
                        f"/{creds.postback_key}/postback", params={"subid": subid, "status": "sale", "payout": payout}
                    ).status_code
                    == 200
                )
        tracker.s2s.drain(timeout=5)
        (request,) = standin.requests
        assert (request.method, request.target) == ("POST", "/pb?t=TOKEN_VALUE")
        assert request.headers["content-type"] == "application/vnd.own+json"
        assert json.loads(request.body) == {"click": "CK2", "zone": "z8", "p": "2"}
        logged = tracker.sent_postbacks()
        skipped = [e for e in logged if e["outcome"] == "skipped"]
        assert len(skipped) == 1 and "below" in skipped[0]["reason"]
        assert all("TOKEN_VALUE" not in e["url"] for e in logged)  # the secret is masked in the log

    # edit changes what it is given and keeps the rest.
    _ok(
        run(
            "sources",
            "edit",
            "own",
            "--method",
            "get",
            "--body",
            "",
            "--content-type",
            "",
            "--payout-mode",
            "real",
            "--no-follow-redirects",
            "--no-params",
        )
    )
    rule = json.loads(_ok(run("sources", "list", "--json")))[0]
    assert (
        rule["method"],
        rule["body"],
        rule["content_type"],
        rule["payout_mode"],
        rule["follow_redirects"],
        rule["parameters"],
        rule["min_payout"],
        rule["secrets"],
        rule["click_id_param"],
    ) == ("GET", None, "", "real", False, {}, "1", ["t"], "clickid")


def test_postbacks_add_and_edit_take_every_setting(run) -> None:
    _ok(run("sources", "add", "exo", "--template", "exoclick"))
    _ok(run("campaigns", "add", "summer", "--source", "exo", "--offer-url", "https://offer.example/"))
    out = _ok(
        run(
            "postbacks",
            "add",
            "summer",
            "--url",
            "https://p.example/pb",
            "--method",
            "POST",
            "--body",
            "c={external_id}&p={revenue}",
            "--content-type",
            "application/x-www-form-urlencoded",
            "--payout-mode",
            "fixed",
            "--amount",
            "3",
            "--min-payout",
            "0.5",
            "--secret",
            "key",
            "--follow-redirects",
            "--status",
            "sale",
        )
    )
    assert "postback postback:1 on campaign summer: POST https://p.example/pb (statuses: sale)" in out
    assert "  payout: fixed 3, minimum 0.5\n  body: c={external_id}&p={revenue}\n" in out
    out = _ok(
        run(
            "postbacks",
            "edit",
            "postback:1",
            "--amount",
            "4",
            "--status",
            "lead",
            "--status",
            "sale",
            "--no-follow-redirects",
        )
    )
    (rule,) = json.loads(_ok(run("postbacks", "list", "--json")))
    assert (
        rule["payout_mode"],
        rule["payout_value"],
        rule["min_payout"],
        rule["statuses"],
        rule["body"],
        rule["content_type"],
        rule["secrets"],
        rule["follow_redirects"],
    ) == (
        "fixed",
        "4",
        "0.5",
        ["lead", "sale"],
        "c={external_id}&p={revenue}",
        "application/x-www-form-urlencoded",
        ["key"],
        False,
    )


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (("sources", "add", "x", "--postback-url", "https://x.example/", "--param", "zone"), "NAME=MACRO"),
        (("sources", "add", "x", "--postback-url", "https://x.example/", "--param", "sub id={z}"), "'sub id'"),
        (("sources", "add", "x", "--postback-url", "https://x.example/", "--param", "s={z z}"), "without spaces"),
        (("sources", "add", "x", "--postback-url", "https://x.example/", "--body", "a=1"), "only with method POST"),
        (("sources", "add", "x", "--postback-url", "https://x.example/", "--content-type", "json"), "content type"),
        (("sources", "add", "x", "--postback-url", "https://x.example/", "--payout-mode", "fixed"), "payout_value"),
        (("sources", "add", "x", "--postback-url", "https://x.example/", "--placeholder", "A=1"), "name the template"),
        (("sources", "add", "x", "--template", "exoclick", "--placeholder", "NOPE=1"), "no placeholder 'NOPE'"),
        (("sources", "edit", "ghost", "--method", "POST"), "unknown source 'ghost'"),
        (("postbacks", "edit", "postback:9", "--amount", "1"), "unknown postback"),
    ],
)
def test_bad_settings_are_one_line_errors(run, args: tuple, fragment: str) -> None:
    result = run(*args)
    assert result.exit_code == 2, result.output
    assert result.stderr.count("\n") == 1 and fragment in result.stderr, result.stderr


def test_the_api_sets_and_patches_every_setting(host: Host, standin: StandInSource) -> None:
    created = host.api.post(
        "/api/sources",
        json={
            "id": "ts",
            "template": "trafficstars",
            "postback_url": f"{standin.url}/ts?c={{external_id}}&k=KEY",
            "method": "POST",
            "body": '{"v": "{revenue}"}',
            "content_type": "application/json",
            "payout_mode": "fixed",
            "payout_value": 5,
            "min_payout": "0.1",
            "secrets": ["k"],
            "follow_redirects": True,
            "statuses": ["sale"],
            "parameters": {"sub_id_1": "{zone}", "cost": "{price}"},
        },
    )
    assert created.status_code == 201, created.text
    source = created.json()
    assert (
        source["method"],
        source["body"],
        source["content_type"],
        source["payout_mode"],
        source["payout_value"],
        source["min_payout"],
        source["secrets"],
        source["follow_redirects"],
        source["parameters"],
    ) == (
        "POST",
        '{"v": "{revenue}"}',
        "application/json",
        "fixed",
        "5",
        "0.1",
        ["key", "k"],
        True,
        {"sub_id_1": "{zone}", "cost": "{price}"},
    )
    assert (
        source["campaign_link"]
        == f"{host.base_url}/c/CAMPAIGN?external_id={{click_id}}&sub_id_1={{zone}}&cost={{price}}"
    )

    patched = host.api.patch(
        "/api/sources/ts",
        json={"payout_value": "6", "click_id_param": "clickid", "source_macro": "{cid}", "parameters": {}},
    )
    assert patched.status_code == 200, patched.text
    assert (patched.json()["payout_value"], patched.json()["method"], patched.json()["campaign_link"]) == (
        "6",
        "POST",
        f"{host.base_url}/c/CAMPAIGN?clickid={{cid}}",
    )
    assert host.api.get("/api/sources/ts").json() == {**patched.json(), "warnings": []}  # warnings come on saving

    host.api.post("/api/campaigns", json={"alias": "dating", "source_id": "ts", "offer_url": "https://o.example/"})
    added = host.api.post(
        "/api/campaigns/dating/postbacks",
        json={
            "url": f"{standin.url}/camp",
            "method": "POST",
            "body": "c={external_id}",
            "statuses": ["sale"],
            "payout_mode": "percent",
            "payout_value": "10",
            "follow_redirects": False,
        },
    )
    assert added.status_code == 201, added.text
    number = added.json()["id"].split(":")[1]
    edited = host.api.patch(f"/api/postbacks/{number}", json={"content_type": "text/plain", "min_payout": 1})
    assert edited.status_code == 200, edited.text
    assert (edited.json()["content_type"], edited.json()["min_payout"], edited.json()["body"]) == (
        "text/plain",
        "1",
        "c={external_id}",
    )
    assert host.api.get(f"/api/postbacks/{number}").json() == {**edited.json(), "warnings": []}

    subid = host.click("dating", clickid="C-9")
    assert host.postback(subid=subid, status="sale", payout="20").status_code == 200
    host.tracker.s2s.drain(timeout=5)
    by_path = {r.path: r for r in standin.requests}
    assert (by_path["/ts"].method, by_path["/ts"].raw_query, by_path["/ts"].body) == (
        "POST",
        "c=C-9&k=KEY",
        b'{"v": "6"}',
    )
    assert (by_path["/camp"].headers["content-type"], by_path["/camp"].body) == ("text/plain", b"c=C-9")
    assert all("KEY" not in e["url"] for e in host.sent())


@pytest.mark.parametrize(
    ("method", "path", "payload", "status", "fragment"),
    [
        ("patch", "/api/sources/ghost", {"method": "POST"}, 404, "unknown source 'ghost'"),
        ("patch", "/api/sources/ts", {"follow_redirects": "yes"}, 400, "true or false"),
        ("patch", "/api/sources/ts", {"parameters": ["sub_id_1"]}, 400, "object of strings"),
        ("patch", "/api/sources/ts", {"parameters": {"external_id": "{x}"}}, 400, "receives the click id"),
        ("patch", "/api/sources/ts", {"body": "x=1"}, 400, "only with method POST"),
        ("patch", "/api/postbacks/99", {"method": "POST"}, 404, "unknown postback"),
        (
            "post",
            "/api/sources",
            {"id": "y", "postback_url": "https://y.example/", "placeholders": {"A": 1}},
            400,
            "object of strings",
        ),
    ],
)
def test_api_setting_errors_are_one_line_json(
    host: Host, method: str, path: str, payload: dict, status: int, fragment: str
) -> None:
    host.tracker.add_source("ts", template="trafficstars")
    response = getattr(host.api, method)(path, json=payload)
    assert response.status_code == status, response.text
    assert fragment in response.json()["error"]
