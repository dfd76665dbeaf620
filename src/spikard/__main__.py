"""Allow ``python -m spikard module:app``."""

from .server.cli import main

main()
