"""Start sagashop: `python run.py --help` (the command line lives in `sagashop.cli`)."""

import sys

from sagashop.cli import run_as_program

if __name__ == "__main__":
    sys.exit(run_as_program())
