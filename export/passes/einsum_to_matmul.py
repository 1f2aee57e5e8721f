"""Spell a two-operand einsum that is a batched matrix product as ``permute -> matmul -> permute``.

Researchers write attention as ``torch.einsum("bnhc,bmhc->bhnm", q, k)``;
``torch.export`` keeps it as one ``aten.einsum`` node, which ONNX exports as
an ``Einsum`` op and which the attention rules (they read ``matmul(A, B)``)
do not see. The einsum's indices fall into four groups::

    batch     in A, in B, in the output        (b, h)
    row       in A and the output only         (n)
    contract  in A and B, not in the output    (c)
    column    in B and the output only         (m)

and with one row, one contracted and one column index the einsum *is* a
matmul over the batch indices::

    out[batch, row, col] = sum_k A[batch, row, k] B[batch, k, col]
    einsum(A, B) = permute(matmul(permute(A, batch+row+contract),
                                  permute(B, batch+contract+col)),
                           output order)

Only permutes (free views) are added; no value changes, so outputs are
equal bit for bit up to the order of the sum. Refused, with the reason: more
or fewer than two operands, an ellipsis, an index repeated within an operand
(a diagonal), an index summed within one operand, a row, contracted or
column group of more or fewer than one index (that would need a reshape, and
is no attention), or batch sizes that differ (broadcasting).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.fx

from .base import GraphPass, PassResult, call_nodes, check
from .builder import NodeBuilder
from .ops import MATMUL, val

aten = torch.ops.aten
EINSUM = aten.einsum.default


@dataclass
class Product:
    einsum: torch.fx.Node
    a: torch.fx.Node
    b: torch.fx.Node
    a_order: list[int]      # permute A to batch + row + contract
    b_order: list[int]      # permute B to batch + contract + column
    out_order: list[int]    # permute the matmul's batch + row + column to the einsum's output


def parse(equation: str) -> tuple[list[str], str]:
    """``"ab,bc->ac"`` -> (["ab", "bc"], "ac"); refuses what is not a plain two-operand form."""
    equation = equation.replace(" ", "")
    check("->" in equation, f"einsum '{equation}' has an implicit output")
    check("." not in equation, f"einsum '{equation}' has an ellipsis")
    inputs, output = equation.split("->")
    operands = inputs.split(",")
    check(len(operands) == 2, f"einsum '{equation}' has {len(operands)} operand(s), not 2")
    for term in (*operands, output):
        check(len(set(term)) == len(term), f"einsum '{equation}' repeats an index within one term")
    return operands, output


def plan(equation: str) -> tuple[list[int], list[int], list[int]]:
    """The three permutations of the module docstring, for ``equation``."""
    (a, b), out = parse(equation)
    batch = [i for i in out if i in a and i in b]
    rows = [i for i in out if i in a and i not in b]
    cols = [i for i in out if i in b and i not in a]
    contract = [i for i in a if i in b and i not in out]
    summed = [i for i in a + b if i not in out and not (i in a and i in b)]
    check(not summed, f"einsum '{equation}' sums index '{summed[0] if summed else ''}' within one operand")
    check(len(rows) == 1 and len(cols) == 1 and len(contract) == 1,
          f"einsum '{equation}' is not one matrix product per batch (rows {''.join(rows) or '-'}, "
          f"contracted {''.join(contract) or '-'}, columns {''.join(cols) or '-'})")
    a_order = [a.index(i) for i in batch + rows + contract]
    b_order = [b.index(i) for i in batch + contract + cols]
    product = batch + rows + cols
    out_order = [product.index(i) for i in out]
    return a_order, b_order, out_order


class EinsumToMatmulPass(GraphPass):
    id = "einsum_to_matmul"
    after = ()
    description = "a two-operand einsum that is a batched matrix product becomes permute -> matmul -> permute"

    def candidates(self, gm):
        return call_nodes(gm, EINSUM)

    def match(self, gm, node: torch.fx.Node) -> Product:
        equation, operands = node.args[0], node.args[1]
        check(isinstance(equation, str), "the equation is not a constant string")
        check(len(operands) == 2 and all(isinstance(o, torch.fx.Node) for o in operands),
              f"einsum '{equation}' does not read two tensors")
        a_order, b_order, out_order = plan(equation)
        a, b = operands
        va, vb = val(a), val(b)
        check(va is not None and vb is not None, "an operand has no shape information")
        batch = len(a_order) - 2
        a_batch = [va.shape[d] for d in a_order[:batch]]
        b_batch = [vb.shape[d] for d in b_order[:batch]]
        check(all(x == y for x, y in zip(a_batch, b_batch)), f"einsum '{equation}' broadcasts a batch index")
        return Product(node, a, b, a_order, b_order, out_order)

    def rewrite(self, gm, site: Product, result: PassResult) -> None:
        emit = NodeBuilder(gm, site.einsum)
        a = _permuted(emit, site.a, site.a_order)
        b = _permuted(emit, site.b, site.b_order)
        product = emit(MATMUL, a, b)
        out = _permuted(emit, product, site.out_order, like=site.einsum)
        site.einsum.replace_all_uses_with(out)
        gm.graph.erase_node(site.einsum)


def _permuted(emit: NodeBuilder, node: torch.fx.Node, order: list[int], like=None) -> torch.fx.Node:
    if order == sorted(order):
        return node
    return emit(aten.permute.default, node, order, like=like)
