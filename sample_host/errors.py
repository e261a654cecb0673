"""Errors a user of the sample host can cause, each with an HTTP status and a one-line message."""

from __future__ import annotations


class HostError(Exception):
    """Something the caller got wrong; ``str(error)`` is one sentence saying what and what to do."""

    http_status = 400

    def __init__(self, message: str) -> None:
        # One line, always: these messages are HTTP bodies and terminal output.
        super().__init__(" ".join(str(message).split()))


class NotFound(HostError):
    """The campaign, click, source or postback named does not exist."""

    http_status = 404


class Forbidden(HostError):
    """The secret in the request (postback key, API token) is wrong."""

    http_status = 403


class Conflict(HostError):
    """The thing to create already exists."""

    http_status = 409


class TooLarge(HostError):
    """The request is bigger than any honest one would be."""

    http_status = 413
