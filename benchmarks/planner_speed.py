"""Video planner speed: one training step at batch 8, and one plan (DDIM steps as configured).

    python benchmarks/planner_speed.py                      # cpu_tiny on the CPU (2 threads)
    python benchmarks/planner_speed.py --preset gpu --device cuda

Random frames and instructions at the preset's size (speed does not depend on content).
Goals: cpu_tiny <= 0.5 s per train step at batch 8 and plan < 1 s on 2 CPU cores;
gpu preset plan at 128 px < 0.5 s. The last line is machine-readable:
    train_step_s=<x> plan_s=<x>
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


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--preset", default="cpu_tiny", choices=["cpu_tiny", "gpu"])
    p.add_argument("--device", default="cpu")
    p.add_argument("--image-size", type=int, default=None)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--steps", type=int, default=10, help="timed train steps (after 2 warm-up steps)")
    p.add_argument("--plans", type=int, default=5, help="timed plans (after 1 warm-up plan)")
    p.add_argument("--bf16", action="store_true", help="autocast bf16 (GPU)")
    p.add_argument("--text-encoder", choices=["preset", "learned"], default="preset",
                   help="learned: an embedding table instead of MiniLM (one lookup per plan; the UNet dominates)")
    args = p.parse_args()
    torch.set_num_threads(args.threads)

    from video_models import Planner

    cfg = preset_config(args.preset, args.image_size, args.text_encoder)
    planner = Planner(cfg).to(args.device)
    n_params = sum(p.numel() for p in planner.parameters())
    k, s = cfg.num_frames, cfg.image_size
    rng = np.random.default_rng(0)
    batch = {"frames": torch.from_numpy(rng.integers(0, 256, (args.batch, k + 1, s, s, 3), dtype=np.uint8)),
             "instruction": [f"open the drawer {i}" for i in range(args.batch)]}
    optimizer = torch.optim.AdamW(planner.parameters(), lr=1e-4)
    autocast = torch.autocast(device_type=args.device.split(":")[0], dtype=torch.bfloat16, enabled=args.bf16)

    def train_step() -> None:
        with autocast:
            loss, _ = planner.compute_loss(batch)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        planner.ema_step()

    for _ in range(2):
        train_step()
    sync(args.device)
    t0 = time.perf_counter()
    for _ in range(args.steps):
        train_step()
    sync(args.device)
    train_s = (time.perf_counter() - t0) / args.steps

    frame = rng.integers(0, 256, (s, s, 3), dtype=np.uint8)
    with autocast:
        planner.plan("open the drawer", frame, seed=0)
    latencies = []
    for i in range(args.plans):
        sync(args.device)
        t0 = time.perf_counter()
        with autocast:
            plan = planner.plan("open the drawer", frame, seed=i)
        sync(args.device)
        latencies.append(time.perf_counter() - t0)
    plan_s = statistics.median(latencies)
    assert plan.shape == (k, s, s, 3)

    print(f"preset={args.preset} device={args.device} threads={args.threads} image={s}px K={k} "
          f"params={n_params / 1e6:.1f}M DDIM steps={cfg.sample_steps} batch={args.batch} bf16={args.bf16} "
          f"text={cfg.text_encoder}")
    goals = {"cpu_tiny": (0.5, 1.0), "gpu": (None, 0.5)}[args.preset]
    print("| measure | value | goal | ratio to goal |")
    print("|---|---:|---:|---:|")
    if goals[0]:
        print(f"| train step (s, batch {args.batch}) | {train_s:.3f} | <= {goals[0]} | {goals[0] / train_s:.2f}x |")
    else:
        print(f"| train step (s, batch {args.batch}) | {train_s:.3f} | - | {args.batch / train_s:.1f} samples/s |")
    print(f"| plan (s, median of {args.plans}) | {plan_s:.3f} | < {goals[1]} | {goals[1] / plan_s:.2f}x |")
    print(f"train_step_s={train_s:.4f} plan_s={plan_s:.4f}")


if __name__ == "__main__":
    main()
