"""Hook specifications. Hooks are called with keyword arguments only; implementations take no defaults."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Optional

from . import hookspec

if TYPE_CHECKING:  # pragma: no cover
    from .events import (
        Click,
        Conversion,
        PostbackAttempt,
        PostbackRequest,
        PostbackRule,
        ResolveContext,
        SourceTemplate,
    )


# --- core hooks -----------------------------------------------------------------------------


@hookspec
def on_click(click: "Click") -> None:
    """Called by the host after it recorded a click.

    The postback plugin remembers what it needs of the click (source, campaign, the source's click id
    and the other parameters) so that a later conversion can be resolved by ``subid`` alone.

    :param click: the click as the host recorded it.
    :return: ignored.

    .. versionadded:: 0.1
    """


@hookspec
def on_conversion(conversion: "Conversion") -> None:
    """Called by the host after it recorded a conversion or a status change of one.

    The postback plugin resolves every postback that applies and stores it durably for delivery.
    Implementations must return fast: no network I/O on this path, which is the host's request path.

    :param conversion: the conversion, with its canonical ``status``.
    :return: ignored.

    .. versionadded:: 0.1
    """


@hookspec
def on_postback_sent(attempt: "PostbackAttempt") -> None:
    """Called by the postback plugin after every delivery attempt, and for every postback it
    decided not to send (``attempt.outcome == "skipped"``, ``attempt.attempt == 0``).

    Hosts keep their "Sent postbacks" log here. It is called from the delivery dispatcher, never
    from ``on_conversion``; an exception raised here is logged and does not stop delivery.

    :param attempt: what was sent or decided, with its ``outcome`` and ``reason``.
    :return: ignored.

    .. versionadded:: 0.1
    """


# --- extension hooks ------------------------------------------------------------------------


@hookspec
def register_source_templates() -> "list[SourceTemplate]":
    """Called once when the postback plugin builds its template library.

    :return: a list of ``SourceTemplate`` to add to the library. A template whose ``name`` is already
        known replaces the built-in one. All implementations' lists are collected.

    .. versionadded:: 0.1
    """


@hookspec(firstresult=True)
def resolve_macro(name: str, argument: Optional[str], context: "ResolveContext") -> Optional[str]:
    """Called for every macro in a postback URL or body before the built-in macros are tried.

    :param name: the macro's name without braces or the raw-marker underscore
        (``external_id`` for ``{external_id}`` and ``{_external_id}``).
    :param argument: the text after ``:`` in a parameterised macro (``Y-m-d`` for ``{date:Y-m-d}``),
        or None.
    :param context: ``context.click``, ``context.conversion`` and ``context.rule`` being resolved.
    :return: the macro's value as text (the plugin encodes it unless the macro is raw), or None when
        this implementation does not know the macro. First result wins.

    .. versionadded:: 0.1
    """


@hookspec
def prepare_request(request: "PostbackRequest", context: "ResolveContext") -> Optional["PostbackRequest"]:
    """Called before each delivery attempt, once per implementation, each seeing the previous result.

    Use it to turn a GET postback into a JSON POST, add a token header, sign the request...

    :param request: the request about to be sent (``method``, ``url``, ``headers``, ``body``).
    :param context: ``context.click``, ``context.conversion`` and ``context.rule``.
    :return: ``dataclasses.replace(request, ...)`` to change it, or None to leave it unchanged.

    .. versionadded:: 0.1
    """


@hookspec(firstresult=True)
def classify_response(request: "PostbackRequest", response: Any) -> Optional[str]:
    """Called after each answer from a source, before the default outcome rules.

    For sources whose HTTP status lies (200 with ``ERROR`` in the body).

    :param request: the request that was sent.
    :param response: the answer: ``.status_code``, ``.headers``, ``.text``.
    :return: ``"delivered"``, ``"retry"`` or ``"failed"``, or None to apply the default rules
        (2xx delivered; 408, 429, 5xx retry; other 4xx failed). First result wins.

    .. versionadded:: 0.1
    """


@hookspec
def postback_rules(conversion: "Conversion", click: Optional["Click"]) -> "list[PostbackRule]":
    """Called while resolving a conversion, for postback rules a host keeps in its own store.

    :param conversion: the conversion being resolved.
    :param click: its click, or None when the plugin does not know it.
    :return: a list of ``PostbackRule`` resolved together with the plugin's own. Each rule's ``id``
        must be stable across calls. All implementations' lists are collected.

    .. versionadded:: 0.1
    """
