"""``--threads 1,4``: thread counts are an axis of the sweep, each its own setting in the tables."""

from __future__ import annotations

import pytest

from mobexport.benchmarks.sweep.cli import parser
from mobexport.benchmarks.sweep.plan import SweepPlan
from mobexport.errors import BenchmarkError


def test_each_thread_count_is_a_case():
    plan = SweepPlan(models=["a"], targets=["onnx"], resolutions=[96, 128], threads=[1, 4, 1], seed=None)
    assert plan.thread_counts == [1, 4]
    assert [(c.resolution, c.threads) for c in plan.cases()] == [(96, 1), (96, 4), (128, 1), (128, 4)]
    assert SweepPlan(models=["a"], targets=["onnx"], resolutions=[96], threads=2).thread_counts == [2]


def test_a_negative_count_is_refused():
    with pytest.raises(BenchmarkError, match="--threads -1 is negative"):
        SweepPlan(models=["a"], targets=["onnx"], resolutions=[96], threads=[1, -1]).validate()


def test_the_command_line_takes_a_list():
    assert parser().parse_args(["--threads", "1,4"]).threads == [1, 4]
    with pytest.raises(SystemExit) as exit_info:
        parser().parse_args(["--threads", "1,x"])
    assert exit_info.value.code == 2


def test_a_suite_may_list_thread_counts(tmp_path):
    from mobexport.benchmarks.sweep.suite import load_suite

    path = tmp_path / "s.toml"
    path.write_text('models = ["a"]\ntargets = ["onnx"]\nresolutions = [96]\nthreads = [1, 4]\n')
    assert load_suite(str(path))["threads"] == [1, 4]
    path.write_text('models = ["a"]\ntargets = ["onnx"]\nresolutions = [96]\nthreads = [1, -4]\n')
    with pytest.raises(Exception, match="threads"):
        load_suite(str(path))
