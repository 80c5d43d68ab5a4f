"""``python -m experiments.cluster``: see experiments/cluster/cluster.py."""

import sys

from experiments.cluster.cluster import main

sys.exit(main())
