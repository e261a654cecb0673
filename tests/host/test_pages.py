"""The admin pages over HTTP (no browser): forms change what they say, bad input is shown with its
reason and a 4xx, logs filter and page, and ``/metrics`` reports what happened."""

from __future__ import annotations

import html
import re

import pytest

from sample_host.metrics import Histogram, Snapshot, render
from sample_host.standin import StandInSource

from .conftest import Admin, Host


def _text(response) -> str:
    """The page's text with tags removed and entities decoded, for assertions on what is shown."""
    return html.unescape(re.sub(r"<[^>]+>", " ", response.text))


def test_a_source_from_a_template_shows_the_exact_campaign_link(
    host: Host, admin: Admin, standin: StandInSource
) -> None:
    prefilled = admin.get("/sources", params={"template": "propellerads"})
    assert "https://ad.propellerads.com/conversion.php?" in prefilled.text  # the template's URL, to edit
    assert "${SUBID}" in _text(prefilled)

    created = admin.post(
        "/sources",
        {
            "id": "pa",
            "template": "propellerads",
            "method": "GET",
            "statuses": "sale",
            "postback_url": f"{standin.url}/conversion.php?visitor_id={{external_id}}",
            "payout_mode": "real",
        },
    )
    assert created.status_code == 303 and created.headers["location"] == "/sources/pa"
    assert "?external_id=${SUBID}" in _text(admin.get("/sources/pa"))  # before any campaign: the suffix

    admin.post("/campaigns", {"alias": "vpn", "source_id": "pa", "offer_url": "https://offer.example/?s={subid}"})
    expected = f"{host.base_url}/c/vpn?external_id=${{SUBID}}"
    assert expected == host.tracker.s2s.campaign_link("pa", base_url=host.base_url, campaign_alias="vpn")
    assert expected in _text(admin.get("/sources/pa"))
    assert expected in _text(admin.get("/campaigns/vpn"))
    assert expected in _text(admin.get("/campaigns"))


def test_the_template_linter_warnings_are_shown_but_do_not_block(host: Host, admin: Admin) -> None:
    saved = admin.post(
        "/sources",
        {
            "id": "exo",
            "template": "exoclick",
            "statuses": "sale",
            "payout_mode": "real",
            "postback_url": "https://s.magsrv.com/tag.php?goal=GOAL_ID&tag={externa_id}",
        },
    )
    assert saved.status_code == 303
    page = _text(admin.get(saved.headers["location"]))
    assert "Check source:exo:" in page and "GOAL_ID" in page and "did you mean {external_id}?" in page
    assert host.tracker.source("exo").url.endswith("tag={externa_id}")  # kept as typed: a warning, not a refusal


def test_source_form_errors_are_shown_with_a_4xx_and_keep_the_input(host: Host, admin: Admin) -> None:
    bad = admin.post(
        "/sources", {"id": "exo", "template": "exoclick", "postback_url": "ftp://nope", "statuses": "sale"}
    )
    assert bad.status_code == 400
    assert "'ftp://nope' is not an http:// or https:// URL" in _text(bad) and 'value="ftp://nope"' in bad.text
    none = admin.post("/sources", {"id": "exo", "template": "exoclick", "postback_url": "https://x.example/"})
    assert none.status_code == 400 and "choose at least one status" in _text(none)
    admin.post("/sources", {"id": "exo", "template": "exoclick", "statuses": "sale", "postback_url": ""})
    again = admin.post("/sources", {"id": "exo", "template": "exoclick", "statuses": "sale", "postback_url": ""})
    assert again.status_code == 409 and "exists already" in _text(again)
    assert [s.source_id for s in host.tracker.sources()] == ["exo"]


def test_a_source_is_edited_and_only_deleted_when_no_campaign_uses_it(
    host: Host, admin: Admin, exo_campaign: str
) -> None:
    saved = admin.post(
        "/sources/exo",
        {
            "postback_url": "https://exo.example/t?tag={external_id}&v={revenue}",
            "method": "GET",
            "statuses": ["sale", "rejected"],
            "payout_mode": "percent",
            "payout_value": "50",
            "min_payout": "0.1",
        },
    )
    assert saved.status_code == 303
    rule = host.tracker.source("exo")
    assert (
        rule.url,
        tuple(rule.statuses),
        rule.payout_mode,
        str(rule.payout_value),
        str(rule.min_payout),
        rule.template,
    ) == (
        "https://exo.example/t?tag={external_id}&v={revenue}",
        ("sale", "rejected"),
        "percent",
        "50",
        "0.1",
        "exoclick",
    )
    refused = admin.post("/sources/exo/delete")
    assert refused.status_code == 303
    assert "used by campaign(s) summer" in _text(admin.get("/sources/exo"))
    assert host.tracker.source("exo")


def test_campaign_postbacks_are_added_edited_and_deleted(host: Host, admin: Admin, exo_campaign: str) -> None:
    tab = admin.get("/campaigns/summer/postbacks")
    assert tab.status_code == 200 and "has no S2S postbacks" in _text(tab)
    added = admin.post(
        "/campaigns/summer/postbacks",
        {
            "url": "https://partner.example/pb?c={subid}&p={revenue}",
            "method": "POST",
            "statuses": ["lead", "sale"],
            "payout_mode": "fixed",
            "payout_value": "1.5",
            "min_payout": "",
        },
    )
    assert added.status_code == 303 and added.headers["location"] == "/campaigns/summer/postbacks"
    (rule,) = host.tracker.postbacks("summer")
    assert (rule.method, tuple(rule.statuses), rule.payout_mode, str(rule.payout_value)) == (
        "POST",
        ("lead", "sale"),
        "fixed",
        "1.5",
    )
    listed = _text(admin.get("/campaigns/summer/postbacks"))
    assert "https://partner.example/pb?c={subid}&p={revenue}" in listed and "lead, sale" in listed
    assert f"Postback {rule.id} added" in listed  # the flash message, once

    number = rule.id.split(":")[1]
    assert "partner.example" in admin.get(f"/postbacks/{number}/edit").text
    edited = admin.post(
        f"/postbacks/{number}/edit",
        {"url": "https://partner.example/v2?c={subid}", "method": "GET", "statuses": "rejected", "payout_mode": "real"},
    )
    assert edited.status_code == 303
    (rule,) = host.tracker.postbacks("summer")
    assert (rule.url, rule.method, tuple(rule.statuses), rule.payout_mode) == (
        "https://partner.example/v2?c={subid}",
        "GET",
        ("rejected",),
        "real",
    )

    bad = admin.post(
        f"/postbacks/{number}/edit", {"url": "https://p.example/", "statuses": "sale", "payout_mode": "fixed"}
    )
    assert bad.status_code == 400 and "payout mode fixed needs payout_value" in _text(bad)
    assert admin.post(f"/postbacks/{number}/delete").status_code == 303
    assert host.tracker.postbacks("summer") == []
    assert admin.get(f"/postbacks/{number}/edit").status_code == 404


def test_campaign_forms_validate(host: Host, admin: Admin, exo_campaign: str) -> None:
    bad = admin.post("/campaigns", {"alias": "bad alias!", "offer_url": "https://o.example/"})
    assert bad.status_code == 400 and "must be letters, digits" in _text(bad)
    taken = admin.post("/campaigns", {"alias": "summer", "offer_url": "https://o.example/"})
    assert taken.status_code == 409
    saved = admin.post(
        "/campaigns/summer", {"name": "Summer 2", "source_id": "exo", "offer_url": "https://o2.example/?c={subid}"}
    )
    assert saved.status_code == 303
    assert host.tracker.campaign("summer")["offer_url"] == "https://o2.example/?c={subid}"
    assert admin.get("/campaigns/ghost").status_code == 404


def test_the_sent_log_filters_pages_and_shows_an_attempts_detail(
    host: Host, admin: Admin, exo_campaign: str, standin: StandInSource
) -> None:
    standin.script("/tag.php", [(503, "busy right now")], default=(200, "OK"))
    host.tracker.add_campaign("winter", source_id="exo", offer_url="https://offer.example/")
    subids = [host.click("summer", external_id=f"c{n}") for n in range(5)] + [host.click("winter", external_id="w")]
    for subid in subids:
        host.postback(subid=subid, payout="2")
    host.tracker.s2s.drain(timeout=5)
    rows = host.sent()
    assert len(rows) == 7 and sum(r["outcome"] == "retrying" for r in rows) == 1

    first = admin.get("/sent", params={"outcome": "delivered"})
    assert first.status_code == 200
    assert _text(first).count("delivered") >= 6 and "retrying" not in re.sub(
        r"<select.*?</select>", "", first.text, flags=re.S
    )
    winter = _text(admin.get("/sent", params={"campaign": "winter"}))
    assert subids[-1] in winter and subids[0] not in winter
    assert subids[0] in _text(admin.get("/sent", params={"subid": subids[0]}))
    assert "No postbacks match" in _text(admin.get("/sent", params={"since": "2999-01-01T00:00"}))
    bad = admin.get("/sent", params={"until": "tomorrow"})
    assert bad.status_code == 400 and "is not an ISO 8601 time" in _text(bad)

    # Pages of 50: with a smaller page the cursors walk the whole log and back.
    import sample_host.pages.logs as logs_page

    logs_page.PER_PAGE, saved = 3, logs_page.PER_PAGE
    try:
        seen, cursor = [], None
        while True:
            page = admin.get("/sent", params={"before": cursor} if cursor else {})
            seen += [int(i) for i in re.findall(r'href="/sent/(\d+)">Details', page.text)]
            older = re.search(r'href="/sent\?before=(\d+)"', page.text)
            if not older:
                break
            cursor = older.group(1)
        assert seen == sorted((r["id"] for r in rows), reverse=True)
        newer = re.search(r'href="/sent\?after=(\d+)"', page.text)
        assert (
            newer
            and len(re.findall(r'href="/sent/(\d+)">Details', admin.get(f"/sent?after={newer.group(1)}").text)) == 3
        )
    finally:
        logs_page.PER_PAGE = saved

    retried = next(r for r in rows if r["outcome"] == "retrying")
    detail = _text(admin.get(f"/sent/{retried['id']}"))
    assert "the source answered HTTP 503" in detail and "busy right now" in detail
    assert f"GET {retried['url']}" in detail and "Next retry" in detail
    assert admin.get("/sent/99999").status_code == 404


def test_resend_from_the_page_sends_the_delivery_again(
    host: Host, admin: Admin, exo_campaign: str, standin: StandInSource
) -> None:
    subid = host.click("summer", external_id="r")
    host.postback(subid=subid)
    host.tracker.s2s.drain(timeout=5)
    (row,) = host.sent(subid=subid)
    answer = admin.post(f"/deliveries/{row['delivery_id']}/resend", {"next": f"/sent/{row['id']}"})
    assert answer.status_code == 303 and answer.headers["location"] == f"/sent/{row['id']}"
    assert f"Delivery #{row['delivery_id']} is due again" in _text(admin.get(answer.headers["location"]))
    host.tracker.s2s.drain(timeout=5)
    assert [r["attempt"] for r in host.sent(subid=subid)] == [1, 2]
    assert len(standin.wait_for(2)) == 2
    missing = admin.post("/deliveries/999/resend", {"next": "https://evil.example/"})
    assert missing.headers["location"] == "/dashboard"  # never off-site
    assert "unknown delivery 999" in _text(admin.get("/dashboard"))


def test_the_received_log_shows_accepted_and_rejected_with_reasons(host: Host, admin: Admin, exo_campaign: str) -> None:
    subid = host.click("summer", external_id="x")
    host.postback(subid=subid, status="sale", payout="1")
    host.postback(subid=subid, status="sale", payout="lots")
    host.client.get("/wrong/postback", params={"subid": subid})
    page = _text(admin.get("/received"))
    assert "accepted" in page and "sale recorded" in page
    assert "payout 'lots' is not a number" in page
    assert "wrong postback key" in page and "Refused before reading" in page
    only = _text(admin.get("/received", params={"outcome": "rejected"}))
    assert "sale recorded" not in only and "payout 'lots'" in only


def test_explain_page_walks_the_chain_and_offers_resend(host: Host, admin: Admin, exo_campaign: str) -> None:
    skipped = host.click("summer", external_id="{conversions_tracking}")
    host.postback(subid=skipped, payout="3")
    host.tracker.s2s.drain(timeout=5)
    page = _text(admin.get("/explain", params={"subid": skipped}))
    assert "{conversions_tracking}" in page and "campaign link" in page
    explanation = host.tracker.explain(skipped)
    assert page.count(explanation.headline) == 1  # the failing step is said once
    assert explanation.fix is not None and explanation.fix.action in page
    assert "not sent" in page and "Resend" not in page  # a skipped postback cannot be sent again
    unknown = admin.get("/explain", params={"subid": "nope"})
    assert unknown.status_code == 404 and "unknown subid 'nope'" in _text(unknown)


def test_test_postback_renders_the_rule_with_sample_values_and_sends_it(
    host: Host, admin: Admin, exo_campaign: str, standin: StandInSource
) -> None:
    form = admin.get("/rules/source:exo/test")
    assert form.status_code == 200 and "test-click-id" in form.text
    sent = admin.post(
        "/rules/source:exo/test", {"status": "sale", "payout": "4.20", "currency": "USD", "external_id": "probe-1"}
    )
    assert sent.status_code == 200
    (request,) = standin.wait_for(1)
    assert request.raw_query == "goal=g1&tag=probe-1&value=4.2"
    page = _text(sent)
    assert "delivered" in page and f"GET {standin.url}/tag.php?goal=g1&tag=probe-1&value=4.2" in page
    assert host.sent() == []  # not logged, not queued
    bad = admin.post("/rules/source:exo/test", {"status": "sale", "payout": "x"})
    assert bad.status_code == 400 and "payout 'x' is not a number" in _text(bad)
    assert admin.get("/rules/postback:99/test").status_code == 404


def test_settings_page_changes_the_inbound_answer_and_allow_list(host: Host, admin: Admin) -> None:
    saved = admin.post("/settings", {"response_text": "OK thanks", "allowed_ips": "127.0.0.1\n10.0.0.0/8"})
    assert saved.status_code == 303
    assert host.tracker.inbound_settings().allowed_text == ["127.0.0.1", "10.0.0.0/8"]
    assert "OK thanks" in admin.get("/settings").text
    bad = admin.post("/settings", {"response_text": "x", "allowed_ips": "everyone"})
    assert bad.status_code == 400 and "'everyone' is not an IP address" in _text(bad)


# --- metrics ---------------------------------------------------------------------------------


def test_metrics_need_the_token_and_report_the_logs_and_the_queue(
    host: Host, exo_campaign: str, standin: StandInSource
) -> None:
    assert host.client.get("/metrics").status_code == 401
    standin.script("/tag.php", [(503, "busy")], default=(200, "OK"))
    first, second = host.click("summer", external_id="a"), host.click("summer", external_id="")
    host.postback(subid=first, payout="1")
    host.postback(subid=second, payout="1")
    host.postback(subid=first, payout="x")
    host.client.get("/nope/postback")
    queued = host.api.get("/metrics").text
    assert "s2s_queue_depth 1" in queued and "s2s_due_now 1" in queued
    host.tracker.s2s.drain(timeout=5)
    response = host.api.get("/metrics")
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    samples = dict(line.rsplit(" ", 1) for line in response.text.splitlines() if not line.startswith("#"))
    assert samples['sample_host_sent_postbacks_total{outcome="delivered",source="exo"}'] == "1"
    assert samples['sample_host_sent_postbacks_total{outcome="retrying",source="exo"}'] == "1"
    assert samples['sample_host_sent_postbacks_total{outcome="skipped",source="exo"}'] == "1"
    assert samples['sample_host_received_postbacks_total{outcome="accepted"}'] == "2"
    assert samples['sample_host_received_postbacks_total{outcome="rejected"}'] == "2"
    assert samples['sample_host_refused_postbacks_total{kind="wrong_key"}'] == "1"
    assert samples["s2s_queue_depth"] == "0" and samples["s2s_oldest_due_delivery_age_seconds"] == "0"
    assert samples['s2s_deliveries{state="delivered"}'] == "1"
    assert samples['sample_host_postback_attempt_duration_seconds_bucket{le="+Inf"}'] == "2"
    assert samples["sample_host_postback_attempt_duration_seconds_count"] == "2"
    assert samples["sample_host_conversions_waiting_for_plugin"] == "0"
    # Why, by cause code: from the Sent log and from the plugin's outbox.
    by_cause = "sample_host_sent_postbacks_by_cause_total"
    assert samples[f'{by_cause}{{outcome="retrying",cause="http_server_error"}}'] == "1"
    assert samples[f'{by_cause}{{outcome="skipped",cause="no_click_id"}}'] == "1"
    assert samples[f'{by_cause}{{outcome="delivered",cause="accepted"}}'] == "1"
    assert samples['s2s_deliveries_by_cause{state="skipped",cause="no_click_id"}'] == "1"
    assert samples['s2s_deliveries_by_cause{state="delivered",cause="accepted"}'] == "1"


def test_the_sent_log_filters_by_cause_code(
    host: Host, admin: Admin, exo_campaign: str, standin: StandInSource
) -> None:
    standin.script("/tag.php", [(503, "busy")], default=(200, "OK"))
    first, second = host.click("summer", external_id="a"), host.click("summer", external_id="")
    host.postback(subid=first, payout="1")
    host.postback(subid=second, payout="1")
    host.tracker.s2s.drain(timeout=5)
    (skipped,) = host.sent(cause="no_click_id")
    assert (skipped["subid"], skipped["outcome"], skipped["cause"]) == (second, "skipped", "no_click_id")
    assert [e["outcome"] for e in host.sent(cause="http_server_error")] == ["retrying"]
    assert host.sent(cause="timeout") == []
    bad = host.api.get("/api/sent-postbacks", params={"cause": "because"})
    assert bad.status_code == 400 and "'because' is not a cause code" in bad.text and "\n" not in bad.text
    # The page: a cause select (by label), the same filter, the same one-line 400.
    page = admin.get("/sent", params={"cause": "no_click_id"})
    assert page.status_code == 200 and '<option value="no_click_id" selected>No click id</option>' in page.text
    assert second in page.text and first not in page.text
    assert admin.get("/sent", params={"cause": "because"}).status_code == 400


def test_metrics_text_format_escapes_labels_and_accumulates_buckets() -> None:
    snapshot = Snapshot(
        sent={("failed", 'we"ird\\src'): 2},
        received={},
        deliveries={"due": 3},
        queue_depth=3,
        due_now=1,
        oldest_due_age=12.5,
        latency=Histogram(buckets=[0, 1, 1, 2, 2, 2, 2, 2, 2, 3, 3], count=3, total=40.25),
        waiting_handoffs=0,
        refused={},
        throttled=0,
    )
    text = render(snapshot)
    assert 'sample_host_sent_postbacks_total{outcome="failed",source="we\\"ird\\\\src"} 2' in text
    assert "s2s_oldest_due_delivery_age_seconds 12.5" in text
    assert 'sample_host_postback_attempt_duration_seconds_bucket{le="0.01"} 0' in text
    assert 'sample_host_postback_attempt_duration_seconds_bucket{le="30"} 3' in text
    assert "sample_host_postback_attempt_duration_seconds_sum 40.25" in text
    types = re.findall(r"^# TYPE (\S+) (\S+)$", text, flags=re.M)
    assert ("sample_host_postback_attempt_duration_seconds", "histogram") in types
    assert all(
        line.startswith("#") or re.match(r"^[a-z_0-9]+(\{.*\})? [0-9.e+-]+$", line) for line in text.splitlines()
    )


@pytest.mark.parametrize("path", ["/sent?before=abc", "/received?after=-1"])
def test_bad_cursors_are_a_400_not_a_500(admin: Admin, path: str) -> None:
    response = admin.get(path)
    assert response.status_code == 400 and "must be a whole number" in _text(response)


def test_every_source_setting_and_the_parameter_table_from_the_pages(
    host: Host, admin: Admin, standin: StandInSource
) -> None:
    prefilled = admin.get("/sources", params={"template": "clickadu"})
    # The template's parameter table and its placeholders are on the form, ready to edit.
    assert (
        'name="param_name" value="source"' in prefilled.text and 'name="param_macro" value="{zoneid}"' in prefilled.text
    )
    assert 'name="placeholder_HASH"' in prefilled.text and 'name="placeholder_AID"' in prefilled.text
    created = admin.post(
        "/sources",
        {
            "id": "cl",
            "template": "clickadu",
            "statuses": "sale",
            "method": "POST",
            "postback_url": f"{standin.url}/conversion/HASH/?visitor_id={{external_id}}&aid=AID",
            "placeholder_HASH": "h1",
            "placeholder_AID": "a 2",
            "body": '{"p": "{revenue}"}',
            "content_type": "application/json",
            "payout_mode": "fixed",
            "payout_value": "3",
            "min_payout": "1",
            "secrets": "aid",
            "follow_redirects": "1",
            "click_id_param": "external_id",
            "source_macro": "${SUBID}",
            "param_name": ["sub_id_1", "cost", ""],
            "param_macro": ["{zoneid}", "{cost}", ""],
        },
    )
    assert created.status_code == 303, _text(created)
    rule = host.tracker.source("cl")
    assert rule.url == f"{standin.url}/conversion/h1/?visitor_id={{external_id}}&aid=a%202"
    assert (
        rule.method,
        rule.body,
        dict(rule.headers),
        rule.payout_mode,
        str(rule.payout_value),
        str(rule.min_payout),
        rule.follow_redirects,
        rule.parameters,
    ) == (
        "POST",
        '{"p": "{revenue}"}',
        {"Content-Type": "application/json"},
        "fixed",
        "3",
        "1",
        True,
        {"sub_id_1": "{zoneid}", "cost": "{cost}"},
    )
    assert "aid" in rule.secrets
    shown = admin.get("/sources/cl")
    assert "?external_id=${SUBID}&sub_id_1={zoneid}&cost={cost}" in _text(shown)
    assert 'name="follow_redirects" value="1" checked' in shown.text

    # Saving the page changes the table and the click-id settings; an emptied row goes.
    page_form = {
        "postback_url": rule.url,
        "method": "GET",
        "statuses": "sale",
        "payout_mode": "real",
        "body": "",
        "content_type": "",
        "click_id_param": "clickid",
        "source_macro": "[CLICK]",
    }
    saved = admin.post(
        "/sources/cl", {**page_form, "param_name": ["sub_id_1", "", "keyword"], "param_macro": ["", "", "{kw}"]}
    )
    assert saved.status_code == 400 and "the macro for sub_id_1" in _text(saved)  # half a row is named
    assert 'value="keyword"' in saved.text  # what was typed stays on the form
    saved = admin.post("/sources/cl", {**page_form, "param_name": ["", "keyword"], "param_macro": ["", "{kw}"]})
    assert saved.status_code == 303, _text(saved)
    rule = host.tracker.source("cl")
    assert (
        rule.method,
        rule.body,
        dict(rule.headers),
        rule.follow_redirects,
        rule.min_payout,
        rule.click_id_param,
        rule.source_macro,
        rule.parameters,
    ) == ("GET", None, {}, False, None, "clickid", "[CLICK]", {"keyword": "{kw}"})
    assert "?clickid=[CLICK]&keyword={kw}" in _text(admin.get("/sources/cl"))
    bad = admin.post(
        "/sources/cl",
        {"postback_url": rule.url, "method": "GET", "statuses": "sale", "param_name": "x y", "param_macro": "{z}"},
    )
    assert bad.status_code == 400 and "'x y' must start with a letter" in _text(bad)


def test_campaign_postbacks_take_body_content_type_and_redirects_from_the_pages(
    host: Host, admin: Admin, exo_campaign: str
) -> None:
    added = admin.post(
        "/campaigns/summer/postbacks",
        {
            "url": "https://partner.example/pb",
            "method": "POST",
            "statuses": "sale",
            "payout_mode": "percent",
            "payout_value": "50",
            "min_payout": "0.5",
            "body": "c={external_id}&p={revenue}",
            "content_type": "application/x-www-form-urlencoded",
            "follow_redirects": "1",
            "secrets": "key",
        },
    )
    assert added.status_code == 303, _text(added)
    (rule,) = host.tracker.postbacks("summer")
    assert (rule.body, dict(rule.headers), rule.follow_redirects, rule.payout_mode, str(rule.payout_value)) == (
        "c={external_id}&p={revenue}",
        {"Content-Type": "application/x-www-form-urlencoded"},
        True,
        "percent",
        "50",
    )
    number = rule.id.split(":")[1]
    form = admin.get(f"/postbacks/{number}/edit")
    assert (
        "c={external_id}&amp;p={revenue}</textarea>" in form.text
        and 'value="application/x-www-form-urlencoded"' in form.text
    )
    refused = admin.post(
        f"/postbacks/{number}/edit",
        {"url": rule.url, "method": "GET", "statuses": "sale", "payout_mode": "real", "body": "c=1"},
    )
    assert refused.status_code == 400 and "only with method POST" in _text(refused)
    saved = admin.post(
        f"/postbacks/{number}/edit",
        {
            "url": rule.url,
            "method": "POST",
            "statuses": "sale",
            "payout_mode": "real",
            "body": '{"c": "{external_id}"}',
            "content_type": "application/json",
        },
    )
    assert saved.status_code == 303
    (rule,) = host.tracker.postbacks("summer")
    assert (rule.body, dict(rule.headers), rule.follow_redirects, rule.min_payout) == (
        '{"c": "{external_id}"}',
        {"Content-Type": "application/json"},
        False,
        None,
    )
