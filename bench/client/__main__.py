"""``python -m bench.client``: the load client (see bench/client/__init__.py)."""

import sys

from bench.client.cli import main

sys.exit(main())
