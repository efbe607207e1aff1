"""What "same config and seed, same numbers" means, and the provenance a result records.

Same numbers hold on one machine, one torch build and one thread count: a run
repeated in the same process is bit-for-bit identical.  Another thread count may
change the order of floating-point sums, so a run records the thread count its
rounds ran at (with the engine, precision, torch build and CPU) in its metadata
and in the results table; ``byzlab run`` and the sweep both default to one thread.
"""
from __future__ import annotations

import platform

import pytest
import torch

import byzlab
from byzlab import RunConfig, Simulation
from byzlab.core.data import load_dataset
from byzlab.core.errors import ConfigError
from byzlab.running.tables import results_table

QUICK = dict(dataset="digits", k=8, k_m=2, b=8, epochs=1, max_rounds=6, seed=3, attack="alie", aggregator="tm")


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits")


def _cpu_model_from_the_system() -> str:
    """Read independently of byzlab: the first 'model name' of /proc/cpuinfo, else platform's."""
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def test_the_same_config_twice_in_one_process_gives_identical_numbers(digits):
    a, b = Simulation(RunConfig.make(**QUICK), dataset=digits), Simulation(RunConfig.make(**QUICK), dataset=digits)
    a.advance()
    b.advance()
    assert a.t == b.t == 6
    assert torch.equal(a.theta, b.theta) and torch.equal(a.X, b.X)
    assert torch.equal(a.round_loss, b.round_loss)


def test_a_run_applies_and_records_its_thread_count(digits):
    saved = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        one = byzlab.run(RunConfig.make(**QUICK), dataset=digits)  # default: 1 thread, as the sweep's runs
        assert torch.get_num_threads() == 2  # the process's setting is restored after the run
        two = byzlab.run(RunConfig.make(**QUICK, threads=2), dataset=digits)
    finally:
        torch.set_num_threads(saved)
    assert RunConfig().threads == 1
    assert one.meta["threads"] == 1 and two.meta["threads"] == 2
    assert one.key == two.key  # the thread count changes rounding, not the run's identity
    table = results_table([one, two])
    assert list(table["threads"]) == [1, 2]
    for col, want in (("torch", torch.__version__), ("cpu", _cpu_model_from_the_system()),
                      ("precision", "fp32"), ("engine", "fused")):
        assert list(table[col]) == [want, want], col
    assert one.meta["torch_build"].startswith(torch.__version__)


def test_a_run_resumed_at_another_thread_count_records_both(digits, tmp_path):
    cfg = RunConfig.make(**QUICK)
    sim = Simulation(cfg, dataset=digits)
    saved = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        sim.advance(3)
        sim.save_checkpoint(tmp_path / "ckpt.pt")
        later = Simulation(cfg, dataset=digits)
        later.load_checkpoint(tmp_path / "ckpt.pt")
        torch.set_num_threads(2)
        later.advance()
    finally:
        torch.set_num_threads(saved)
    assert later.result().meta["threads"] == "1,2"


@pytest.mark.parametrize("bad", [0, -1, 1.5, "2"])
def test_threads_must_be_a_positive_integer(bad):
    with pytest.raises(ConfigError, match=r"^threads: must be an integer >= 1, got "):
        RunConfig.make(threads=bad)
