"""Which spelling of each fused op runs fastest on each target: the measurements behind kernels/*.py.

    python -m mobexport.benchmarks.studies.passes_benchmark --kernels [--out DIR] [--rounds N] [--threads 1]

For ``mobexport::token_softmax`` every candidate in
``kernels.token_softmax.CANDIDATES`` is dropped into the same Mobile<-Former
block at the size where it costs most in mobile_former_294m at 224 (a 24 x
56 x 56 map, 2 heads, T = 6 tokens, between two 1x1 convs so the runtimes
see their usual layouts), exported as plain ATen to ONNX and to ExecuTorch +
XNNPACK, and timed interleaved (one worker process per artifact, round-robin,
as in :mod:`.passes_benchmark`). Reported per target: median and minimum
latency of the whole block and, for XNNPACK, whether the candidate stayed
in one delegate (a candidate that leaves it runs on slow portable kernels).
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import torch
import torch.nn as nn

from .passes_benchmark import Case, time_cases

CHANNELS, SIZE, TOKENS, HEADS, TOKEN_DIM = 24, 56, 6, 2, 192


class TokenAttentionBlock(nn.Module):
    """conv -> Mobile<-Former in the rewritten layout, with ``softmax`` over tokens -> conv."""

    def __init__(self, softmax):
        super().__init__()
        self.softmax = softmax
        self.conv_in = nn.Conv2d(3, CHANNELS, 1)
        self.conv_out = nn.Conv2d(CHANNELS, CHANNELS, 1)
        self.k = nn.Linear(TOKEN_DIM, CHANNELS)
        self.v = nn.Linear(TOKEN_DIM, CHANNELS)
        self.tokens = nn.Parameter(torch.randn(1, TOKENS, TOKEN_DIM))

    def forward(self, x):
        x = self.conv_in(x)
        c = CHANNELS // HEADS
        x_heads = x.flatten(2).unflatten(1, (HEADS, c)).flatten(0, 1)  # [h, c, P]
        k = self.k(self.tokens).unflatten(2, (HEADS, c)).permute(0, 2, 1, 3).flatten(0, 1)  # [h, T, c]
        v = self.v(self.tokens).unflatten(2, (HEADS, c)).permute(0, 2, 3, 1).flatten(0, 1)  # [h, c, T]
        attn = self.softmax(torch.bmm(k, x_heads) * 4.0)
        out = torch.bmm(v, attn).unflatten(0, (-1, HEADS)).flatten(1, 2)
        return self.conv_out((x.flatten(2) + out).reshape_as(x))


def build(name: str, softmax, out: Path) -> list[Case]:
    from mobexport.export.targets.executorch.target import lower_program

    torch.manual_seed(0)
    model = TokenAttentionBlock(softmax).eval()
    x = torch.randn(1, 3, SIZE, SIZE)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        program = torch.export.export(model, (x,), strict=False)
        onnx_path = out / f"token_softmax-{name}.onnx"
        torch.onnx.export(program, f=None, dynamo=True, opset_version=18, verbose=False).save(str(onnx_path))
        manager, coverage, _ = lower_program(program, "xnnpack")
    pte_path = out / f"token_softmax-{name}.pte"
    pte_path.write_bytes(manager.buffer)
    details = {"delegate_subgraphs": coverage.delegate_subgraphs, "portable_ops": coverage.portable_ops}
    return [Case(name, "-", "onnx", SIZE, onnx_path, {}), Case(name, "-", "executorch", SIZE, pte_path,
                                                                 {"target_details": details})]


def run(out: Path, rounds: int, threads: int) -> dict:
    from rich.console import Console
    from rich.table import Table

    from mobexport.kernels.token_softmax import CANDIDATES

    out = Path(out) / "kernels"
    out.mkdir(parents=True, exist_ok=True)
    cases = [case for name, fn in CANDIDATES.items() for case in build(name, fn, out)]
    results = {}
    for target in ("onnx", "executorch"):
        group = [c for c in cases if c.target == target]
        load = time_cases(group, rounds, 3, threads)
        table = Table(title=f"token_softmax candidates on {target} ({CHANNELS}x{SIZE}x{SIZE} map, T={TOKENS}; "
                            f"{threads} thread(s), load {load['mean']:.1f})")
        for col in ("candidate", "median ms", "min ms", "XNNPACK subgraphs / portable ops"):
            table.add_column(col)
        for c in group:
            details = c.manifest.get("target_details", {})
            extra = f"{details['delegate_subgraphs']} / {details['portable_ops'] or '-'}" if details else "-"
            table.add_row(c.model, f"{c.median:.3f}", f"{min(c.samples_ms):.3f}", extra)
            results[f"{target}/{c.model}"] = {"median_ms": c.median, "min_ms": min(c.samples_ms), **details}
        Console().print(table)
    (out / "token_softmax.json").write_text(json.dumps(results, indent=2))
    return results
