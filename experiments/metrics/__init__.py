"""What the Prometheus counters cost on echo and fan-out (METRICS.md): ``python -m experiments.metrics``."""
