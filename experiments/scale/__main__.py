import sys

from experiments.scale.room import main

sys.exit(main())
