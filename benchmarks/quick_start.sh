#!/usr/bin/env bash
# README's first command from a fresh clone and venv, timed as a new user meets it, in two variants
# one after the other: as README gives it (pip skips compiling to bytecode; the run, with
# PYTHONDONTWRITEBYTECODE unset, caches what it imports) and with pip compiling every installed
# module. With --tests, each venv then gets README's second command's install and times
# `pytest -n 2 tests/test_run.py` (what later commands pay to import; since b35d421 only its
# console, exit-status and reproducibility cells run as processes, so it shows less than before). Prints each variant's seconds,
# the cell's stages (metrics.json `seconds`: `inputs` is the two fine-tunes), its headline digits and the ratio of the totals.
#   benchmarks/quick_start.sh [--tests]      (about 8 minutes; 20 with --tests, on 2 cores)
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
work="$(mktemp -d)"
export PIP_NO_CACHE_DIR=1  # a fresh machine has no pip cache
declare -A TOTAL

first_command() {  # $1: variant (readme | compiled); sets TOTAL[$1], the seconds it took
  local dir="$work/$1" install=() run=(unlearn-bench)
  if [ "$1" = readme ]; then
    install=(--no-compile) run=(env -u PYTHONDONTWRITEBYTECODE unlearn-bench)
  fi
  git clone -q "$repo" "$dir" && cd "$dir"
  python3 -m venv .venv && . .venv/bin/activate && pip install -q --upgrade pip 2> /dev/null
  export UNLEARN_BENCH_CACHE="$dir/cache"
  local start installed end
  start=$(date +%s.%N)
  pip install -q "${install[@]}" torch==2.13.0 -e . -c .ci/constraints.txt 2> /dev/null
  installed=$(date +%s.%N)
  "${run[@]}" hydra.run.dir="$dir/cell" > run.log 2>&1
  end=$(date +%s.%N)
  TOTAL[$1]=$(python -c "print($end - $start)")
  python - "$1" "$start" "$installed" "$end" "$dir/cell/metrics.json" << 'EOF'
import json, sys
name, start, installed, end, path = sys.argv[1], *map(float, sys.argv[2:5]), sys.argv[5]
m = json.load(open(path))
seconds = ", ".join(f"{stage} {value:.0f}" for stage, value in m["seconds"].items())
print(f"{name}: install {installed - start:.0f} s, run {end - installed:.0f} s, total {end - start:.0f} s "
      f"(the cell's stages: {seconds} s); "
      f"unlearn {m['unlearn']:.3f} clean {m['clean_utility']:.3f} trigger {m['trigger_utility']:.3f}")
EOF
  deactivate
}

test_run() {  # $1: variant
  cd "$work/$1" && . .venv/bin/activate
  pip install -q torch==2.13.0 -e ".[dev]" -c .ci/constraints.txt 2> /dev/null
  local start
  start=$(date +%s)
  UNLEARN_BENCH_CACHE='' pytest -q -n 2 tests/test_run.py -p no:cacheprovider | tail -1
  echo "$1: tests/test_run.py $(($(date +%s) - start)) s"
  deactivate
}

first_command readme
first_command compiled
python3 -c "print(f'first command readme/compiled = {${TOTAL[readme]} / ${TOTAL[compiled]}:.2f}')"
if [ "${1:-}" = --tests ]; then
  test_run readme
  test_run compiled
fi
rm -rf "$work"
