"""Runtimes that run an artifact: one module per artifact kind."""
