"""SAIL rollout throughput: one episode at a time vs episodes planned in batches, on the same jobs.

    python benchmarks/sail_throughput.py --planner runs/pretrain/video/planner \
        --policy runs/pretrain/policy/policy --episodes-per-task 2 --plan-batch 8 --sampler dpm_solver --steps 3

Runs the same plan-and-execute jobs (the tasks x validation seeds, as a SAIL iteration practises
them) under each setting, every one through ``embodied.rollouts.rollout_plan_many`` in ``--workers``
spawn workers (worker start included: a SAIL iteration pays it too):
- per episode: ``plan_batch=1`` and the checkpoint's own sampler and steps (the path before batching);
- batched: ``plan_batch=--plan-batch``, the checkpoint's sampler (what batching alone gives);
- batched + fast sampler: ``plan_batch=--plan-batch`` with ``--sampler`` / ``--steps``.
For both sampler settings it also prints the plan-quality line of ``benchmarks/planner_quality.py``
on the expert episodes of the same (task, seed) pairs, each plan seeded like the rollout's first plan.
The last line is machine-readable:
    per_episode_rpm=<x> batched_rpm=<x> fast_rpm=<x> speedup=<fast/per_episode> mse_ratio_base=<x> mse_ratio_fast=<x>
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from pathlib import Path

import numpy as np
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from planner_quality import plan_errors, summary_line  # noqa: E402


def timed_rollouts(jobs, settings, workers: int) -> tuple[float, list]:
    from embodied.rollouts import rollout_plan_many

    t0 = time.perf_counter()
    results = list(rollout_plan_many(jobs, settings, workers=workers, progress=False))
    return time.perf_counter() - t0, results


def plan_quality(planner_dir: str, experts: list, sampler: str | None, steps: int | None, sampling_seed: int) -> str:
    """planner_quality's figure on these expert episodes, plan seeds as the rollouts' first plans."""
    import torch

    from embodied.clips import clip_indices
    from embodied.rollouts import VideoPlanFn
    from video_models import load_planner

    torch.set_num_threads(1)  # as in a rollout worker
    planner = load_planner(planner_dir)
    if sampler:
        planner.set_sampler(sampler)
    k = planner.config.num_frames
    clips = [r.episode.rgb[clip_indices(0, len(r.episode), k)] for r in experts]
    seeds = [VideoPlanFn(planner, r.job.seed, sampling_seed=sampling_seed).next_seed() for r in experts]
    rows = []
    for start in range(0, len(clips), 16):
        part = slice(start, start + 16)
        rows += plan_errors(planner, clips[part], [r.episode.meta["instruction"] for r in experts[part]],
                            seed=seeds[part], num_steps=steps)
    return summary_line({key: float(np.mean([r[key] for r in rows])) for key in rows[0]})


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--planner", required=True, help="video_models planner checkpoint dir")
    p.add_argument("--policy", required=True, help="policies checkpoint dir (the IDM)")
    p.add_argument("--task-set", default="target_12", help="configs/task_set/<name>.yaml")
    p.add_argument("--episodes-per-task", type=int, default=2)
    p.add_argument("--seed-start", type=int, default=10_000, help="validation seeds by default")
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--plan-batch", type=int, default=8, help="episodes per worker planned together")
    p.add_argument("--sampler", default="dpm_solver", help="the fast setting's sampler (VideoModelConfig.sampler)")
    p.add_argument("--steps", type=int, default=3, help="the fast setting's sampler steps")
    p.add_argument("--max-steps", type=int, default=None, help="executor step budget (default: ExecutorConfig's)")
    p.add_argument("--sampling-seed", type=int, default=0)
    p.add_argument("--skip-batched", action="store_true", help="only per episode and batched + fast sampler")
    args = p.parse_args()

    from embodied.rollouts import PlanJob, RolloutSettings
    from policies.config import ExecutorConfig

    tasks = yaml.safe_load((ROOT / "configs" / "task_set" / f"{args.task_set}.yaml").read_text())["tasks"]
    seeds = range(args.seed_start, args.seed_start + args.episodes_per_task)
    jobs = [PlanJob(task, seed, planner=args.planner, policy=args.policy) for task in tasks for seed in seeds]
    executor = ExecutorConfig() if args.max_steps is None else ExecutorConfig(max_steps=args.max_steps)
    base = RolloutSettings(executor=executor, sampling_seed=args.sampling_seed)
    settings = {"per_episode": base, "batched": dataclasses.replace(base, plan_batch=args.plan_batch),
                "fast": dataclasses.replace(base, plan_batch=args.plan_batch, plan_sampler=args.sampler,
                                            plan_sample_steps=args.steps)}
    if args.skip_batched:
        del settings["batched"]

    rpm, results = {}, {}
    for name, s in settings.items():
        seconds, results[name] = timed_rollouts(jobs, s, args.workers)
        rpm[name] = 60 * len(jobs) / seconds
        successes = sum(r.episode.meta["success_gt"] for r in results[name])
        plans = sum(len(r.plans) for r in results[name])
        print(f"{name}: plan_batch={s.plan_batch} sampler={s.plan_sampler or 'checkpoint'} "
              f"steps={s.plan_sample_steps or 'checkpoint'}: {len(jobs)} rollouts ({plans} plans, "
              f"{successes} successes) in {seconds:.1f} s = {rpm[name]:.1f} rollouts/min", flush=True)
    if "batched" in results:  # batching alone changes nothing but float rounding
        same = sum(np.array_equal(a.episode.action, b.episode.action)
                   for a, b in zip(results["per_episode"], results["batched"]))
        print(f"batched vs per episode: {same}/{len(jobs)} episodes with identical actions")

    expert_jobs = [dataclasses.replace(job, planner="oracle", policy="expert") for job in jobs]
    _, experts = timed_rollouts(expert_jobs, base, args.workers)
    quality = {"base": plan_quality(args.planner, experts, None, None, args.sampling_seed),
               "fast": plan_quality(args.planner, experts, args.sampler, args.steps, args.sampling_seed)}
    print(f"plan quality, checkpoint's sampler ({len(experts)} expert episodes): {quality['base']}")
    print(f"plan quality, {args.sampler} {args.steps} steps: {quality['fast']}")

    ratio = {k: float(v.split("mse_ratio=")[1]) for k, v in quality.items()}
    print(f"per_episode_rpm={rpm['per_episode']:.2f} batched_rpm={rpm.get('batched', float('nan')):.2f} "
          f"fast_rpm={rpm['fast']:.2f} speedup={rpm['fast'] / rpm['per_episode']:.2f} "
          f"mse_ratio_base={ratio['base']:.2f} mse_ratio_fast={ratio['fast']:.2f}")


if __name__ == "__main__":
    main()
