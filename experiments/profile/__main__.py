"""``python -m experiments.profile``: see experiments/profile/profile.py."""

import sys

from experiments.profile.profile import main

sys.exit(main())
