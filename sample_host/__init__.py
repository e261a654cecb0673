"""A small but real ad tracker that sends S2S postbacks through the ``s2s_plugin`` hooks.

It records clicks on campaign links, receives conversions from affiliate networks, and hands both
to the postback plugin through the hooks, like any third-party host would. Its own "Sent postbacks"
log is written from ``on_postback_sent``.
"""

DEFAULT_DATABASE_URL = "sqlite:///sample_host.db"
