"""The pass registry (ids, order, errors) and the manager's verify mode."""

from __future__ import annotations

import importlib
import re
import warnings

import pytest
import torch
import torch.nn as nn
from torch.export import Dim

from mobexport.errors import UnknownPassError
from mobexport.export.passes import GraphPass, PassVerificationError, resolve, rewrite, run_passes
from mobexport.export.passes.ops import attr_value
from mobexport.export.passes.registry import ALIASES, DEFAULT_PIPELINE, PASSES, available_passes, default_pipeline, pass_ids
from mobexport.export.trace import TracedProgram

from .conftest import aten, images, randomize_batchnorm


def test_ids_match_file_and_class_names():
    for pass_id in available_passes():
        module = importlib.import_module(f"mobexport.export.passes.{pass_id}")
        class_name = "".join(part.capitalize() for part in pass_id.split("_")) + "Pass"
        cls = getattr(module, class_name)
        assert cls.id == pass_id and issubclass(cls, GraphPass)


def test_default_pipeline_runs_this_issues_passes_in_order():
    pipeline = default_pipeline()
    ours = [p for p in pipeline if p in ("fold_batchnorm", "fuse_dwconv_ffn", "fold_dynamic_relu")]
    assert ours == ["fold_batchnorm", "fuse_dwconv_ffn", "fold_dynamic_relu"]
    assert pipeline == list(DEFAULT_PIPELINE) and set(pipeline) <= set(available_passes())
    assert pipeline[-2:] == ["attention_to_bmm", "fold_constants"]  # folding sees what the attention rewrite left
    assert [p.id for p in resolve("default")] == pipeline
    assert resolve("none") == []


def test_after_constraints_order_a_user_list():
    order = [p.id for p in resolve("fold_dynamic_relu, fuse_dwconv_ffn, fold_batchnorm")]
    assert order.index("fold_batchnorm") < order.index("fuse_dwconv_ffn")
    assert order.index("fold_batchnorm") < order.index("fold_dynamic_relu")
    # a pass listed twice runs once
    assert [p.id for p in resolve("fold_batchnorm,fold_batchnorm")] == ["fold_batchnorm"]


def test_the_list_is_explicit_and_reads_without_torch():
    """``PASSES`` names every pass; the CLI reads it without importing torch or a pass."""
    import subprocess
    import sys

    assert pass_ids() == sorted(PASSES) == available_passes()
    code = ("import sys; from mobexport.export.passes.registry import pass_ids; ids = pass_ids(); "
            "print(ids, 'torch' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip().endswith("False"), done.stdout


def test_the_old_attention_pass_name_still_resolves():
    assert ALIASES == {"projection_free_attention": "attention_to_bmm"}
    assert [p.id for p in resolve("projection_free_attention")] == ["attention_to_bmm"]
    assert [p.id for p in resolve("projection_free_attention,fold_batchnorm")] == ["fold_batchnorm", "attention_to_bmm"]


def test_no_pass_imports_from_a_sibling_pass():
    """Shared pieces live in ops/builder/base; a pass module imports no other pass module."""
    import ast
    from pathlib import Path

    import mobexport.export.passes as package

    folder = Path(package.__file__).parent
    for pass_id in PASSES:
        tree = ast.parse((folder / f"{pass_id}.py").read_text())
        imported = {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.module}
        assert not imported & set(PASSES), f"{pass_id} imports {imported & set(PASSES)}"


def test_every_pass_file_stays_short():
    from pathlib import Path

    import mobexport.export.passes as package

    for path in Path(package.__file__).parent.rglob("*.py"):
        assert len(path.read_text().splitlines()) <= 300, path


def test_unknown_pass_suggests_the_close_name():
    with pytest.raises(UnknownPassError) as info:
        resolve("fold_batchnrom")
    assert "unknown pass 'fold_batchnrom'" in str(info.value) and "did you mean fold_batchnorm" in str(info.value)
    with pytest.raises(UnknownPassError, match=re.escape("choose from: default, none, ")):
        resolve("zzzz")


def test_a_cycle_in_after_is_reported(fresh_registry):
    @fresh_registry
    class TestCycleAPass(GraphPass):
        id = "test_cycle_a"
        after = ("test_cycle_b",)
        candidates = match = rewrite = None

    @fresh_registry
    class TestCycleBPass(GraphPass):
        id = "test_cycle_b"
        after = ("test_cycle_a",)
        candidates = match = rewrite = None

    with pytest.raises(UnknownPassError, match="cycle"):
        resolve("test_cycle_a,test_cycle_b")


class TinyNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.bn = nn.BatchNorm2d(8)
        self.head = nn.Conv2d(8, 4, 1)

    def forward(self, x):
        return self.head(torch.relu(self.bn(self.conv(x)))).mean((2, 3))


def tiny_traced() -> TracedProgram:
    model = randomize_batchnorm(TinyNet()).eval()
    h, w = Dim("h_blocks", min=1, max=8), Dim("w_blocks", min=1, max=8)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        program = torch.export.export(model, (torch.randn(1, 3, 32, 32),), strict=False,
                                      dynamic_shapes={"x": {2: 16 * h, 3: 16 * w}})
    return TracedProgram(program, 32, True, 16, 128, 16)


def register_broken_pass(fresh_registry):
    @fresh_registry
    class TestBrokenScalePass(GraphPass):
        """Scales the head conv's weight by 1.01: a 'fold' with a bug."""

        id = "test_broken_scale"
        after = ("fold_batchnorm",)

        def candidates(self, gm):
            return [n for n in gm.graph.nodes if n.target is aten.conv2d.default]

        def match(self, gm, conv):
            return conv if conv.args[1].target == "head.weight" else None

        def rewrite(self, gm, conv, result):
            attr_value(gm, conv.args[1]).data.mul_(1.01)


def test_verify_mode_names_the_broken_pass(fresh_registry):
    register_broken_pass(fresh_registry)
    passes = resolve("test_broken_scale,fold_batchnorm")
    assert [p.id for p in passes] == ["fold_batchnorm", "test_broken_scale"]
    with pytest.raises(PassVerificationError) as info:
        rewrite(tiny_traced(), passes, verify_resolutions=[32, 64])
    message = str(info.value)
    assert "pass 'test_broken_scale' changed the outputs at 32x32" in message
    assert "fold_batchnorm" not in message.split("(")[0]


def test_without_verify_the_broken_pass_goes_unnoticed(fresh_registry):
    """The contrast that shows verify mode is what catches it."""
    register_broken_pass(fresh_registry)
    rewritten, results = rewrite(tiny_traced(), resolve("fold_batchnorm,test_broken_scale"))
    assert [r.rewrites for r in results] == [1, 1]
    assert rewritten is not None


def test_verify_mode_records_the_error_of_good_passes():
    traced = tiny_traced()
    inputs = images((32, 64, 96))
    with torch.no_grad():
        before = [traced.program.module()(x) for x in inputs]
    rewritten, results = rewrite(traced, resolve("default"), verify_resolutions=[32, 64])
    (fold,) = [r for r in results if r.pass_id == "fold_batchnorm"]
    assert fold.rewrites == 1 and 0 <= fold.details["verified_max_relative_error"] < 1e-5
    assert all("verified_max_relative_error" not in r.details for r in results if not r.changed)
    assert rewritten.dynamic
    with torch.no_grad():
        for x, ref in zip(inputs, before):
            torch.testing.assert_close(rewritten.program.module()(x), ref, rtol=1e-5, atol=1e-5)


def test_nothing_to_rewrite_returns_the_same_program():
    traced = tiny_traced()
    rewritten, results = rewrite(traced, resolve("fuse_dwconv_ffn,fold_dynamic_relu"))
    assert rewritten is traced
    assert [r.rewrites for r in results] == [0, 0]


def test_run_passes_reports_time_and_json_ready_results():
    gm = tiny_traced().program.module()
    results = run_passes(gm, resolve("fold_batchnorm"))
    d = results[0].to_dict()
    assert d["id"] == "fold_batchnorm" and d["changed"] and d["rewrites"] == 1
    assert d["details"]["seconds"] >= 0
