"""Fused ops the graph passes rewrite into, each with a lowering per target.

* :mod:`.token_softmax`: ``mobexport::token_softmax``, softmax over the token
  axis of Mobile<-Former's [N, T, P] scores;
* :mod:`.xnnpack_decompositions`: ATen ops the XNNPACK delegate lacks
  (layer norm, select, split), spelled with ops it takes;
* :mod:`.lowering`: the per-target tables and :func:`prepare_for_target`.
"""

from . import token_softmax
from .lowering import FUSED_OPS, decompositions, onnx_translation_table, prepare_for_target

__all__ = ["FUSED_OPS", "decompositions", "onnx_translation_table", "prepare_for_target", "token_softmax"]
