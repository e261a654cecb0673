"""The host integration API: ``install``, ``PostbackService`` and the one function that builds it.

``PostbackService`` (``facade``) is what a host calls; ``build_service`` (``build``) puts it
together for ``install``, the entry point and the command line alike.
"""

from s2s_plugin.service.build import PLUGIN_NAME, build_service, install
from s2s_plugin.service.facade import PostbackService

__all__ = ["PLUGIN_NAME", "PostbackService", "build_service", "install"]
