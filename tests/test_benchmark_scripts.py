"""The benchmark scripts refuse bad input in one line (exit 2, no traceback) before measuring anything."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize("script,args,message", [
    ("rule_calls.py", ["--rule", "nope"], "--rule: unknown aggregator 'nope'; choose from mean, "),
    ("rule_calls.py", ["--rule", "dnc", "--d", "0"], "--d: must be >= 1, got 0"),
    ("rule_calls.py", ["--rule", "dnc", "--f", "25"], "--f: must be in 0 .. k - 1 = 24, got 25"),
    ("mlp_ideal.py", ["--reps", "0"], "--reps: must be >= 1, got 0"),
    ("round_split.py", ["--eval-every", "0"], "--eval-every: must be >= 1, got 0"),
    ("round_split.py", ["--warmup", "-1"], "--warmup: must be >= 0, got -1"),
    ("op_split.py", ["--rounds", "0"], "--rounds: must be >= 1, got 0"),
])
def test_bad_input_is_a_one_line_error(script, args, message):
    r = subprocess.run([sys.executable, str(ROOT / "benchmarks" / script), *args], cwd=ROOT,
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 2, r.stderr
    assert "Traceback" not in r.stderr
    assert r.stderr.splitlines()[-1].startswith(f"{script}: error: {message}"), r.stderr
