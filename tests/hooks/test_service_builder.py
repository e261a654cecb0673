"""One builder for every way in: ``install``, the ``s2s_postback`` entry point and the command line
each get their service from ``build_service``, so the same settings give the same service."""

from __future__ import annotations

from pathlib import Path

import pluggy
import pytest
from sqlalchemy import select

import hookspecs
from s2s_plugin import PostbackService, install, make_plugin_manager
from s2s_plugin.cli.service import open_service
from s2s_plugin.entrypoint import EntryPointPlugin
from s2s_plugin.service import PLUGIN_NAME, build_service
from s2s_plugin.settings import DeliverySettings
from s2s_plugin.storage import tables as t
from tests.hooks.support import convert, make_click

SETTINGS = {"retry_schedule": [0.0, 7.0, 70.0], "timeout": 3.0, "max_concurrency": 9, "allow_private_targets": True}
ENVIRONMENT = {
    "S2S_RETRY_SCHEDULE": "0,7,70",
    "S2S_TIMEOUT": "3",
    "S2S_MAX_CONCURRENCY": "9",
    "S2S_ALLOW_PRIVATE_TARGETS": "1",
}


@pytest.fixture
def three_services(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """The service as ``install``, the entry point and ``open_service`` build it, each on its own
    database, all from the same settings (keywords for ``install``, ``S2S_*`` for the others)."""
    for name, value in ENVIRONMENT.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("S2S_DATABASE_URL", f"sqlite:///{tmp_path / 'entrypoint.db'}")
    installed = install(make_plugin_manager(), database_url=f"sqlite:///{tmp_path / 'install.db'}", **SETTINGS)
    entry_point = EntryPointPlugin()
    from_entry_point = entry_point.service()
    from_cli = open_service(f"sqlite:///{tmp_path / 'cli.db'}")
    services = {"install": installed, "entry point": from_entry_point, "command line": from_cli}
    try:
        yield services
    finally:
        installed.close()
        entry_point.close()
        from_cli.close()


def test_every_entry_point_builds_the_same_service(three_services: dict[str, PostbackService]) -> None:
    expected = DeliverySettings.from_kwargs(**SETTINGS)
    for way, service in three_services.items():
        assert type(service) is PostbackService, way
        assert service.settings == expected, way
        assert service.pm.get_plugin(PLUGIN_NAME) is service, way
    plugins = {way: sorted(name for name, _ in s.pm.list_name_plugin()) for way, s in three_services.items()}
    assert plugins["entry point"] == plugins["install"] == plugins["command line"]
    libraries = {way: sorted(s.templates()) for way, s in three_services.items()}
    assert libraries["entry point"] == libraries["install"] == libraries["command line"]
    assert {"exoclick", "meta-capi", "tiktok-events", "ga4"} <= set(libraries["install"])


def test_every_built_service_queues_a_conversion_through_its_hooks(
    three_services: dict[str, PostbackService],
) -> None:
    urls = {}
    for way, service in three_services.items():
        service.add_source("exo", template="exoclick", placeholders={"GOAL_ID": "g1"}, statuses=["sale"])
        service.pm.hook.on_click(click=make_click(f"sub-{way}", "ext-1"))
        convert(service.pm, f"sub-{way}")
        with service.engine.connect() as conn:
            urls[way] = conn.execute(select(t.deliveries.c.url, t.deliveries.c.state)).all()
    assert len(urls["install"]) == 1
    assert urls["entry point"] == urls["install"] == urls["command line"]


def test_the_built_service_replaces_the_entry_points_copy(tmp_path: Path) -> None:
    pm = pluggy.PluginManager(hookspecs.PROJECT_NAME)
    pm.add_hookspecs(hookspecs)
    stand_in = EntryPointPlugin()
    pm.register(stand_in, name=PLUGIN_NAME)
    service = build_service(pm, f"sqlite:///{tmp_path / 's2s.db'}", DeliverySettings())
    try:
        assert pm.get_plugin(PLUGIN_NAME) is service
        assert not pm.is_registered(stand_in)
    finally:
        service.close()
