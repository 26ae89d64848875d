"""CPU numerics pinned to one instruction-set branch, so that the embedded default fine-tunes the
same model on any x86 CPU.

MKL and PyTorch's own CPU kernels pick a code path by the CPU they run on (AVX2, AVX512, ...), and
the paths round differently: the same command built different fine-tuned models on two machines,
with different conclusions downstream. Pinning both to AVX2 (MKL's conditional numerical
reproducibility, ``MKL_CBWR``; ATen's ``ATEN_CPU_CAPABILITY``) gave a byte-identical model on an
Intel AVX2 and an AMD AVX512 machine (``benchmarks/cpu_numerics.py``). Both are read when the
libraries first run a kernel, so they are set when the package is imported, as defaults: a
variable the user exported wins, and ``UNLEARN_BENCH_CPU_NUMERICS=native`` sets none (fastest).
GPU kernels are not affected.
"""

from __future__ import annotations

import os

PORTABLE = {"MKL_CBWR": "AVX2", "ATEN_CPU_CAPABILITY": "avx2"}
SWITCH = "UNLEARN_BENCH_CPU_NUMERICS"  # "portable" (default) or "native"


def pin_portable_cpu_numerics() -> None:
    """Default the instruction-set variables to :data:`PORTABLE` unless ``SWITCH`` is ``native``."""
    mode = os.environ.get(SWITCH, "portable")
    if mode not in ("portable", "native"):
        raise ValueError(f"{SWITCH}={mode!r}: use 'portable' (the same numbers on any x86 CPU) or 'native'")
    if mode == "portable":
        for name, value in PORTABLE.items():
            os.environ.setdefault(name, value)


def cpu_numerics() -> dict:
    """What decides CPU rounding in this process: the kernel branch ATen actually uses, the
    thread count, and the variables above as set."""
    import torch

    return {
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "threads": torch.get_num_threads(),
        **{name: os.environ.get(name) for name in (SWITCH, *PORTABLE)},
    }
