"""Rule ids are read in one place: ``RuleId.parse``."""

from __future__ import annotations

import pytest

from s2s_plugin.errors import ConfigError
from s2s_plugin.resolution.ruleid import RuleId


@pytest.mark.parametrize(
    ("text", "kind", "key"),
    [
        ("source:exo", "source", "exo"),
        ("source:a:b", "source", "a:b"),  # a source id may hold a colon
        ("postback:3", "postback", "3"),
        ("host:events", "other", "host:events"),  # a postback_rules hook's own id
        ("source:", "other", "source:"),
        ("plain", "other", "plain"),
    ],
)
def test_parse_and_text_round_trip(text, kind, key):
    rule = RuleId.parse(text)
    assert (rule.kind, rule.key) == (kind, key)
    assert str(rule) == text
    assert RuleId.parse(rule) is rule


def test_campaign_postback_ids_from_what_operators_type():
    assert RuleId.campaign_postback("7") == RuleId.campaign_postback("postback:7") == RuleId.of_postback(7)
    assert RuleId.campaign_postback(7).postback_pk == 7
    for bad in ("source:exo", "postback:x", "x", ""):
        with pytest.raises(ConfigError, match="not a campaign postback id"):
            RuleId.campaign_postback(bad)
    with pytest.raises(ConfigError):
        _ = RuleId.of_source("exo").postback_pk


def test_rules_from_the_store_carry_ids_in_the_text_form(make_s2s):
    _pm, s2s = make_s2s()
    assert s2s.add_source("exo", postback_url="https://s.example/pb?c={external_id}").id == "source:exo"
    rule = s2s.add_postback("summer", url="https://s.example/pb2?c={external_id}")
    assert RuleId.parse(rule.id) == RuleId.of_postback(1)
    assert s2s.update_postback("1", statuses=["lead"]).statuses == ("lead",)
    with pytest.raises(ConfigError, match="not a campaign postback id"):
        s2s.update_postback("source:exo", statuses=["lead"])
