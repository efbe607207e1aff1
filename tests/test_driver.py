"""The driver (restore → advance with interrupts → checkpoint cadence → result) against a plain loop."""
import os
import signal

import pytest
import torch

from byzlab import RunConfig, Simulation
from byzlab.core.batched import BatchedSimulation
from byzlab.core.data import load_dataset
from byzlab.running.driver import Driver, default_checkpoint_every
from byzlab.core.interrupts import RoundInterrupt, stop_at_round_boundaries

CFG = dict(dataset="digits", k=8, k_m=2, b=16, epochs=3, max_rounds=9, eval_every=2, seed=3,
           attack="alie", aggregator="cc", beta=0.9)


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits")


def plain_loop(cfg, data, rounds):
    """The reference: Algorithm 1's rounds called one after the other, nothing else."""
    sim = Simulation(cfg, dataset=data)
    for _ in range(rounds):
        sim.step()
    return sim


class StopAt(Simulation):
    """A simulation that receives SIGINT half-way through one round."""

    stop_round = 0

    def finish_round(self, grads, losses):
        if self.t + 1 == self.stop_round:
            os.kill(os.getpid(), signal.SIGINT)
        super().finish_round(grads, losses)


def test_driver_with_an_interrupt_and_a_resume_gives_the_plain_loops_theta(digits, tmp_path):
    cfg = RunConfig.make(**CFG)
    n = Simulation(cfg, dataset=digits).total_rounds
    reference = plain_loop(cfg, digits, n)

    uninterrupted = Simulation(cfg, dataset=digits)
    Driver(uninterrupted, tmp_path / "a.pt", every=2).run()
    assert uninterrupted.t == n
    torch.testing.assert_close(uninterrupted.theta, reference.theta, rtol=0, atol=0)

    ckpt = tmp_path / "b.pt"
    first = StopAt(cfg, dataset=digits)
    first.stop_round = 5
    with pytest.raises(RoundInterrupt), stop_at_round_boundaries():
        Driver(first, ckpt).run()
    assert first.t == 5 and ckpt.exists()  # round 5 was finished, then saved
    resumed = Simulation(cfg, dataset=digits)
    driver = Driver(resumed, ckpt)
    assert driver.starts == [5]
    driver.run()
    result = driver.result()
    assert not ckpt.exists()  # the result is handed over: the checkpoint is gone
    torch.testing.assert_close(resumed.theta, reference.theta, rtol=0, atol=0)
    torch.testing.assert_close(resumed.X, reference.X, rtol=0, atol=0)
    assert list(result.history["round"]) == [2, 4, 6, 8, 9]


def test_driver_saves_on_its_cadence_and_never_after_the_last_round(digits, tmp_path, monkeypatch):
    import byzlab.core.checkpoint as checkpoint

    saved = []
    real_save = checkpoint.save
    monkeypatch.setattr(checkpoint, "save", lambda sim, path: (saved.append(sim.t), real_save(sim, path)))
    sim = Simulation(RunConfig.make(**CFG), dataset=digits)
    driver = Driver(sim, tmp_path / "c.pt", every=4)
    driver.run()
    assert saved == [4, 8]  # rounds 4 and 8 of 9; round 9 ends the run
    driver.result(keep_checkpoint=True)
    assert saved == [4, 8, 9] and (tmp_path / "c.pt").exists()
    assert default_checkpoint_every(95) == 10 and default_checkpoint_every(3) == 1


def test_driver_without_a_checkpoint_saves_nothing_and_advances_by_the_rounds_asked(digits):
    sim = Simulation(RunConfig.make(**CFG), dataset=digits)
    driver = Driver(sim)
    driver.advance(3)
    assert sim.t == 3 and driver.starts == [0]
    driver.advance(None)
    assert sim.t == sim.total_rounds and driver.done


def test_batched_driver_hands_over_each_run_when_it_ends_and_saves_every_run_on_interrupt(digits, tmp_path,
                                                                                         monkeypatch):
    import byzlab.core.batched as batched

    short = RunConfig.make(**{**CFG, "max_rounds": 4})
    long = RunConfig.make(**{**CFG, "seed": 4})
    bsim = BatchedSimulation([short, long], dataset=digits)
    paths = [tmp_path / "s.pt", tmp_path / "l.pt"]
    driver = Driver(bsim, paths, every=100)
    finished = []
    driver.run(on_finished=lambda i: finished.append((i, bsim.sims[i].t)))
    assert finished == [(0, 4), (1, 9)]  # the short run is handed over as soon as it ends

    monkeypatch.setattr(StopAt, "stop_round", 3)
    monkeypatch.setattr(batched, "Simulation", StopAt)
    stopped = BatchedSimulation([short, long], dataset=digits)
    with pytest.raises(RoundInterrupt), stop_at_round_boundaries(escalate=False):  # one signal per run
        Driver(stopped, paths, every=100).run(on_finished=lambda i: None)
    monkeypatch.undo()
    assert [torch.load(p, weights_only=False)["t"] for p in paths] == [3, 3]  # both saved at the round's end
    resumed = BatchedSimulation([short, long], dataset=digits)
    again = Driver(resumed, paths, every=100)
    assert again.starts == [3, 3]
    again.run()
    for before, after in zip(bsim.sims, resumed.sims):
        torch.testing.assert_close(after.theta, before.theta, rtol=0, atol=0)
