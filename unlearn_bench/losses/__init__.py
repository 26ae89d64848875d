"""Loss terms and their composition into an unlearning method."""

from unlearn_bench.losses.method import ComposedLoss, ForwardCache
from unlearn_bench.losses.terms import NLL, LossTerm, NegativeNLL, sequence_nll

__all__ = ["ComposedLoss", "ForwardCache", "LossTerm", "NLL", "NegativeNLL", "sequence_nll"]
