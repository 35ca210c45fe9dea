"""Video planner speed: a training step, one plan as the rollouts used to make it, and the served plan.

    python benchmarks/planner_speed.py                      # cpu_tiny on the CPU (2 threads)
    python benchmarks/planner_speed.py --preset gpu --device cuda --text-encoder learned

Three measurements in one run, on the same weights and random inputs (speed does not depend on
content):
- train step at --batch;
- "before": a plan as ``Planner.plan`` made it before plans were served (EMA weights swapped in and
  out around every plan, eager network; bf16 autocast on a GPU, as the 1.60 s figure was measured);
- "served": the planner as embodied.plan_server holds it (``for_inference``: EMA kept loaded, the
  preset's --precision and --compile), at batch 1 and at --plan-batches (plans per second).
The ratio before / served is printed. Goals: cpu_tiny <= 0.5 s per train step at batch 8 and plan
< 1 s on 2 CPU cores; gpu preset plan at 128 px < 0.5 s. The last line is machine-readable:
    train_step_s=<x> plan_s=<x> before_plan_s=<x>
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import numpy as np
import torch
import yaml

CONFIGS = Path(__file__).resolve().parents[1] / "configs" / "video_model"


INSTRUCTIONS = ["open the drawer"] + [f"open the drawer {i}" for i in range(64)]


def preset_config(preset: str, image_size: int | None, text_encoder: str | None = None):
    from video_models import VideoModelConfig

    values = yaml.safe_load((CONFIGS / f"{preset}.yaml").read_text())
    values["image_size"] = image_size or {"cpu_tiny": 64, "gpu": 128}[preset]
    if text_encoder == "learned":  # no MiniLM weights needed (e.g. a machine without the package)
        values.update(text_encoder="learned", instructions=INSTRUCTIONS)
    return VideoModelConfig(**values)


def sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def timed(fn, n: int, device: str) -> float:
    """Median seconds of ``n`` calls of fn() (after one warm-up call)."""
    fn()
    times = []
    for _ in range(n):
        sync(device)
        t0 = time.perf_counter()
        fn()
        sync(device)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--preset", default="cpu_tiny", choices=["cpu_tiny", "gpu"])
    p.add_argument("--device", default="cpu", help="auto | cpu | cuda | cuda:N")
    p.add_argument("--image-size", type=int, default=None)
    p.add_argument("--batch", type=int, default=8, help="train batch")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--steps", type=int, default=10, help="timed train steps (after 2 warm-up steps); 0: no training")
    p.add_argument("--plans", type=int, default=5, help="timed plans per measurement (after 1 warm-up plan)")
    p.add_argument("--precision", default=None, help="served plans: float32 | bfloat16 (default: bfloat16 on a GPU)")
    p.add_argument("--compile", default=None, help="served plans: none | cuda_graphs | inductor "
                                                    "(default: cuda_graphs on a GPU)")
    p.add_argument("--sampler", default=None, help="ddim | dpm_solver for every plan (default: the config's)")
    p.add_argument("--sample-steps", type=int, default=None, help="sampler steps for every plan (default: the config's)")
    p.add_argument("--plan-batches", default="16,32,64", help="batch sizes of the served plans-per-second rows ('' : none)")
    p.add_argument("--text-encoder", choices=["preset", "learned"], default="preset",
                   help="learned: an embedding table instead of MiniLM (one lookup per plan; the UNet dominates)")
    args = p.parse_args()
    torch.set_num_threads(args.threads)

    from embodied.device import resolve_device
    from video_models import Planner

    device = resolve_device(args.device)
    gpu = device.startswith("cuda")
    precision = args.precision or ("bfloat16" if gpu else "float32")
    compile_mode = args.compile or ("cuda_graphs" if gpu else "none")
    cfg = preset_config(args.preset, args.image_size, args.text_encoder)
    if args.sampler:
        cfg.sampler = args.sampler
    steps = args.sample_steps or cfg.sample_steps
    torch.manual_seed(0)
    planner = Planner(cfg).to(device)
    n_params = sum(p.numel() for p in planner.parameters())
    k, s = cfg.num_frames, cfg.image_size
    rng = np.random.default_rng(0)
    autocast = torch.autocast(device_type=device.split(":")[0], dtype=torch.bfloat16, enabled=gpu)

    train_s = float("nan")
    if args.steps:
        batch = {"frames": torch.from_numpy(rng.integers(0, 256, (args.batch, k + 1, s, s, 3), dtype=np.uint8)),
                 "instruction": [f"open the drawer {i}" for i in range(args.batch)]}
        optimizer = torch.optim.AdamW(planner.parameters(), lr=1e-4)

        def train_step() -> None:
            with autocast:
                loss, _ = planner.compute_loss(batch)
            loss.backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            planner.ema_step()

        train_step()
        train_s = timed(train_step, args.steps, device)

    frame = rng.integers(0, 256, (s, s, 3), dtype=np.uint8)

    def before() -> None:
        with autocast:
            planner.plan("open the drawer", frame, num_steps=steps, seed=0)

    before_s = timed(before, args.plans, device)
    planner.for_inference(precision=precision, compile=compile_mode)
    t0 = time.perf_counter()
    plan = planner.plan("open the drawer", frame, num_steps=steps, seed=0)  # first plan: capture / compile
    first_s = time.perf_counter() - t0
    assert plan.shape == (k, s, s, 3)
    plan_s = timed(lambda: planner.plan("open the drawer", frame, num_steps=steps, seed=1), args.plans, device)
    throughput = {}
    for b in [int(x) for x in args.plan_batches.split(",") if x]:
        frames = rng.integers(0, 256, (b, s, s, 3), dtype=np.uint8)
        texts = [f"open the drawer {i % 64}" for i in range(b)]
        call_s = timed(lambda: planner.plan_batch(texts, frames, num_steps=steps, seed=list(range(b))),
                       max(1, args.plans // 2), device)
        throughput[b] = b / call_s

    print(f"preset={args.preset} device={device} ({torch.cuda.get_device_name(device) if gpu else 'CPU'}) "
          f"threads={args.threads} image={s}px K={k} params={n_params / 1e6:.1f}M sampler={cfg.sampler} "
          f"steps={steps} text={cfg.text_encoder} served: precision={precision} compile={compile_mode}")
    goals = {"cpu_tiny": (0.5, 1.0), "gpu": (None, 0.5)}[args.preset]
    print("| measure | value | goal | ratio |")
    print("|---|---:|---:|---:|")
    if args.steps and goals[0]:
        print(f"| train step (s, batch {args.batch}) | {train_s:.3f} | <= {goals[0]} | {goals[0] / train_s:.2f}x goal |")
    elif args.steps:
        print(f"| train step (s, batch {args.batch}) | {train_s:.3f} | - | {args.batch / train_s:.1f} samples/s |")
    print(f"| plan before (s, batch 1, median of {args.plans}) | {before_s:.3f} | < {goals[1]} | {goals[1] / before_s:.2f}x goal |")
    print(f"| plan served (s, batch 1, median of {args.plans}) | {plan_s:.3f} | < {goals[1]} | "
          f"{goals[1] / plan_s:.2f}x goal, {before_s / plan_s:.2f}x before |")
    print(f"| served: first plan (capture / compile, s) | {first_s:.2f} | - | - |")
    for b, rate in throughput.items():
        print(f"| served plans/s at batch {b} | {rate:.1f} | - | {rate * before_s:.1f}x before |")
    print(f"train_step_s={train_s:.4f} plan_s={plan_s:.4f} before_plan_s={before_s:.4f}")


if __name__ == "__main__":
    main()
