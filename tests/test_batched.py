"""Batched runs give each run the numbers it gives alone."""
import pandas as pd
import pytest
import torch

import byzlab
from byzlab import RunConfig
from byzlab.core.batched import BatchedSimulation, batch_key, run_batched
from byzlab.core.data import Dataset, load_dataset

BASE = dict(dataset="digits", k=8, k_m=2, b=16, epochs=3)


def _frames_equal(a, b):
    pd.testing.assert_frame_equal(a.history.drop(columns="wall_time"), b.history.drop(columns="wall_time"),
                                  check_exact=False, atol=1e-4, rtol=1e-4)


def test_batched_equals_individual_runs():
    data = load_dataset("digits")
    cfgs = [
        RunConfig.make(**BASE, attack="rop", aggregator="cc", tau=1.0, beta=0.0, seed=0),
        RunConfig.make(**BASE, attack="alie", z=1.0, aggregator="tm", beta=0.9, seed=1),
        RunConfig.make(**BASE, attack="ipm", aggregator="rfa", beta=0.99, seed=2, partition="dirichlet"),
    ]
    assert len({batch_key(c) for c in cfgs}) == 1
    batched = run_batched(cfgs, dataset=data)
    for cfg, res in zip(cfgs, batched):
        alone = byzlab.run(cfg.replace(engine="vmap"), dataset=data)
        assert res.config == cfg
        _frames_equal(alone, res)
        pd.testing.assert_frame_equal(alone.rounds, res.rounds, check_exact=False, atol=1e-4, rtol=1e-3)


def test_batched_batchnorm_runs_match():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(160, 3, 32, 32, generator=g)
    y = torch.randint(0, 10, (160,), generator=g)
    data = Dataset("synthetic", x, y, x[:20], y[:20], 10, False, "resnet20")
    cfgs = [RunConfig.make(dataset="digits", model="resnet20", k=4, k_m=1, b=4, epochs=1, max_rounds=3,
                           attack=a, aggregator="cm", seed=s, diagnostics=False)
            for a, s in (("alie", 0), ("rop", 1))]
    sim = BatchedSimulation(cfgs, dataset=data)
    sim.advance()
    for cfg, s in zip(cfgs, sim.sims):
        alone = byzlab.Simulation(cfg.replace(engine="vmap"), dataset=data)
        alone.advance()
        assert torch.allclose(alone.theta, s.theta, atol=1e-4)
        for (n, a), (_, b) in zip(alone.model.named_buffers(), s.model.named_buffers()):
            assert torch.allclose(a.float(), b.float(), atol=1e-4), n


def test_incompatible_runs_are_refused():
    with pytest.raises(byzlab.ConfigError, match="configs: runs in one batch must share"):
        BatchedSimulation([RunConfig.make(**BASE), RunConfig.make(**{**BASE, "b": 8})])
