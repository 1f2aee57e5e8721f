"""LiteRT target: a ``.tflite`` flatbuffer, run by LiteRT with its XNNPACK delegate.

The rewritten ``torch.export`` program is converted with Google's
``litert-torch`` (``litert_torch.convert``), which lowers the ATen graph to
TFLite ops (NHWC inside, the NCHW input and output kept by transposes at
the edges). LiteRT programs have one static input shape: ``--dynamic`` is
refused, and a sweep exports one file per resolution.

The manifest records delegate coverage as LiteRT applied it: the ops the
XNNPACK delegate took and the ops left to LiteRT's reference kernels, read
from the interpreter's node list after delegation (a ``DELEGATE`` node
replaces the nodes between its inputs and outputs).
"""

from __future__ import annotations

import collections
import contextlib
import io
import logging
import os
import re
import sys
import warnings
from pathlib import Path

from mobexport.config import ExportConfig
from mobexport import logs
from mobexport.devices.runtimes import LITERT
from mobexport.errors import ExportError, TargetOptionError, first_line
from mobexport.kernels.lowering import decomposition_table, prepare_fused_ops

from ..base import Lowered, Target
from .options import LiteRTOptions
from .quantizers import QUANTIZERS
from ...trace import TracedProgram, example_input

log = logging.getLogger(__name__)


class LiteRTTarget(Target):
    name = "litert"
    extra = "litert"
    file_name = "model.tflite"
    requires = (("litert_torch", "litert-torch"), ("ai_edge_litert", "ai-edge-litert"))
    default_dynamic = False
    options_class = LiteRTOptions
    quantizers = QUANTIZERS

    def check_config(self, config: ExportConfig) -> None:
        if config.dynamic:
            raise TargetOptionError("LiteRT programs take one static input size; --dynamic is not supported",
                                    "drop --dynamic (bench exports one file per resolution)")
        if config.target_options.get("precision") not in (None, "fp32"):
            raise TargetOptionError(
                f"--precision {config.target_options['precision']} is not a litert option",
                "use --quantize fp16 or --quantize int8 for a smaller LiteRT model")

    def prepare(self, traced: TracedProgram, config: ExportConfig) -> TracedProgram:
        """Fused ops as plain ATen ops, which the converter lowers to TFLite ops."""
        return prepare_fused_ops(traced, decomposition_table("plain"))

    def lower(self, traced: TracedProgram, config: ExportConfig, out_dir: Path) -> Lowered:
        path = Path(out_dir) / self.file_name
        convert(traced, path)
        details = {"input_shape": list(traced.input_shape), **delegate_coverage(path)}
        notes = []
        if details["reference_kernel_ops"]:
            left = ", ".join(f"{op} x{n}" for op, n in list(details["reference_kernel_ops"].items())[:5])
            notes.append(f"{sum(details['reference_kernel_ops'].values())} op(s) left to LiteRT's reference "
                         f"kernels (not XNNPACK): {left}")
        return Lowered(path=path, kind=LITERT, details=details, notes=notes)


def convert(traced: TracedProgram, path: Path) -> Path:
    """Convert ``traced``'s program to ``path`` with litert-torch, quietly unless debugging."""
    import litert_torch

    module = traced.program.module()
    sample = (example_input(traced.size),)
    try:
        with _quiet_converter(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model = litert_torch.convert(module, sample)
            model.export(str(path))
    except Exception as exc:
        op = failing_op(str(exc))
        where = f" at {op}" if op else ""
        raise ExportError(f"LiteRT conversion failed{where}: {first_line(exc)}",
                          "run with --debug for the full trace; --passes none rules out a graph rewrite") from exc
    return path


def failing_op(text: str) -> str | None:
    """The ATen op the converter was lowering when it failed ("While executing ... target=torch.ops.aten.X")."""
    found = re.search(r"target=torch\.ops\.([\w.]+)", text)
    return found.group(1) if found else None


def delegate_coverage(path: Path) -> dict:
    """Ops XNNPACK took and ops left to reference kernels, by TFLite op name."""
    from ai_edge_litert.interpreter import Interpreter

    with _quiet_converter():
        interpreter = Interpreter(model_path=str(path), num_threads=1)
        interpreter.allocate_tensors()
    nodes = interpreter._get_ops_details()  # the public API has no node list; this is LiteRT's own accessor
    delegated = delegated_nodes(nodes)
    original = [n for n in nodes if n["op_name"] != "DELEGATE"]
    on_xnnpack = collections.Counter(n["op_name"] for n in original if n["index"] in delegated)
    left = collections.Counter(n["op_name"] for n in original if n["index"] not in delegated)
    return {
        "delegate": "xnnpack",
        "ops": len(original),
        "delegated_ops": sum(on_xnnpack.values()),
        "delegate_subgraphs": sum(1 for n in nodes if n["op_name"] == "DELEGATE"),
        "delegated_op_kinds": dict(on_xnnpack.most_common()),
        "reference_kernel_ops": dict(left.most_common()),
    }


def delegated_nodes(nodes: list[dict]) -> set[int]:
    """Indices of the original nodes that a ``DELEGATE`` node replaced.

    A delegate node's partition is every node reached walking back from its
    outputs through producers until a tensor among its inputs is met.
    """
    producer = {}
    for node in nodes:
        if node["op_name"] != "DELEGATE":
            for tensor in node["outputs"]:
                producer[int(tensor)] = node
    taken: set[int] = set()
    for node in nodes:
        if node["op_name"] != "DELEGATE":
            continue
        boundary = {int(t) for t in node["inputs"]}
        stack = [int(t) for t in node["outputs"]]
        while stack:
            tensor = stack.pop()
            if tensor in boundary or tensor not in producer:
                continue
            inner = producer[tensor]
            if inner["index"] in taken:
                continue
            taken.add(inner["index"])
            stack.extend(int(t) for t in inner["inputs"] if int(t) >= 0)
    return taken


@contextlib.contextmanager
def _quiet_converter():
    """Hide the converter's progress lines and native INFO logs unless logging at DEBUG."""
    if logs.current_verbosity() >= logs.DEBUG:
        yield
        return
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    with open(os.devnull, "w") as devnull, contextlib.redirect_stdout(io.StringIO()), \
            contextlib.redirect_stderr(io.StringIO()):
        os.dup2(devnull.fileno(), 1)
        os.dup2(devnull.fileno(), 2)
        try:
            yield
        finally:
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            os.close(saved[0])
            os.close(saved[1])
