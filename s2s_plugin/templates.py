"""The built-in template library: real traffic sources' postback formats as ``SourceTemplate``."""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Mapping
from importlib import resources
from urllib.parse import quote
from typing import TYPE_CHECKING, Any, Iterable, Optional

from hookspecs import SourceTemplate

from . import hookcalls
from .errors import ConfigError

if TYPE_CHECKING:  # pragma: no cover
    import pluggy


@functools.lru_cache(maxsize=1)
def builtin_templates() -> dict[str, SourceTemplate]:
    """The templates shipped with the plugin, by name."""
    raw = json.loads(resources.files(__package__).joinpath("data/templates.json").read_text("utf-8"))
    return {entry["name"]: _template(entry) for entry in raw}


def _template(entry: dict[str, Any]) -> SourceTemplate:
    known = {f for f in SourceTemplate.__dataclass_fields__}
    fields = {k: v for k, v in entry.items() if k in known}
    for name in ("statuses", "secrets", "placeholders"):
        if name in fields:
            fields[name] = tuple(fields[name])
    return SourceTemplate(**fields)


def build_library(extra: Iterable[Iterable[SourceTemplate]] = ()) -> dict[str, SourceTemplate]:
    """The built-in templates plus those from ``register_source_templates`` (which win on a name clash)."""
    library = dict(builtin_templates())
    for batch in extra:
        for template in batch or ():
            if not isinstance(template, SourceTemplate):
                raise ConfigError(f"register_source_templates returned {template!r}, not a SourceTemplate")
            library[template.name] = template
    return library


def source_templates(pm: "pluggy.PluginManager") -> tuple[dict[str, SourceTemplate], list[hookcalls.HookFailure]]:
    """The library with every plugin's ``register_source_templates``, and the plugins that failed.

    A failing plugin (an exception, or anything but a list of ``SourceTemplate``) is left out with
    its templates; the others are added. On a name clash the plugin pluggy calls first (the last
    registered, or a ``tryfirst`` one) wins, and any plugin wins over a built-in template.
    """
    collected = hookcalls.call_collect(
        pm.hook.register_source_templates, check=hookcalls.expect_list_of(SourceTemplate, "SourceTemplate")
    )
    # pluggy calls the last registered first; add in reverse so the first-called wins, as it would
    # with firstresult.
    return build_library(batch for _plugin, batch in reversed(collected.results)), collected.failures


def find_template(library: dict[str, SourceTemplate], name: Optional[str]) -> Optional[SourceTemplate]:
    """The template called ``name`` (case-insensitive), None for no name.

    :raises ConfigError: naming the known templates when ``name`` is not one of them.
    """
    if not name:
        return None
    template = library.get(name) or library.get(name.lower())
    if template is None:
        raise ConfigError(f"unknown template {name!r}; known: {', '.join(sorted(library))}")
    return template


#: What a campaign link carries when the source's click-id macro is not known: an obvious
#: placeholder, which the click-id checks also recognise if it is pasted unchanged.
UNKNOWN_SOURCE_MACRO = "{CLICK_ID_MACRO}"


def campaign_link(template: Optional[SourceTemplate], base_url: str, campaign_alias: str) -> str:
    """The campaign link to give the traffic source: ``https://HOST/c/summer?external_id={conversions_tracking}``.

    The source replaces its macro with its click id on every click. Without a template, the link
    carries ``external_id`` with ``UNKNOWN_SOURCE_MACRO`` for the operator to replace.
    """
    param = template.click_id_param if template else "external_id"
    macro = (template.source_macro if template else None) or UNKNOWN_SOURCE_MACRO
    # The macro stays literal: the source looks for it exactly as it wrote it.
    return f"{base_url.rstrip('/')}/c/{quote(campaign_alias, safe='')}?{param}={macro}"


def _placeholder_re(name: str) -> re.Pattern[str]:
    # A placeholder is a whole word of the URL: GOAL_ID, not the GOAL_ID inside MY_GOAL_ID_2.
    return re.compile(rf"(?<![A-Za-z0-9_\-]){re.escape(name)}(?![A-Za-z0-9_\-])")


def placeholders_left(url: str, names: Iterable[str]) -> list[str]:
    """The placeholders among ``names`` still present in ``url``, in the order given."""
    return [name for name in names if _placeholder_re(name).search(url)]


def fill_placeholders(url: str, template: SourceTemplate, values: Mapping[str, str]) -> str:
    """``url`` with the template's placeholders replaced by the operator's values (percent-encoded).

    :raises ConfigError: for a name that is not one of the template's placeholders, or an empty value.
    """
    for name, value in values.items():
        if name not in template.placeholders:
            known = ", ".join(template.placeholders) or "none"
            raise ConfigError(f"template {template.name} has no placeholder {name!r} (its placeholders: {known})")
        if not str(value).strip():
            raise ConfigError(f"placeholder {name} of template {template.name} needs a value")
        url = _placeholder_re(name).sub(lambda _m: quote(str(value).strip(), safe=""), url)
    return url


def all_placeholders(library: Mapping[str, SourceTemplate]) -> frozenset[str]:
    """Every placeholder word the library's templates use (for the linter's leftover check)."""
    return frozenset(name for template in library.values() for name in template.placeholders)
