"""Shared test infrastructure: real servers on loopback, a real PostgreSQL, a real browser.

The fixtures in ``tests/conftest.py`` are built from these; import them directly when a test
needs more control than a fixture gives (a second stand-in source, a server on a fixed port).
"""

from sample_host.standin import RESET, RecordedRequest, Reply, StandInSource

from .browser import CHROMIUM, CHROMIUM_ARGS, BrowserSession, BrowserUnavailable
from .postgres import ExternalPostgres, PostgresServer, PostgresUnavailable, server_from_environment
from .servers import free_port, uvicorn_server

__all__ = [
    "CHROMIUM",
    "CHROMIUM_ARGS",
    "RESET",
    "BrowserSession",
    "BrowserUnavailable",
    "ExternalPostgres",
    "PostgresServer",
    "PostgresUnavailable",
    "RecordedRequest",
    "Reply",
    "StandInSource",
    "free_port",
    "server_from_environment",
    "uvicorn_server",
]
