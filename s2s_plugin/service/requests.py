"""Turning a claimed delivery into the HTTP request to send: its stored method, URL, headers and
body, a ``Content-Type`` and the idempotency header, then the plugins' ``prepare_request`` hooks."""

from __future__ import annotations

import dataclasses
from typing import Any, Optional

import pluggy

from hookspecs import PostbackRequest, PostbackRule, ResolveContext
from s2s_plugin.delivery.dispatcher import stored_request
from s2s_plugin.hooks import hookcalls
from s2s_plugin.platforms import PLATFORMS
from s2s_plugin.service.library import TemplateLibrary
from s2s_plugin.storage.rows import conversion_for_delivery
from s2s_plugin.storage.store import Store


class RequestBuilder:
    """Requests for deliveries; the dispatcher's ``build`` callback is ``RequestBuilder.build``.

    :param store: to load a delivery's click, for ``prepare_request`` hooks only.
    :param library: templates, for their success text.
    :param idempotency_header: the header carrying the delivery id (the ``idempotency_header``
        setting), or None for none.
    """

    def __init__(
        self,
        pm: pluggy.PluginManager,
        store: Store,
        library: TemplateLibrary,
        *,
        idempotency_header: Optional[str],
    ) -> None:
        self._pm = pm
        self._store = store
        self._library = library
        self._idempotency_header = idempotency_header

    def build(self, row: Any) -> tuple[PostbackRequest, Optional[ResolveContext], Optional[str], Optional[str]]:
        """The request for a claimed delivery row, after ``prepare_request`` hooks; with its
        context (None when no hook could change it), the template's success text, and a problem
        sentence when a hook failed."""
        request = self.with_idempotency_key(self.with_content_type(stored_request(row)), row.id)
        chosen = self._library.get(row.template)
        success_body = chosen.success_body if chosen else None
        if not self.may_prepare(row.template):  # the common case: no click to load
            return request, None, success_body, None
        click = self._store.load_click(row.subid)
        rule = PostbackRule(
            id=row.rule_id,
            url=row.rule_url or row.url,
            method=row.method,
            source_id=row.source_id,
            campaign_id=row.campaign_id,
            template=row.template,
        )
        context = ResolveContext(click=click, conversion=conversion_for_delivery(row, click), rule=rule)
        request, problem = self.prepare(request, context)
        return request, context, success_body, problem

    def may_prepare(self, template: Optional[str]) -> bool:
        """Whether a ``prepare_request`` hook may change a request of ``template``: any third-party
        implementation may; the built-in platforms change only their own templates' requests, so
        a plain postback loads no click for them."""
        for impl in self._pm.hook.prepare_request.get_hookimpls():
            if impl.plugin_name not in PLATFORMS or template == PLATFORMS[impl.plugin_name].NAME:
                return True
        return False

    @staticmethod
    def with_content_type(request: PostbackRequest) -> PostbackRequest:
        """The request with a ``Content-Type`` for its body (JSON or form), unless it has one."""
        if request.body and "content-type" not in {k.lower() for k in request.headers}:
            kind = (
                "application/json"
                if request.body.lstrip().startswith((b"{", b"["))
                else "application/x-www-form-urlencoded"
            )
            request = dataclasses.replace(request, headers={**request.headers, "Content-Type": kind})
        return request

    def with_idempotency_key(self, request: PostbackRequest, delivery_id: int) -> PostbackRequest:
        """The request with the ``idempotency_header`` setting's header carrying the delivery's id
        (the same for every retry and resend of it), unless the request sets that header itself."""
        name = self._idempotency_header
        if not name or name.lower() in {key.lower() for key in request.headers}:
            return request
        return dataclasses.replace(request, headers={**request.headers, name: str(delivery_id)})

    def prepare(self, request: PostbackRequest, context: ResolveContext) -> tuple[PostbackRequest, Optional[str]]:
        """Run the ``prepare_request`` hooks in turn; the final request, and a problem sentence
        naming the plugins that failed (the request must then not be sent)."""
        chained = hookcalls.call_chain(
            self._pm.hook.prepare_request,
            key="request",
            check=hookcalls.expect(PostbackRequest, "a PostbackRequest"),
            request=request,
            context=context,
        )
        # Sending a request a plugin could not prepare (no token, no signature) would be wrong:
        # the attempt is not made and the delivery retries on its schedule (see docs/hooks.md).
        return chained.value, "; ".join(f.describe() for f in chained.failures) or None
