"""`python -m scripts.evaluate` (what `make evaluate` runs)."""

import sys

from scripts.evaluate.cli import main

sys.exit(main())
