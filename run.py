"""Start sagashop: `python run.py --help` (the command line lives in `sagashop.cli`)."""

import sys

from sagashop.cli import main

if __name__ == "__main__":
    sys.exit(main())
