"""Ad platforms' conversion APIs, built in: ``meta-capi`` (Meta Conversions API),
``tiktok-events`` (TikTok Events API) and ``ga4`` (Google Analytics 4 Measurement Protocol).

An ad platform does not take a GET postback: it wants a JSON POST describing the event. Each
platform here is a small plugin of the plugin's own extension hooks, registered by ``install``:
a template (``register_source_templates``) whose postback URL carries the event's inputs as
query parameters, so the usual machinery fills and checks them (payout mode, currency,
``{delivery_id}``); ``prepare_request`` moves them into the platform's JSON body; and
``classify_response`` reads the platform's answer. A source made from such a template is enabled
like any other; its URL can point anywhere (a test stand-in, a proxy): the hooks recognise their
requests by the template's name.

A plugin registered before the postback plugin that brings a template of the same name (its own
take on an API) replaces the built-in platform of that name: both acting on one request would
turn it into JSON twice.
"""

from __future__ import annotations

from types import ModuleType

import pluggy

from hookspecs import SourceTemplate
from s2s_plugin.hooks.hookcalls import call_collect, expect_list_of
from s2s_plugin.platforms import ga4, meta_capi, tiktok

#: Every built-in platform plugin, by the name it is registered under.
PLATFORMS: dict[str, ModuleType] = {
    "s2s_postback.meta-capi": meta_capi,
    "s2s_postback.tiktok-events": tiktok,
    "s2s_postback.ga4": ga4,
}


def register_platforms(pm: pluggy.PluginManager) -> None:
    """Register the built-in platforms on ``pm`` (once; a blocked name stays blocked), except
    those whose template another plugin already brings."""
    taken = _templates_of_other_plugins(pm)
    for name, module in PLATFORMS.items():
        if pm.get_plugin(name) is None and not pm.is_blocked(name) and module.NAME not in taken:
            pm.register(module, name=name)


def _templates_of_other_plugins(pm: pluggy.PluginManager) -> set[str]:
    if not pm.hook.register_source_templates.get_hookimpls():
        return set()
    collected = call_collect(pm.hook.register_source_templates, check=expect_list_of(SourceTemplate, "SourceTemplate"))
    return {template.name for plugin, batch in collected.results if plugin not in PLATFORMS for template in batch}
