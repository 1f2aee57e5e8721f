"""Node provenance shared, not deep-copied, while ExecuTorch lowers a program.

Every pass of ``to_edge_transform_and_lower`` (decompositions, the edge
passes, XNNPACK's own passes over each delegated subgraph) builds each new
node's ``meta["from_node"]`` with :class:`torch.fx.traceback.NodeSource`,
which deep-copies the provenance chain of the node it came from. The chains
grow by a level per pass, so the copies grow with the square of the pass
count: lowering Mobile-Former-294M spent about a quarter of its time there
(126 s -> 100 s for the lowering alone on this 2-core host, 2026-12-07).

Provenance is debugging metadata: once written, no pass changes a
``NodeSource`` (they append to a node's own ``meta["from_node"]`` list, which
stays a fresh list here), so sharing the older links is safe. The artifact is
byte-for-byte the same. An export that asks for an ETRecord keeps the
deep copies: ExecuTorch's devtools read provenance back from it.
"""

from __future__ import annotations

from contextlib import contextmanager

from torch.fx import traceback as fx_traceback


@contextmanager
def shared_provenance():
    """Within the block, a new ``NodeSource`` shares its ancestors' provenance links instead of copying them."""
    original = fx_traceback.NodeSource.__init__

    def init(self, node, pass_name: str = "", action=None) -> None:
        chain = node.meta.get("from_node") if node is not None else None
        if chain is None:
            original(self, node, pass_name, action)
            return
        node.meta["from_node"] = []  # nothing for the original to copy
        try:
            original(self, node, pass_name, action)
        finally:
            node.meta["from_node"] = chain
        self.from_node = list(chain)

    fx_traceback.NodeSource.__init__ = init
    try:
        yield
    finally:
        fx_traceback.NodeSource.__init__ = original
