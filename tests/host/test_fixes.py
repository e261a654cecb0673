"""Where each cause is fixed: the one table of which page holds which setting (pure)."""

from __future__ import annotations

import pytest

from s2s_plugin.ops.explaintree import Fix
from s2s_plugin.resolution.causes import CAUSES
from sample_host.fixes import fix_link, setting_link


@pytest.mark.parametrize(
    ("setting", "whose", "href"),
    [
        ("postback_url", {"rule_id": "source:exo"}, "/sources/exo#rule-url"),
        ("statuses", {"rule_id": "postback:7", "campaign_id": "summer"}, "/postbacks/7/edit#rule-statuses"),
        ("payout", {"rule_id": "postback:7"}, "/postbacks/7/edit#rule-payout"),
        ("enabled", {"rule_id": "source:a b"}, "/sources/a%20b#rule-url"),
        ("campaign_link", {"rule_id": "source:exo", "campaign_id": "summer"}, "/campaigns/summer#campaign-link"),
        ("campaign_link", {"rule_id": "source:exo"}, "/sources/exo"),
        ("source_postback", {"source_id": "exo"}, "/sources/exo#rule-url"),
        ("network_postback", {"subid": "s1"}, "/received?subid=s1"),
        ("plugin", {}, "/handoffs"),
        ("host", {"rule_id": "source:exo"}, "/sent?source=exo"),
        ("host", {"rule_id": "postback:3", "campaign_id": "summer"}, "/sent?campaign=summer"),
    ],
)
def test_each_setting_links_to_the_page_that_changes_it(setting: str, whose: dict[str, str], href: str) -> None:
    link = setting_link(setting, **whose)
    assert link is not None and link.href == href and link.label


def test_settings_no_page_changes_have_no_link() -> None:
    assert fix_link(None) is None
    assert fix_link(Fix("Call on_click for every click.", "click")) is None
    assert setting_link("postback_url", rule_id="plugin-rule-9") is None  # a plugin's own rule
    assert setting_link("campaign_link") is None
    assert setting_link("delivery_settings", rule_id="source:exo") is None  # install() keywords, S2S_* variables
    assert setting_link("resend", rule_id="source:exo") is None


def test_every_rule_or_source_fix_in_the_cause_catalogue_has_a_page() -> None:
    for cause, info in CAUSES.items():
        if info.fix is not None and info.fix.scope in ("rule", "source"):
            assert setting_link(info.fix.setting, rule_id="postback:1", campaign_id="summer") is not None, cause
