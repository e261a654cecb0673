"""Ad platforms' conversion APIs, built in: ``meta-capi`` (Meta Conversions API) and ``ga4``
(Google Analytics 4 Measurement Protocol).

An ad platform does not take a GET postback: it wants a JSON POST describing the event. Each
platform here is a small plugin of the plugin's own extension hooks, registered by ``install``:
a template (``register_source_templates``) whose postback URL carries the event's inputs as
query parameters, so the usual machinery fills and checks them (payout mode, currency,
``{delivery_id}``); ``prepare_request`` moves them into the platform's JSON body; and
``classify_response`` reads the platform's answer. A source made from such a template is enabled
like any other; its URL can point anywhere (a test stand-in, a proxy): the hooks recognise their
requests by the template's name.
"""

from __future__ import annotations

from types import ModuleType

import pluggy

from . import ga4, meta_capi

#: Every built-in platform plugin, by the name it is registered under.
PLATFORMS: dict[str, ModuleType] = {
    "s2s_postback.meta-capi": meta_capi,
    "s2s_postback.ga4": ga4,
}


def register_platforms(pm: pluggy.PluginManager) -> None:
    """Register the built-in platforms on ``pm`` (once; a blocked name stays blocked)."""
    for name, module in PLATFORMS.items():
        if pm.get_plugin(name) is None and not pm.is_blocked(name):
            pm.register(module, name=name)
