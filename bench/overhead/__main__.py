"""``python -m bench.overhead``: the overhead study (see bench/overhead/__init__.py)."""

import sys

from bench.overhead.cli import main

sys.exit(main())
