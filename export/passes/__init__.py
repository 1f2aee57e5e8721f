"""Graph rewrites over torch.export programs: one pass per file."""

from .base import GraphPass, PassResult, Skip, check
from .manager import PassVerificationError, rewrite, run_passes
from .registry import available_passes, default_pipeline, register_pass, resolve

__all__ = ["GraphPass", "PassResult", "PassVerificationError", "Skip", "available_passes", "check",
           "default_pipeline", "register_pass", "resolve", "rewrite", "run_passes"]
