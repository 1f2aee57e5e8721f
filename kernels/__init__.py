"""Fused ops the graph passes rewrite into, each with a lowering per target.

* :mod:`.token_softmax`: ``mobexport::token_softmax``, softmax over the token
  axis of Mobile<-Former's [N, T, P] scores;
* :mod:`.xnnpack_decompositions`: ATen ops the XNNPACK delegate lacks
  (layer norm, select, split), spelled with ops it takes;
* :mod:`.lowering`: each fused op's forms, :func:`decomposition_table` and :func:`prepare_fused_ops`.
"""

from . import token_softmax
from .lowering import FUSED_OPS, decomposition_table, onnx_translation_table, prepare_fused_ops

__all__ = ["FUSED_OPS", "decomposition_table", "onnx_translation_table", "prepare_fused_ops", "token_softmax"]
