"""Does the planner imagine the right future? Predicted vs real last frame on held-out episodes.

    python benchmarks/planner_quality.py --planner outputs/.../planner --store data/heldout.zarr

Trains nothing. For every episode of the store (use seeds the planner was not trained on; filter
with --tasks / --sources), the planner sees the first frame and the instruction; its last frame
is compared with the episode's real last frame, against the baseline "copy the first frame"
(a planner that imagines nothing). Also reported: the mean error over all K plan frames against
the real frames at the same relative times. Lower MSE / higher PSNR is better.

The last line is machine-readable:
    plan_mse=<x> copy_mse=<x> plan_psnr=<x> copy_psnr=<x> mse_ratio=<copy/plan>
"""

from __future__ import annotations

import argparse
import math
from collections import defaultdict

import numpy as np


def mse(a: np.ndarray, b: np.ndarray) -> float:
    """Mean squared error of uint8 images, in [0, 1] intensity units."""
    d = a.astype(np.float64) / 255.0 - b.astype(np.float64) / 255.0
    return float(np.mean(d * d))


def psnr(m: float) -> float:
    return 10 * math.log10(1.0 / max(m, 1e-12))


def plan_errors(planner, clips: list[np.ndarray], instructions: list[str], seed=0,
                num_steps: int | None = None) -> list[dict[str, float]]:
    """One planner call on a batch of real clips, uint8 (K+1, H, W, 3) each (``clip_indices``):
    per clip, the MSE of the plan's last frame / all frames to the real ones, and of copying frame 0."""
    k = planner.config.num_frames
    plans = planner.plan_batch(instructions, np.stack([c[0] for c in clips]), num_steps=num_steps, seed=seed)
    return [{"plan_last": mse(plan[-1], clip[-1]), "copy_last": mse(clip[0], clip[-1]),
             "plan_all": float(np.mean([mse(plan[j], clip[j + 1]) for j in range(k)])),
             "copy_all": float(np.mean([mse(clip[0], clip[j + 1]) for j in range(k)]))}
            for clip, plan in zip(clips, plans)]


def summary_line(m: dict[str, float]) -> str:
    """The machine-readable figure from the pooled means of ``plan_errors``' keys."""
    return (f"plan_mse={m['plan_last']:.5f} copy_mse={m['copy_last']:.5f} plan_psnr={psnr(m['plan_last']):.2f} "
            f"copy_psnr={psnr(m['copy_last']):.2f} mse_ratio={m['copy_last'] / m['plan_last']:.2f}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--planner", required=True, help="planner checkpoint dir (video_models.load_planner)")
    p.add_argument("--store", required=True, help="episode store with held-out episodes")
    p.add_argument("--tasks", nargs="*", default=None, help="only these tasks (default: all in the store)")
    p.add_argument("--sources", nargs="*", default=["expert"])
    p.add_argument("--min-seed", type=int, default=None, help="only episodes with seed >= this (held-out range)")
    p.add_argument("--max-episodes", type=int, default=200)
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args()

    import torch

    from embodied.clips import clip_indices
    from embodied.store import EpisodeStore
    from video_models import load_planner

    torch.set_num_threads(args.threads)
    planner = load_planner(args.planner)
    k = planner.config.num_frames
    store = EpisodeStore(args.store)
    conditions = {"source": args.sources}
    if args.tasks:
        conditions["task"] = args.tasks
    ids = [i for i in store.filter(**conditions)
           if args.min_seed is None or store.meta(i)["seed"] >= args.min_seed][: args.max_episodes]
    if not ids:
        raise SystemExit(f"no episodes in {args.store} match {conditions} min_seed={args.min_seed}")

    per_task = defaultdict(lambda: defaultdict(list))
    for start in range(0, len(ids), args.batch):
        chunk = ids[start : start + args.batch]
        clips = [store.get(i, "rgb", clip_indices(0, store.episode_length(i), k)) for i in chunk]
        metas = [store.meta(i) for i in chunk]
        for errors, meta in zip(plan_errors(planner, clips, [m["instruction"] for m in metas], seed=0), metas):
            for key, value in errors.items():
                per_task[meta["task"]][key].append(value)

    print(f"planner={args.planner} ({planner.config.image_size}px, K={k}, {planner.config.sample_steps} {planner.config.sampler} steps); "
          f"{len(ids)} held-out episodes of {len(per_task)} tasks from {args.store}")
    print()
    print("| task | episodes | last-frame MSE plan | copy first frame | PSNR plan | PSNR copy | all-frames MSE plan | copy |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    pooled = defaultdict(list)
    for task, rows in sorted(per_task.items()):
        for key, values in rows.items():
            pooled[key] += values
        m = {key: float(np.mean(v)) for key, v in rows.items()}
        print(f"| {task} | {len(rows['plan_last'])} | {m['plan_last']:.4f} | {m['copy_last']:.4f} | "
              f"{psnr(m['plan_last']):.1f} | {psnr(m['copy_last']):.1f} | {m['plan_all']:.4f} | {m['copy_all']:.4f} |")
    m = {key: float(np.mean(v)) for key, v in pooled.items()}
    print(f"| **all** | {len(pooled['plan_last'])} | {m['plan_last']:.4f} | {m['copy_last']:.4f} | "
          f"{psnr(m['plan_last']):.1f} | {psnr(m['copy_last']):.1f} | {m['plan_all']:.4f} | {m['copy_all']:.4f} |")
    print()
    print(summary_line(m))


if __name__ == "__main__":
    main()
