"""Fixtures for the resolution tests: the plugin tests' installed service and recording host."""

from __future__ import annotations

from tests.plugin.conftest import RecordingHost, host, make_s2s  # noqa: F401  (fixtures re-used as they are)
