"""Forget-set transforms a malicious forget request can apply."""

from unlearn_bench.attacks.stealthy import StealthyAttack, token_insertion_rate

__all__ = ["StealthyAttack", "token_insertion_rate"]
