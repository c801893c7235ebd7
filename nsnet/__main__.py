"""``python -m nsnet <command> ...``: the same as the ``nsnet`` console script."""
import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())
