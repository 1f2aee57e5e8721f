"""Analytic MAC and parameter counting over an exported graph.

We walk the ATen graph of a ``torch.export`` program with fake tensors at the
requested resolution (no arithmetic is done, so 1024x1024 costs the same as
96x96) and count multiply-accumulates per op:

* convolution: ``MACs = numel(out) * (C_in / groups) * kH * kW``; a conv with
  ``groups == C_in > 1`` is counted as *depthwise*;
* linear / matmul whose one operand is a weight: ``numel(out) * K``;
* attention: matmuls between two activations (``Q K^T``, ``A V``) and fused
  scaled-dot-product attention, ``B*H*L*S*(E + E_v)``;
* elementwise: outputs of pointwise, normalization, softmax and pooling ops,
  counted in elements (operations, not MACs) and kept separate.

The check table's MACs are conv + depthwise + linear + attention.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import torch
import torch.fx
from torch._subclasses.fake_tensor import FakeTensorMode
from torch.export import ExportedProgram

from mobexport.shapes import Resolution

from .passes.ops import attr_value

aten = torch.ops.aten

CONV_OPS = {aten.conv2d.default, aten.convolution.default, aten.conv1d.default}
LINEAR_OPS = {aten.linear.default}
MATMUL_OPS = {aten.mm.default, aten.addmm.default, aten.bmm.default, aten.matmul.default, aten.baddbmm.default}
SDPA_OPS = {aten.scaled_dot_product_attention.default}
# Ops that only move or reinterpret data: neither MACs nor elementwise work.
LAYOUT_OPS = {
    aten.view.default, aten.reshape.default, aten._unsafe_view.default, aten.permute.default,
    aten.transpose.int, aten.t.default, aten.expand.default, aten.slice.Tensor, aten.select.int,
    aten.flatten.using_ints, aten.unsqueeze.default, aten.squeeze.dim, aten.squeeze.default,
    aten.unflatten.int, aten.contiguous.default, aten.clone.default, aten.cat.default,
    aten.split.Tensor, aten.split_with_sizes.default, aten.chunk.default, aten.unbind.int,
    aten.alias.default, aten.detach.default, aten.dropout.default, aten.sym_size.int,
    aten.lift_fresh_copy.default,
    aten.stack.default, aten.repeat.default, aten.channel_shuffle.default, aten.pixel_shuffle.default,
}
CATEGORIES = ("conv", "depthwise_conv", "linear", "attention")


@dataclass
class MacReport:
    """MACs per category at one resolution, plus parameters."""

    resolution: int  # the input height (the width too, unless ``size`` says otherwise)
    params: int
    macs: dict[str, int] = field(default_factory=lambda: {c: 0 for c in CATEGORIES})
    elementwise_ops: int = 0
    size: str | None = None  # "HxW" for a rectangular input

    @property
    def total_macs(self) -> int:
        return sum(self.macs.values())

    def to_dict(self) -> dict:
        d = asdict(self)
        d["total_macs"] = self.total_macs
        return d


def _weight_like(node: torch.fx.Node) -> bool:
    """True if ``node`` is a parameter/constant, possibly behind layout ops."""
    while isinstance(node, torch.fx.Node):
        if node.op == "get_attr":
            return True
        if node.op == "call_function" and node.target in LAYOUT_OPS and node.args:
            node = node.args[0]
            continue
        return False
    return False


def _conv_groups(n: torch.fx.Node) -> int:
    """``groups`` of a conv node: argument 8 of ``convolution``, 6 of ``conv1d/conv2d``."""
    index = 8 if n.target is aten.convolution.default else 6
    return int(n.args[index]) if len(n.args) > index else int(n.kwargs.get("groups", 1))


class _Counter(torch.fx.Interpreter):
    """Counts while running the graph on fake tensors: any input size."""

    def __init__(self, gm: torch.fx.GraphModule, report: MacReport):
        super().__init__(gm)
        self.report = report

    def run_node(self, n: torch.fx.Node):
        out = super().run_node(n)
        if n.op == "call_function" and isinstance(n.target, torch._ops.OpOverload):
            _count(self.report, n, out, self.env)
        return out


def _count(report: MacReport, n: torch.fx.Node, out, env) -> None:
    """Add ``n``'s MACs (or elementwise outputs) to ``report``; ``env`` maps nodes to their values."""
    op, macs = n.target, report.macs
    if op in CONV_OPS:
        weight = env[n.args[1]]
        groups = _conv_groups(n)
        c_in = env[n.args[0]].shape[1]
        count = out.numel() * weight.shape[1] * weight[0, 0].numel()
        category = "depthwise_conv" if groups > 1 and groups == c_in else "conv"
        macs[category] += int(count)
    elif op in LINEAR_OPS:
        macs["linear"] += int(out.numel() * env[n.args[1]].shape[-1])
    elif op in MATMUL_OPS:
        a_node, b_node = (n.args[1], n.args[2]) if op in (aten.addmm.default, aten.baddbmm.default) else n.args[:2]
        k = env[a_node].shape[-1]
        category = "linear" if _weight_like(a_node) or _weight_like(b_node) else "attention"
        macs[category] += int(out.numel() * k)
    elif op in SDPA_OPS:
        q, k, v = (env[a] for a in n.args[:3])
        length, source = q.shape[-2], k.shape[-2]
        batch_heads = q.numel() // (length * q.shape[-1])
        macs["attention"] += int(batch_heads * length * source * (q.shape[-1] + v.shape[-1]))
    elif op not in LAYOUT_OPS and isinstance(out, torch.Tensor):
        report.elementwise_ops += int(out.numel())


class _RecordedValues(dict):
    """Node -> the value the trace recorded (``meta["val"]``); a constant's own tensor."""

    def __init__(self, gm: torch.fx.GraphModule):
        super().__init__()
        self.gm = gm

    def __missing__(self, node: torch.fx.Node):
        return attr_value(self.gm, node) if node.op == "get_attr" else node.meta["val"]


def _traced_at(gm: torch.fx.GraphModule, shape: tuple[int, ...]) -> bool:
    """True when every recorded value is static and the one input was traced at ``shape``."""
    inputs = [n for n in gm.graph.nodes if n.op == "placeholder"]
    values = [n.meta.get("val") for n in gm.graph.nodes if n.op in ("placeholder", "call_function")]
    return (len(inputs) == 1 and all(v is not None for v in values)
            and not any(isinstance(d, torch.SymInt) for v in values if isinstance(v, torch.Tensor) for d in v.shape)
            and tuple(inputs[0].meta["val"].shape) == tuple(shape))


def count_macs(program: ExportedProgram, resolution: "int | Resolution", batch: int = 1) -> MacReport:
    """Count MACs of ``program`` for a ``batch x 3 x H x W`` input (``224`` or ``Resolution(256, 320)``)."""
    size = Resolution.of(resolution)
    params = sum(p.numel() for p in program.parameters())
    report = MacReport(resolution=size.height, params=int(params), size=None if size.square else str(size))
    gm = program.module()
    if _traced_at(gm, tuple(size.input_shape(batch))):  # the sizes are already in the graph: read them
        values = _RecordedValues(gm)
        for n in gm.graph.nodes:
            if n.op == "call_function" and isinstance(n.target, torch._ops.OpOverload):
                _count(report, n, values[n], values)
        return report
    with FakeTensorMode(allow_non_fake_inputs=True) as fake:
        x = fake.from_tensor(torch.empty(*size.input_shape(batch)))
        _Counter(gm, report).run(x)
    return report
