"""byzlab in Flower (byzlab.flower): the strategy and the attack wrapper on hand-made Flower messages,
bad input, and end-to-end Flower runs on the embedded digits data."""
from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest
import torch

# as byzlab.flower does, before Flower is imported: no usage reports, no update checks from the tests
os.environ.setdefault("FLWR_TELEMETRY_ENABLED", "0")
os.environ.setdefault("FLWR_DISABLE_UPDATE_CHECK", "1")

try:
    import flwr  # noqa: F401
except ImportError:
    if os.environ.get("CI"):  # CI installs byzlab[test], which includes the flower extra
        raise
    pytest.skip('flwr is not installed (pip install "byzlab[flower]")', allow_module_level=True)

from flwr.app import DEFAULT_TTL, ArrayRecord, ConfigRecord, Message, MessageType, Metadata, MetricRecord, RecordDict
from flwr.serverapp.strategy import FedAvg, Strategy

import byzlab
from byzlab.core import aggregators as A
from byzlab.core import attacks as T
from byzlab import flower as fl
from byzlab.core.registry import AGGREGATORS, ConfigError

K, D, LR = 8, 12, 0.1


# --------------------------------------------------------------------------- hand-made messages
@pytest.fixture(autouse=True)
def server_identity():
    """Instruction messages take their run id from the ServerApp's identity, as inside a ServerApp process."""
    with fl.apps.server_identity(run_id=7):
        yield


class NodesGrid(fl.LocalGrid):
    """A grid that only lists node ids (configure_train samples from it); nothing is sent."""

    def __init__(self, node_ids):
        super().__init__(client_app=None, num_nodes=len(node_ids), node_ids=node_ids)


def arrays_of(vec: torch.Tensor) -> ArrayRecord:
    """A two-layer 'model' (weight 3x3, bias 3) plus an integer counter, flattened order = vec."""
    return ArrayRecord(torch_state_dict={"w": vec[:9].reshape(3, 3).clone(), "b": vec[9:12].clone(),
                                         "count": torch.tensor([5])})


def reply(node_id: int, vec: torch.Tensor, round_: int = 1, n: int = 10) -> Message:
    """A train reply from ``node_id`` carrying model ``vec``, as a SuperLink hands it to the ServerApp."""
    meta = Metadata(run_id=7, message_id=f"r{node_id}-{round_}", src_node_id=node_id, dst_node_id=1,
                    reply_to_message_id=f"m{node_id}-{round_}", group_id=str(round_), created_at=time.time(),
                    ttl=DEFAULT_TTL, message_type=MessageType.TRAIN)
    content = RecordDict({"arrays": arrays_of(vec), "metrics": MetricRecord({"num-examples": n, "loss": 1.0})})
    return Message(content=content, metadata=meta)


def one_round(strategy, theta, updates, node_ids, round_=1):
    """configure_train then aggregate_train with replies θ − η u_i; returns (new θ vector, metrics)."""
    msgs = list(strategy.configure_train(round_, arrays_of(theta), ConfigRecord(), NodesGrid(node_ids)))
    assert sorted(m.metadata.dst_node_id for m in msgs) == sorted(node_ids)
    assert all(m.content["config"]["lr"] == LR for m in msgs)
    replies = [reply(n, theta - LR * u, round_) for n, u in zip(node_ids, updates)]
    arrays, metrics = strategy.aggregate_train(round_, replies[::-1])  # arrival order does not matter
    assert torch.equal(torch.from_numpy(arrays["count"].numpy()), torch.tensor([5]))  # integer arrays kept
    return fl.to_vector(arrays), metrics


def data(seed=0, k=K):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(D, generator=g), torch.randn(k, D, generator=g)


NODES = [11, 23, 35, 47, 59, 61, 73, 85]

RULES = [
    ("mean", {}, (), lambda x, c: A.mean(x)),
    ("cm", {}, (), lambda x, c: A.median(x)),
    ("tm", {}, (), lambda x, c: A.trimmed_mean(x, f=2)),
    ("rfa", {"iters": 3}, (), lambda x, c: A.geometric_median(x, iters=3, nu=0.1)),
    ("cc", {"tau": 1.0}, (), lambda x, c: A.centered_clip(x, c, tau=1.0)),
    ("krum", {}, (), lambda x, c: A.krum(x, f=2)),
    ("multikrum", {}, (), lambda x, c: A.multi_krum(x, f=2)),
    ("mean", {}, ("nnm",), lambda x, c: A.mean(A.nnm(x, f=2))),
]


@pytest.mark.parametrize("name,params,pre,expected", RULES, ids=[r[0] + "".join("+" + p for p in r[2]) for r in RULES])
def test_aggregation_equals_byzlab_aggregators_on_the_same_vectors(name, params, pre, expected):
    theta, u = data()
    strategy = fl.ByzlabStrategy(name, params=params, pre_aggregators=pre, f=2, lr=LR, min_available_nodes=K)
    new, metrics = one_round(strategy, theta, u, NODES)
    x = torch.stack([(theta - (theta - LR * ui)) / LR for ui in u])  # what the server reads, rounding included
    agg = expected(x, torch.zeros(D))
    torch.testing.assert_close(new, theta - LR * agg, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(strategy.prev_aggregate, agg, rtol=1e-5, atol=1e-6)
    assert metrics["agg_norm"] == pytest.approx(float(agg.norm()), rel=1e-5)
    assert metrics["loss"] == 1.0  # the clients' metrics, averaged as FedAvg does


def test_mean_is_fedavg():
    theta, u = data(1)
    ours, _ = one_round(fl.ByzlabStrategy("mean", lr=LR, min_available_nodes=K), theta, u, NODES)
    fedavg = FedAvg(min_available_nodes=K)
    list(fedavg.configure_train(1, arrays_of(theta), ConfigRecord(), NodesGrid(NODES)))
    arrays, _ = fedavg.aggregate_train(1, [reply(n, theta - LR * ui) for n, ui in zip(NODES, u)])
    theirs = torch.cat([torch.from_numpy(arrays[k].numpy()).reshape(-1) for k in ("w", "b")])
    torch.testing.assert_close(ours, theirs, rtol=1e-5, atol=1e-6)


def test_cc_keeps_its_reference_across_rounds_and_reports_the_clip_fraction():
    strategy = fl.ByzlabStrategy("cc", params={"tau": 0.5}, lr=LR, min_available_nodes=K)
    theta, u1 = data(2)
    theta2, m1 = one_round(strategy, theta, u1, NODES, 1)
    agg1 = A.centered_clip(u1, torch.zeros(D), tau=0.5)
    assert m1["clip_fraction"] == pytest.approx(float((u1.norm(dim=1) > 0.5).float().mean()))
    assert "cos_ref_benign" not in m1  # no m̃_0
    _, u2 = data(3)
    theta3, m2 = one_round(strategy, theta2, u2, NODES, 2)
    torch.testing.assert_close(theta3, theta2 - LR * A.centered_clip(u2, agg1, tau=0.5), rtol=1e-4, atol=1e-5)
    assert m2["clip_fraction"] == pytest.approx(float(((u2 - agg1).norm(dim=1) > 0.5).float().mean()))
    cos = torch.nn.functional.cosine_similarity(u2, agg1[None], dim=1)
    assert m2["cos_ref_benign"] == pytest.approx(float(cos.mean()), abs=1e-4)


def test_a_stateful_plugin_rule_gets_the_same_state_dict_every_round():
    seen = []

    @byzlab.register_aggregator("_flower_test_stateful", replace=True)
    def stateful(x, state, t):
        state["n"] = state.get("n", 0) + 1
        seen.append((t, id(state), state["n"]))
        return x.mean(0)

    try:
        strategy = fl.ByzlabStrategy("_flower_test_stateful", lr=LR, min_available_nodes=K)
        theta, u = data(4)
        for r in (1, 2, 3):
            theta, _ = one_round(strategy, theta, u, NODES, r)
    finally:
        AGGREGATORS.pop("_flower_test_stateful", None)
    assert [s[0] for s in seen] == [1, 2, 3] and [s[2] for s in seen] == [1, 2, 3]
    assert len({s[1] for s in seen}) == 1 and strategy.rule_state["aggregator"] == {"n": 3}


@pytest.mark.skipif("s_cc" not in AGGREGATORS, reason="S-CC is not registered in this tree")
def test_s_cc_runs_with_its_state_across_rounds():
    strategy = fl.ByzlabStrategy("s_cc", f=2, lr=LR, min_available_nodes=K)
    theta, u = data(5)
    for r in (1, 2, 3):
        theta, metrics = one_round(strategy, theta, u, NODES, r)
        assert torch.isfinite(theta).all() and metrics["agg_norm"] > 0


# --------------------------------------------------------------------------- the attack wrapper
class Recorder(Strategy):
    """A strategy that records the replies it is given."""

    def __init__(self):
        self.got = []

    def summary(self):
        pass

    def configure_train(self, server_round, arrays, config, grid):
        config["lr"] = LR
        return FedAvg(min_available_nodes=K).configure_train(server_round, arrays, config, grid)

    def aggregate_train(self, server_round, replies):
        self.got.append(list(replies))
        return None, None

    def configure_evaluate(self, server_round, arrays, config, grid):
        return []

    def aggregate_evaluate(self, server_round, replies):
        return None


def test_attacked_node_ids_are_replaced_and_the_others_untouched():
    inner = Recorder()
    attack = fl.OmniscientAttack(inner, "rop", node_ids=[47, 85], params={"z": 1.0, "lam": 0.9}, lr=LR)
    theta, u = data(6)
    list(attack.configure_train(1, arrays_of(theta), ConfigRecord(), NodesGrid(NODES)))
    replies = [reply(n, theta - LR * ui) for n, ui in zip(NODES, u)]
    attack.aggregate_train(1, replies)
    got = {m.metadata.src_node_id: m for m in inner.got[0]}
    assert sorted(got) == sorted(NODES)
    benign_ids = [n for n in NODES if n not in (47, 85)]
    for n in benign_ids:
        assert got[n] is replies[NODES.index(n)]  # the very same message
    benign = torch.stack([(theta - fl.to_vector(got[n].content["arrays"])) / LR for n in benign_ids])
    m_byz = T.rop(benign, None, z=1.0, lam=0.9)
    for n in (47, 85):
        forged = got[n]
        assert forged.metadata is replies[NODES.index(n)].metadata  # same sender, same round
        torch.testing.assert_close(fl.to_vector(forged.content["arrays"]), theta - LR * m_byz, rtol=1e-5, atol=1e-6)
        assert forged.content["metrics"]["num-examples"] == 10  # its other records are kept

    # round 2: the attacker reads m̃_1 from the global model's step
    agg1 = torch.randn(D, generator=torch.Generator().manual_seed(7))
    theta2 = theta - LR * agg1
    list(attack.configure_train(2, arrays_of(theta2), ConfigRecord(), NodesGrid(NODES)))
    attack.aggregate_train(2, [reply(n, theta2 - LR * ui, 2) for n, ui in zip(NODES, u)])
    forged2 = next(m for m in inner.got[1] if m.metadata.src_node_id == 47)
    benign2 = torch.stack([(theta2 - (theta2 - LR * u[NODES.index(n)])) / LR for n in benign_ids])
    expected = T.rop(benign2, agg1, z=1.0, lam=0.9)
    torch.testing.assert_close(fl.to_vector(forged2.content["arrays"]), theta2 - LR * expected, rtol=1e-4, atol=1e-5)


def test_the_defence_sees_which_nodes_were_attacked():
    strategy = fl.ByzlabStrategy("cc", params={"tau": 1.0}, f=2, lr=LR, min_available_nodes=K)
    attack = fl.OmniscientAttack(strategy, "ipm", num_byzantine=2, lr=LR)
    theta, u = data(8)
    for r in (1, 2):
        list(attack.configure_train(r, arrays_of(theta), ConfigRecord(), NodesGrid(NODES)))
        arrays, metrics = attack.aggregate_train(r, [reply(n, theta - LR * ui, r) for n, ui in zip(NODES, u)])
        theta = fl.to_vector(arrays)
    assert attack.byzantine == [73, 85]  # num_byzantine: the largest node ids
    assert metrics["num_byzantine"] == 2 and {"cos_ref_benign", "cos_ref_byz", "clip_fraction"} <= set(metrics)
    assert metrics["cos_ref_byz"] < 0 < metrics["cos_ref_benign"]  # IPM sends −ε·mean


# --------------------------------------------------------------------------- bad input
def one_line(e: pytest.ExceptionInfo) -> str:
    msg = str(e.value)
    assert "\n" not in msg
    return msg


def test_unknown_rule_is_a_one_line_config_error():
    with pytest.raises(ConfigError) as e:
        fl.ByzlabStrategy("nope")
    assert "unknown 'nope'" in one_line(e) and "cc" in str(e.value)
    with pytest.raises(ConfigError) as e:
        fl.ByzlabStrategy("cc", params={"tau": -1})
    assert one_line(e).startswith("tau:")
    with pytest.raises(ConfigError) as e:
        fl.OmniscientAttack(FedAvg(), "nope", num_byzantine=1)
    assert "rop" in one_line(e)
    with pytest.raises(ConfigError) as e:
        fl.ByzlabStrategy("tm", f=4, min_available_nodes=K).aggregate(1, torch.zeros(K, D))
    assert one_line(e).startswith("f:")


def test_unknown_node_id_is_a_one_line_config_error():
    attack = fl.OmniscientAttack(Recorder(), "alie", node_ids=[47, 999], lr=LR)
    with pytest.raises(ConfigError) as e:
        attack.configure_train(1, arrays_of(torch.zeros(D)), ConfigRecord(), NodesGrid(NODES))
    assert one_line(e).startswith("node_ids: unknown node id 999; connected: 11, 23")
    with pytest.raises(ConfigError) as e:
        fl.OmniscientAttack(Recorder(), "alie", lr=LR)
    assert one_line(e).startswith("node_ids:")


@pytest.mark.parametrize("version", ["1.41.0", "1.43.0", "2.0.0"])
def test_a_flower_version_outside_the_range_is_a_one_line_config_error(monkeypatch, version):
    monkeypatch.setattr(fl._metadata, "version", lambda name: version)
    with pytest.raises(ConfigError) as e:
        fl._check_flwr()
    assert one_line(e).startswith(f"flwr: version {version} is not supported; allowed: flwr>=1.42,<1.43")


def test_missing_flower_is_a_one_line_config_error(monkeypatch):
    def missing(name):
        raise fl._metadata.PackageNotFoundError(name)

    monkeypatch.setattr(fl._metadata, "version", missing)
    with pytest.raises(ConfigError) as e:
        fl._check_flwr()
    assert one_line(e).startswith("flwr: not installed")


def test_import_byzlab_does_not_need_flower():
    code = "import sys; sys.modules['flwr'] = None; import byzlab; assert 'byzlab.flower' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)


# --------------------------------------------------------------------------- end to end
@pytest.mark.slow
def test_inprocess_flower_run_trains_under_attack_and_reports_the_defence():
    result, strategy = fl.run_flower(attack="alie", aggregator="cc", params={"tau": 1.0}, k=10, n_byzantine=2,
                                     rounds=15, seed=0)
    acc = result.evaluate_metrics_serverapp
    assert acc[15]["test-accuracy"] > acc[0]["test-accuracy"] + 30
    metrics = result.train_metrics_clientapp
    assert sorted(metrics) == list(range(1, 16))
    assert all({"clip_fraction", "agg_norm", "num_byzantine"} <= set(m) for m in metrics.values())
    assert all("cos_ref_byz" in metrics[r] for r in range(2, 16))
    assert strategy.prev_aggregate is not None


APP_TOML = """[build-system]
requires = ["hatchling"]
build-backend = "hatchling.build"

[project]
name = "byzlab-e2e"
version = "1.0.0"
description = "byzlab's defence and attack in a Flower deployment"
license = "MIT"
dependencies = []

[tool.hatch.build.targets.wheel]
packages = ["."]

[tool.flwr.app]
publisher = "byzlab"

[tool.flwr.app.components]
serverapp = "e2e_app:server_app"
clientapp = "e2e_app:client_app"
"""

APP_PY = """from byzlab.flower import digits_client_app, make_server_app

server_app = make_server_app(aggregator="cc", params={{"tau": 1.0}}, attack="alie", num_byzantine=2, rounds={rounds},
                             min_nodes={nodes}, out={out!r})
client_app = digits_client_app(k={nodes})
"""


def free_ports(n: int) -> list[int]:
    import socket

    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


def wait_for_port(port: int, proc: subprocess.Popen, timeout: float = 60.0) -> None:
    import socket

    end = time.monotonic() + timeout
    while time.monotonic() < end:
        assert proc.poll() is None, "the SuperLink exited early"
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.2)
    raise TimeoutError(f"nothing listens on 127.0.0.1:{port}")


@pytest.mark.slow
def test_flower_deployment_on_localhost_trains_under_attack_and_reports_the_defence(tmp_path):
    """A real Flower deployment on 127.0.0.1: one SuperLink, 10 SuperNodes (subprocess isolation, insecure),
    `flwr run` of a Flower App using byzlab.flower: CC against ALIE on 2 of the 10 nodes, 4 rounds of digits.
    Every train message starts a `flwr-clientapp` process that imports torch: about 40 s on an idle 2-core machine."""
    import json
    import signal
    from pathlib import Path

    nodes, rounds = 10, 4  # with 2 rounds the gain over the start was once 4.7 points, under the 5 asserted
    bindir = Path(sys.executable).parent
    root = Path(__file__).resolve().parents[1]
    home, app, out = tmp_path / "flwr-home", tmp_path / "app", tmp_path / "out.json"
    home.mkdir()
    app.mkdir()
    (app / "pyproject.toml").write_text(APP_TOML)
    (app / "e2e_app.py").write_text(APP_PY.format(rounds=rounds, nodes=nodes, out=str(out)))
    link, *node_ports = free_ports(1 + nodes)
    (home / "config.toml").write_text(f'[superlink]\ndefault = "e2e"\n\n[superlink.e2e]\n'
                                      f'address = "127.0.0.1:{link}"\ninsecure = true\n')
    env = {**os.environ, "FLWR_HOME": str(home), "FLWR_TELEMETRY_ENABLED": "0", "FLWR_DISABLE_UPDATE_CHECK": "1",
           "PATH": f"{bindir}{os.pathsep}{os.environ.get('PATH', '')}", "OMP_NUM_THREADS": "1",
           "PYTHONPATH": os.pathsep.join(p for p in (str(root), os.environ.get("PYTHONPATH")) if p)}
    procs: list[subprocess.Popen] = []

    def start(*args: str, log: str) -> subprocess.Popen:
        fh = open(tmp_path / log, "w")
        procs.append(subprocess.Popen([str(bindir / args[0]), *args[1:]], env=env, stdout=fh, stderr=subprocess.STDOUT,
                                      cwd=tmp_path, start_new_session=True))
        return procs[-1]

    try:
        superlink = start("flower-superlink", "--insecure", "--isolation", "subprocess",
                          "--disable-runtime-dependency-installation", "--database", ":flwr-in-memory:",
                          "--host", "127.0.0.1", "--port", str(link), log="superlink.log")
        wait_for_port(link, superlink)
        for i, port in enumerate(node_ports):
            start("flower-supernode", "--insecure", "--superlink", f"127.0.0.1:{link}", "--host", "127.0.0.1",
                  "--port", str(port), "--node-config", f"partition-id={i} num-partitions={nodes}", log=f"node{i}.log")
        run = subprocess.run([str(bindir / "flwr"), "run", str(app), "e2e", "--stream"], env=env, cwd=tmp_path,
                             capture_output=True, text=True, timeout=400)
        assert out.exists(), f"the ServerApp wrote no result:\n{run.stdout[-3000:]}\n{run.stderr[-3000:]}"
    finally:
        for p in procs:  # each started in its own session: stop it and the app processes it spawned
            try:
                os.killpg(p.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            p.wait(timeout=30)
    res = json.loads(out.read_text())
    acc = {int(r): m["test-accuracy"] for r, m in res["evaluate"].items()}
    assert acc[rounds] > acc[0] + 5  # it trains, under attack
    train = {int(r): m for r, m in res["train"].items()}
    assert sorted(train) == list(range(1, rounds + 1))
    assert all(m["num_byzantine"] == 2 and {"clip_fraction", "agg_norm"} <= set(m) for m in train.values())
    assert all("cos_ref_byz" in train[r] and "cos_ref_benign" in train[r] for r in range(2, rounds + 1))
    assert len(res["byzantine"]) == 2


# --------------------------------------------------------------------------- untrusted replies
def reply_arrays(node_id: int, arrays: dict, round_: int = 1) -> Message:
    """A train reply from ``node_id`` carrying the given arrays (any names, shapes, dtypes)."""
    msg = reply(node_id, torch.zeros(D), round_)
    msg.content["arrays"] = ArrayRecord(torch_state_dict=arrays)
    return msg


#: every robust rule that Flower runs (fltrust needs the server's own update, which the strategy does
#: not compute), and the pre-aggregators in front of CC; (name, params, pre-aggregators, f)
ROBUST = [("cm", {}, (), 2), ("tm", {}, (), 2), ("rfa", {}, (), 2), ("cc", {"tau": 1.0}, (), 2), ("krum", {}, (), 2),
          ("multikrum", {}, (), 2), ("bulyan", {}, (), 1), ("s_cc", {}, (), 2), ("clippedclustering", {}, (), 2),
          ("dnc", {}, (), 2), ("cc", {}, ("bucketing",), 2), ("cc", {}, ("nnm",), 2), ("cc", {}, ("arc",), 2)]


@pytest.mark.parametrize("name,params,pre,f", ROBUST, ids=["+".join((*r[2], r[0])) for r in ROBUST])
@pytest.mark.parametrize("kind", ["nan_entry", "pos_inf_entry", "all_nan"])
def test_one_non_finite_client_never_reaches_theta_in_flower(name, params, pre, f, kind):
    theta, u = data(9)
    bad = u.clone()
    where, value = {"nan_entry": (4, float("nan")), "pos_inf_entry": (4, float("inf")),
                    "all_nan": (slice(None), float("nan"))}[kind]
    bad[2, where] = value
    strategy = fl.ByzlabStrategy(name, params=params, pre_aggregators=pre, f=f, lr=LR, min_available_nodes=K)
    for r in (1, 2):
        theta, metrics = one_round(strategy, theta, bad, NODES, r)
        assert torch.isfinite(theta).all()
        assert metrics["non_finite"] == 1 and list(metrics["non_finite_nodes"]) == [NODES[2]]


def test_a_non_finite_client_under_the_mean_and_under_propagate():
    theta, u = data(10)
    bad = u.clone()
    bad[5, 0] = float("nan")
    mean, _ = one_round(fl.ByzlabStrategy("mean", lr=LR, min_available_nodes=K), theta, bad, NODES)
    keep = [i for i in range(K) if i != 5]
    torch.testing.assert_close(mean, theta - LR * u[keep].mean(0), rtol=1e-5, atol=1e-6)  # the finite rows' mean
    old, metrics = one_round(fl.ByzlabStrategy("tm", f=2, lr=LR, non_finite="propagate", min_available_nodes=K),
                             theta, bad, NODES)
    assert torch.isnan(old[0]) and torch.isfinite(old[1:]).all()  # the paper's plain behaviour: TM keeps the NaN
    assert metrics["non_finite"] == 1  # counted all the same
    with pytest.raises(ConfigError) as e:
        fl.ByzlabStrategy("cc", non_finite="skip")
    assert one_line(e) == "non_finite: must be one of drop, propagate; got 'skip'"


def test_a_reply_of_another_shape_or_size_is_dropped_and_named():
    glob = {"w": torch.randn(4, 3), "b": torch.randn(3), "count": torch.tensor([5])}
    strategy = fl.ByzlabStrategy("cc", params={"tau": 1.0}, lr=LR, min_available_nodes=4)
    list(strategy.configure_train(1, ArrayRecord(torch_state_dict=glob), ConfigRecord(), NodesGrid([1, 2, 3, 4])))
    g = torch.Generator().manual_seed(11)
    good = {n: {"w": glob["w"] - LR * torch.randn(4, 3, generator=g), "b": glob["b"].clone(),
                "count": torch.tensor([5])} for n in (1, 2)}
    transposed = {"w": glob["w"].T.contiguous(), "b": glob["b"].clone(), "count": torch.tensor([5])}  # same size
    bigger = {"w": torch.zeros(5, 3), "b": glob["b"].clone(), "count": torch.tensor([5])}
    replies = [reply_arrays(1, good[1]), reply_arrays(2, good[2]), reply_arrays(3, transposed),
               reply_arrays(4, bigger)]
    arrays, metrics = strategy.aggregate_train(1, replies)
    assert metrics["malformed"] == 2 and list(metrics["malformed_nodes"]) == [3, 4]
    theta = torch.cat([glob["w"].reshape(-1), glob["b"]])
    x = torch.stack([(theta - torch.cat([good[n]["w"].reshape(-1), good[n]["b"]])) / LR for n in (1, 2)])
    want = theta - LR * A.centered_clip(x, torch.zeros(15), tau=1.0)  # CC on the two readable replies
    torch.testing.assert_close(fl.to_vector(arrays), want, rtol=1e-5, atol=1e-6)


def test_too_few_usable_replies_keep_theta_and_the_run_goes_on():
    theta, u = data(12)
    strategy = fl.ByzlabStrategy("tm", f=2, lr=LR, min_available_nodes=5)
    nodes = NODES[:5]
    list(strategy.configure_train(1, arrays_of(theta), ConfigRecord(), NodesGrid(nodes)))
    replies = [reply(n, theta - LR * ui) for n, ui in zip(nodes[:4], u)]  # 4 rows: TM needs > 2f = 4
    replies.append(reply_arrays(nodes[4], {"w": torch.zeros(2)}))
    arrays, metrics = strategy.aggregate_train(1, replies)
    assert arrays is None and metrics["malformed"] == 1 and metrics["num_replies"] == 4


def test_too_few_nodes_is_a_clear_error_not_a_hang():
    import signal

    def hang(*_):
        raise TimeoutError("run_inprocess hung")

    old = signal.signal(signal.SIGALRM, hang)
    signal.alarm(60)
    try:
        strategy = fl.ByzlabStrategy("cc", lr=LR, min_available_nodes=10, fraction_evaluate=0.0)
        with pytest.raises(ConfigError) as e:
            fl.run_inprocess(fl.OmniscientAttack(strategy, "alie", num_byzantine=2), lambda m, c: None,
                             arrays_of(torch.zeros(D)), num_nodes=8, rounds=1)
        assert one_line(e) == ("min_available_nodes: the strategy waits for 10 nodes, run_inprocess starts "
                               "num_nodes=8; allowed: <= 8")
        t0 = time.monotonic()
        with pytest.raises(ConfigError) as e:  # a deployment: the round waits node_timeout seconds, then says so
            fl.ByzlabStrategy("cc", lr=LR, min_available_nodes=10, node_timeout=0.5).configure_train(
                1, arrays_of(torch.zeros(D)), ConfigRecord(), NodesGrid(NODES))
        assert 0.5 <= time.monotonic() - t0 < 30
        assert one_line(e).startswith("min_available_nodes: waited 0.5 s for 10 nodes, 8 connected (11, 23, 35")
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


def test_an_attack_that_cannot_happen_is_refused_or_not_claimed():
    with pytest.raises(ConfigError) as e:
        fl.OmniscientAttack(Recorder(), "alie", num_byzantine=7).configure_train(
            1, arrays_of(torch.zeros(D)), ConfigRecord(), NodesGrid(NODES))
    assert one_line(e) == "num_byzantine: must leave at least 2 benign nodes of the 8 connected (<= 6), got 7"
    # at run time only one benign reply arrives: the round is not attacked, and not reported as attacked
    strategy = fl.ByzlabStrategy("cc", lr=LR, min_available_nodes=K)
    attack = fl.OmniscientAttack(strategy, "ipm", node_ids=[73, 85], lr=LR)
    theta, u = data(13)
    list(attack.configure_train(1, arrays_of(theta), ConfigRecord(), NodesGrid(NODES)))
    replies = [reply(n, theta - LR * ui) for n, ui in zip(NODES, u) if n in (11, 73, 85)]
    arrays, metrics = attack.aggregate_train(1, replies)
    assert metrics["num_byzantine"] == 0 and "cos_ref_byz" not in metrics
    x = torch.stack([u[NODES.index(n)] for n in (11, 73, 85)])
    torch.testing.assert_close(fl.to_vector(arrays), theta - LR * A.centered_clip(x, torch.zeros(D), tau=1.0),
                               rtol=1e-5, atol=1e-6)  # the replies as sent


def test_a_rule_that_takes_f_needs_f_and_f_0_warns():
    with pytest.raises(ConfigError) as e:
        fl.ByzlabStrategy("tm")
    assert one_line(e).startswith("f: aggregator 'tm' guards against f Byzantine clients; give f")
    with pytest.raises(ConfigError) as e:
        fl.ByzlabStrategy("mean", pre_aggregators=["nnm"])
    assert one_line(e).startswith("f: pre_aggregator 'nnm'")
    with pytest.warns(UserWarning, match="tm with f = 0 is the mean"):
        fl.ByzlabStrategy("tm", f=0)
    fl.ByzlabStrategy("cc")  # CC does not take f


def test_a_parameter_of_the_wrong_type_names_its_type():
    with pytest.raises(ConfigError) as e:
        fl.ByzlabStrategy("cc", params={"tau": "1.0"})
    assert one_line(e) == "tau: must be > 0, got str '1.0'"
    with pytest.raises(ConfigError) as e:
        fl.ByzlabStrategy("cc", lr="0.1")
    assert one_line(e) == "lr: must be > 0, got str '0.1'"
    with pytest.raises(ConfigError) as e:
        fl.ByzlabStrategy("tm", f="2")
    assert one_line(e) == "f: must be an integer >= 0, got str '2'"


def test_a_client_app_that_raises_is_a_dropped_reply_not_the_end_of_the_run():
    app = fl.digits_client_app(k=4)

    def flaky(msg, context):
        if context.node_config["partition-id"] == 2 and msg.metadata.message_type == MessageType.TRAIN:
            raise RuntimeError("out of memory")
        return app(msg, context)

    strategy = fl.ByzlabStrategy("cc", lr=LR, min_available_nodes=4, fraction_evaluate=0.0)
    result = fl.run_inprocess(strategy, flaky, fl.initial_arrays("digits"), num_nodes=4, rounds=2)
    metrics = result.train_metrics_clientapp
    assert sorted(metrics) == [1, 2] and all(m["failed"] == 1 for m in metrics.values())
    assert torch.isfinite(fl.to_vector(result.arrays)).all()


def test_the_server_identity_is_restored_through_public_properties():
    from flwr.supercore.task_identity import TaskIdentity

    assert TaskIdentity.run_id == 7  # the fixture's
    with fl.apps.server_identity(run_id=9):
        assert (TaskIdentity.task_id, TaskIdentity.run_id, TaskIdentity.node_id) == (1, 9, 1)
    assert TaskIdentity.run_id == 7


def test_the_adaptive_attacks_query_the_defence_under_flower():
    from byzlab.core import attacks_adaptive as AA

    strategy = fl.ByzlabStrategy("tm", f=2, lr=LR, min_available_nodes=K)
    attack = fl.OmniscientAttack(strategy, "alie_adaptive", node_ids=[73, 85], lr=LR)
    theta, u = data(14)
    list(attack.configure_train(1, arrays_of(theta), ConfigRecord(), NodesGrid(NODES)))
    replies = [reply(n, theta - LR * ui) for n, ui in zip(NODES, u)]
    arrays, metrics = attack.aggregate_train(1, replies)
    benign = torch.stack([(theta - (theta - LR * u[NODES.index(n)])) / LR for n in NODES if n not in (73, 85)])
    # the reference: the same search with TM itself as the trial aggregate
    m_byz = AA.alie_adaptive(benign, K, 2, aggregate=lambda x: A.trimmed_mean(x, 2), state={})
    want = A.trimmed_mean(torch.cat([benign, m_byz.expand(2, D)]), 2)
    torch.testing.assert_close(fl.to_vector(arrays), theta - LR * want, rtol=1e-4, atol=1e-5)
    assert metrics["num_byzantine"] == 2
    with pytest.raises(ConfigError) as e:
        fl.OmniscientAttack(FedAvg(), "alie_adaptive", num_byzantine=2)
    assert one_line(e).startswith("attack: 'alie_adaptive' queries the defence (RoundContext.aggregate)")


def test_a_plugin_rule_declaring_a_clip_radius_reports_the_clip_fraction():
    @byzlab.register_aggregator("_flower_clip", clip_radius="radius", replace=True)
    def clip(x, center, radius: float = 0.5):
        return A.centered_clip(x, center, radius)

    try:
        theta, u = data(15)
        _, metrics = one_round(fl.ByzlabStrategy("_flower_clip", lr=LR, min_available_nodes=K), theta, u, NODES)
        assert metrics["clip_fraction"] == pytest.approx(float((u.norm(dim=1) > 0.5).float().mean()))
        _, plain = one_round(fl.ByzlabStrategy("mean", lr=LR, min_available_nodes=K), theta, u, NODES)
        assert "clip_fraction" not in plain
    finally:
        AGGREGATORS.pop("_flower_clip", None)


def test_the_attack_chooses_its_nodes_once_the_strategy_has_waited_for_them():
    class Arriving(NodesGrid):
        """Nodes that connect one at a time, as SuperNodes do while a deployment starts."""

        def __init__(self, node_ids):
            super().__init__(node_ids)
            self.calls = 0

        def get_node_ids(self):
            self.calls += 1
            return list(self.contexts)[: min(len(self.contexts), self.calls)]

    strategy = fl.ByzlabStrategy("cc", lr=LR, min_available_nodes=4, min_train_nodes=4, node_timeout=30)
    attack = fl.OmniscientAttack(strategy, "ipm", num_byzantine=2, lr=LR)
    msgs = list(attack.configure_train(1, arrays_of(torch.zeros(D)), ConfigRecord(), Arriving([1, 2, 3, 4])))
    assert len(msgs) == 4 and attack.byzantine == [3, 4]
