"""The ``byzlab`` command of a given source tree: ``python benchmarks/checkout_cli.py CHECKOUT ARGS...``.

The timing scripts (``showcase_e2e.sh``, ``showcase_sweep.sh``) run an older commit checked out with
``git worktree add ../base <commit>`` beside this one: its package is imported from CHECKOUT, also when
this checkout is installed in editable mode (the editable finder is left out).
"""
import sys

if __name__ == "__main__":  # not in a sweep's worker processes, which import this module as their __main__
    sys.meta_path[:] = [f for f in sys.meta_path if "editable" not in repr(f).lower()]
    sys.path.insert(0, sys.argv.pop(1))
    import byzlab.cli

    sys.argv[0] = "byzlab"
    sys.exit(byzlab.cli.main())
