"""``mobexport regress``: baselines, the regression verdict, history, reports, validation and the CI script."""
