"""``python -m ecosys_core`` is the ``ecosys`` command."""

from .cli import main

main()
