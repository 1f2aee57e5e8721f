"""The ``mobexport bench`` command: a suite or command line becomes a plan, artifacts, measured records, a summary and plots."""
