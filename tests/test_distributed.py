"""DDP without code changes: ``embodied.training.fit`` under ``torchrun`` (2 CPU processes, gloo)
gives the same weights as one process with the same global batch.

Why the two runs must agree: accelerate shards the prepared DataLoader by batches. Both runs
shuffle with the same seeded generator (accelerate broadcasts rank 0's generator state), so the
N-process run sees, per optimizer step, the same global batch split into N per-process halves.
With a mean loss, DDP's all-reduced (averaged) gradient equals the single-process gradient of the
whole global batch, so AdamW takes the same step; only float summation order differs.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("accelerate")

ROOT = Path(__file__).resolve().parents[1]
GLOBAL_BATCH = 8
STEPS = 12

WORKER = textwrap.dedent(
    """
    import json, os, sys
    from pathlib import Path

    import torch
    from torch import nn
    from safetensors.torch import load_file, save_file

    from embodied.training import TrainConfig, Trainable, fit

    out, global_batch, steps = Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    torch.set_num_threads(1)


    class Tiny(nn.Module):
        def __init__(self):
            super().__init__()
            self.net = nn.Sequential(nn.Linear(6, 16), nn.Tanh(), nn.Linear(16, 3))

        def compute_loss(self, batch):
            x, y = batch
            loss = ((self.net(x) - y) ** 2).mean()  # a mean: DDP's averaged gradient == global-batch gradient
            return loss, {"mse": loss.detach()}


    # The same data and initial weights in every process (and in the single-process run).
    g = torch.Generator().manual_seed(123)
    x = torch.randn(64, 6, generator=g)
    y = torch.sin(x[:, :3]) + 0.1 * torch.randn(64, 3, generator=g)
    dataset = torch.utils.data.TensorDataset(x, y)
    torch.manual_seed(7)
    model = Tiny()

    def save(d):
        save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(d / "model.safetensors"))

    def load(d):
        model.load_state_dict(load_file(str(d / "model.safetensors")))

    cfg = TrainConfig(steps=steps, batch_size=global_batch // world, lr=3e-2, warmup_steps=3, max_grad_norm=1.0,
                      device="cpu", seed=0, log_every=1, checkpoint_every=5, progress=False)
    result = fit(Trainable(module=model, save=save, load=load), dataset, cfg, out / "run")
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(out / f"final_rank{rank}.safetensors"))
    (out / f"result_rank{rank}.json").write_text(json.dumps(
        {"steps": result.steps, "world": world, "checkpoint": str(result.checkpoint), "loss": result.last_loss}))
    """
)


def _run(cmd: list[str], timeout: float) -> None:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": "", "PYTHONPATH": str(ROOT)}
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, f"{' '.join(cmd)} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-5000:]}"


def test_ddp_two_cpu_processes_match_single_process(tmp_path):
    from safetensors.torch import load_file

    script = tmp_path / "worker.py"
    script.write_text(WORKER)
    single, ddp = tmp_path / "single", tmp_path / "ddp"
    single.mkdir(), ddp.mkdir()
    _run([sys.executable, str(script), str(single), str(GLOBAL_BATCH), str(STEPS)], timeout=120)
    _run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
          str(script), str(ddp), str(GLOBAL_BATCH), str(STEPS)], timeout=180)

    ref = load_file(str(single / "final_rank0.safetensors"))
    ranks = [load_file(str(ddp / f"final_rank{r}.safetensors")) for r in (0, 1)]
    for name, value in ref.items():
        # DDP keeps the replicas identical ...
        torch.testing.assert_close(ranks[0][name], ranks[1][name], rtol=0, atol=1e-6)
        # ... and equal to the one-process run with the same global batch.
        torch.testing.assert_close(ranks[0][name], value, rtol=1e-4, atol=1e-5)

    # The weights moved (the comparison is not trivially true): compare with the initial weights.
    torch.manual_seed(7)
    start = torch.nn.Sequential(torch.nn.Linear(6, 16), torch.nn.Tanh(), torch.nn.Linear(16, 3)).state_dict()
    assert (ref["net.0.weight"] - start["0.weight"]).abs().max() > 1e-2

    results = [json.loads((ddp / f"result_rank{r}.json").read_text()) for r in (0, 1)]
    assert [r["world"] for r in results] == [2, 2] and all(r["steps"] == STEPS for r in results)
    # Only the main process writes the run directory: one metrics row per step, one checkpoint layout.
    rows = [json.loads(line) for line in (ddp / "run" / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == list(range(1, STEPS + 1))
    assert (ddp / "run" / "checkpoints" / "latest").read_text().strip() == f"step_{STEPS:07d}"
    ckpt = load_file(str(ddp / "run" / "checkpoints" / f"step_{STEPS:07d}" / "model.safetensors"))
    for name, value in ref.items():
        torch.testing.assert_close(ckpt[name], value, rtol=1e-4, atol=1e-5)
    single_rows = [json.loads(line) for line in (single / "run" / "metrics.jsonl").read_text().splitlines()]
    assert len(single_rows) == STEPS
