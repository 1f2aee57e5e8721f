"""Benchmarking: the ``bench`` sweep, its results model, ``regress``, fixtures, ``profile`` and studies.

* :mod:`.sweep` – the ``mobexport bench`` command: plan, suites, artifacts, the run loop, summary and plots.
* :mod:`.results` – records, schemas, the one curve model, statistics, change intervals, figure helpers.
* :mod:`.regress` – ``mobexport regress``: baselines, the verdict, history, reports, validation, the CI script.
* :mod:`.fixtures` – ``mobexport train-fixture``: small models trained on Synthetic Shapes.
* :mod:`.profile` – ``mobexport profile``: time per operator type.
* :mod:`.studies` – the measurement scripts behind ``docs/measured/``; product code never imports them.
"""
