"""End-to-end behaviour of Algorithm 1 on the embedded digits data set."""
import dataclasses
import math

import pandas as pd
import pytest
import torch

import byzlab
from byzlab import RunConfig, RunResult, Simulation
from byzlab.core.data import load_dataset

QUICK = dict(dataset="digits", k=10, k_m=2, b=16, epochs=4, seed=0)


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits")


def test_end_to_end_run_learns(digits):
    res = byzlab.run(RunConfig.make(**{**QUICK, "epochs": 15}), dataset=digits, attack="none")
    h = res.history
    assert list(h.columns[:5]) == ["round", "epoch", "lr", "test_accuracy", "train_loss"]
    assert len(h) == 15  # one evaluation per epoch by default
    assert h["round"].is_monotonic_increasing
    assert res.final_accuracy > 80.0  # the mlp learns 8x8 digits
    assert h["train_loss"].iloc[-1] < h["train_loss"].iloc[0]
    assert not res.diverged
    assert len(res.rounds) == h["round"].iloc[-1]


def test_rounds_per_epoch_and_lr_decay(digits):
    sim = Simulation(RunConfig.make(**QUICK), dataset=digits)
    n_train = digits.y_train.shape[0]
    assert sim.rounds_per_epoch == (n_train // 10) // 16
    assert sim.total_rounds == 4 * sim.rounds_per_epoch
    rpe = sim.rounds_per_epoch
    assert sim.lr_at(1) == pytest.approx(0.1)
    assert sim.lr_at(3 * rpe) == pytest.approx(0.1)  # epoch 2 (0-based) < floor(0.75 * 4) = 3
    assert sim.lr_at(3 * rpe + 1) == pytest.approx(0.01)


@pytest.mark.parametrize("kw,rounds,evals,n_compute", [
    ({"attack": "alie"}, 24, 3, 8),                               # 1,437 // 10 // 16 = 8 rounds an epoch
    ({"attack": "label_flip", "max_rounds": 11}, 11, 2, 10),     # evaluated at 8 and at the last round
    ({"attack": "none", "eval_every": 3}, 24, 8, 10),
])
def test_schedule_counts_by_hand_and_the_run_follows_it(digits, kw, rounds, evals, n_compute):
    cfg = RunConfig.make(dataset="digits", k=10, k_m=2, b=16, epochs=3, **kw)
    sched = cfg.schedule()  # from the data set's spec, without loading it (what the planner uses)
    assert (sched.rounds_per_epoch, sched.total_rounds, sched.n_evaluations) == (8, rounds, evals)
    assert cfg.n_compute == n_compute
    sim = Simulation(cfg, dataset=digits)
    assert sim.schedule == sched and sim.n_compute == n_compute
    sim.advance()
    assert sim.t == rounds and len(sim.history) == evals


def test_same_seed_same_numbers_other_seed_differs(digits):
    cfg = RunConfig.make(**QUICK, attack="rop", aggregator="cc", tau=1.0)
    a = byzlab.run(cfg, dataset=digits)
    b = byzlab.run(cfg, dataset=digits)
    pd.testing.assert_frame_equal(a.history.drop(columns="wall_time"), b.history.drop(columns="wall_time"))
    pd.testing.assert_frame_equal(a.rounds, b.rounds)
    c = byzlab.run(cfg.replace(seed=1), dataset=digits)
    assert not a.rounds["train_loss"].equals(c.rounds["train_loss"])


def test_algorithm1_round_by_hand(digits):
    """One round of Algorithm 1 recomputed from scratch: momentum, attack, CC, server step."""
    cfg = RunConfig.make(**QUICK, attack="rop", aggregator="cc", tau=0.5, beta=0.9)
    sim = Simulation(cfg, dataset=digits)
    sim.step()
    sim.step()
    theta1, X1, agg1 = sim.theta.clone(), sim.X.clone(), sim.prev_aggregate.clone()
    gen_state = sim.generator.get_state()
    x, y = sim.sample(3)
    sim.generator.set_state(gen_state)
    # honest gradients at θ_{t-1}, one client at a time with a fresh model
    model = sim.model
    grads = []
    for i in range(sim.k_b):
        model.zero_grad()
        xb, yb = x[i * 16:(i + 1) * 16], y[i * 16:(i + 1) * 16]
        torch.nn.functional.cross_entropy(model(xb), yb).backward()
        grads.append(torch.cat([p.grad.reshape(-1) for p in model.parameters()]))
        model.zero_grad(set_to_none=True)
    g = torch.stack(grads)
    m_benign = 0.9 * X1[: sim.k_b] + 0.1 * g
    m_byz = byzlab.core.attacks.rop(m_benign, agg1, z=1.0, lam=0.9)
    stacked = torch.cat([m_benign, m_byz.expand(sim.k_m, -1)])
    agg = byzlab.core.aggregators.centered_clip(stacked, agg1, tau=0.5)
    sim.step()
    assert torch.allclose(sim.X[: sim.k_b], m_benign, atol=1e-6)
    assert torch.allclose(sim.X[sim.k_b:], m_byz.expand(sim.k_m, -1), atol=1e-6)
    assert torch.allclose(sim.prev_aggregate, agg, atol=1e-6)
    assert torch.allclose(sim.theta, theta1 - sim.lr_at(3) * agg, atol=1e-6)


def test_loop_and_vmap_engines_agree(digits):
    cfg = RunConfig.make(**QUICK, attack="label_flip", aggregator="tm", max_rounds=6)
    a = Simulation(cfg.replace(engine="loop"), dataset=digits)
    b = Simulation(cfg.replace(engine="vmap"), dataset=digits)
    a.advance()
    b.advance()
    assert torch.allclose(a.theta, b.theta, atol=1e-5)
    assert torch.allclose(a.X, b.X, atol=1e-5)


def test_batchnorm_server_statistics_are_benign_mean():
    """resnet-style BN: server running stats = mean over benign clients; same in both engines."""
    from byzlab.core.data import Dataset

    g = torch.Generator().manual_seed(0)
    x = torch.randn(400, 3, 32, 32, generator=g)
    y = torch.randint(0, 10, (400,), generator=g)
    data = Dataset("synthetic", x, y, x[:50], y[:50], 10, False, "resnet20")
    cfg = RunConfig.make(dataset="digits", model="resnet20", k=4, k_m=1, b=4, epochs=1, max_rounds=2,
                         attack="alie", aggregator="cm", diagnostics=False)
    sims = [Simulation(cfg.replace(engine=e), dataset=data) for e in ("loop", "vmap")]
    for s in sims:
        s.advance()
    bufs = [dict(s.model.named_buffers()) for s in sims]
    for name, v in bufs[0].items():
        assert torch.allclose(v.float(), bufs[1][name].float(), atol=1e-4), name
    rm = [v for n, v in bufs[0].items() if n.endswith("running_mean")][0]
    assert rm.abs().sum() > 0  # statistics were tracked


def test_label_flip_trains_byzantines_on_flipped_labels(digits):
    sim = Simulation(RunConfig.make(**QUICK, attack="label_flip", aggregator="mean"), dataset=digits)
    assert sim.n_compute == sim.k
    x, y = sim.sample(1)
    sim2 = Simulation(RunConfig.make(**QUICK, attack="bit_flip", aggregator="mean"), dataset=digits)
    x2, y2 = sim2.sample(1)
    assert torch.equal(x, x2)
    nb = sim.k_b * 16
    assert torch.equal(y[:nb], y2[:nb])
    assert torch.equal(y[nb:], 9 - y2[nb:])


def test_bit_flip_sends_negated_honest_momentum(digits):
    sim = Simulation(RunConfig.make(**QUICK, attack="bit_flip", aggregator="mean"), dataset=digits)
    sim.step()
    assert torch.allclose(sim.X[sim.k_b:], -sim.byz_momenta)
    assert sim.byz_momenta.abs().sum() > 0


def test_diagnostics_tables_2_and_3(digits):
    res = byzlab.run(RunConfig.make(**QUICK, attack="rop", aggregator="cc", tau=1.0, beta=0.0), dataset=digits)
    r = res.rounds
    assert math.isnan(r["cos_ref_benign"].iloc[0])  # no reference at t = 1
    assert r["cos_ref_byz"].iloc[1:].between(-1, 1).all()
    assert r["clip_fraction"].between(0, 1).all()
    assert (r["agg_norm"] > 0).all()
    # (z given: with k=10, k_m=2 Eq. 3 gives z_max = Φ⁻¹(0.5) = 0)
    assert byzlab.core.attacks.alie_z_max(10, 2) == 0.0
    alt = byzlab.run(RunConfig.make(**QUICK, attack="alie_alt", z=1.0, aggregator="tm", beta=0.9), dataset=digits)
    assert alt.rounds["cos_delta"].iloc[1:].max() < -0.9  # Eq. 19 flips Δ each round
    alie = byzlab.run(RunConfig.make(**QUICK, attack="alie", z=1.0, aggregator="tm", beta=0.9), dataset=digits)
    assert alie.rounds["cos_delta"].iloc[5:].mean() > 0.5  # Table II: ALIE's Δ_t are aligned


def test_divergence_is_recorded_at_chance_level(digits):
    # the paper's plain behaviour: IPM's 1e30-scaled rows (squared norms overflow float32) reach the mean
    res = byzlab.run(RunConfig.make(**QUICK, attack="ipm", eps=1e30, aggregator="mean", lr=10.0,
                                    non_finite="propagate"), dataset=digits)
    assert res.diverged
    assert res.final_accuracy == pytest.approx(10.0)
    assert res.rounds["non_finite"].iloc[0] == 2  # the 2 Byzantine rows, counted even when propagated


def test_checkpoint_resume_is_bit_identical(digits, tmp_path):
    cfg = RunConfig.make(**QUICK, attack="alie", aggregator="cc")
    full = byzlab.run(cfg, dataset=digits)
    sim = Simulation(cfg, dataset=digits)
    sim.advance(5)
    ckpt = tmp_path / "c.pt"
    sim.save_checkpoint(ckpt)
    resumed = Simulation(cfg, dataset=digits)
    resumed.load_checkpoint(ckpt)
    resumed.advance()
    res = resumed.result()
    pd.testing.assert_frame_equal(full.rounds, res.rounds)
    pd.testing.assert_frame_equal(full.history.drop(columns="wall_time"), res.history.drop(columns="wall_time"))


def test_ctrl_c_mid_round_stops_at_the_round_end_and_the_checkpoint_resumes_bit_for_bit(digits, tmp_path,
                                                                                          monkeypatch):
    import os
    import signal

    import byzlab.running.driver as driver
    from byzlab.core.interrupts import RoundInterrupt

    cfg = RunConfig.make(**QUICK, attack="alie", aggregator="cc")
    full = byzlab.run(cfg, dataset=digits)

    class InterruptedOnce(Simulation):
        def finish_round(self, grads, losses):  # SIGINT arrives half-way through round 7
            if self.t == 6:
                os.kill(os.getpid(), signal.SIGINT)
            super().finish_round(grads, losses)

    ckpt = tmp_path / "c.pt"
    monkeypatch.setattr(driver, "Simulation", InterruptedOnce)
    with pytest.raises(RoundInterrupt):
        byzlab.run(cfg, dataset=digits, checkpoint=ckpt)
    monkeypatch.undo()
    assert torch.load(ckpt, weights_only=False)["t"] == 7  # round 7 was finished, then the run stopped
    resumed = byzlab.run(cfg, dataset=digits, checkpoint=ckpt)
    assert not ckpt.exists()
    pd.testing.assert_frame_equal(full.rounds, resumed.rounds)
    pd.testing.assert_frame_equal(full.history.drop(columns="wall_time"),
                                  resumed.history.drop(columns="wall_time"))


def test_a_second_ctrl_c_interrupts_at_once(digits):
    import os
    import signal

    from byzlab.core.interrupts import RoundInterrupt, stop_at_round_boundaries

    sim = Simulation(RunConfig.make(**QUICK), dataset=digits)
    step = sim.step

    def twice():
        os.kill(os.getpid(), signal.SIGINT)
        os.kill(os.getpid(), signal.SIGINT)
        step()

    sim.step = twice
    with pytest.raises(KeyboardInterrupt) as info, stop_at_round_boundaries():
        sim.advance(3)
    assert not isinstance(info.value, RoundInterrupt) and sim.t == 0


def test_result_save_load_roundtrip(digits, tmp_path):
    res = byzlab.run(RunConfig.make(**QUICK), dataset=digits)
    res.save(tmp_path / "r")
    back = RunResult.load(tmp_path / "r")
    assert back.config == res.config
    pd.testing.assert_frame_equal(back.history, res.history, check_dtype=False)
    assert back.final_accuracy == res.final_accuracy


def test_fork_continues_from_current_round(digits):
    sim = Simulation(RunConfig.make(**QUICK, attack="rop", aggregator="cc"), dataset=digits)
    sim.advance(4)
    child = sim.fork(z=10.0, tau=0.1)
    assert child.t == 4 and torch.equal(child.theta, sim.theta)
    assert child.config.attack_params["z"] == 10.0
    with pytest.raises(ValueError, match="fork"):
        sim.fork(k=12)


def test_pre_aggregators_compose(digits):
    quick = {**QUICK, "epochs": 2}
    res = byzlab.run(RunConfig.make(**quick, attack="alie", aggregator="tm", pre_aggregators=("bucketing",),
                                    pre_aggregator_params={"bucketing": {"s": 2}}), dataset=digits)
    assert len(res.history) == 2
    res2 = byzlab.run(RunConfig.make(**quick, attack="rop", aggregator="krum", pre_aggregators=("nnm",)),
                      dataset=digits)
    assert res2.final_accuracy > 0


def test_run_accepts_the_dataset_name_as_in_the_readme():
    res = byzlab.run(dataset="digits", attack="rop", aggregator="cc", tau=1.0, beta=0.0, epochs=2, seed=0)
    assert res.config.dataset == "digits" and res.config.attack_params["z"] == 1.0
    assert len(res.history) == 2


def _steps_without_sync(sim, rounds: int = 3) -> None:
    """One warm-up round (lazy initialisations may synchronise), then rounds that must not."""
    sim.step()
    torch.cuda.set_sync_debug_mode("error")
    try:
        for _ in range(rounds):
            sim.step()
    finally:
        torch.cuda.set_sync_debug_mode(0)


def _every_rule_runs():
    """Every aggregator (against ALIE), every attack (against CC), a pre-aggregator of each kind."""
    from byzlab.core.registry import AGGREGATORS, ATTACKS

    def built_in(registry):  # not the plug-ins other tests register in this process
        return [name for name, rule in registry.items() if rule.fn.__module__.partition(".")[0] == "byzlab"]

    runs = [dict(aggregator=a, attack="alie") for a in built_in(AGGREGATORS)]
    runs += [dict(aggregator="cc", attack=a) for a in built_in(ATTACKS)]
    runs += [dict(aggregator="tm", attack="rop", pre_aggregators=("bucketing",)),
             dict(aggregator="cc", attack="none", pre_aggregators=("nnm",), weight_decay=1e-4),
             dict(aggregator="dnc", attack="alie", sub_dim=50)]  # DnC's coordinates drawn with repeats, then unique
    return runs


class _HostReads(torch.overrides.TorchFunctionMode):
    """Records the calls that read a tensor's value on the host — on CUDA each is a synchronisation.

    ``item``/``tolist``/``float()``/``int()``/``bool()``/use as an index, the ops whose
    output shape depends on values (``nonzero``, ``masked_select``, ``unique``), and
    indexing by a 0-d or boolean tensor (the first reads the index, the second counts
    the mask), each with the byzlab function that made the call.  Calls inside
    ``byzlab/core/draws.py`` are not recorded: they work on the run's CPU generator and its CPU
    tensors on every device, where reading a value waits for nothing.
    """

    NAMES = {"item", "tolist", "numpy", "__bool__", "__float__", "__int__", "__index__", "__complex__",
             "nonzero", "masked_select", "unique", "unique_consecutive"}

    def __init__(self):
        super().__init__()
        self.calls: list[str] = []

    def __torch_function__(self, func, types, args=(), kwargs=None):
        import traceback

        name = getattr(func, "__name__", "")
        hit = name in self.NAMES
        if name in ("__getitem__", "__setitem__"):
            index = args[1] if isinstance(args[1], tuple) else (args[1],)
            hit = any(isinstance(i, torch.Tensor) and (i.dim() == 0 or i.dtype == torch.bool) for i in index)
        if hit:
            where = [f for f in traceback.extract_stack() if "/byzlab/" in f.filename.replace("\\", "/")]
            if where and where[-1].filename.replace("\\", "/").endswith("/byzlab/core/draws.py"):
                return func(*args, **(kwargs or {}))
            self.calls.append(f"{name} in {where[-1].name} ({where[-1].filename.rsplit('byzlab', 1)[-1]}:"
                              f"{where[-1].lineno})" if where else name)
        return func(*args, **(kwargs or {}))


@pytest.mark.parametrize("engine", ["vmap", "loop", "fused"])
def test_a_round_reads_no_tensor_value_on_the_host_cpu_proxy(digits, engine):
    """The CUDA test below, on CPU: no call in a round reads a tensor's value on the host.

    Runs wherever the suite runs, so a rule that would synchronise on CUDA (as the adaptive
    attacks' ``scales[best]`` did: indexing by a 0-d tensor reads it) fails here first.
    The one allowed read: :func:`byzlab.core.chain.screen` asks ``bad.any()`` on CPU only.
    """
    failed = []
    augmenting = dataclasses.replace(digits, augment=True)  # the CIFAR path: crops and flips drawn each round
    for kw in [*_every_rule_runs(), dict(aggregator="cc", attack="rop", data=augmenting)]:
        kw = dict(kw)
        data = kw.pop("data", digits)
        cfg = RunConfig.make(**{**QUICK, "k": 11, "k_m": 2}, engine=engine, **kw)
        sim = Simulation(cfg, dataset=data)
        sim.step()  # lazy initialisations may read values
        with _HostReads() as spy:
            sim.step()
        calls = [c for c in spy.calls if not c.startswith("__bool__ in screen ")]
        if calls:
            failed.append(f"{kw}: {sorted(set(calls))}")
    assert not failed, "\n".join(failed)


def test_the_host_read_proxy_sees_what_synchronises_on_cuda():
    """The proxy flags the reads a CUDA round must not make, and passes the device-side forms."""
    x, best = torch.arange(5.0), torch.tensor(3)
    for read in (lambda: x[best], lambda: x[x > 2], lambda: float(x.sum()), lambda: x.max().item(),
                 lambda: bool(x.any()), lambda: x.nonzero()):
        with _HostReads() as spy:
            read()
        assert spy.calls, read
    with _HostReads() as spy:
        x.index_select(0, best.reshape(1))[0]
        torch.where(x > 2, x, 0.0)
        x[1:3]
    assert spy.calls == []


@pytest.mark.skipif(not torch.cuda.is_available(), reason="host synchronisation is only observable on CUDA")
@pytest.mark.parametrize("engine", ["vmap", "loop", "fused"])
def test_a_round_never_synchronises_with_the_host(digits, engine):
    """No .item(), no tensor-valued Python branch, no host-to-device copy inside a round, for every rule."""
    augmenting = dataclasses.replace(digits, augment=True)  # the CIFAR path: crops and flips drawn each round
    failed = []  # every rule is tried, so that one run on a GPU names all that synchronise
    for kw in [*_every_rule_runs(), dict(aggregator="cc", attack="rop", data=augmenting)]:
        kw = dict(kw)
        data = kw.pop("data", digits)
        cfg = RunConfig.make(**{**QUICK, "k": 11, "k_m": 2}, device="cuda", engine=engine, **kw)
        sim = Simulation(cfg, dataset=data)
        try:
            _steps_without_sync(sim)
        except RuntimeError as e:
            failed.append(f"{kw}: {e}")
            continue
        torch.cuda.synchronize()
        assert torch.isfinite(sim.theta).all(), kw
    assert not failed, "\n".join(failed)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="compares the CPU with CUDA")
def test_cpu_and_cuda_devices_draw_the_same_numbers(digits):
    """One seed, one set of draws on either device (byzlab.core.draws): the clients' batches (augmented
    too) and the rules' random choices; CUDA's own generator would give other numbers."""
    from byzlab.core.aggregators import bucketing
    from byzlab.core.attacks_adaptive import fang
    from byzlab.core.draws import draw, run_generator, subset

    for data in (digits, dataclasses.replace(digits, augment=True)):
        sims = [Simulation(RunConfig.make(**QUICK, device=dev), dataset=data) for dev in ("cpu", "cuda")]
        for t in (1, 2, sims[0].rounds_per_epoch + 1):  # a new epoch reshuffles the shards
            (xa, ya), (xb, yb) = (s.sample(t) for s in sims)
            assert xb.device.type == "cuda"
            assert torch.equal(xa, xb.cpu()) and torch.equal(ya, yb.cpu()), (data.augment, t)
    x = torch.randn(11, 64)
    for rule in (lambda v, g: bucketing(v, 2, g), lambda v, g: fang(v, 3, 2.0, g)):
        a, b = rule(x, run_generator(5)), rule(x.cuda(), run_generator(5))
        torch.testing.assert_close(b.cpu(), a, rtol=1e-5, atol=1e-6)
    perm = draw(run_generator(5), torch.randperm, 1000, device="cuda")  # S-CC's order, bucketing's
    assert perm.device.type == "cuda" and torch.equal(perm.cpu(), torch.randperm(1000, generator=run_generator(5)))
    cols = subset(run_generator(5), 10 ** 6, 1000, device="cuda")  # DnC's coordinates
    assert cols.device.type == "cuda" and torch.equal(cols.cpu(), subset(run_generator(5), 10 ** 6, 1000, device="cpu"))
    assert not torch.equal(torch.rand(8, generator=torch.Generator(device="cuda").manual_seed(5), device="cuda").cpu(),
                           torch.rand(8, generator=run_generator(5)))  # why the draws stay on the CPU


def test_a_checkpoint_with_a_cuda_generator_state_is_refused_in_words(digits):
    """Checkpoints of CUDA runs from before the draws moved to the CPU generator hold a 16-byte state."""
    sim = Simulation(RunConfig.make(**QUICK), dataset=digits)
    sim.step()
    state = sim.state_dict()
    assert sim.generator.device.type == "cpu"
    state["generator"] = torch.zeros(16, dtype=torch.uint8)  # the size of a CUDA (Philox) generator's state
    fresh = Simulation(RunConfig.make(**QUICK), dataset=digits)
    with pytest.raises(ValueError, match="CUDA generator"):
        fresh.load_state_dict(state)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="host synchronisation is only observable on CUDA")
def test_a_batched_round_never_synchronises_with_the_host():
    from byzlab.core.batched import BatchedSimulation
    from byzlab.core.data import Dataset

    g = torch.Generator().manual_seed(0)
    x = torch.randn(320, 3, 32, 32, generator=g)
    y = torch.randint(0, 10, (320,), generator=g)
    data = Dataset("synthetic", x, y, x[:20], y[:20], 10, True, "resnet20", pad_value=(-1.0, -1.0, -1.0))
    cfgs = [RunConfig.make(dataset="cifar10", model="resnet20", k=5, k_m=1, b=8, epochs=10, device="cuda",
                           attack=a, aggregator="cc", seed=s) for s, a in enumerate(("rop", "alie", "ipm"))]
    _steps_without_sync(BatchedSimulation(cfgs, dataset=data))


def test_diagnostics_equal_the_plain_formulas(digits, monkeypatch):
    from byzlab.core import kernels

    monkeypatch.setattr(kernels, "CPU_BLOCK", 1000)  # several column blocks (d = 4,810)
    F = torch.nn.functional
    sim = Simulation(RunConfig.make(**QUICK, attack="rop", aggregator="cc", tau=0.05, beta=0.5), dataset=digits)
    for t in range(3):
        prev_delta, ref = sim.prev_delta, sim.prev_aggregate
        sim.step()
        X, kb = sim.X, sim.k_b
        delta = X[kb] - X[:kb].mean(0)
        centre = ref if ref is not None else torch.zeros_like(X[0])
        want = [
            F.cosine_similarity(delta, prev_delta, dim=0) if prev_delta is not None else float("nan"),
            F.cosine_similarity(X[:kb], ref[None], dim=1).mean() if ref is not None else float("nan"),
            F.cosine_similarity(X[kb:], ref[None], dim=1).mean() if ref is not None else float("nan"),
            ((X - centre).norm(dim=1) > 0.05).float().mean(),
            sim.prev_aggregate.norm(),
            (~torch.isfinite(X.double().norm(dim=1))).sum(),  # no row screened: 0
        ]
        got = sim.round_diag[t]
        assert torch.allclose(got, torch.tensor([float(w) for w in want]), atol=1e-5, equal_nan=True), t
    assert 0 < sim.round_diag[:3, 3].max() <= 1  # some vectors are clipped at τ = 0.05


@pytest.mark.parametrize("dataset,model", [("digits", "mlp"), ("mnist5k", "cnn")])
def test_evaluate_equals_a_plain_forward_of_the_test_set(digits, dataset, model):
    import copy

    data = digits if dataset == "digits" else load_dataset(dataset)
    cfg = RunConfig.make(**{**QUICK, "dataset": dataset}, model=model, attack="none", max_rounds=8)
    sim = Simulation(cfg, dataset=data)
    for _ in range(8):
        sim.step()
    plain = copy.deepcopy(sim.model).eval()  # the NCHW forward of the whole test set, by hand
    with torch.no_grad():
        pred = plain(data.x_test.contiguous()).argmax(1)
    expected = 100.0 * int((pred == data.y_test).sum()) / data.y_test.shape[0]
    assert 15 < expected < 100  # a partly trained model: a wrong layout would show
    assert sim.evaluate() == pytest.approx(expected, abs=1e-9)
    assert sim.model.training  # evaluate leaves the model in training mode
