"""The default pass pipeline over the whole zoo: fires where it should, keeps outputs, is idempotent.

Each model is traced once with dynamic H/W (BN statistics and DY-ReLU
hyper-weights randomized, see conftest), rewritten by the default pipeline,
and compared with the unrewritten graph at three resolutions; a second run of
the pipeline over its own output must find nothing left to rewrite. CMT is
traced statically at each of the three resolutions instead: its dynamic trace
costs about a minute of symbolic-shape reasoning and the rewrites are the
same. The smallest variant of each family runs by default, the rest are
``slow``.
"""

from __future__ import annotations

import copy
import functools
import warnings

import pytest

from mobexport.export.passes import resolve
from mobexport.export.passes.manager import run_passes
from mobexport.models import get_spec, list_models, smallest_per_family

from .conftest import assert_same_outputs, images, outputs, zoo_program

# Passes that must rewrite something in every model of a family (others may or may not).
MUST_FIRE = {
    "mobile_former": {"fold_batchnorm", "split_depthwise_multiplier", "fold_dynamic_relu", "attention_to_bmm",
                      "fold_constants"},
    "mobilenetv3": {"fold_batchnorm"},
    "resnet": {"fold_batchnorm"},
    "visual_transformer": {"fold_batchnorm"},
    "cmt": {"fold_batchnorm", "fuse_dwconv_ffn"},
    "poolformer": set(),
    "vit": set(),
}


FAST = set(smallest_per_family())


def three_resolutions(name: str) -> list[int]:
    r = get_spec(name).resolutions
    low = max(r.min, 96)
    low += (-low) % r.stride
    return [low, low + r.stride, low + 2 * r.stride]


STATIC_FAMILIES = {"cmt"}


@functools.lru_cache(maxsize=None)
def rewritten(name: str, resolution: int, dynamic: bool):
    """(unrewritten module, rewritten module, results by pass id) of a zoo model traced at ``resolution``."""
    traced = zoo_program(name, resolution, dynamic=dynamic)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        gm = copy.deepcopy(traced.program.module())
    results = run_passes(gm, resolve("default"))
    return traced.program.module(), gm, {r.pass_id: r for r in results}


def traces(name: str) -> list[tuple[list[int], tuple]]:
    """(resolutions checked, rewritten(...)) per trace: one dynamic trace, or one static trace per resolution."""
    resolutions = three_resolutions(name)
    if get_spec(name).family in STATIC_FAMILIES:
        return [([r], rewritten(name, r, False)) for r in resolutions]
    return [(resolutions, rewritten(name, resolutions[1], True))]


ZOO = [n if n in FAST else pytest.param(n, marks=pytest.mark.slow) for n in list_models()]


@pytest.mark.parametrize("name", ZOO)
def test_default_pipeline_fires_and_keeps_outputs_at_three_resolutions(name):
    for resolutions, (original, gm, results) in traces(name):
        fired = {pass_id for pass_id, r in results.items() if r.rewrites}
        assert MUST_FIRE[get_spec(name).family] <= fired, {
            p: (r.rewrites, [s.reason for s in r.skipped][:3]) for p, r in results.items()}
        inputs = images(resolutions)
        assert_same_outputs(outputs(original, inputs), outputs(gm, inputs))


@pytest.mark.parametrize("name", ZOO)
def test_default_pipeline_is_idempotent(name):
    _, (_, gm, _) = traces(name)[0]
    again = run_passes(copy.deepcopy(gm), resolve("default"))
    assert {r.pass_id: r.rewrites for r in again if r.rewrites} == {}
