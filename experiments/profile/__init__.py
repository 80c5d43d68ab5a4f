"""Where rawws spends its time under the echo load, by py-spy (PROFILE.md): ``python -m experiments.profile``."""
