"""The built-in template library: real traffic sources' postback formats as ``SourceTemplate``."""

from __future__ import annotations

import functools
import json
from importlib import resources
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
    for name in ("statuses", "secrets"):
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
