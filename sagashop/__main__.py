import sys

from sagashop.cli import main

sys.exit(main())
