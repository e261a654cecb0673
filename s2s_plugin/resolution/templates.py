"""The built-in template library: real traffic sources' postback formats as ``SourceTemplate``."""

from __future__ import annotations

import dataclasses
import functools
import json
import re
from collections.abc import Iterable, Mapping
from importlib import resources
from typing import TYPE_CHECKING, Any, Optional
from urllib.parse import quote

from hookspecs import PostbackRule, SourceTemplate
from s2s_plugin.errors import ConfigError
from s2s_plugin.hooks import hookcalls
from s2s_plugin.resolution import links
from s2s_plugin.resolution.links import UNKNOWN_SOURCE_MACRO  # noqa: F401  (public here since campaign links began)

if TYPE_CHECKING:  # pragma: no cover
    import pluggy


#: The confidence a built-in template may state: how well its format is documented.
CONFIDENCE_LEVELS = ("high", "medium", "low")


@dataclasses.dataclass(frozen=True)
class TemplateFacts:
    """What the library knows about a built-in template beyond its ``SourceTemplate``.

    ``citations`` are pages or repository files a user can open (URLs); ``legacy`` marks a network
    kept for existing sources whose endpoint may no longer answer; ``formats`` are the source's ad
    formats (push, pop, native...).
    """

    citations: tuple[str, ...] = ()
    legacy: bool = False
    formats: tuple[str, ...] = ()


#: How the citations of one template are joined in ``SourceTemplate.citation``.
CITATION_SEPARATOR = " ; "


@functools.lru_cache(maxsize=1)
def _builtin() -> tuple[dict[str, SourceTemplate], dict[str, TemplateFacts]]:
    raw = json.loads(resources.files(__package__).joinpath("data/templates.json").read_text("utf-8"))
    templates: dict[str, SourceTemplate] = {}
    facts: dict[str, TemplateFacts] = {}
    for entry in raw:
        templates[entry["name"]], facts[entry["name"]] = _template(entry)
    return templates, facts


def builtin_templates() -> dict[str, SourceTemplate]:
    """The templates shipped with the plugin, by name."""
    return _builtin()[0]


def builtin_facts() -> dict[str, TemplateFacts]:
    """Citations, legacy mark and ad formats of the shipped templates, by name."""
    return _builtin()[1]


def _template(entry: dict[str, Any]) -> tuple[SourceTemplate, TemplateFacts]:
    name = entry.get("name", "?")
    citations = tuple(entry.get("citations", ()))
    # Shipped data is checked when it loads: a template that states no confidence, or cites
    # something a user cannot open, is a packaging mistake, not something to show.
    if entry.get("confidence") not in CONFIDENCE_LEVELS:
        raise ValueError(f"built-in template {name}: confidence must be one of {', '.join(CONFIDENCE_LEVELS)}")
    for citation in citations:
        if not re.match(r"https?://[^\s;]+$", citation):
            raise ValueError(f"built-in template {name}: citation {citation!r} is not a URL")
    known = {f for f in SourceTemplate.__dataclass_fields__}
    fields = {k: v for k, v in entry.items() if k in known}
    for field in ("statuses", "secrets", "placeholders"):
        if field in fields:
            fields[field] = tuple(fields[field])
    if "parameters" in fields:
        click_id_param = fields.get("click_id_param") or links.DEFAULT_CLICK_ID_PARAM
        try:
            fields["parameters"] = links.check_parameters(fields["parameters"], click_id_param)
        except ConfigError as exc:
            raise ValueError(f"built-in template {name}: {exc}") from None
    fields["citation"] = CITATION_SEPARATOR.join(citations) or None
    facts = TemplateFacts(
        citations=citations, legacy=bool(entry.get("legacy")), formats=tuple(entry.get("formats", ()))
    )
    return SourceTemplate(**fields), facts


def template_citations(template: SourceTemplate) -> list[str]:
    """The template's citations one by one (a plugin's free-text citation is one item)."""
    if not template.citation:
        return []
    return [part.strip() for part in template.citation.split(CITATION_SEPARATOR) if part.strip()]


def describe_template(template: SourceTemplate) -> dict[str, Any]:
    """Everything known about ``template`` as plain JSON-ready data (``templates list --json``)."""
    facts = builtin_facts().get(template.name) if builtin_templates().get(template.name) is template else None
    facts = facts or TemplateFacts()
    return {
        "name": template.name,
        "title": template.title,
        "builtin": builtin_templates().get(template.name) is template,
        "legacy": facts.legacy,
        "confidence": template.confidence,
        "formats": list(facts.formats),
        "method": template.method,
        "postback_url": template.postback_url,
        "click_id_param": template.click_id_param,
        "source_macro": template.source_macro,
        "parameters": dict(template.parameters),
        "statuses": list(template.statuses),
        "placeholders": list(template.placeholders),
        "secrets": list(template.secrets),
        "success_body": template.success_body,
        "follow_redirects": template.follow_redirects,
        "notes": template.notes,
        "citations": template_citations(template),
    }


def build_library(extra: Iterable[Iterable[SourceTemplate]] = ()) -> dict[str, SourceTemplate]:
    """The built-in templates plus those from ``register_source_templates`` (which win on a name clash)."""
    library = dict(builtin_templates())
    for batch in extra:
        for template in batch or ():
            if not isinstance(template, SourceTemplate):
                raise ConfigError(f"register_source_templates returned {template!r}, not a SourceTemplate")
            library[template.name] = template
    return library


def source_templates(pm: pluggy.PluginManager) -> tuple[dict[str, SourceTemplate], list[hookcalls.HookFailure]]:
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


def campaign_link(
    template: Optional[SourceTemplate], base_url: str, campaign_alias: str, rule: Optional[PostbackRule] = None
) -> str:
    """The campaign link to give the traffic source:
    ``https://HOST/c/summer?external_id={conversions_tracking}&sub_id_1={zoneid}``.

    The source replaces its macros on every click: its click id in the click-id parameter, and
    the macros of its parameter table. ``rule`` (the source's stored postback) overrides the
    template's settings where it has its own. Without a known click-id macro the link carries
    ``UNKNOWN_SOURCE_MACRO`` for the operator to replace.
    """
    return links.campaign_link(links.link_settings(template, rule), base_url, campaign_alias)


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
        filled = quote(str(value).strip(), safe="")
        # A function, so backslashes in the value are not read as group references.
        url = _placeholder_re(name).sub(functools.partial(_literal, filled), url)
    return url


def all_placeholders(library: Mapping[str, SourceTemplate]) -> frozenset[str]:
    """Every placeholder word the library's templates use (for the linter's leftover check)."""
    return frozenset(name for template in library.values() for name in template.placeholders)


def _literal(text: str, _match: re.Match[str]) -> str:
    return text
