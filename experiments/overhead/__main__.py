"""``python -m experiments.overhead``: the overhead study (see experiments/overhead/__init__.py)."""

import sys

from experiments.overhead.cli import main

sys.exit(main())
