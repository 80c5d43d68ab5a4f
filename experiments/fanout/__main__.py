"""``python -m experiments.fanout``: see experiments/fanout/fanout.py."""

import sys

from experiments.fanout.fanout import main

sys.exit(main())
