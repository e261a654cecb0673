"""The ``sample-host`` command line, through click's CliRunner."""

from __future__ import annotations

import json
import re

import pytest
from click.testing import CliRunner, Result

from sample_host.cli import main
from sample_host.standin import StandInSource
from sample_host.tracker import Tracker

from .conftest import Broken


@pytest.fixture
def run(database_url: str, monkeypatch: pytest.MonkeyPatch):
    """``run(*args)`` runs ``sample-host`` against this test's database (via SAMPLE_HOST_DB)."""
    monkeypatch.setenv("SAMPLE_HOST_DB", database_url)
    monkeypatch.setenv("S2S_DISABLE_PLUGINS", "*")
    runner = CliRunner()

    def invoke(*args: str) -> Result:
        return runner.invoke(main, list(args), catch_exceptions=False)

    return invoke


def _ok(result: Result) -> str:
    assert result.exit_code == 0, (result.output, result.stderr)
    return result.stdout


def test_init_json_prints_the_secrets_once(run, database_url: str) -> None:
    first = json.loads(_ok(run("init", "--json")))
    assert {"api_token", "postback_key", "admin_password"} <= set(first)
    assert len(first["api_token"]) >= 32 and len(first["admin_password"]) >= 12
    assert first["postback_url"].startswith(f"http://127.0.0.1:8000/{first['postback_key']}/postback?subid=")
    again = json.loads(_ok(run("init", "--json")))
    assert again["api_token"] == first["api_token"] and again["postback_key"] == first["postback_key"]
    assert again["admin_password"] is None  # only its hash is stored
    from sample_host.credentials import check_admin_password
    from sample_host.db import make_engine

    assert check_admin_password(make_engine(database_url), first["admin_password"])


def test_db_option_wins_over_the_environment(run, tmp_path) -> None:
    other = f"sqlite:///{tmp_path / 'other.db'}"
    assert json.loads(_ok(run("--db", other, "init", "--json")))["database_url"] == other
    assert json.loads(_ok(run("init", "--db", other, "--json")))["admin_password"] is None


def test_sources_campaigns_and_postbacks_are_managed_from_the_cli(run) -> None:
    out = _ok(run("sources", "add", "exo", "--template", "exoclick", "--status", "sale", "--status", "rejected"))
    assert "source exo: GET https://s.magsrv.com/tag.php?" in out and "sale, rejected" in out
    _ok(run("sources", "add", "own", "--postback-url", "https://own.example/pb?c={external_id}"))
    listed = _ok(run("sources", "list"))
    assert re.search(r"^exo\s+exoclick\s+GET\s+sale,rejected\s+https://s\.magsrv\.com/", listed, re.M)
    assert "own" in listed

    out = _ok(run("campaigns", "add", "summer", "--source", "exo", "--offer-url", "https://offer.example/?s={subid}"))
    assert "/c/summer?external_id={conversions_tracking}" in out
    assert "summer" in _ok(run("campaigns", "list"))
    assert json.loads(_ok(run("campaigns", "list", "--json")))[0]["source_id"] == "exo"

    out = _ok(
        run(
            "postbacks",
            "add",
            "summer",
            "--url",
            "https://partner.example/pb?s={subid}",
            "--method",
            "post",
            "--status",
            "lead",
        )
    )
    assert "postback postback:1 on campaign summer: POST" in out
    rows = json.loads(_ok(run("postbacks", "list", "summer", "--json")))
    assert [(r["id"], r["method"], r["statuses"]) for r in rows] == [("postback:1", "POST", ["lead"])]
    _ok(run("postbacks", "remove", "postback:1"))
    assert json.loads(_ok(run("postbacks", "list", "--json"))) == []
    assert "exoclick" in _ok(run("sources", "templates"))


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (("campaigns", "add", "c", "--source", "ghost", "--offer-url", "https://o.example/"), "unknown source 'ghost'"),
        (("sources", "add", "x", "--template", "nope"), "unknown template 'nope'"),
        (("sources", "add", "x"), "--template or a --postback-url"),
        (("sources", "add", "x", "--postback-url", "https://x.example/", "--status", "won"), "won"),
        (("postbacks", "add", "ghost", "--url", "https://x.example/"), "unknown campaign 'ghost'"),
        (("postbacks", "remove", "postback:77"), "unknown postback"),
        (("explain", "nope"), "unknown subid 'nope'"),
    ],
)
def test_user_errors_are_one_line_with_exit_code_2(run, args: tuple, fragment: str) -> None:
    result = run(*args)
    assert result.exit_code == 2, result.output
    assert result.stderr.count("\n") == 1 and fragment in result.stderr
    assert "Traceback" not in result.output


def test_a_bad_database_url_is_a_user_error(run) -> None:
    result = run("--db", "nosuchdb://x", "logs")
    assert result.exit_code == 2
    assert "cannot open database" in result.stderr and result.stderr.count("\n") == 1


def test_logs_shows_the_sent_postbacks_log(run, database_url: str, standin: StandInSource) -> None:
    with Tracker(database_url, allow_private_targets=True, load_plugins=False) as tracker:
        tracker.add_source(
            "exo", template="exoclick", postback_url=f"{standin.url}/t?tag={{external_id}}&v={{revenue}}"
        )
        tracker.add_campaign("summer", source_id="exo", offer_url="https://offer.example/")
        delivered, _ = tracker.record_click("summer", {"external_id": "abc"})
        skipped, _ = tracker.record_click("summer", {})
        key = tracker.init().postback_key
        for click in (delivered, skipped):
            assert tracker.receive_postback(key, {"subid": click.subid, "payout": "7.5"}).http_status == 200
        tracker.s2s.drain(timeout=5)

    lines = [json.loads(line) for line in _ok(run("logs", "--json")).splitlines()]
    by_outcome = {r["outcome"]: r for r in lines}
    assert len(lines) == 2 and set(by_outcome) == {"delivered", "skipped"}
    assert by_outcome["delivered"]["subid"] == delivered.subid
    assert by_outcome["delivered"]["url"] == f"{standin.url}/t?tag=abc&v=7.5"
    assert by_outcome["skipped"]["subid"] == skipped.subid
    only = [json.loads(line) for line in _ok(run("logs", "--json", "--outcome", "skipped")).splitlines()]
    assert [r["subid"] for r in only] == [skipped.subid]
    assert len(_ok(run("logs", "--json", "--limit", "1")).splitlines()) == 1

    table = _ok(run("logs")).splitlines()
    assert table[0].split()[:6] == ["TIME", "SUBID", "RULE", "STATUS", "OUTCOME", "TRY"]
    assert any(delivered.subid in line and "delivered" in line and "tag=abc&v=7.5" in line for line in table)
    assert _ok(run("logs", "--subid", "nothing")) == "no postbacks sent yet\n"
    assert skipped.subid in _ok(run("explain", skipped.subid))
    assert "accepted" in _ok(run("received"))


def test_demo_prints_a_log_with_deliveries_a_retry_a_skip_and_a_failure() -> None:
    result = CliRunner().invoke(main, ["demo"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    out = result.stdout
    log = out.split("Sent postbacks log\n", 1)[1].split("\n\n", 1)[0].splitlines()
    rows = log[1:]

    def row(*needles: str) -> list[str]:
        return [line for line in rows if all(n in line for n in needles)]

    # Delivered postbacks carry the substituted click ids and payouts.
    assert row("source:exoclick", "delivered", "tag=exo-8f14e45f&value=2.5")
    assert row("source:trafficstars", "delivered", "clickid=ts-77d3b0&value=0.85")
    assert row("source:trafficstars", "rejected", "delivered")
    assert row("postback:1", "lead", "delivered", "banner=banner%20300x250")
    # The failing source: two 503s, then delivered on attempt 3.
    assert len(row("source:propellerads", "retrying", "503")) == 2
    (recovered,) = row("source:propellerads", "delivered")
    assert re.search(r"delivered\s+3\s+200", recovered) and "visitor_id=pa-2c9a1&payout=1.2" in recovered
    # The click without a click id: skipped, with the reason, and explained.
    (skipped,) = [line for line in row("source:exoclick", "skipped") if re.search(r"\bsale\s+skipped", line)]
    assert "{conversions_tracking}" in skipped and "campaign link" in skipped
    skipped_subid = skipped.split()[2]
    assert f"sample-host explain {skipped_subid}" in out
    explained = out.split(f"sample-host explain {skipped_subid}", 1)[1].splitlines()[1]
    assert "external_id" in explained and "{conversions_tracking}" in explained
    # The campaign postback with a placeholder never filled in: failed, and explain names the cause first.
    (failed,) = row("postback:2", "failed", "404")
    failed_subid = failed.split()[2]
    explained = out.split(f"sample-host explain {failed_subid}", 1)[1].splitlines()[1]
    assert "failed" in explained and "HTTP 404" in explained and "REPLACE is a placeholder" in explained
    assert "Traceback" not in out


def test_settings_command_shows_and_changes_the_inbound_settings(run) -> None:
    assert json.loads(_ok(run("settings", "--json"))) == {"postback_response": "OK", "postback_allowed_ips": []}
    out = _ok(
        run(
            "settings",
            "--postback-allow-ip",
            "203.0.113.0/24",
            "--postback-allow-ip",
            "198.51.100.7",
            "--postback-response",
            "accepted",
        )
    )
    assert "203.0.113.0/24, 198.51.100.7" in out and "accepted" in out
    assert json.loads(_ok(run("settings", "--json")))["postback_allowed_ips"] == ["203.0.113.0/24", "198.51.100.7"]
    assert "any address" in _ok(run("settings", "--postback-allow-any"))
    bad = run("settings", "--postback-allow-ip", "somewhere")
    assert bad.exit_code == 2 and "'somewhere' is not an IP address" in bad.stderr


def test_reset_password_prints_a_new_one_that_signs_in(run, database_url: str) -> None:
    first = json.loads(_ok(run("init", "--json")))["admin_password"]
    out = _ok(run("reset-password"))
    password = re.search(r"admin password: (\S+)", out).group(1)
    from sample_host.credentials import check_admin_password
    from sample_host.db import make_engine

    engine = make_engine(database_url)
    assert check_admin_password(engine, password) and not check_admin_password(engine, first)


def test_worker_hands_over_conversions_the_plugin_did_not_take(database_url: str, standin: StandInSource) -> None:
    """A conversion recorded while the plugin was failing is handed over and delivered by `worker`."""
    import os
    import signal
    import subprocess
    import sys
    from pathlib import Path

    with Tracker(database_url, allow_private_targets=True, load_plugins=False) as tracker:
        key = tracker.init().postback_key
        tracker.add_source("exo", postback_url=f"{standin.url}/pb?c={{external_id}}")
        tracker.add_campaign("summer", source_id="exo", offer_url="https://offer.example/")
        click, _ = tracker.record_click("summer", {"external_id": "late"})
        tracker.pm.register(Broken(), name="broken")
        assert tracker.receive_postback(key, {"subid": click.subid}).http_status == 200
        assert tracker.handoffs.waiting() == 1

    root = Path(__file__).resolve().parents[2]
    env = {**os.environ, "PYTHONPATH": str(root), "S2S_DISABLE_PLUGINS": "*"}
    worker = subprocess.Popen(
        [sys.executable, "-m", "sample_host.cli", "worker", "--db", database_url, "--allow-private-targets"],
        cwd=root,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        (request,) = standin.wait_for(1, timeout=20)
        assert request.raw_query == "c=late"
    finally:
        worker.send_signal(signal.SIGTERM)
        _, err = worker.communicate(timeout=20)
    assert worker.returncode == 0, err
    assert "handed 1 waiting conversion(s) to the postback plugin" in err
    with Tracker(database_url, load_plugins=False) as tracker:
        assert tracker.handoffs.waiting() == 0


def test_serve_counts_the_client_a_trusted_proxy_names(database_url: str) -> None:
    """``serve`` behind a reverse proxy on loopback: the sign-in throttle counts the client the proxy
    names in X-Forwarded-For, an IPv6 one by its /64."""
    import os
    import signal
    import subprocess
    import sys
    import time
    from pathlib import Path

    import httpx

    from tests.support.servers import free_port

    root = Path(__file__).resolve().parents[2]
    port = free_port()
    env = {**os.environ, "PYTHONPATH": str(root), "S2S_DISABLE_PLUGINS": "*"}
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "sample_host.cli",
            "serve",
            "--db",
            database_url,
            "--port",
            str(port),
            "--forwarded-allow-ips",
            "127.0.0.1",
        ],
        cwd=root,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10) as client:
            deadline = time.monotonic() + 20
            while True:
                try:
                    form = client.get("/login")
                    break
                except httpx.TransportError:
                    assert time.monotonic() < deadline and server.poll() is None, "serve did not start"
                    time.sleep(0.1)
            token = re.search(r'name="csrf_token" value="([^"]+)"', form.text).group(1)

            def guess(address: str) -> int:
                return client.post(
                    "/login", data={"csrf_token": token, "password": "guess"}, headers={"X-Forwarded-For": address}
                ).status_code

            assert [guess(f"2001:db8:7:8::{n:x}") for n in range(1, 12)] == [401] * 10 + [429]
            assert guess("2001:db8:7:9::1") == 401
    finally:
        server.send_signal(signal.SIGTERM)
        server.communicate(timeout=20)
