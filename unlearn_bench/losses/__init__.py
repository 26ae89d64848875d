"""Loss terms and their composition into an unlearning method."""

from unlearn_bench.losses.method import ComposedLoss, ForwardCache
from unlearn_bench.losses.preference import DPO, NPO, SimNPO
from unlearn_bench.losses.rmu import RMUMisdirect, RMURetain
from unlearn_bench.losses.terms import KL, NLL, LossTerm, NegativeNLL, answer_nll, sequence_nll

__all__ = [
    "ComposedLoss",
    "DPO",
    "ForwardCache",
    "KL",
    "LossTerm",
    "NLL",
    "NegativeNLL",
    "NPO",
    "RMUMisdirect",
    "RMURetain",
    "SimNPO",
    "answer_nll",
    "sequence_nll",
]
