"""`python -m app.cli` is `belegsync`."""

import sys

from app.cli import main

sys.exit(main())
