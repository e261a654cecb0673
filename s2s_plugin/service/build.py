"""The one place a ``PostbackService`` is put together: ``install``, the ``s2s_postback`` entry
point and the ``s2s-postback`` command line all call ``build_service``."""

from __future__ import annotations

import functools
from typing import Any

import pluggy

from s2s_plugin.delivery.dispatcher import Dispatcher
from s2s_plugin.delivery.sender import Sender
from s2s_plugin.hooks.plugins import OWN_ENTRY_POINT
from s2s_plugin.platforms import register_platforms
from s2s_plugin.service.control import DeliveryControl
from s2s_plugin.service.facade import PostbackService
from s2s_plugin.service.hookrelays import classify_answer, report_attempt, reports_wanted
from s2s_plugin.service.inspection import Inspection
from s2s_plugin.service.library import TemplateLibrary
from s2s_plugin.service.planning import PostbackPlanner
from s2s_plugin.service.recording import Recorder
from s2s_plugin.service.requests import RequestBuilder
from s2s_plugin.service.rules import Rules
from s2s_plugin.settings import DeliverySettings
from s2s_plugin.storage.database import Database
from s2s_plugin.storage.rows import attempt_from_rows
from s2s_plugin.storage.store import Store

#: The name the service registers under: the entry point's name, so ``load_setuptools_entrypoints``
#: after ``install`` skips the environment-configured copy.
PLUGIN_NAME = OWN_ENTRY_POINT


def build_service(pm: pluggy.PluginManager, database_url: str, settings: DeliverySettings) -> PostbackService:
    """A ``PostbackService`` on ``database_url``, its tables created, registered on ``pm``.

    The built-in ad platforms (their templates and hooks) are registered on ``pm`` too. A plugin
    already registered under ``PLUGIN_NAME`` (the entry point's copy, configured from the
    environment) is replaced by this configured one.
    """
    # The ad platforms' conversion APIs are built in: their templates and hooks come with the plugin.
    register_platforms(pm)
    database = Database(database_url)  # the one database object: the service's close() closes it
    store = Store(database)
    library = TemplateLibrary(pm)
    planner = PostbackPlanner(pm, library)
    requests = RequestBuilder(pm, store, library, idempotency_header=settings.idempotency_header)
    dispatcher = Dispatcher(
        database,
        settings,
        Sender(settings, classify_hook=functools.partial(classify_answer, pm)),
        build=requests.build,
        report=functools.partial(report_attempt, pm),
        reports_wanted=functools.partial(reports_wanted, pm),
        on_gone=store.mark_rule_gone,
        attempt_from_rows=attempt_from_rows,
    )
    rules = Rules(store, library)
    service = PostbackService(
        pm,
        settings,
        database=database,
        store=store,
        dispatcher=dispatcher,
        rules=rules,
        planner=planner,
        recorder=Recorder(pm, store, planner, first_delay=settings.retry_schedule[0], signals=dispatcher),
        requests=requests,
        delivery=DeliveryControl(
            database, dispatcher, rules=rules, planner=planner, requests=requests, library=library
        ),
        inspection=Inspection(database.engine, store, library),
    )
    service.create_tables()
    loaded = pm.get_plugin(PLUGIN_NAME)
    if loaded is not None:
        pm.unregister(loaded)
    pm.register(service, name=PLUGIN_NAME)
    return service


def install(pm: pluggy.PluginManager, database_url: str = "sqlite:///s2s.db", **settings: Any) -> PostbackService:
    """Create the plugin's tables in ``database_url`` and register the plugin on ``pm``.

    Keyword arguments are delivery settings: ``retry_schedule``, ``connect_timeout``, ``timeout``,
    ``max_concurrency``, ``per_host_concurrency``, ``allow_private_targets``, ``lease_seconds``.

    :raises ConfigError: for an unknown setting or a bad value, naming it.
    """
    return build_service(pm, database_url, DeliverySettings.from_kwargs(**settings))
