"""Shared machinery of reprozoo: runner, trainer, metrics, logging, run records and tables."""
