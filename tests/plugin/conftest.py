"""The plugin's own tests use the shared ``host`` and ``make_s2s`` fixtures of tests/conftest.py."""

from tests.support.plugin_host import RecordingHost  # noqa: F401  (re-exported for the tests' type hints)
