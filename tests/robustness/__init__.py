"""Robustness under load and faults, measured on a server in its own process."""
