"""`python -m vbert ...`: the same as the `vbert` command."""

import sys

from vbert.cli import main

sys.exit(main())
