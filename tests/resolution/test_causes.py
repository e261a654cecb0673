"""The cause-code catalogue: every code has its label and meaning, fits its column, and is in the
delivery docs' table with that label."""

from __future__ import annotations

import re

from s2s_plugin.resolution.causes import CAUSES, Cause, cause_of
from s2s_plugin.resolution.states import DeliveryState
from s2s_plugin.storage import tables as t
from tests.support.flow import ROOT


def test_every_code_has_a_label_a_meaning_and_fits_its_column():
    assert set(CAUSES) == set(Cause)
    width = t.deliveries.c.cause.type.length
    assert width == t.attempts.c.cause.type.length == t.events.c.cause.type.length
    for cause, info in CAUSES.items():
        assert re.fullmatch(r"[a-z][a-z0-9_]*", cause.value) and len(cause.value) <= width, cause
        assert info.label and info.meaning.endswith(".") and cause.label == info.label
        if info.fix is not None:
            assert info.fix.scope in ("rule", "source", "settings", "host", "plugin", "delivery")
            assert info.fix.setting and info.fix.advice.endswith(".")


def test_stored_codes_read_back_and_unknown_ones_are_none():
    assert cause_of("timeout") is Cause.TIMEOUT
    assert cause_of(None) is None
    assert cause_of("a_code_from_a_newer_version") is None


def test_delivery_docs_list_every_code_with_its_label():
    text = (ROOT / "docs" / "delivery.md").read_text(encoding="utf-8")
    rows = dict(re.findall(r"^\| `([a-z_0-9]+)` \| ([^|]+) \|", text, re.MULTILINE))
    assert {code: label.strip() for code, label in rows.items()} == {c.value: i.label for c, i in CAUSES.items()}


def test_delivery_states_are_their_stored_text():
    assert [state.value for state in DeliveryState] == ["due", "leased", "delivered", "failed", "skipped"]
    assert DeliveryState.DUE == "due" and f"{DeliveryState.FAILED}" == "failed"
    assert DeliveryState.LEASED.pending and not DeliveryState.SKIPPED.pending


def test_fixes_name_the_settings_explain_and_the_pages_link_to():
    from s2s_plugin.ops.explaintree import SETTINGS

    for cause, info in CAUSES.items():
        if info.fix is not None and info.fix.scope in ("rule", "source", "host", "plugin"):
            assert info.fix.setting in SETTINGS, cause
