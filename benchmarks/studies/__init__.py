"""The measurement scripts behind ``docs/measured/`` (``python -m mobexport.benchmarks.studies.NAME --help``).

Product code never imports this package: a study may change or go when its
question is answered.
"""
