"""One parametrized suite over the whole zoo (every name in ``list_models()``).

Heavy variants (over 2 GMACs or 30M params) run only with ``-m slow``; the
default run still covers every family through its small variants.
"""

from __future__ import annotations

import pytest
import torch

from mobexport.export.macs import count_macs
from mobexport.export.trace import trace
from mobexport.models import create_model, get_spec, list_models, load_checkpoint

MODELS = list_models()
FAMILIES = sorted({get_spec(n).family for n in MODELS})


def is_heavy(name: str) -> bool:
    spec = get_spec(name)
    return spec.reference_macs > 2e9 or spec.reference_params > 30e6


def by_weight(names):
    return [pytest.param(n, marks=pytest.mark.slow) if is_heavy(n) else n for n in names]


def other_resolution(name: str) -> int:
    spec = get_spec(name)
    r = spec.resolutions
    candidate = spec.default_resolution - 2 * r.stride
    return candidate if candidate in r else spec.default_resolution + 2 * r.stride


def test_zoo_has_every_issue_model():
    expected = {f"mobile_former_{v}" for v in ("26m", "52m", "96m", "151m", "214m", "294m", "508m")} | {
        "mobilenet_v3_large_100", "mobilenet_v3_large_075", "mobilenet_v3_small_100", "mobilenet_v3_small_075"}
    assert expected <= set(MODELS)


def test_list_models_filters_by_glob():
    assert list_models("mobile_former_2*") == ["mobile_former_214m", "mobile_former_26m", "mobile_former_294m"]
    assert list_models("mobile_former_2?4m") == ["mobile_former_214m", "mobile_former_294m"]
    assert list_models("no_such_*") == []


@pytest.mark.parametrize("name", MODELS)
def test_spec_is_consistent(name):
    spec = get_spec(name)
    assert spec.name == name
    assert spec.default_resolution in spec.resolutions
    assert spec.reference_params > 0 and spec.reference_macs > 0


@pytest.mark.parametrize("name", MODELS)
def test_params_match_check_table(name):
    spec = get_spec(name)
    with torch.device("meta"):
        params = sum(p.numel() for p in create_model(name).parameters())
    assert params == pytest.approx(spec.reference_params, rel=0.01), f"{name}: {params:,}"


@pytest.mark.parametrize("name", by_weight(MODELS))
def test_macs_match_check_table(name):
    spec = get_spec(name)
    traced = trace(create_model(name), spec, spec.default_resolution)
    macs = count_macs(traced.program, spec.default_resolution).total_macs
    assert macs == pytest.approx(spec.reference_macs, rel=0.05), f"{name}: {macs / 1e6:.1f}M MACs"


@pytest.mark.parametrize("name", by_weight(MODELS))
def test_forward_at_default_and_other_resolution(name):
    spec = get_spec(name)
    model = create_model(name)
    with torch.no_grad():
        for res in (spec.default_resolution, other_resolution(name)):
            y = model(torch.randn(1, 3, res, res))
            assert y.shape == (1, spec.num_classes)
            assert torch.isfinite(y).all()


@pytest.mark.parametrize("name", by_weight(MODELS))
def test_checkpoint_round_trip_in_reference_keys(name, tmp_path):
    spec = get_spec(name)
    source = create_model(name)
    with torch.no_grad():  # move BN statistics off their defaults so they are really compared
        for m in source.modules():
            if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
                m.running_mean.uniform_(-0.1, 0.1)
                m.running_var.uniform_(0.5, 1.5)
    path = tmp_path / f"{name}.pth"
    torch.save({"state_dict": source.state_dict()}, path)
    torch.manual_seed(1)
    target = create_model(name)
    report = load_checkpoint(target, path, name)
    assert report.notes == []
    x = torch.randn(1, 3, spec.default_resolution, spec.default_resolution)
    with torch.no_grad():
        assert torch.equal(source(x), target(x))
