"""``python -m prunekit``: the same command as ``prunekit``."""

from .cli import main

main()
