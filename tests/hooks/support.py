"""Small helpers for the plugin tests: events, and registering a plugin for one block only."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pluggy

from hookspecs import Click, Conversion


def make_click(
    subid: str, external_id: str | None = "abc", *, campaign: str = "summer", source: str | None = "exo", **params: str
) -> Click:
    """A click of campaign ``summer`` from source ``exo`` carrying the source's click id."""
    values = dict(params)
    if external_id is not None:
        values["external_id"] = external_id
    return Click(subid=subid, campaign_id=campaign, source_id=source, params=values)


def convert(
    pm: pluggy.PluginManager, subid: str, status: str = "sale", payout: str | None = "2.5", **fields: Any
) -> None:
    """Report a conversion through ``on_conversion``."""
    pm.hook.on_conversion(
        conversion=Conversion(subid=subid, status=status, payout=Decimal(payout) if payout else None, **fields)
    )


@contextlib.contextmanager
def registered(pm: pluggy.PluginManager, plugin: object, name: str) -> Iterator[object]:
    """Register ``plugin`` as ``name`` for the block, and always unregister it afterwards."""
    pm.register(plugin, name=name)
    try:
        yield plugin
    finally:
        pm.unregister(name=name)
