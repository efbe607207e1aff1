#!/usr/bin/env bash
# The showcase end to end: four of its cells (cnn, mnist5k, beta = 0.9, evaluated once an epoch)
# run as its sweep runs them, PAR at a time with THREADS torch threads each, whole processes timed.
#
#   bash benchmarks/showcase_e2e.sh LABEL [CHECKOUT]      (environment: ROUNDS=60 PAR=2 THREADS=1 EXTRA=""
#                                                          BYZLAB_COMPILE=1)
#
# CHECKOUT (default: this one) is the byzlab source tree to run, e.g. an older commit checked out with
# `git worktree add ../base <commit>`: its package is imported from there, also when this checkout is
# installed in editable mode.  EXTRA is added to every run (e.g. EXTRA="--precision bf16").  Prints one
# line per run (wall and user seconds, the run's own summary) and the batch's wall seconds.  Alternate
# the arms (base, now, base, now, ...) and compare batches pair by pair; batches of two round counts
# (ROUNDS=60 and ROUNDS=20) differ by rounds and evaluations only, without the processes' start-up.
set -euo pipefail
label=${1:?usage: showcase_e2e.sh LABEL [CHECKOUT]}
here=$(cd "$(dirname "$0")" && pwd)
checkout=$(cd "${2:-$here/..}" && pwd)
rounds=${ROUNDS:-60}; par=${PAR:-2}; threads=${THREADS:-1}
# a sweep's jobs compile the rules' comparator networks (byzlab.core.kernels.compiling); so do these runs
# (each process pays its first compilation once, which the 60 - 20 rounds difference leaves out)
export BYZLAB_COMPILE=${BYZLAB_COMPILE:-1}
out=$(mktemp -d)
cells=("--aggregator cc --tau 1.0 --attack rop" "--aggregator tm --attack alie"
       "--aggregator rfa --attack alie --z 1.2" "--aggregator cc --tau 0.1 --attack none")
# --threads exists from the commit that made a run's thread count part of its config on
has_threads=$(grep -q '"threads"' "$checkout/byzlab/core/config.py" 2>/dev/null && echo 1 || true)
thread_opt=(); [ -n "$has_threads" ] && thread_opt=(--threads "$threads")

t0=$(date +%s.%N)
for ((start = 0; start < ${#cells[@]}; start += par)); do
  pids=()
  for ((i = start; i < start + par && i < ${#cells[@]}; i++)); do
    (
      # shellcheck disable=SC2086  # a cell's options are words
      OMP_NUM_THREADS=$threads /usr/bin/time -f "$label cell$i %e s wall %U s user" \
        python "$here/checkout_cli.py" "$checkout" run --dataset mnist5k --model cnn --k 25 --k-m 5 --b 32 --epochs 60 \
        --lr 0.1 --lr-decay 0.1 --lr-decay-at 1.0 --beta 0.9 ${cells[$i]} "${thread_opt[@]}" ${EXTRA:-} \
        --max-rounds "$rounds" --out "$out/cell$i" > "$out/cell$i.log" 2>&1 || { cat "$out/cell$i.log"; exit 1; }
      tail -n 1 "$out/cell$i.log"
      grep -o 'test accuracy.*' "$out/cell$i.log" | tail -n 1
    ) &
    pids+=($!)
  done
  wait "${pids[@]}"
done
echo "$label total $(python -c "import sys; print(f'{float(sys.argv[2]) - float(sys.argv[1]):.1f}')" "$t0" "$(date +%s.%N)") s"
rm -rf "$out"
