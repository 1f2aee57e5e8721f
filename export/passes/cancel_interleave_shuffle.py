"""Drop a channel shuffle that undoes the depthwise split's interleave: both become one concat.

Mobile-Former-26M's release shuffles the channels right after each widening
depthwise conv, in ``C`` groups (one per input channel). After
``split_depthwise_multiplier`` that conv is ``m`` plain depthwise convs
``y_j`` and an interleave, so the graph permutes the channels twice::

    y = stack((y_0, ..., y_{m-1}), 2).flatten(1, 2)      # channel c m + j  = y_j[c]
    s = y.unflatten(1, (C, m)).transpose(1, 2).flatten(1, 2)
                                                        # channel j C + c  = y[c m + j] = y_j[c]
      = cat((y_0, ..., y_{m-1}), 1)

One concatenation replaces the interleave's copy and the shuffle's copy.
Activations between the two stay, on the concatenation (the stem's ReLU6:
``f(y)`` shuffled is ``f`` of ``y`` shuffled). Only a shuffle with exactly
these groups is the pattern; any other leaves the graph as it is.
"""

from __future__ import annotations

import torch
import torch.fx

from .base import GraphPass, PassResult
from .builder import NodeBuilder
from .channel_interleave import interleave_pieces, interleaves, undoing_shuffle

aten = torch.ops.aten


class CancelInterleaveShufflePass(GraphPass):
    id = "cancel_interleave_shuffle"
    after = ("split_depthwise_multiplier",)
    description = "channel interleave followed by the shuffle that undoes it -> one concat"

    def start(self, gm) -> dict:
        return {"shuffles_cancelled": 0}

    def candidates(self, gm):
        return interleaves(gm)

    def match(self, gm, interleave: torch.fx.Node) -> tuple | None:
        pieces = interleave_pieces(interleave)
        shuffle = undoing_shuffle(interleave, pieces)
        return None if shuffle is None else (interleave, pieces, shuffle)

    def rewrite(self, gm, site, result: PassResult) -> None:
        interleave, pieces, shuffle = site
        concat = NodeBuilder(gm, interleave)(aten.cat.default, pieces, 1, like=interleave)
        interleave.replace_all_uses_with(concat)
        shuffled = shuffle.args[0].args[0].args[0]  # what the shuffle read: now in concat order already
        shuffle.replace_all_uses_with(shuffled)
        result.details["shuffles_cancelled"] += 1
