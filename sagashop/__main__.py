import sys

from sagashop.cli import run_as_program

sys.exit(run_as_program())
