#!/usr/bin/env bash
# The showcase end to end through `byzlab sweep`: four of its cells x 2 seeds at its full 300 rounds
# (benchmarks/showcase_cells.yaml), two workers with one thread each as the showcase runs, timed as one
# process from start to results table: workers, checkpoints, a sweep job's compilation, evaluations.
#
#   bash benchmarks/showcase_sweep.sh LABEL [CHECKOUT]      (environment: WORKERS=2 THREADS=1 EXTRA="" KEEP="")
#
# CHECKOUT (default: this one) is the byzlab source tree to run, e.g. an older commit checked out with
# `git worktree add ../base <commit>`: its package is imported from there, also when this checkout is
# installed in editable mode.  Every invocation starts from an empty store (nothing is reused).
# Prints the wall and user seconds of the whole sweep and the runs' own median seconds per round.
# Alternate the arms (base, now, base, now) and compare them pair by pair.  KEEP=DIR keeps each
# invocation's results table as DIR/LABEL-<time>.csv (every run's seconds per round and wall seconds).
set -euo pipefail
label=${1:?usage: showcase_sweep.sh LABEL [CHECKOUT]}
here=$(cd "$(dirname "$0")" && pwd)
checkout=$(cd "${2:-$here/..}" && pwd)
workers=${WORKERS:-2}; threads=${THREADS:-1}
out=$(mktemp -d)
# the sweep's worker processes import byzlab afresh: run from the checkout, with it first on PYTHONPATH,
# so that theirs is the checkout's too
export PYTHONPATH="$checkout${PYTHONPATH:+:$PYTHONPATH}"
cd "$checkout"
# shellcheck disable=SC2086  # EXTRA is words
/usr/bin/time -o "$out/time" -f "$label sweep %e s wall" \
  python "$here/checkout_cli.py" "$checkout" sweep --profile "$here/showcase_cells.yaml" --out "$out/sweep" \
  --workers "$workers" --threads "$threads" --no-render ${EXTRA:-} > "$out/log" 2>&1 || { cat "$out/log"; exit 1; }
cat "$out/time"
tr '\r' '\n' < "$out/log" | grep -E '^sweep .* stored' || true
python - "$out/sweep/results.csv" "$label" <<'PY'
import csv, statistics, sys
rows = list(csv.DictReader(open(sys.argv[1])))
spr = [float(r["seconds_per_round"]) for r in rows]
acc = {(r["aggregator"], r["attack"], r["seed"]): r["final_accuracy"] for r in rows}
print(f"{sys.argv[2]} runs {len(rows)}, median s/round {statistics.median(spr):.3f} "
      f"(min {min(spr):.3f}, max {max(spr):.3f}), final accuracies " + ", ".join(f"{k[0]}/{k[1]}/s{k[2]} {v}" for k, v in sorted(acc.items())))
PY
if [ -n "${KEEP:-}" ]; then mkdir -p "$KEEP" && cp "$out/sweep/results.csv" "$KEEP/$label-$(date +%H%M%S).csv"; fi
rm -rf "$out"
