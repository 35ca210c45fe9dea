"""Inference latency of a policy on CPU: ``python -m policies.latency [--type idm|goal] [--preset cpu_tiny]``.

Target (cpu_tiny): < 20 ms per ``predict_action`` query on CPU. A query returns a chunk of c
actions, so the cost per executed action is lower still (reported as well).
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from policies.config import make_config
from policies.modeling import FrameGoalPolicy
from policies.normalizer import Normalizer


def random_policy(type: str = "idm", preset: str = "cpu_tiny", state_dim: int = 39, action_dim: int = 4, **overrides):
    """An untrained policy with unit normalisers (latency does not depend on the weights)."""
    config = make_config(type, preset, state_dim=state_dim, action_dim=action_dim, **overrides)

    def unit(d: int) -> Normalizer:
        return Normalizer("minmax", dict(min=-np.ones(d), max=np.ones(d), mean=np.zeros(d), std=np.ones(d)))

    return FrameGoalPolicy(config, unit(state_dim), unit(action_dim)).eval()


def measure_latency(policy: FrameGoalPolicy, threads: int, queries: int = 50, warmup: int = 5) -> dict[str, float]:
    """Median / p90 ms per predict_action query with ``torch.set_num_threads(threads)``."""
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        size, s = policy.config.image_size, policy.config.state_dim
        rng = np.random.default_rng(0)
        obs = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
        goal = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
        state = rng.standard_normal(s).astype(np.float32)
        times = []
        for i in range(warmup + queries):
            t0 = time.perf_counter()
            policy.predict_action(obs, goal, state, **({"gap": 16} if policy.conditions_on_gap else {}))
            if i >= warmup:
                times.append((time.perf_counter() - t0) * 1e3)
    finally:
        torch.set_num_threads(previous)
    ms = float(np.median(times))
    return {"threads": threads, "ms_per_query": ms, "p90_ms": float(np.percentile(times, 90)),
            "ms_per_action": ms / policy.config.chunk}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--type", default="idm", choices=["idm", "goal"])
    parser.add_argument("--preset", default="cpu_tiny")
    parser.add_argument("--queries", type=int, default=100)
    args = parser.parse_args()
    policy = random_policy(args.type, args.preset)
    n_params = sum(p.numel() for p in policy.parameters())
    print(f"{args.type} {args.preset}: {n_params / 1e6:.2f} M parameters, chunk {policy.config.chunk}")
    for threads in (1, 2):
        r = measure_latency(policy, threads, args.queries)
        print(f"  threads={threads}: {r['ms_per_query']:.2f} ms/query (p90 {r['p90_ms']:.2f}), "
              f"{r['ms_per_action']:.2f} ms/action")


if __name__ == "__main__":
    main()
