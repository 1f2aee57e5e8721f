"""What one attention rule is: a form it claims, a match that explains a refusal, a rewrite."""

from __future__ import annotations

from abc import ABC, abstractmethod

import torch

from .operands import Frame


class AttentionRule(ABC):
    """One form of attention and its batched-matmul rewrite; ``name`` counts its rewrites in the report."""

    name: str

    @abstractmethod
    def claims(self, frame: Frame) -> bool:
        """Whether the operands look like this form (a feature map where the rule reads one)."""

    @abstractmethod
    def match(self, frame: Frame):
        """The site to rewrite, or :class:`~..base.Mismatch` with the reason."""

    @abstractmethod
    def rewrite(self, gm: torch.fx.GraphModule, site) -> dict:
        """Rewrite ``site``; returns counts for the pass's report (may be empty)."""
