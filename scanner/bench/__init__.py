"""Benchmarks behind ``gate bench``: each prints figures, ``--json`` for machines."""
