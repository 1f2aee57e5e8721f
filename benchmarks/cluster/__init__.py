"""``mobexport bench --cluster``: one sweep over the hosts and phones of a Ray cluster.

Ray does the scheduling; mobexport only says what each task needs:

* an **export** is a Ray task asking for one CPU, so exports spread over the
  cluster's CPUs; its artifact comes back through Ray's object store as a
  content-addressed bundle (:mod:`.bundles`), checked by sha256 wherever it
  is unpacked;
* a **measurement** is a Ray task asking for its device's custom resource,
  e.g. ``{"mobexport/adb:R58M123": 1}`` (:mod:`.resources`). Only the host
  the phone is plugged into advertises it, with amount 1, so Ray places the
  task there and never runs two cases on one device at once.

The driver (:mod:`.driver`) streams the results back and appends them with the
local sweep's own record functions, so ``results.jsonl``, curves, summary
and plots are those of a local run. Nothing here is imported, and Ray is not,
unless ``--cluster`` is given.
"""
