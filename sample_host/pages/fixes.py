"""Where a cause is fixed: the page (and the place on it) of the setting that makes a postback go.

``explain`` says what to change as a ``Fix`` (a setting and whose it is); the Sent postbacks log
knows a cause per entry. Both become a link here, so each cause leads to the one page that fixes it.
"""

from __future__ import annotations

import dataclasses
from typing import Optional
from urllib.parse import quote

from s2s_plugin.ops.explaintree import Fix
from s2s_plugin.resolution.ruleid import RuleId

from .render import query


@dataclasses.dataclass(frozen=True)
class FixLink:
    """A link to the page that fixes a cause: ``href`` and the words of its button."""

    href: str
    label: str


#: The place on a postback's edit form (source page or campaign postback page) of each setting.
_ANCHORS = {"postback_url": "rule-url", "statuses": "rule-statuses", "payout": "rule-payout", "enabled": "rule-url"}


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


def fix_link(fix: Optional[Fix], subid: Optional[str] = None) -> Optional[FixLink]:
    """The link for ``fix`` (None when there is nothing to open: a click the host never reported).

    :param subid: the click, for fixes found in its own logs (what the network sent).
    """
    if fix is None:
        return None
    setting = fix.setting
    if setting == "campaign_link" and fix.campaign_id:
        return FixLink(
            f"/campaigns/{quote(fix.campaign_id, safe='')}#campaign-link", f"Open campaign {fix.campaign_id}'s link"
        )
    if setting in _ANCHORS:
        return _rule_page(fix.rule_id, _ANCHORS[setting], fix.campaign_id)
    if setting == "source_postback":
        if fix.source_id:
            return FixLink(
                f"/sources/{quote(fix.source_id, safe='')}#rule-url", f"Set source {fix.source_id}'s postback"
            )
        return FixLink("/sources", "Open the sources")
    if setting == "network_postback":
        return FixLink(query("/received", subid=subid), "Open the Received postbacks log")
    if setting == "plugin":
        return FixLink("/handoffs", "Open the waiting conversions")
    if setting == "host":
        if fix.source_id:
            return FixLink(query("/sent", source=fix.source_id), f"See source {fix.source_id}'s postbacks")
        return FixLink(query("/sent", campaign=fix.campaign_id), f"See campaign {fix.campaign_id}'s postbacks")
    return None
