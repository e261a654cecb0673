"""Where a cause is fixed: the page (and the place on it) of the setting that makes a postback go.

``explain`` says what to change as a ``Fix`` (a setting and whose it is); the Sent postbacks log
and the dashboard know a cause code per entry, whose catalogue entry names its setting. Both
become a link here, the one place that knows which page holds which setting, so each cause leads
to the page that fixes it.
"""

from __future__ import annotations

import dataclasses
from typing import Optional
from urllib.parse import quote, urlencode

from s2s_plugin.ops.explaintree import Fix
from s2s_plugin.resolution.ruleid import RuleId


@dataclasses.dataclass(frozen=True)
class FixLink:
    """A link to the page that fixes a cause: ``href`` and the words of its button."""

    href: str
    label: str


#: The place on a postback's edit form (source page or campaign postback page) of each setting.
_ANCHORS = {"postback_url": "rule-url", "statuses": "rule-statuses", "payout": "rule-payout", "enabled": "rule-url"}


def _query(base: str, **params: Optional[str]) -> str:
    kept = {key: value for key, value in params.items() if value}
    return f"{base}?{urlencode(kept)}" if kept else base


def _rule_page(rule_id: Optional[str], anchor: str, campaign_id: Optional[str] = None) -> Optional[FixLink]:
    if not rule_id:
        return None
    try:
        parsed = RuleId.parse(rule_id)
    except ValueError:
        return None
    if parsed.kind == "source":
        return FixLink(f"/sources/{quote(parsed.key, safe='')}#{anchor}", f"Edit source {parsed.key}'s postback")
    if parsed.kind != "postback":
        return None  # a plugin's own rule: its settings are the plugin's
    whose = f"campaign {campaign_id}'s postback #{parsed.key}" if campaign_id else f"postback {rule_id}"
    return FixLink(f"/postbacks/{quote(parsed.key, safe='')}/edit#{anchor}", f"Edit {whose}")


def setting_link(
    setting: str,
    *,
    rule_id: Optional[str] = None,
    campaign_id: Optional[str] = None,
    source_id: Optional[str] = None,
    subid: Optional[str] = None,
) -> Optional[FixLink]:
    """The page of ``setting`` (one of ``explaintree.SETTINGS``) for a rule, campaign or source;
    None when no page of the tracker changes it (a delivery setting, the host's own code).

    :param subid: the click, for a setting seen in its own logs (what the network sent).
    """
    return fix_link(Fix("", setting, rule_id=rule_id, source_id=source_id, campaign_id=campaign_id), subid)


def fix_link(fix: Optional[Fix], subid: Optional[str] = None) -> Optional[FixLink]:
    """The link for ``fix`` (None when there is nothing to open: a click the host never reported).

    :param subid: the click, for fixes found in its own logs (what the network sent).
    """
    if fix is None:
        return None
    setting = fix.setting
    source_id = fix.source_id
    if source_id is None and fix.rule_id and RuleId.parse(fix.rule_id).kind == "source":
        source_id = RuleId.parse(fix.rule_id).key
    if setting == "campaign_link":
        if fix.campaign_id:
            return FixLink(
                f"/campaigns/{quote(fix.campaign_id, safe='')}#campaign-link", f"Open campaign {fix.campaign_id}'s link"
            )
        if source_id:  # the source's page lists every campaign link given to it
            return FixLink(f"/sources/{quote(source_id, safe='')}", f"Open source {source_id}'s campaign links")
        return None
    if setting in _ANCHORS:
        return _rule_page(fix.rule_id, _ANCHORS[setting], fix.campaign_id)
    if setting == "source_postback":
        if source_id:
            return FixLink(f"/sources/{quote(source_id, safe='')}#rule-url", f"Set source {source_id}'s postback")
        return FixLink("/sources", "Open the sources")
    if setting == "network_postback":
        return FixLink(_query("/received", subid=subid), "Open the Received postbacks log")
    if setting == "plugin":
        return FixLink("/handoffs", "Open the waiting conversions")
    if setting == "host":
        if source_id:
            return FixLink(_query("/sent", source=source_id), f"See source {source_id}'s postbacks")
        return FixLink(_query("/sent", campaign=fix.campaign_id), f"See campaign {fix.campaign_id}'s postbacks")
    return None
