"""``python -m sitescreen.cli``: the same as the ``sitescreen`` command."""

from sitescreen.cli import main

main()
