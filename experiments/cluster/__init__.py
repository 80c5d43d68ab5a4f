"""Cross-node fan-out through the Redis bus, and ``--workers`` (CLUSTER.md): ``python -m experiments.cluster``."""
