"""Runnable spikard examples.

Run one with ``python examples/NAME.py``, or serve it with ``python -m spikard examples.NAME:app``.
"""
