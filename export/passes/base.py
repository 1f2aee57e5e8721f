"""What a graph pass is and what it reports.

Passes rewrite the ATen graph of a ``torch.export`` program, so every target
benefits. They work on the program's *unlifted* form (``program.module()``: a
``GraphModule`` whose parameters are ``get_attr`` attributes), which makes
folding constants a matter of writing new attributes; the pass manager
re-exports the rewritten module into a program with the same dynamic shapes.

Each pass splits its work the onnxscript way: find candidate sites
(*pattern*), decide whether a site really matches (*check*, which explains a
refusal in words), and *rewrite*. Ops are referred to by ``torch.ops.aten.*``
objects, never by strings. Numerical equivalence is checked once, by the
manager's verify mode and the tests, not inside each pass.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import asdict, dataclass, field

import torch
import torch.fx


@dataclass(frozen=True)
class Skip:
    """A candidate site a pass did not rewrite, and why."""

    site: str
    reason: str


@dataclass
class PassResult:
    """The report of one pass over one graph."""

    pass_id: str
    rewrites: int = 0
    skipped: list[Skip] = field(default_factory=list)
    details: dict = field(default_factory=dict)

    @property
    def changed(self) -> bool:
        return self.rewrites > 0

    def skip(self, node: torch.fx.Node | str, reason: str) -> None:
        self.skipped.append(Skip(node if isinstance(node, str) else node.name, reason))

    def to_dict(self) -> dict:
        d = asdict(self)
        d["id"] = d.pop("pass_id")
        d["changed"] = self.changed
        return d


class Mismatch(Exception):
    """Raised by a check to refuse a candidate site; the message is the reason."""


def check(condition: bool, reason: str) -> None:
    """Refuse the current site with ``reason`` unless ``condition`` holds."""
    if not condition:
        raise Mismatch(reason)


class GraphPass(ABC):
    """One rewrite. Subclasses set ``id`` (== file name) and ``after`` (ids that must run first)."""

    id: str
    after: tuple[str, ...] = ()
    description: str = ""

    @abstractmethod
    def run(self, gm: torch.fx.GraphModule) -> PassResult:
        """Rewrite ``gm`` in place and report what was done."""

    def __repr__(self) -> str:
        return f"<pass {self.id}>"


def finalize(gm: torch.fx.GraphModule) -> None:
    """Drop dead nodes and unused attributes, check the graph, regenerate code."""
    gm.graph.eliminate_dead_code()
    gm.delete_all_unused_submodules()
    drop_unread_attributes(gm)
    gm.graph.lint()
    gm.recompile()


def drop_unread_attributes(gm: torch.fx.GraphModule) -> None:
    """Delete parameters and buffers no ``get_attr`` reads any more.

    A fold replaces a weight with a new constant; the old one would otherwise
    stay in the re-exported program (and the artifact), e.g. the first fold
    of a conv that has a BN on each side. Modules the graph calls keep theirs.
    """
    read = {str(n.target) for n in gm.graph.nodes if n.op == "get_attr"}
    called = [str(n.target) + "." for n in gm.graph.nodes if n.op == "call_module"]
    for name, _ in [*gm.named_parameters(), *gm.named_buffers()]:
        if name not in read and not any(name.startswith(prefix) for prefix in called):
            owner, _, attr = name.rpartition(".")
            delattr(gm.get_submodule(owner) if owner else gm, attr)


def attr_value(gm: torch.fx.GraphModule, node: torch.fx.Node) -> torch.Tensor | None:
    """The tensor behind a ``get_attr`` node, else ``None``."""
    if not isinstance(node, torch.fx.Node) or node.op != "get_attr":
        return None
    value = gm
    for part in str(node.target).split("."):
        value = getattr(value, part)
    return value if isinstance(value, torch.Tensor) else None


def add_constant(gm: torch.fx.GraphModule, anchor: torch.fx.Node, stem: str, value: torch.Tensor) -> torch.fx.Node:
    """Register ``value`` as a new parameter of ``gm`` and return a ``get_attr`` node before ``anchor``."""
    name, i = f"_mobexport_{stem}", 0
    while hasattr(gm, f"{name}_{i}"):
        i += 1
    name = f"{name}_{i}"
    gm.register_parameter(name, torch.nn.Parameter(value.detach().clone(), requires_grad=False))
    with gm.graph.inserting_before(anchor):
        return gm.graph.get_attr(name)
