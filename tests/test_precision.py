"""Mixed precision: a bf16 run learns as well as the fp32 run (CPU autocast; the same code path runs on CUDA)."""
import pytest

import byzlab
from byzlab import RunConfig
from byzlab.core.data import load_dataset

#: accuracy (percentage points) a bf16 run may lose against fp32 on digits after 10 epochs
TOLERANCE = 3.0


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits")


@pytest.mark.parametrize("engine", ["loop", "vmap", "fused"])
def test_bf16_accuracy_matches_fp32(digits, engine):
    cfg = RunConfig.make(dataset="digits", k=10, k_m=2, b=16, epochs=10, seed=0, attack="alie",
                         aggregator="tm", beta=0.9, engine=engine, diagnostics=False)
    fp32 = byzlab.run(cfg, dataset=digits)
    bf16 = byzlab.run(cfg.replace(precision="bf16"), dataset=digits)
    assert fp32.final_accuracy > 80.0
    assert bf16.final_accuracy >= fp32.final_accuracy - TOLERANCE
    # bf16 really ran: the trajectories differ (8-bit mantissa in the forward pass)
    assert not bf16.rounds["train_loss"].equals(fp32.rounds["train_loss"])

