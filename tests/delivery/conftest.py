"""The delivery tests' helpers live in tests/support/flow.py; imported here for ``from .conftest import``."""

from tests.support.flow import ROOT, Hopper, cli, click, convert, process_env  # noqa: F401
