"""Milliseconds a call of one aggregator on a random (k, d) matrix, in one process: before/after a change to a rule.

    python benchmarks/rule_calls.py --rule dnc                          # k = 25, f = 5, d = 431,080 (the cnn)
    python benchmarks/rule_calls.py --rule dnc --checkout ../base       # the same, importing byzlab from ../base

``--checkout`` imports the byzlab package of another source tree (an older commit checked out with
``git worktree add``), also when this one is installed in editable mode.  Run the two arms
alternately and compare them pair by pair; the rule's draws come from a seeded CPU generator, as in a run.
"""
from __future__ import annotations

import argparse
import sys


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rule", required=True, help="a registered aggregator (byzlab list)")
    ap.add_argument("--k", type=int, default=25)
    ap.add_argument("--f", type=int, default=5)
    ap.add_argument("--d", type=int, default=431_080)
    ap.add_argument("--calls", type=int, default=40, help="calls per timing")
    ap.add_argument("--repeats", type=int, default=5, help="timings (the median is printed too)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--checkout", default=None, help="source tree to import byzlab from")
    args = ap.parse_args()
    for name in ("k", "d", "calls", "repeats", "threads"):
        if getattr(args, name) < 1:
            ap.error(f"--{name}: must be >= 1, got {getattr(args, name)}")
    if not 0 <= args.f < args.k:
        ap.error(f"--f: must be in 0 .. k - 1 = {args.k - 1}, got {args.f}")
    if args.checkout:
        sys.meta_path[:] = [f for f in sys.meta_path if "editable" not in repr(f).lower()]
        sys.path.insert(0, args.checkout)

    import torch
    from torch.utils.benchmark import Timer

    from byzlab.core.registry import AGGREGATORS, RoundContext

    torch.set_num_threads(args.threads)
    if args.rule not in AGGREGATORS:
        ap.error(f"--rule: unknown aggregator {args.rule!r}; choose from {', '.join(AGGREGATORS)}")
    rule = AGGREGATORS[args.rule]
    x = 1e-2 * torch.randn(args.k, args.d, generator=torch.Generator().manual_seed(0)) + 1e-3
    prev = x[: args.k - args.f].mean(0)
    # the rule keeps its own state across the timed calls, as in a run; its draws from a CPU generator
    ctx = RoundContext(t=2, k=args.k, k_m=args.f, f=args.f, lr=0.1, prev_aggregate=prev, center=prev,
                       generator=torch.Generator().manual_seed(1), server_update=prev)
    fn = lambda: rule(x, rule.params, ctx)  # noqa: E731
    fn()
    times = sorted(1e3 * Timer("fn()", globals={"fn": fn}).timeit(args.calls).median for _ in range(args.repeats))
    source = f"byzlab of {args.checkout}" if args.checkout else "this checkout"
    print(f"{args.rule} at k = {args.k}, f = {args.f}, d = {args.d:,} ({source}), "
          f"{args.threads} thread(s): ms a call {times[0]:.2f} / {times[len(times) // 2]:.2f} / {times[-1]:.2f} "
          f"(min / median / max of {args.repeats} timings of {args.calls} calls)")


if __name__ == "__main__":
    main()
