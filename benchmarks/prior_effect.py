"""Does composing the plans with a prior help? Success with and without it, on the same seeds.

Pretrain the planner prior (configs/prior/planner.yaml; MT50 minus every target task; training
~1 s per step on 2 idle cores, ~35 min for 2000 steps):
    embodied-collect task_set=prior_broad episodes_per_task=10 store=data/prior_demos.zarr
    embodied-train-video task_set=prior_broad store=data/prior_demos.zarr video_model=prior_cpu \\
        train.steps=2000 hydra.run.dir=runs/prior

Measure (validation seeds 10000+, configs/seeds/default.yaml; simulator ground truth):
    python benchmarks/prior_effect.py --planner runs/demo/<in-domain planner dir> \\
        --policy runs/demo/<IDM dir> --prior runs/prior/planner --tasks button-press-wall-v3 handle-press-side-v3 \\
        --episodes 20 [--mode ipa_centered --w 2.5 --g 0.5 --steps 10]
    (--prior-kind diffusers --prior /models/animatediff: a diffusers prior, latent in-domain model)

Each (task, seed) episode runs twice, in-domain planner alone and composed, with the same plan
seeds and action noise; the executor settings are embodied-eval's (configs/eval.yaml, the loop's too). Prints per
task and pooled success with 95 % Wilson intervals, and the exact McNemar p of the paired outcomes.
The last line is machine-readable:
    alone=<rate> composed=<rate> gained=<n> lost=<n> p=<p>
"""

from __future__ import annotations

import argparse
import os
from collections import defaultdict

VALIDATION = (10_000, 20_000)  # configs/seeds/default.yaml: the seeds recipes are tuned on
_MODELS = None  # in a worker: (planner alone, composed planner, policy, executor config), loaded once


def _executor():
    """embodied-eval's executor settings (configs/eval.yaml), so the numbers compare with its tables."""
    from pathlib import Path

    from omegaconf import OmegaConf

    from policies.config import ExecutorConfig

    cfg = OmegaConf.load(Path(__file__).resolve().parents[1] / "configs" / "eval.yaml")
    return ExecutorConfig(**OmegaConf.to_container(cfg.executor))


def _run(item) -> tuple[str, int, bool, bool]:
    """One (task, seed) pair, both ways, in a worker that loads the models once."""
    task, seed, args = item
    global _MODELS
    if _MODELS is None:
        import torch

        from policies import load_policy
        from video_models import load_plan_model

        torch.set_num_threads(1)
        prior = dict(kind=args.prior_kind, path=args.prior, mode=args.mode, w=args.w, g=args.g, sample_steps=args.steps)
        _MODELS = (load_plan_model(args.planner), load_plan_model(args.planner, prior), load_policy(args.policy), _executor())
    from embodied.rollouts import rollout_plan_episode

    alone, composed, policy, executor = _MODELS
    out = []
    for planner in (alone, composed):
        episode, _ = rollout_plan_episode(task, seed, planner, policy, executor, args.image_size,
                                          plan_sample_steps=args.steps, sampling_seed=args.sampling_seed)
        out.append(bool(episode.meta["success_gt"]))
    return task, seed, out[0], out[1]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--planner", required=True, help="in-domain planner checkpoint dir")
    p.add_argument("--policy", required=True, help="IDM / goal policy checkpoint dir")
    p.add_argument("--prior", required=True, help="prior dir: a video_models planner (or a diffusers pipeline)")
    p.add_argument("--prior-kind", default="planner", choices=["planner", "diffusers"])
    p.add_argument("--tasks", nargs="+", required=True, help="target tasks (MetaWorld v3 names)")
    p.add_argument("--episodes", type=int, default=20, help="validation seeds per task, from 10000")
    p.add_argument("--seed-start", type=int, default=VALIDATION[0])
    p.add_argument("--mode", default="ipa_centered", choices=["ipa", "ipa_centered", "sum"])
    p.add_argument("--w", type=float, default=2.5)
    p.add_argument("--g", type=float, default=0.5)
    p.add_argument("--steps", type=int, default=10, help="DDIM steps per plan, both ways")
    p.add_argument("--image-size", type=int, default=64)
    p.add_argument("--sampling-seed", type=int, default=0)
    p.add_argument("--workers", type=int, default=2)
    args = p.parse_args()

    from embodied.stats import paired, success_rate
    from sim.catalog import validate_task_names
    from sim.pool import WORKER_ENV, run_in_workers
    from video_models import check_prior

    if not VALIDATION[0] <= args.seed_start <= VALIDATION[1] - args.episodes:
        raise SystemExit(f"seeds {args.seed_start}+{args.episodes}: measure on validation seeds {VALIDATION}, never test")
    tasks = validate_task_names(args.tasks)
    check_prior({"kind": args.prior_kind, "path": args.prior, "mode": args.mode}, args.planner, args.image_size)
    jobs = [(t, args.seed_start + i, args) for t in tasks for i in range(args.episodes)]
    if args.workers <= 1:
        os.environ.update(WORKER_ENV)
        results = [_run(job) for job in jobs]
    else:
        results = list(run_in_workers(_run, jobs, args.workers,
                                      lambda job, e: RuntimeError(f"{job[0]} seed {job[1]} failed: {e}")))

    by_task = defaultdict(list)
    for task, _, a, c in results:
        by_task[task].append((a, c))
    print(f"{'task':28s} {'alone':>20s} {'composed':>20s}  paired (McNemar)")
    for task in tasks + ["pooled"]:
        rows = [r for rs in by_task.values() for r in rs] if task == "pooled" else by_task[task]
        before, after = [a for a, _ in rows], [c for _, c in rows]
        pair = paired(before, after)
        print(f"{task:28s} {str(success_rate(sum(before), len(rows))):>20s} "
              f"{str(success_rate(sum(after), len(rows))):>20s}  {pair}")
    print(f"alone={pair.before / pair.episodes:.3f} composed={pair.after / pair.episodes:.3f} "
          f"gained={pair.gained} lost={pair.lost} p={pair.p_value:.4g}")


if __name__ == "__main__":
    main()
