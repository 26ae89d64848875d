from unlearn_bench.numerics import pin_portable_cpu_numerics

pin_portable_cpu_numerics()  # before any kernel runs: see numerics.py
