"""Loss terms and their composition into an unlearning method."""

from unlearn_bench.losses.method import ComposedLoss, ForwardCache
from unlearn_bench.losses.terms import NLL, NPO, LossTerm, NegativeNLL, answer_nll, sequence_nll

__all__ = ["ComposedLoss", "ForwardCache", "LossTerm", "NLL", "NegativeNLL", "NPO", "answer_nll", "sequence_nll"]
