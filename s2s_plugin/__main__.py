"""``python -m s2s_plugin``: the ``s2s-postback`` command line."""

from .cli import main

main()
