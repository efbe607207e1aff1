r"""byzlab's rules against ByzFL (PyPI ``byzfl``, EPFL), an independent implementation.

Every rule whose definition coincides with ByzFL's is run on the same random
float64 inputs by both libraries and the results are compared.  Where the two
definitions differ, the difference is written down below and byzlab's side is
checked on a tiny input against a value worked out by hand.

How ByzFL is called
-------------------
ByzFL's rules are callables (``Median()(vectors)``).  Given a torch tensor they
cast it to float32 (``byzfl.utils.misc.check_vectors_type`` calls ``.float()``);
given a NumPy array they compute in NumPy at the array's precision.  The float64
comparisons therefore hand ByzFL ``x.numpy()``; one test also runs ByzFL's torch
(float32) path.

Tolerances
----------
* ``EXACT`` (bitwise): median and Krum.  Both only move values (Krum returns one
  of the input rows; the median of an even number of values is (a + b)/2 on both
  sides, which is the same rounding as 0.5·(a + b)).
* ``SUMS`` (rtol 1e-10, atol 1e-12): trimmed mean, Multi-Krum, NNM, ALIE, IPM.
  Same formula, but the additions are done in a different order (byzlab: a
  comparator network then a row sum, or a weight vector times x; NumPy: sort
  then pairwise summation), so the results differ by a few ulps: on these
  inputs (entries of order 1) at most 3e-15 absolute; atol covers coordinates
  whose value is near zero, where a few ulps are a large relative error.
* ``ITERATED`` (rtol 1e-9, atol 1e-11): geometric median and centered clipping.
  Same iteration, but each step's norms and weighted sums are rounded
  differently and the next step starts from the slightly different point (byzlab
  forms ‖x_i − v‖ one block of columns at a time and the weighted sum as a
  matrix–vector product; ByzFL uses ``np.linalg.norm`` and an elementwise
  product and sum), so the few-ulp differences can grow over T (or L) steps.
  Observed at most 3e-15 absolute here (T ≤ 10, L ≤ 3); the margin is for
  other platforms' BLAS and summation orders.
* float32 (ByzFL's torch path): rtol 1e-5, atol 1e-6.

Definitions that coincide (compared on random inputs)
-----------------------------------------------------
* Median: coordinate-wise; for even k both average the two middle values
  (ByzFL: ``np.median`` / ``torch.quantile(q=0.5)``).
* Trimmed mean: drop the f largest and f smallest per coordinate, average the rest.
* Geometric median: smoothed Weiszfeld from z = 0, w_i = 1/max(ν, ‖z − x_i‖),
  ByzFL ``GeometricMedian(nu, T)`` = byzlab ``geometric_median(x, T, ν)`` with the
  default ``init="zero"``; the defaults agree too (ν = 0.1, T = 3).
* Centered clipping: v ← v + mean_i min(1, τ/‖x_i − v‖)(x_i − v), L times, from
  the given centre (zeros when none).
* NNM: row i → mean of its k − f nearest rows, itself included.
* IPM: −ε·mean of the honest vectors (ByzFL calls ε ``tau``).

Differences (Krum, Multi-Krum and ALIE also checked by hand on small inputs)
----------------------------------------------------------------------------
* Krum / Multi-Krum neighbour count.  ByzFL scores each vector by the mean of
  its k − f − 1 smallest squared distances to the others; byzlab's default is
  the sum over k − f − 2 (Blanchard et al.).  Sum vs mean over the same count
  ranks identically, so byzlab with ``neighbours=k - f - 1`` matches ByzFL
  (compared on random inputs); the defaults can pick different vectors.  Both
  Multi-Krums average the k − f best-scored vectors.
* ALIE sign / name.  ByzFL's ``ALittleIsEnough(tau)`` sends mean + tau·σ, byzlab's
  ``alie(benign, z)`` sends mean − z·σ, so ``tau = -z``; both use the unbiased
  (n − 1) standard deviation.  ByzFL's default is tau = 1.5; byzlab's registered
  default is z^max of Eq. 3 (ByzFL has no z^max).
* IPM default: ByzFL tau = 2.0, byzlab ε = 0.2 (the paper's).
* Centered clipping default τ: ByzFL 100.0, byzlab 1.0 (registered default).
  ByzFL's constructor also rejects every centre ``m`` it is given (its type check
  ``not isinstance(m, np.ndarray) or not isinstance(m, torch.Tensor)`` is always
  true), so the tests set the ``m`` attribute after construction.  ByzFL's
  instance is stateful: it keeps the result as the next call's centre.
* Geometric median on non-finite input: ByzFL drops rows containing ±inf before
  iterating; byzlab does not (such a row gives NaN).  Not compared.
* Not in ByzFL 0.0.11: Bulyan.  Bucketing is, but draws its own random
  permutation (``np.random`` / ``torch.randperm``), so it is not compared.

Float32 with a common offset
----------------------------
byzlab's squared distances (Krum, Multi-Krum, NNM, Bulyan) come from a Gram
matrix, ‖a‖² + ‖b‖² − 2⟨a, b⟩, which in float32 loses every significant digit
when the vectors share a component much larger than their spread — unless the
rows are centred first, as byzlab does.  ByzFL's ``torch.cdist`` (direct
differences for k ≤ 25) has no such problem; the last test holds the two to
agreement on exactly that input.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch

from byzlab.core import aggregators as A
from byzlab.core import kernels
from byzlab.core import attacks as T

byzfl = pytest.importorskip(
    "byzfl", reason="ByzFL (pip install byzfl) is needed to compare byzlab's rules with it"
)

EXACT = dict(rtol=0.0, atol=0.0)
SUMS = dict(rtol=1e-10, atol=1e-12)
ITERATED = dict(rtol=1e-9, atol=1e-11)
FLOAT32 = dict(rtol=1e-5, atol=1e-6)

# (k, d, f, seed).  The last case has d > kernels.CPU_BLOCK, so byzlab's CPU kernels
# work on more than one block of columns.
CASES = [
    (5, 7, 1, 0),
    (8, 1, 2, 1),
    (10, 33, 3, 2),
    (16, 64, 3, 3),
    (25, 200, 5, 4),
    (25, kernels.CPU_BLOCK + 300, 5, 5),
]
CASE_IDS = [f"k{k}-d{d}-f{f}-s{s}" for k, d, f, s in CASES]


def make_inputs(k: int, d: int, f: int, seed: int) -> torch.Tensor:
    """float64 (k, d): k − f honest rows around a common point, f outlying rows."""
    g = torch.Generator().manual_seed(seed)
    centre = torch.randn(d, generator=g, dtype=torch.float64)
    x = centre + 0.5 * torch.randn(k, d, generator=g, dtype=torch.float64)
    if f:
        x[k - f:] = -3.0 * centre + 2.0 * torch.randn(f, d, generator=g, dtype=torch.float64)
    return x[torch.randperm(k, generator=g)]


def peer(rule, x: torch.Tensor) -> torch.Tensor:
    """ByzFL's ``rule`` applied in float64 (NumPy path), as a torch tensor."""
    out = rule(x.numpy().copy())
    return torch.from_numpy(np.asarray(out, dtype=np.float64))


def assert_close(ours: torch.Tensor, theirs: torch.Tensor, tol: dict) -> None:
    assert ours.dtype == torch.float64
    torch.testing.assert_close(ours, theirs, **tol)


@pytest.fixture(scope="module", params=CASES, ids=CASE_IDS)
def _inputs(request):
    k, d, f, seed = request.param
    return make_inputs(k, d, f, seed), f


@pytest.fixture
def case(_inputs):
    x, f = _inputs
    return x.clone(), f  # a rule that wrote into its input would not leak into the next test


# --------------------------------------------------------------------------- aggregators
def test_median(case):
    x, _ = case
    assert_close(A.median(x), peer(byzfl.Median(), x), EXACT)


def test_median_even_and_odd_k():
    """Both average the two middle values for even k (and agree for odd k)."""
    for k in (2, 3, 4, 6, 7, 24):
        x = make_inputs(k, 50, 0, seed=100 + k)
        assert_close(A.median(x), peer(byzfl.Median(), x), EXACT)


def test_trimmed_mean(case):
    x, f = case
    for trim in sorted({0, 1, f}):
        assert_close(A.trimmed_mean(x, trim), peer(byzfl.TrMean(f=trim), x), SUMS)


def test_geometric_median(case):
    x, _ = case
    # defaults: T = 3, ν = 0.1, start at 0, on both sides
    assert_close(A.geometric_median(x), peer(byzfl.GeometricMedian(), x), ITERATED)
    spread = torch.linalg.vector_norm(x - x.mean(0), dim=1).median().item()
    for iters, nu in [(1, 0.1), (10, 1e-6), (4, 0.5 * spread)]:
        ours = A.geometric_median(x, iters, nu)
        assert_close(ours, peer(byzfl.GeometricMedian(nu=float(nu), T=iters), x), ITERATED)


def _byzfl_cc(centre: torch.Tensor | None, tau: float, iters: int):
    cc = byzfl.CenteredClipping(L=iters, tau=float(tau))
    if centre is not None:
        cc.m = centre.numpy().copy()  # the constructor rejects any centre (see module docstring)
    return cc


def test_centered_clip(case):
    x, _ = case
    g = torch.Generator().manual_seed(x.shape[0] * 1000 + x.shape[1])
    given = x.mean(0) + 0.3 * torch.randn(x.shape[1], generator=g, dtype=torch.float64)
    for centre in (None, given):
        c0 = torch.zeros_like(x[0]) if centre is None else centre
        radius = torch.linalg.vector_norm(x - c0, dim=1).median().item()
        # τ below, at and above the typical distance: some rows clipped, some not
        for tau in (0.1 * radius, radius, 3.0 * radius):
            for iters in (1, 3):
                ours = A.centered_clip(x, centre, tau, iters)
                assert_close(ours, peer(_byzfl_cc(centre, tau, iters), x), ITERATED)


def test_krum_with_byzfl_neighbour_count(case):
    x, f = case
    k = x.shape[0]
    ours = A.krum(x, f, neighbours=k - f - 1)
    assert_close(ours, peer(byzfl.Krum(f=f), x), EXACT)


def test_multi_krum_with_byzfl_neighbour_count(case):
    x, f = case
    k = x.shape[0]
    ours = A.multi_krum(x, f, neighbours=k - f - 1)
    assert_close(ours, peer(byzfl.MultiKrum(f=f), x), SUMS)


def test_krum_and_multi_krum_defaults_by_hand():
    """byzlab's default k − f − 2 neighbours vs ByzFL's k − f − 1, on five points of a line.

    x = 0, 1, 6, 7, 10 with f = 1; squared distances to the others, nearest first:
      0: 1, 36, 49, 100    1: 1, 25, 36, 81    6: 1, 16, 25, 36
      7: 1, 9, 36, 49      10: 9, 16, 81, 100
    Scores with 2 neighbours (byzlab default): 37, 26, 17, 10, 25
      -> Krum picks 7; Multi-Krum drops 0 and averages 1, 6, 7, 10 = 6.
    Scores with 3 neighbours (ByzFL): 86, 62, 42, 46, 106
      -> Krum picks 6; Multi-Krum drops 10 and averages 0, 1, 6, 7 = 3.5.
    """
    x = torch.tensor([[0.0], [1.0], [6.0], [7.0], [10.0]], dtype=torch.float64)
    assert A.krum(x, 1).item() == 7.0
    assert A.multi_krum(x, 1).item() == 6.0
    assert A.krum(x, 1, neighbours=3).item() == 6.0
    assert A.multi_krum(x, 1, neighbours=3).item() == 3.5
    assert peer(byzfl.Krum(f=1), x).item() == 6.0
    assert peer(byzfl.MultiKrum(f=1), x).item() == 3.5


def test_nnm(case):
    x, f = case
    # byzlab's NNM has no column blocks to exercise, and ByzFL's builds a (k, k − f, d)
    # array of neighbours: keep d moderate
    x = x[:, :2048]
    ours = A.nnm(x, f)
    assert ours.shape == x.shape
    assert_close(ours, peer(byzfl.NNM(f=f), x), SUMS)


# --------------------------------------------------------------------------- attacks
def test_alie(case):
    x, f = case
    benign = x[: x.shape[0] - f]
    for z in (T.alie_z_max(25, 5), 1.0, 1.5, -0.7):
        # byzlab: mean − z·σ ; ByzFL: mean + tau·σ
        assert_close(T.alie(benign, z), peer(byzfl.ALittleIsEnough(tau=float(-z)), benign), SUMS)


def test_alie_sign_and_unbiased_std_by_hand():
    """Honest values 0, 2, 4: mean 2, unbiased σ = sqrt((4 + 0 + 4)/2) = 2 (population: 1.633).

    byzlab alie(z = 0.5) = 2 − 0.5·2 = 1; ByzFL ALittleIsEnough(tau = 0.5) = 2 + 0.5·2 = 3.
    """
    benign = torch.tensor([[0.0], [2.0], [4.0]], dtype=torch.float64)
    assert T.alie(benign, 0.5).item() == 1.0
    assert peer(byzfl.ALittleIsEnough(tau=0.5), benign).item() == 3.0
    assert peer(byzfl.ALittleIsEnough(tau=-0.5), benign).item() == 1.0


def test_ipm(case):
    x, f = case
    benign = x[: x.shape[0] - f]
    for eps in (0.2, 2.0, 0.5):
        assert_close(T.ipm(benign, eps), peer(byzfl.InnerProductManipulation(tau=eps), benign), SUMS)


# --------------------------------------------------------------------------- ByzFL's torch path
def test_float32_torch_path():
    """ByzFL on torch tensors computes in float32; byzlab on float32 input agrees to float32 rounding."""
    k, d, f = 17, 300, 4
    x = make_inputs(k, d, f, seed=7).float()
    centre = x.mean(0)
    tau = 0.5 * torch.linalg.vector_norm(x - centre, dim=1).median().item()
    cc = byzfl.CenteredClipping(L=2, tau=tau)
    cc.m = centre.clone()
    pairs = [
        (A.median(x), byzfl.Median()(x)),
        (A.trimmed_mean(x, f), byzfl.TrMean(f=f)(x)),
        (A.geometric_median(x), byzfl.GeometricMedian()(x)),
        (A.centered_clip(x, centre, tau, 2), cc(x)),
        (A.krum(x, f, neighbours=k - f - 1), byzfl.Krum(f=f)(x)),
        (A.multi_krum(x, f, neighbours=k - f - 1), byzfl.MultiKrum(f=f)(x)),
        (A.nnm(x, f), byzfl.NNM(f=f)(x)),
        (T.alie(x[: k - f], 1.0), byzfl.ALittleIsEnough(tau=-1.0)(x[: k - f])),
        (T.ipm(x[: k - f], 0.2), byzfl.InnerProductManipulation(tau=0.2)(x[: k - f])),
    ]
    for ours, theirs in pairs:
        assert theirs.dtype == torch.float32 and ours.dtype == torch.float32
        torch.testing.assert_close(ours, theirs, **FLOAT32)


def test_float32_krum_and_nnm_with_a_common_offset():
    """Vectors 10 + 0.01·N(0, 1) in d = 1000: true squared distances 0.18–0.22, while the
    float32 Gram-matrix formula is off by up to ~0.08, so the Krum ranking is noise."""
    k, f = 25, 5
    g = torch.Generator().manual_seed(0)
    x = (10.0 + 0.01 * torch.randn(k, 1000, generator=g, dtype=torch.float64)).float()
    assert torch.equal(A.krum(x, f, neighbours=k - f - 1), byzfl.Krum(f=f)(x))
    torch.testing.assert_close(A.nnm(x, f), byzfl.NNM(f=f)(x), **FLOAT32)
