"""The compiler-regression validation script on a tiny configuration: stand-in builds and counts, real analysis."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest
from rich.console import Console

from mobexport.benchmarks.regress import compiler_validation as crv
from mobexport.devices.instructions import InstructionCount

# What turning each pass off costs in this stand-in (per inference): a large and a ~10% regression.
COST_OF_MISSING = {"fold_dynamic_relu": 1.25, "attention_to_bmm": 1.09}


def fake_prepare(case, out_dir):
    path = Path(out_dir) / f"{case.model}-{case.resolution}-{case.passes}.onnx"
    return SimpleNamespace(artifact=SimpleNamespace(path=path), macs=case.resolution * 1000, params=7, reused=True,
                           artifact_facts=lambda: {"path": str(path)})


def fake_count(kind, path, resolution):
    model, _, passes = Path(path).stem.split("-", 2)
    base = (3 if model.startswith("mobile_former") else 2) * resolution * 10_000
    if passes != "default":
        missing = set(crv.default_pass_ids()) - set(passes.split(","))
        for pass_id in missing:
            base *= COST_OF_MISSING[pass_id]
    samples = (round(base), round(base) + 1_000, round(base) - 700)
    return InstructionCount(median=sorted(samples)[1], samples=samples, startup=10**9, warmup=1,
                            tool_versions={"valgrind": "3.19.0", "onnxruntime": "1.32.0"})


def test_instruction_counts_detect_both_regressions_without_false_alarms(tmp_path):
    console = Console(file=open(tmp_path / "log.txt", "w"))
    variants = {crv.SHIPPED: None, **{name: crv.passes_without(p) for name, p in crv.DEFAULT_REGRESSIONS.items()}}
    models, resolutions = ["mobile_former_52m", crv.REFERENCE], [96, 128]
    built = crv.build(tmp_path, variants, models, resolutions, console, prepare_case=fake_prepare)
    assert [case.passes for case, _ in crv.variant_cases(models, resolutions, variants["small"])] == ["default"] * 4
    crv.measure_instructions(tmp_path, built, repeats=4, jobs=2, console=console, count=fake_count)

    text = crv.analyze(tmp_path, variants)
    assert "| instructions | shipped (clean) | 3 | | | 0/3 (0%) |" in text
    assert "| instructions | pass-off | 4 | 8/8 (100%) | 4/4 | |" in text
    assert "| instructions | small | 4 | 8/8 (100%) | 4/4 | |" in text
    assert "+25.0%" in text and "+9.0%" in text   # each regression's true size, from the counts


def test_a_regression_spec_must_name_a_default_pass():
    with pytest.raises(Exception, match="not a default pass"):
        crv.passes_without("no_such_pass")
    with pytest.raises(Exception, match="is not NAME=PASS"):
        crv.parse_regressions(["fold_dynamic_relu"])
