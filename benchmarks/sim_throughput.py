"""Rendered-step throughput of sim.make_env vs MetaWorld's own rendering, and worker scaling.

    MUJOCO_GL=egl python benchmarks/sim_throughput.py            # ~2 min on 2 CPU cores

1. Steps/s of env.step() with a frame rendered every step, at each --sizes: ours (sim.make_env)
   vs MetaWorld's gymnasium rendering of the same task class (render_mode="rgb_array",
   width=height=size, camera_name=--camera, env.render() after each step). Goal: >= 10x.
2. Total rendered steps/s of expert rollouts (sim.rollout.rollout_many) with 1 vs 2 spawn worker
   processes, end to end (process start and env creation included). Goal: >= 1.7x on 2 cores.

The last line is machine-readable:
    sim_speedup_64px=<x> sim_speedup_128px=<x> worker_scaling=<x>
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time

os.environ.setdefault("MUJOCO_GL", "egl")


def ours_steps_per_s(task: str, size: int, camera: str, steps: int) -> float:
    import numpy as np

    from sim.env import make_env

    env = make_env(task, image_size=size, camera=camera, seed=0)
    try:
        env.reset(seed=0)
        rng = np.random.default_rng(0)
        for _ in range(5):  # warm-up
            env.step(rng.uniform(-1, 1, 4))
        env.reset(seed=1)
        t0 = time.perf_counter()
        done = 0
        while done < steps:
            _, _, terminated, truncated, _ = env.step(rng.uniform(-1, 1, 4))
            done += 1
            if terminated or truncated:
                env.reset()
        return done / (time.perf_counter() - t0)
    finally:
        env.close()


def metaworld_steps_per_s(task: str, size: int, camera: str, steps: int) -> float:
    """MetaWorld's default rendering path (gymnasium MujocoRenderer, 4096 shadow map, 4x MSAA)."""
    import numpy as np
    from metaworld.env_dict import ALL_V3_ENVIRONMENTS

    env = ALL_V3_ENVIRONMENTS[task](render_mode="rgb_array", width=size, height=size, camera_name=camera)
    # The set-up of MetaWorld's goal-observable variant (whose constructor takes no render size).
    env._partially_observable = False
    del env.sawyer_observation_space  # recomputed for the new observability
    env._set_task_called = True
    env._freeze_rand_vec = False
    env.seeded_rand_vec = True
    env.seed(0)
    try:
        env.reset()
        rng = np.random.default_rng(0)
        frame = env.render()
        assert frame.shape == (size, size, 3) and frame.std() > 5, "MetaWorld rendered a blank frame"
        for _ in range(2):  # warm-up
            env.step(rng.uniform(-1, 1, 4))
            env.render()
        t0 = time.perf_counter()
        for i in range(steps):
            env.step(rng.uniform(-1, 1, 4))
            env.render()
        return steps / (time.perf_counter() - t0)
    finally:
        env.close()


def rollouts_steps_per_s(task: str, size: int, camera: str, episodes: int, workers: int) -> tuple[float, int, float]:
    from sim.rollout import rollout_many

    jobs = [
        dict(task=task, seed=s, image_size=size, camera=camera, noise_std=0.0, max_steps=None,
             extra_steps_after_success=5, instruction=None)
        for s in range(episodes)
    ]
    t0 = time.perf_counter()
    steps = sum(len(ep) for ep in rollout_many(jobs, workers=workers, progress=False, in_process=False))
    wall = time.perf_counter() - t0
    return steps / wall, steps, wall


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--task", default="drawer-open-v3")
    p.add_argument("--camera", default="corner2")
    p.add_argument("--sizes", type=int, nargs="+", default=[64, 128])
    p.add_argument("--steps", type=int, default=300, help="timed steps of ours per size")
    p.add_argument("--baseline-steps", type=int, default=30, help="timed steps of MetaWorld's rendering per size")
    p.add_argument("--repeats", type=int, default=3, help="alternating ours/MetaWorld measurements per size (median)")
    # 60: with frames at ~4 ms, 20 episodes took ~10 s, of which a worker's start (spawn, imports,
    # env creation: ~3-4 s) was a third; a real collection runs hundreds of episodes.
    p.add_argument("--episodes", type=int, default=60, help="expert episodes per worker-scaling run")
    p.add_argument("--rollout-size", type=int, default=64, help="frame size of the worker-scaling rollouts")
    args = p.parse_args()

    print(f"task={args.task} camera={args.camera} cpus={os.cpu_count()} python={platform.python_version()} "
          f"MUJOCO_GL={os.environ.get('MUJOCO_GL')}")
    print()
    print(f"| size | ours steps/s | MetaWorld steps/s | speedup |  (median of {args.repeats} alternating runs)")
    print("|-----:|-------------:|------------------:|--------:|")
    speedups = {}
    for size in args.sizes:
        ours_runs, base_runs = [], []
        for _ in range(args.repeats):
            ours_runs.append(ours_steps_per_s(args.task, size, args.camera, args.steps))
            base_runs.append(metaworld_steps_per_s(args.task, size, args.camera, args.baseline_steps))
        ours, base = statistics.median(ours_runs), statistics.median(base_runs)
        speedups[size] = ours / base
        spread = (f"ours {min(ours_runs):.0f}-{max(ours_runs):.0f}, "
                  f"MetaWorld {min(base_runs):.1f}-{max(base_runs):.1f}")
        print(f"| {size} | {ours:.1f} | {base:.1f} | {speedups[size]:.1f}x |  ({spread})", flush=True)

    print()
    print(f"| rollout workers | episodes | rendered steps | wall s | steps/s |  ({args.rollout_size}px, spawn processes)")
    print("|----------------:|---------:|---------------:|-------:|--------:|")
    rates = {}
    for workers in (1, 2):
        rate, steps, wall = rollouts_steps_per_s(args.task, args.rollout_size, args.camera, args.episodes, workers)
        rates[workers] = rate
        print(f"| {workers} | {args.episodes} | {steps} | {wall:.1f} | {rate:.1f} |", flush=True)
    scaling = rates[2] / rates[1]
    print()
    parts = [f"sim_speedup_{s}px={speedups[s]:.2f}" for s in args.sizes]
    print(" ".join(parts + [f"worker_scaling={scaling:.2f}"]))


if __name__ == "__main__":
    main()
