"""``python -m s2s_plugin``: the ``s2s-postback`` command line."""

from s2s_plugin.cli import main

main()
