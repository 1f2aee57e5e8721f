"""What a graph pass is, the one loop that runs it, and what it reports.

Passes rewrite the ATen graph of a ``torch.export`` program, so every target
benefits. They work on the program's *unlifted* form (``program.module()``: a
``GraphModule`` whose parameters are ``get_attr`` attributes), which makes
folding constants a matter of writing new attributes; the pass manager
re-exports the rewritten module into a program with the same dynamic shapes.

Every pass splits its work the onnxscript way, and :meth:`GraphPass.run` is
the only loop: *candidates* (a cheap filter over the nodes), *match* (decide
whether a candidate really is the pattern: ``None`` when it is not one at
all, :class:`Mismatch` with the reason in words when it is but cannot be
rewritten) and *rewrite*. Numerical equivalence is checked once, by the
manager's verify mode and the tests, not inside each pass.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable
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
    """One rewrite. Subclasses set ``id``, ``after`` (ids that must run first) and ``description``."""

    id: str
    after: tuple[str, ...] = ()
    description: str = ""

    @abstractmethod
    def candidates(self, gm: torch.fx.GraphModule) -> Iterable[torch.fx.Node]:
        """Nodes where the pattern may be rooted, looked at one by one as the graph changes."""

    @abstractmethod
    def match(self, gm: torch.fx.GraphModule, node: torch.fx.Node):
        """What :meth:`rewrite` needs at ``node``; ``None`` if it is not the pattern; :class:`Mismatch` to refuse."""

    @abstractmethod
    def rewrite(self, gm: torch.fx.GraphModule, site, result: PassResult) -> bool | None:
        """Rewrite one matched site; return ``False`` when it turned out to change nothing."""

    def start(self, gm: torch.fx.GraphModule) -> dict:
        """The pass's own counters, before the first site (they end up in ``details``)."""
        return {}

    def finish(self, gm: torch.fx.GraphModule, result: PassResult) -> None:
        """Facts about the rewritten graph, after the last site."""

    def run(self, gm: torch.fx.GraphModule) -> PassResult:
        """Rewrite ``gm`` in place: every candidate is matched, then rewritten or skipped with its reason."""
        result = PassResult(self.id, details=self.start(gm))
        for node in list(self.candidates(gm)):
            if getattr(node, "_erased", False):  # removed by an earlier rewrite
                continue
            try:
                site = self.match(gm, node)
            except Mismatch as why:
                result.skip(node, str(why))
                continue
            if site is not None and self.rewrite(gm, site, result) is not False:
                result.rewrites += 1
        if result.changed:
            finalize(gm)
        self.finish(gm, result)
        return result

    def __repr__(self) -> str:
        return f"<pass {self.id}>"


def call_nodes(gm: torch.fx.GraphModule, targets) -> Iterable[torch.fx.Node]:
    """The graph's call_function nodes of ``targets``, in graph order (a snapshot, safe to rewrite under)."""
    targets = targets if isinstance(targets, tuple) else (targets,)
    return [n for n in gm.graph.nodes if n.op == "call_function" and n.target in targets]


def finalize(gm: torch.fx.GraphModule) -> int:
    """Drop dead nodes and unread attributes, check the graph, regenerate code; returns attributes dropped."""
    gm.graph.eliminate_dead_code()
    gm.delete_all_unused_submodules()
    dropped = drop_unread_attributes(gm)
    gm.graph.lint()
    gm.recompile()
    return dropped


def drop_unread_attributes(gm: torch.fx.GraphModule) -> int:
    """Delete parameters and buffers no ``get_attr`` reads any more; returns how many.

    A fold replaces a weight with a new constant; the old one would otherwise
    stay in the re-exported program (and the artifact), e.g. the first fold
    of a conv that has a BN on each side. Modules the graph calls keep theirs.
    Every name of a shared tensor is looked at, so an unread alias goes too.
    """
    read = {str(n.target) for n in gm.graph.nodes if n.op == "get_attr"}
    called = tuple(str(n.target) + "." for n in gm.graph.nodes if n.op == "call_module")
    names = [name for name, _ in gm.named_parameters(remove_duplicate=False)]
    names += [name for name, _ in gm.named_buffers(remove_duplicate=False)]
    dropped = 0
    for name in dict.fromkeys(names):
        if name in read or (called and name.startswith(called)):
            continue
        owner, _, leaf = name.rpartition(".")
        module = gm.get_submodule(owner) if owner else gm
        for table in (module._parameters, module._buffers):
            if leaf in table:
                del table[leaf]
                dropped += 1
    return dropped
