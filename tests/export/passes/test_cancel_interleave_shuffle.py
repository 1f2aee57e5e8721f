"""cancel_interleave_shuffle: an interleave and the shuffle that undoes it become one concat."""

from __future__ import annotations

import pytest
import torch

from mobexport.export.passes import resolve
from mobexport.export.passes.cancel_interleave_shuffle import CancelInterleaveShufflePass
from mobexport.export.passes.fold_batchnorm import FoldBatchnormPass

from .conftest import Fires, aten, check_pass, images, op_counts, outputs, zoo_module
from .test_sink_channel_interleave import INPUTS, widened


def test_runs_right_after_the_split():
    ids = [p.id for p in resolve("default")]
    assert ids.index("split_depthwise_multiplier") + 1 == ids.index("cancel_interleave_shuffle")


def test_cancels_mobile_former_26m_release_shuffles():
    gm = zoo_module("mobile_former_26m", 96, dynamic=True)
    FoldBatchnormPass().run(gm)
    resolve("split_depthwise_multiplier")[0].run(gm)
    counts = op_counts(gm)
    assert counts[aten.stack.default] == 7
    # each widening dw is followed by a shuffle in C groups, which puts the split's pieces back in concat order
    check_pass(CancelInterleaveShufflePass, Fires(gm, images((96, 128, 160)), rewrites=7, details={"shuffles_cancelled": 7}, ops={
        aten.stack.default: 0, aten.cat.default: counts[aten.cat.default] + 7,
        aten.unflatten.int: counts[aten.unflatten.int] - 7, aten.transpose.int: counts[aten.transpose.int] - 7}))


def test_cancels_a_shuffle_in_as_many_groups_as_input_channels():
    check_pass(CancelInterleaveShufflePass, Fires(widened("shuffle4"), INPUTS, rewrites=1, ops={
        aten.stack.default: 0, aten.unflatten.int: 0, aten.transpose.int: 0, aten.flatten.using_ints: 0}))


@pytest.mark.parametrize("tail", ["shuffle3", "relu"])
def test_other_shuffles_and_interleaves_are_not_the_pattern(tail):
    gm = widened(tail)
    before, code = outputs(gm, INPUTS), gm.code
    result = CancelInterleaveShufflePass().run(gm)
    assert result.rewrites == 0 and result.skipped == [] and gm.code == code
    torch.testing.assert_close(outputs(gm, INPUTS), before, rtol=0, atol=0)
