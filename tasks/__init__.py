"""Prefect tasks: thin wrappers over lrf library calls that exchange paths and small values."""
