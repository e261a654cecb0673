"""A source's campaign link: the click-id parameter and macro, and the source's "Parameters" table.

A traffic source substitutes its macros in the link it sends visitors to: its click id
(``{conversions_tracking}``) and whatever else it knows about the impression (zone, campaign,
creative, cost, keyword...). Keitaro calls the mapping of those macros to tracker parameters the
source's "Parameters" table; each click then carries them under the tracker's names
(``sub_id_1``, ``cost``, ``creative_id``...), where reports and postback macros find them.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, Optional
from urllib.parse import quote

from s2s_plugin.errors import ConfigError

if TYPE_CHECKING:  # pragma: no cover
    from hookspecs import PostbackRule, SourceTemplate


#: What a campaign link carries when the source's click-id macro is not known: an obvious
#: placeholder, which the click-id checks also recognise if it is pasted unchanged.
UNKNOWN_SOURCE_MACRO = "{CLICK_ID_MACRO}"
#: The tracker parameter that receives the source's click id unless a template or source says otherwise.
DEFAULT_CLICK_ID_PARAM = "external_id"

# A tracker parameter is a query parameter name a postback macro can name: {sub_id_1}, {cost}.
_PARAM_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,63}$")
# A macro is written into the link literally (the source looks for it exactly as it wrote it), so
# it must not break the query: no spaces, control characters or '&'. ('#' is allowed: Adsterra
# writes ##ZONE_ID##, replaced before the link is opened.)
_MACRO = re.compile(r"^[^\s&\x00-\x1f\x7f]{1,200}$")


@dataclasses.dataclass(frozen=True)
class LinkSettings:
    """What a source's campaign link carries: its click id and its other macros."""

    click_id_param: str = DEFAULT_CLICK_ID_PARAM
    source_macro: Optional[str] = None
    parameters: Mapping[str, str] = dataclasses.field(default_factory=dict)


def link_settings(template: Optional[SourceTemplate], rule: Optional[PostbackRule] = None) -> LinkSettings:
    """The campaign-link settings of a source: its own (``rule``) where set, else its template's.

    A source saved before it had settings of its own (None on the rule) uses its template's.
    """
    own_param = rule.click_id_param if rule is not None else None
    own_macro = rule.source_macro if rule is not None else None
    own_parameters = rule.parameters if rule is not None else None
    return LinkSettings(
        click_id_param=own_param or (template.click_id_param if template else None) or DEFAULT_CLICK_ID_PARAM,
        source_macro=own_macro or (template.source_macro if template else None),
        parameters=dict(own_parameters if own_parameters is not None else (template.parameters if template else {})),
    )


def campaign_link(settings: LinkSettings, base_url: str, campaign_alias: str) -> str:
    """``https://HOST/c/summer?external_id={conversions_tracking}&sub_id_1={zoneid}&cost={cost}``.

    The click id comes first; without a known macro it is ``UNKNOWN_SOURCE_MACRO``, for the
    operator to replace. Macros stay literal: the source replaces them exactly as written.
    """
    pairs = [(settings.click_id_param, settings.source_macro or UNKNOWN_SOURCE_MACRO)]
    pairs += [(name, macro) for name, macro in settings.parameters.items() if name != settings.click_id_param]
    query = "&".join(f"{name}={macro}" for name, macro in pairs)
    return f"{base_url.rstrip('/')}/c/{quote(campaign_alias, safe='')}?{query}"


def check_param_name(name: str, what: str = "tracker parameter") -> str:
    """``name`` stripped, if it can be a tracker parameter (letters, digits, ``_``).

    :raises ConfigError: naming what is wrong.
    """
    name = (name or "").strip()
    if not _PARAM_NAME.match(name):
        raise ConfigError(
            f"{what} {name!r} must start with a letter and hold only letters, digits and '_' (at most 64)"
        )
    return name


def check_macro(macro: str, param: str) -> str:
    """``macro`` stripped, if it can stand in a campaign link as written.

    :raises ConfigError: for an empty macro, or one with spaces or '&'.
    """
    macro = (macro or "").strip()
    if not _MACRO.match(macro):
        raise ConfigError(
            f"the macro for {param} must be the source's macro as it writes it (e.g. {{zoneid}}), "
            f"without spaces or '&': got {macro!r}"
        )
    return macro


def check_parameters(parameters: Mapping[str, str], click_id_param: str) -> dict[str, str]:
    """A source's parameter table, checked: tracker parameter → source macro, in order.

    :raises ConfigError: for a bad name or macro, or a row for the click-id parameter (which has
        its own setting).
    """
    checked: dict[str, str] = {}
    for name, macro in parameters.items():
        name = check_param_name(name)
        if name == click_id_param:
            raise ConfigError(f"{name} receives the click id: set it as the source's click-id parameter and macro")
        checked[name] = check_macro(macro, name)
    return checked
