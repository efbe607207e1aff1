"""The micro-measurements behind the NHWC and sampling changes, in one process (one thread by default).

    python benchmarks/layout_check.py [--threads 1] [--reps 30]

Per pair, the old way against the new one, median milliseconds of ``--reps`` calls after warm-up:
the cnn's first convolution on 128 MNIST-shaped samples (input converted with
``contiguous(channels_last)`` and the output copied to NHWC, against :func:`byzlab.core.fused.nhwc`),
its per-client weight gradients (4 clients of 32), the evaluation forward of mnist5k's test set through
the cnn (NCHW against NHWC; then all at once against batches of
:data:`byzlab.core.simulator.EVAL_BATCH`), gathering 640 training images (``x[idx]`` against
``index_select``), and the per-client weight gradients of a linear layer (the mlp's first, 20 clients
of 32; the cnn's fc1, 4 clients) by ``bmm`` into a temporary copied into the rows of the ``(n, d)``
gradient matrix, against ``bmm`` writing into those rows.
"""
from __future__ import annotations

import argparse
import statistics
import time

import torch
import torch.nn.functional as F

from byzlab.core.data import load_dataset
from byzlab.core.fused import nhwc
from byzlab.core.models import build_model
from byzlab.core.simulator import EVAL_BATCH


def ms(fn, reps: int) -> float:
    for _ in range(3):
        fn()
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return 1e3 * statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--reps", type=int, default=30)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    g = torch.Generator().manual_seed(0)
    x = torch.randn(128, 1, 28, 28, generator=g)
    w, b = torch.randn(20, 1, 5, 5, generator=g), torch.randn(20, generator=g)
    delta = torch.randn(128, 20, 24, 24, generator=g).contiguous(memory_format=torch.channels_last)
    old_x, new_x = x.contiguous(memory_format=torch.channels_last), nhwc(x)

    def wgrad(a):
        return [torch.ops.aten.convolution_backward(delta[i * 32:(i + 1) * 32], a[i * 32:(i + 1) * 32], w, None,
                                                    [1, 1], [0, 0], [1, 1], False, [0, 0], 1,
                                                    [False, True, False])[1] for i in range(4)]

    data = load_dataset("mnist5k")
    model = build_model("cnn", data.num_classes, data.input_shape).eval()
    xs = data.x_test
    idx = torch.randint(0, data.x_train.shape[0], (640,), generator=g)
    def batched(fn, n):
        return lambda: torch.cat([fn(xs[i: i + n]) for i in range(0, xs.shape[0], n)])

    def linear_grads(n, out, inp, d):
        grads = torch.zeros(25, d)
        target = grads[:n, : out * inp].view(n, out, inp)
        dv, a = torch.randn(n, 32, out, generator=g).transpose(1, 2), torch.randn(n, 32, inp, generator=g)
        return lambda: target.copy_(torch.bmm(dv, a)), lambda: torch.bmm(dv, a, out=target)

    rows = [
        ("conv1 forward, 128 samples", lambda: F.conv2d(old_x, w, b).contiguous(memory_format=torch.channels_last),
         lambda: F.conv2d(new_x, w, b)),
        ("conv1 weight gradients, 4 clients x 32", lambda: wgrad(old_x), lambda: wgrad(new_x)),
        (f"evaluation forward, {xs.shape[0]} test images", lambda: model(xs), lambda: model(nhwc(xs))),
        (f"evaluation forward, {xs.shape[0]} test images at once / in batches of {EVAL_BATCH}",
         lambda: model(nhwc(xs)), batched(lambda x: model(nhwc(x)), EVAL_BATCH)),
        ("gather 640 training images", lambda: data.x_train[idx], lambda: data.x_train.index_select(0, idx)),
        ("mlp fc1 weight gradients, 20 clients x 32, into the rows", *linear_grads(20, 64, 784, 50_890)),
        ("cnn fc1 weight gradients, 4 clients x 32, into the rows", *linear_grads(4, 500, 800, 431_080)),
    ]
    print(f"{args.threads} thread(s), torch {torch.__version__}; median ms of {args.reps} calls")
    print("| what | old ms | new ms | new ÷ old |\n|---|---|---|---|")
    with torch.no_grad():
        for name, old, new in rows:
            a, c = ms(old, args.reps), ms(new, args.reps)
            print(f"| {name} | {a:.2f} | {c:.2f} | {c / a:.2f} |")


if __name__ == "__main__":
    main()
