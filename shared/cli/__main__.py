"""`python -m shared.cli` is `belegsync`."""

import sys

from shared.cli import main

sys.exit(main())
