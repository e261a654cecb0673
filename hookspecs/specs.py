"""Hook specifications. Hooks are called with keyword arguments only; implementations take no defaults."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Optional

from .markers import hookspec

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
def on_click(click: Click) -> None:
    """Called by the host after it recorded a click.

    The postback plugin remembers what it needs of the click (source, campaign, the source's click id
    and the other parameters) so that a later conversion can be resolved by ``subid`` alone.

    :param click: the click as the host recorded it.
    :return: ignored.

    .. versionadded:: 0.1
    """


@hookspec
def on_conversion(conversion: Conversion) -> None:
    """Called by the host after it recorded a conversion or a status change of one.

    The postback plugin resolves every postback that applies and stores it durably for delivery.
    Implementations must return fast: no network I/O on this path, which is the host's request path.

    :param conversion: the conversion, with its canonical ``status``.
    :return: ignored.

    .. versionadded:: 0.1
    """


@hookspec
def on_postback_sent(attempt: PostbackAttempt) -> None:
    """Called by the postback plugin after every delivery attempt, and for every postback it
    decided not to send (``attempt.outcome == "skipped"``, ``attempt.attempt == 0``).

    Hosts keep their "Sent postbacks" log here. It is called from the delivery dispatcher, never
    from ``on_conversion``, one implementation at a time: an exception raised here is logged with
    the plugin's name, and neither stops delivery nor keeps the attempt from the other plugins.

    :param attempt: what was sent or decided, with its ``outcome`` and ``reason``.
    :return: ignored.

    .. versionadded:: 0.1
    """


# --- extension hooks ------------------------------------------------------------------------


@hookspec
def register_source_templates() -> list[SourceTemplate]:
    """Called once, the first time the postback plugin needs its template library.

    :return: a list of ``SourceTemplate`` to add to the library. A template whose ``name`` is already
        known replaces the built-in one; between plugins, the one called first (registered last, or
        ``tryfirst``) wins. All implementations' lists are collected.

    An implementation that raises or returns anything but a list of ``SourceTemplate`` is left
    out, with its templates, and named in a warning; the other plugins' templates are added.

    .. versionadded:: 0.1
    """
    raise NotImplementedError  # a specification: pluggy calls the implementations, never this


@hookspec(firstresult=True)
def resolve_macro(name: str, argument: Optional[str], context: ResolveContext) -> Optional[str]:
    """Called for every macro in a postback URL or body before the built-in macros are tried.

    :param name: the macro's name without braces or the raw-marker underscore
        (``external_id`` for ``{external_id}`` and ``{_external_id}``).
    :param argument: the text after ``:`` in a parameterised macro (``Y-m-d`` for ``{date:Y-m-d}``),
        or None.
    :param context: ``context.click``, ``context.conversion`` and ``context.rule`` being resolved.
    :return: the macro's value as text (the plugin encodes it unless the macro is raw), or None when
        this implementation does not know the macro. First result wins.

    An implementation that raises is passed over (the next one, then the built-in macros, give the
    value) and named in the postback's reason.

    .. versionadded:: 0.1
    """


@hookspec
def prepare_request(request: PostbackRequest, context: ResolveContext) -> Optional[PostbackRequest]:
    """Called before each delivery attempt, once per implementation, each seeing the previous result.

    Use it to turn a GET postback into a JSON POST, add a token header, sign the request...
    ``request.template`` and ``context.rule`` say which source it is for; add any token you put in
    the request to ``request.secrets`` so that no log shows it. Sign last (``trylast=True``).

    :param request: the request about to be sent (``method``, ``url``, ``headers``, ``body``,
        ``template``, ``rule_id``, ``secrets``).
    :param context: ``context.click``, ``context.conversion`` and ``context.rule``.
    :return: ``dataclasses.replace(request, ...)`` to change it, or None to leave it unchanged.

    When an implementation raises (a missing token, say), the request is not sent: the attempt is
    recorded ``retrying`` with the plugin named, and retried on the delivery's schedule.

    .. versionadded:: 0.1
    """


@hookspec(firstresult=True)
def classify_response(request: PostbackRequest, response: Any) -> Optional[str]:
    """Called after each answer from a source, before the default outcome rules.

    For sources whose HTTP status lies (200 with ``ERROR`` in the body).

    :param request: the request that was sent; ``request.template`` and ``request.rule_id`` say
        which source template and postback rule it came from.
    :param response: the answer: ``.status_code``, ``.headers``, ``.text``.
    :return: ``"delivered"``, ``"retry"`` or ``"failed"``, or None to apply the default rules
        (2xx delivered; 408, 429, 5xx retry; other 4xx failed). First result wins.

    An implementation that raises or answers anything else is passed over and named in the
    attempt's reason.

    .. versionadded:: 0.1
    """


@hookspec
def postback_rules(conversion: Conversion, click: Optional[Click]) -> list[PostbackRule]:
    """Called while resolving a conversion, for postback rules a host keeps in its own store.

    :param conversion: the conversion being resolved.
    :param click: its click, or None when the plugin does not know it.
    :return: a list of ``PostbackRule`` resolved together with the plugin's own. Each rule's ``id``
        must be stable across calls. All implementations' lists are collected.

    Called inside ``on_conversion``: return fast, without network I/O. When an implementation
    raises, its rules are missing for this conversion and the conversion's event names the plugin
    (``explain`` shows it first); the other rules are resolved and delivered.

    .. versionadded:: 0.1
    """
    raise NotImplementedError  # a specification: pluggy calls the implementations, never this
