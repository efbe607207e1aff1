r"""byzlab's defences and attacks in Flower (``pip install "byzlab[flower]"``).

Supported Flower: ``flwr>=1.42,<1.43`` (:data:`FLWR_RANGE`; the Message API of
``flwr.serverapp.strategy``).  Importing this package with another version, or
without Flower, raises a one-line :class:`~byzlab.core.registry.ConfigError`.

* :class:`ByzlabStrategy` — a Flower strategy (a ``FedAvg`` whose
  ``aggregate_train`` is replaced) that aggregates with any registered byzlab
  aggregator and pre-aggregator chain, plug-ins included, keeping each rule's
  ``state`` dict and the previous aggregate across rounds as the simulator does.
* :class:`OmniscientAttack` — **a research tool for simulations**: wraps any
  Flower strategy and replaces the training replies of chosen node ids with a
  byzlab attack's output, computed on the server side from the benign replies
  (the omniscient threat model of the paper).  Never deploy it.
* :func:`digits_client_app`, :func:`run_inprocess`, :func:`compare` — a
  ClientApp training byzlab's models on one shard of a byzlab data set, an
  in-process driver (no network, no Ray), and byzlab's simulator beside Flower.

The update vector (Algorithm 1).  The strategy sends the global arrays θ_{t−1}
and ``lr`` η in the train config; a reply carries the client's new arrays θ_i.
The server reads the client's update as u_i = (θ_{t−1} − θ_i) / η over every
floating-point array (integer arrays, e.g. BatchNorm counters, are kept from
θ_{t−1}; floating-point buffers such as BatchNorm running statistics are part of
the vector, which the simulator keeps them out of), aggregates m̃_t = AGG(u_1 … u_k) and steps θ_t = θ_{t−1} − η_s m̃_t
(η_s = ``server_lr``, default η).  A client that takes one step with its worker
momentum, θ_i = θ_{t−1} − η m_{i,t} (what :func:`digits_client_app` does), sends
exactly m_{i,t}, so the server aggregates the momenta as in Algorithm 1; with
several local steps u_i is the usual pseudo-gradient.  With ``mean`` and
η_s = η the result is FedAvg's unweighted average.  Robust rules are
unweighted: ``num-examples`` is only used to average the clients' metrics.

Metrics returned by ``aggregate_train`` (besides the clients' averaged ones): the
simulator's diagnostic columns under the same names, computed by the same function
(:func:`byzlab.core.chain.diagnostics`; undefined ones left out): ``cos_delta``,
``cos_ref_benign`` / ``cos_ref_byz`` (mean cosine of the benign and attacked vectors to
m̃_{t−1}, from round 2), ``clip_fraction`` (rules declaring a clip radius, no
pre-aggregator), ``agg_norm`` ‖m̃_t‖, ``non_finite`` (replies screened, see
:mod:`byzlab.core.chain`; their node ids in ``non_finite_nodes``); and ``num_byzantine``
(replies forged this round), ``failed`` (error replies), ``malformed`` (replies dropped
because their arrays differ from the model's in names, shapes or dtypes; node ids in
``malformed_nodes``).

Importing the package sets ``FLWR_TELEMETRY_ENABLED=0`` and
``FLWR_DISABLE_UPDATE_CHECK=1`` unless the environment already sets them.
"""
from __future__ import annotations

import os
from importlib import metadata as _metadata

from ..core.errors import ConfigError

#: the Flower versions this package is tested against
FLWR_RANGE = ">=1.42,<1.43"
_LO, _HI = (1, 42), (1, 43)


def _check_flwr() -> str:
    try:
        version = _metadata.version("flwr")
    except _metadata.PackageNotFoundError:
        raise ConfigError(f'flwr: not installed; allowed: flwr{FLWR_RANGE} (pip install "byzlab[flower]")') from None
    try:
        key = tuple(int(p) for p in version.split(".")[:2])
    except ValueError:
        key = (0, 0)
    if not _LO <= key < _HI:
        raise ConfigError(f'flwr: version {version} is not supported; allowed: flwr{FLWR_RANGE} '
                          f'(pip install "byzlab[flower]")')
    return version


FLWR_VERSION = _check_flwr()
# Flower reports usage to its servers and checks for updates unless told not to; a simulation stays local
# (an explicit setting in the environment wins).
os.environ.setdefault("FLWR_TELEMETRY_ENABLED", "0")
os.environ.setdefault("FLWR_DISABLE_UPDATE_CHECK", "1")


from .apps import (  # noqa: E402
    LocalGrid,
    digits_client_app,
    initial_arrays,
    make_server_app,
    run_flower,
    run_inprocess,
)
from .compare import COMPARE_PROFILES, TOLERANCE, agreement, compare, figure, summary  # noqa: E402
from .attack import OmniscientAttack  # noqa: E402
from .strategy import ByzlabStrategy, from_vector, to_vector  # noqa: E402

__all__ = ["FLWR_RANGE", "FLWR_VERSION", "ByzlabStrategy", "OmniscientAttack", "to_vector", "from_vector",
           "digits_client_app", "make_server_app", "LocalGrid", "run_inprocess", "initial_arrays", "run_flower",
           "compare", "agreement", "summary", "figure", "COMPARE_PROFILES", "TOLERANCE"]
