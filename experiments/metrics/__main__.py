"""``python -m experiments.metrics``: see experiments/metrics/metrics_cost.py."""

import sys

from experiments.metrics.metrics_cost import main

sys.exit(main())
