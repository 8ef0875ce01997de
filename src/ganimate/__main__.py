"""`python -m ganimate ...`: the `ganimate` command."""

import sys

from ganimate.cli import main

if __name__ == "__main__":
    sys.exit(main())
