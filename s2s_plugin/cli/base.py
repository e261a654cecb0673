"""The ``s2s-postback`` command group and the options every command shares."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import click

from s2s_plugin.errors import S2SError
from s2s_plugin.hooks.plugins import loading_failure
from s2s_plugin.settings import database_url_from_env


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="s2s-postback")
def main() -> None:
    """Server-to-server postbacks for ad trackers."""


def database_option(func: Callable[..., Any]) -> Callable[..., Any]:
    """``--database-url`` (or ``S2S_DATABASE_URL``)."""
    return click.option(
        "--database-url",
        default=lambda: database_url_from_env(),
        show_default="S2S_DATABASE_URL or sqlite:///s2s.db",
        help="Database holding the postback queue.",
    )(func)


def user_errors(func: Callable[..., Any]) -> Callable[..., Any]:
    """Turn the plugin's own errors into a one-line message and exit code 2, never a traceback."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except S2SError as exc:
            raise click.UsageError(str(exc)) from None
        except Exception as exc:
            failure = loading_failure(exc)  # S2S_PLUGINS_STRICT: a broken plugin stops the command
            if failure is None:
                raise
            raise click.UsageError(failure) from None

    return wrapper
