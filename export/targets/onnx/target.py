"""ONNX target: ``torch.onnx`` (dynamo exporter) from the exported program.

Opset 18, spatial axes dynamic when the traced program is, optimized as the
exporter does it (in linear time: ``optimizer.py``), the model checked with
``onnx.checker`` (full check, shape inference included) before it counts as
written. Fused ``mobexport::`` ops need no ``prepare``: the exporter
translates them (``kernels/lowering.onnx_translation_table``). Parity runs
through ONNX Runtime on this CPU.
"""

from __future__ import annotations

import logging
import warnings
from pathlib import Path

from mobexport.config import ExportConfig
from mobexport.devices.runtimes import ONNX
from mobexport.errors import ExportError, TargetOptionError, first_line
from mobexport.kernels import onnx_translation_table

from ..base import Lowered, Target
from .optimizer import rules_tried_where_they_can_match
from .options import OnnxOptions
from .quantizers import QUANTIZERS
from ...trace import TracedProgram

OPSET = 18
INPUT_NAME = "input"
OUTPUT_NAME = "logits"


class OnnxTarget(Target):
    name = "onnx"
    extra = "onnx"
    file_name = "model.onnx"
    requires = (("onnx", "onnx"), ("onnxruntime", "onnxruntime"), ("onnxscript", "onnxscript"))
    default_dynamic = True
    options_class = OnnxOptions
    quantizers = QUANTIZERS
    # ONNX Runtime keeps the concat in its blocked NCHWc layout and reorders the whole widened map
    # after it; the interleave it replaces cost 1-2% fewer instructions on Mobile-Former
    # (docs/measured/channel_interleave.md). XNNPACK runs 2-6.5% faster with the same rewrite.
    slower_passes = ("sink_channel_interleave",)

    def check_config(self, config: ExportConfig) -> None:
        if self.options(config).int8_activations == "uint8" and config.quantize != "int8":
            raise TargetOptionError("--int8-activations uint8 applies to --target onnx --quantize int8 only",
                                    "drop --int8-activations, or add --quantize int8")

    def lower(self, traced: TracedProgram, config: ExportConfig, out_dir: Path) -> Lowered:
        path = Path(out_dir) / self.file_name
        write_onnx(traced, path)
        return Lowered(path=path, kind=ONNX, details=describe_onnx(path))


def write_onnx(traced: TracedProgram, path: Path, opset: int = OPSET) -> Path:
    """Export ``traced`` to ``path`` as one self-contained ONNX file and check it."""
    import onnx
    import torch

    quiet = [logging.getLogger(n) for n in ("torch.onnx", "onnxscript", "torch.export")]
    levels = [lg.level for lg in quiet]
    for lg in quiet:
        lg.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings(), rules_tried_where_they_can_match():
            warnings.simplefilter("ignore")
            onnx_program = torch.onnx.export(
                traced.program,
                f=None,
                dynamo=True,
                opset_version=opset,
                input_names=[INPUT_NAME],
                output_names=[OUTPUT_NAME],
                optimize=True,
                verbose=False,
                custom_translation_table=onnx_translation_table(),  # mobexport::* fused ops
            )
            onnx_program.save(str(path), external_data=False)
        onnx.checker.check_model(str(path), full_check=True)
    except Exception as exc:
        raise ExportError(f"ONNX export failed: {first_line(exc)}", "run with --debug for the full trace") from exc
    finally:
        for lg, level in zip(quiet, levels):
            lg.setLevel(level)
    return path


def describe_onnx(path: Path) -> dict:
    """Opset, I/O signature and an op histogram, for the manifest."""
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    histogram: dict[str, int] = {}
    for node in model.graph.node:
        histogram[node.op_type] = histogram.get(node.op_type, 0) + 1

    def signature(values) -> list[dict]:
        out = []
        for v in values:
            dims = [d.dim_param or d.dim_value for d in v.type.tensor_type.shape.dim]
            out.append({"name": v.name, "shape": dims})
        return out

    return {
        "opset": next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), None),
        "ir_version": model.ir_version,
        "inputs": signature(model.graph.input),
        "outputs": signature(model.graph.output),
        "nodes": len(model.graph.node),
        "op_histogram": dict(sorted(histogram.items(), key=lambda kv: -kv[1])),
    }
