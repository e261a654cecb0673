"""The dispatcher's calls out to plugins: every attempt to ``on_postback_sent``, and an answer
to ``classify_response``. Each goes through pluggy and survives a failing plugin."""

from __future__ import annotations

import pluggy

from hookspecs import PostbackAttempt, PostbackRequest
from s2s_plugin.delivery.sender import Answer, Verdict
from s2s_plugin.hooks import hookcalls


def report_attempt(pm: pluggy.PluginManager, attempt: PostbackAttempt) -> None:
    """``on_postback_sent`` to every implementation: one host log failing (logged, naming the
    plugin) does not keep the attempt from the others."""
    hookcalls.call_collect(pm.hook.on_postback_sent, attempt=attempt)


def reports_wanted(pm: pluggy.PluginManager) -> bool:
    """Whether any plugin implements ``on_postback_sent``: with none, the dispatcher writes its
    attempts as reported already instead of building each one for nobody (and marking it later)."""
    return bool(pm.hook.on_postback_sent.get_hookimpls())


def classify_answer(pm: pluggy.PluginManager, request: PostbackRequest, response: Answer) -> Verdict:
    """The first ``classify_response`` verdict (``delivered``, ``retry``, ``failed``), the plugin
    that gave it and the plugins that failed; a None verdict leaves it to the default rules."""
    first = hookcalls.call_first(
        pm.hook.classify_response,
        check=hookcalls.expect_one_of(("delivered", "retry", "failed")),
        request=request,
        response=response,
    )
    return Verdict(first.value, first.plugin, tuple(first.failures))
