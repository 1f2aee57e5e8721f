"""The rewritten module back into an ``ExportedProgram``, without tracing it again.

Passes run on the program's unlifted module (weights as ``get_attr``
attributes, so a pass reads and writes tensors by name). The result has to
be an ``ExportedProgram`` again for the targets. ``torch.export`` of the
rewritten module would trace every node once more under fake tensors: 3.5 s
for Mobile-Former-294M static and 6.7 s dynamic, on a graph whose every node
already carries its fake value (``meta["val"]``) from the first trace or
from the pass that made it (``builder.py``).

Lifting does what ``torch.export`` would end with, directly on the graph:

- each ``get_attr`` becomes a placeholder named as ``torch.export`` names it
  (``p_`` + the attribute path for a parameter, ``b_`` a buffer, ``c_`` a
  constant), parameters first in the module's order, then buffers, then
  constants, then the user's inputs;
- the graph signature says which placeholder is which weight;
- the shape constraints, the call signature and the IR verifier are the
  original program's.

A program lifted this way exports to byte-identical ONNX (node metadata
aside: lifted nodes keep the model's module names where a re-export would
name an export wrapper). :func:`lift` returns ``None`` for what it does not
handle (a submodule call such as a ``torch.cond`` branch, a non-tensor
attribute, a signature with more than weights, tensor inputs and results),
and the caller re-exports then.
"""

from __future__ import annotations

import copy
import logging
import re

import torch
import torch.fx
from torch.export import ExportedProgram
from torch.export.graph_signature import (
    ExportGraphSignature,
    InputKind,
    InputSpec,
    OutputKind,
    OutputSpec,
    TensorArgument,
)

from .ops import attr_value

log = logging.getLogger(__name__)

WEIGHT_KINDS = (InputKind.PARAMETER, InputKind.BUFFER, InputKind.CONSTANT_TENSOR)
PREFIX = {InputKind.PARAMETER: "p_", InputKind.BUFFER: "b_", InputKind.CONSTANT_TENSOR: "c_"}
INPUT_CHECK = "_guards_fn"   # the unlifted module's check of input shapes; the program keeps them as constraints


class NotLiftable(Exception):
    """Something in the graph that only a re-export handles."""


def lift(gm: torch.fx.GraphModule, original: ExportedProgram) -> ExportedProgram | None:
    """``gm`` (``original.module()``, rewritten) as an ``ExportedProgram``; ``None`` if it cannot be."""
    try:
        _check_signature(original)
        return _lift(gm, original)
    except NotLiftable as why:
        log.debug("re-exporting the rewritten graph: %s", why)
        return None


def _check_signature(original: ExportedProgram) -> None:
    signature = original.graph_signature
    odd_inputs = [s.kind.name for s in signature.input_specs if s.kind not in (*WEIGHT_KINDS, InputKind.USER_INPUT)]
    odd_outputs = [s.kind.name for s in signature.output_specs if s.kind is not OutputKind.USER_OUTPUT]
    if odd_inputs or odd_outputs:
        raise NotLiftable(f"the program has {', '.join(odd_inputs + odd_outputs)}")
    if not all(isinstance(s.arg, TensorArgument) for s in signature.input_specs + signature.output_specs):
        raise NotLiftable("an input or output is not a tensor")


def _kind_of(target: str, parameters: dict, buffers: dict, known: dict) -> InputKind:
    if target in known:   # the original program's word: unlifting registers its constants as buffers
        return known[target]
    if target in parameters:
        return InputKind.PARAMETER
    return InputKind.BUFFER if target in buffers else InputKind.CONSTANT_TENSOR


def _lift(gm: torch.fx.GraphModule, original: ExportedProgram) -> ExportedProgram:
    graph = copy.deepcopy(gm.graph)   # nodes copied, metadata shared: ``gm`` stays as it was if this fails
    for node in list(graph.nodes):
        if node.op == "call_module" and node.target == INPUT_CHECK and not node.users:
            graph.erase_node(node)
        elif node.op == "call_module":
            raise NotLiftable(f"the graph calls submodule '{node.target}'")
    user_inputs = [n for n in graph.nodes if n.op == "placeholder"]
    if not user_inputs or not all(isinstance(n.meta.get("val"), torch.Tensor) for n in user_inputs):
        raise NotLiftable("an input has no fake tensor")
    results = graph.output_node().args[0]
    if not isinstance(results, (tuple, list)) or not all(isinstance(r, torch.fx.Node) for r in results):
        raise NotLiftable("the graph's outputs are not a flat list of tensors")
    fake_mode = user_inputs[0].meta["val"].fake_mode

    parameters = dict(gm.named_parameters(remove_duplicate=False))
    buffers = dict(gm.named_buffers(remove_duplicate=False))
    readers: dict[str, list[torch.fx.Node]] = {}
    for node in graph.nodes:
        if node.op == "get_attr":
            readers.setdefault(node.target, []).append(node)
    values = {target: attr_value(gm, nodes[0]) for target, nodes in readers.items()}
    not_tensors = [target for target, value in values.items() if value is None]
    if not_tensors:
        raise NotLiftable(f"attribute '{not_tensors[0]}' is not a tensor")
    module_order = {target: i for i, target in enumerate([*parameters, *buffers])}
    known = {s.target: s.kind for s in original.graph_signature.input_specs if s.kind in WEIGHT_KINDS}
    kinds = {target: _kind_of(target, parameters, buffers, known) for target in readers}
    ordered = sorted(readers, key=lambda t: (WEIGHT_KINDS.index(kinds[t]), module_order.get(t, len(module_order))))

    persistent = {s.target: s.persistent for s in original.graph_signature.input_specs if s.kind is InputKind.BUFFER}
    input_specs, state_dict, constants = [], {}, {}
    for target in ordered:
        kind, value = kinds[target], values[target]
        with graph.inserting_before(user_inputs[0]):
            placeholder = graph.placeholder(PREFIX[kind] + re.sub(r"[^a-zA-Z0-9]", "_", target))
        fake = readers[target][0].meta.get("val")
        placeholder.meta["val"] = fake if fake is not None else fake_mode.from_tensor(value, static_shapes=True)
        for reader in readers[target]:
            reader.replace_all_uses_with(placeholder)
            graph.erase_node(reader)
        keep = persistent.get(target, True) if kind is InputKind.BUFFER else None
        input_specs.append(InputSpec(kind, TensorArgument(placeholder.name), target=target, persistent=keep))
        if kind is InputKind.CONSTANT_TENSOR or keep is False:
            constants[target] = value
        else:
            state_dict[target] = value
    input_specs += [InputSpec(InputKind.USER_INPUT, TensorArgument(n.name), target=None) for n in user_inputs]
    output_specs = [OutputSpec(OutputKind.USER_OUTPUT, TensorArgument(r.name), target=None) for r in results]
    graph.eliminate_dead_code()
    try:
        return ExportedProgram(
            root=torch.nn.Module(), graph=graph, graph_signature=ExportGraphSignature(input_specs, output_specs),
            state_dict=state_dict, range_constraints=dict(original.range_constraints),
            module_call_graph=copy.deepcopy(original.module_call_graph), example_inputs=original.example_inputs,
            constants=constants, verifiers=original.verifiers,
        )
    except Exception as exc:  # the verifier's word on what the lifted graph breaks
        raise NotLiftable(f"the lifted program does not verify ({str(exc).splitlines()[0][:200]})") from exc
