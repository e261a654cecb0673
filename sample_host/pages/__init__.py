"""The tracker's HTML pages: server-rendered Jinja2, no scripts, every page behind the admin
sign-in, every form with a CSRF token."""

from __future__ import annotations

from starlette.routing import Route

from . import campaigns, dashboard, explain, handoffs, logs, settings, signin, sources, testsend


def routes() -> list[Route]:
    """The page routes (mounted at the root, before the inbound postback route)."""
    return [
        Route("/", signin.home, methods=["GET"]),
        Route("/login", signin.signin_form, methods=["GET"]),
        Route("/login", signin.signin, methods=["POST"]),
        Route("/logout", signin.signout, methods=["POST"]),
        Route("/dashboard", dashboard.dashboard, methods=["GET"]),
        Route("/campaigns", campaigns.campaigns, methods=["GET"]),
        Route("/campaigns", campaigns.add_campaign, methods=["POST"]),
        Route("/campaigns/{alias}", campaigns.campaign, methods=["GET"]),
        Route("/campaigns/{alias}", campaigns.update_campaign, methods=["POST"]),
        Route("/campaigns/{alias}/postbacks", campaigns.campaign_postbacks, methods=["GET"]),
        Route("/campaigns/{alias}/postbacks", campaigns.add_postback, methods=["POST"]),
        Route("/postbacks/{number:int}/edit", campaigns.edit_postback, methods=["GET"]),
        Route("/postbacks/{number:int}/edit", campaigns.save_postback, methods=["POST"]),
        Route("/postbacks/{number:int}/delete", campaigns.delete_postback, methods=["POST"]),
        Route("/sources", sources.sources, methods=["GET"]),
        Route("/sources", sources.add_source, methods=["POST"]),
        Route("/sources/{source_id}", sources.source, methods=["GET"]),
        Route("/sources/{source_id}", sources.save_source, methods=["POST"]),
        Route("/sources/{source_id}/delete", sources.delete_source, methods=["POST"]),
        Route("/rules/{rule_id}/test", testsend.test_form, methods=["GET"]),
        Route("/rules/{rule_id}/test", testsend.test_send, methods=["POST"]),
        Route("/sent", logs.sent, methods=["GET"]),
        Route("/sent.csv", logs.sent_csv, methods=["GET"]),
        Route("/sent/{entry_id:int}", logs.sent_entry, methods=["GET"]),
        Route("/deliveries/{delivery_id:int}/resend", logs.resend, methods=["POST"]),
        Route("/received", logs.received, methods=["GET"]),
        Route("/handoffs", handoffs.handoffs, methods=["GET"]),
        Route("/handoffs/{conversion_id:int}/retry", handoffs.retry, methods=["POST"]),
        Route("/explain", explain.explain, methods=["GET"]),
        Route("/settings", settings.settings, methods=["GET"]),
        Route("/settings", settings.save_settings, methods=["POST"]),
    ]
