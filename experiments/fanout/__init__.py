"""The chat's own fan-out on ``/ws``, burst and lock-step (FANOUT.md): ``python -m experiments.fanout``."""
