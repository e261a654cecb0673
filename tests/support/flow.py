"""Helpers for delivery tests: clicks, conversions and child processes running this tree's code.

Shared by the storage and delivery tests; the ``host`` and ``make_s2s`` fixtures come from
tests/conftest.py.
"""

from __future__ import annotations

import os
import sys
from decimal import Decimal
from pathlib import Path
from typing import Any

import hookspecs
from hookspecs import Click, Conversion

ROOT = Path(__file__).resolve().parents[2]


def click(subid: str, external_id: str = "abc", campaign: str = "summer", source: str | None = "exo") -> Click:
    return Click(subid=subid, campaign_id=campaign, source_id=source, params={"external_id": external_id})


def convert(pm: Any, subid: str, status: str = "sale", payout: str = "2.5", **kw: Any) -> None:
    pm.hook.on_conversion(conversion=Conversion(subid=subid, status=status, payout=Decimal(payout), **kw))


class Hopper:
    """A plugin with one template, ``hopper``, whose postbacks follow redirects (each hop is
    checked like the first)."""

    @hookspecs.hookimpl
    def register_source_templates(self) -> list[hookspecs.SourceTemplate]:
        return [
            hookspecs.SourceTemplate(
                name="hopper", postback_url="http://unused.example/?c={external_id}", follow_redirects=True
            )
        ]


def process_env(**extra: str) -> dict[str, str]:
    """Environment for a child process that imports this checkout's packages."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("S2S_")}
    env["PYTHONPATH"] = str(ROOT) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    env.update(extra)
    return env


def cli(*args: str) -> list[str]:
    """The ``s2s-postback`` command line, run from this checkout."""
    return [sys.executable, "-m", "s2s_plugin", *args]
