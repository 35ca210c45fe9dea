"""The one training loop every model shares (video planner, IDM / goal policy, success grader).

A model plugs in through ``Trainable``: the ``nn.Module`` to optimise (its ``compute_loss(batch)``
gives the loss), what to do after each optimizer step (EMA), and how to save / restore itself.
The loop runs under ``accelerate`` (device, mixed precision, gradient accumulation, DDP over N
processes with ``accelerate launch`` / ``torchrun``: nothing here changes), writes JSONL metrics,
shows a tqdm bar, checkpoints every ``checkpoint_every`` steps and resumes from the last one.

Run directory:
    metrics.jsonl                      one row per logged step (loss, lr, samples/s, model metrics)
    checkpoints/step_000500/           the model's own files (safetensors + config.json) and
                 optimizer.safetensors, trainer_state.json   (optimizer moments, step, config)
    checkpoints/latest                 name of the newest complete checkpoint (written last)
Nothing is pickled: optimizer state is flattened into safetensors + JSON.
"""

from __future__ import annotations

import json
import logging
import math
import os
import shutil
import time
import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from embodied.device import check_device, resolve_device

log = logging.getLogger(__name__)

CHECKPOINTS = "checkpoints"
LATEST = "latest"


@dataclass
class TrainConfig:
    """Optimisation settings shared by every model (presets set them; each field documented here)."""

    steps: int = 1000  # optimizer steps in total (a resumed run stops at the same total)
    batch_size: int = 8  # per process and per accumulation micro-step
    grad_accum: int = 1  # micro-batches per optimizer step
    lr: float = 2e-4  # AdamW peak learning rate
    weight_decay: float = 0.0  # AdamW weight decay
    warmup_steps: int = 50  # linear warm-up, then lr_schedule
    # constant | cosine (decays to 0 at the last step: the weights settle instead of ending
    # mid-walk, so consecutive fine-tuning rounds differ by what they learned, not by noise)
    lr_schedule: str = "constant"
    max_grad_norm: float = 1.0  # gradient clipping (0: off)
    mixed_precision: str = "no"  # no | fp16 | bf16 (accelerate)
    # auto (the GPU if there is one) | cpu | cuda | cuda:N; the apps set it from their top-level
    # device (embodied.device), so one override moves every model a command trains.
    device: str = "auto"
    num_workers: int = 0  # DataLoader worker processes (spawn); 0 reads in the main process
    torch_threads: int | None = None  # intra-op CPU threads (None: torch's default)
    seed: int = 0
    log_every: int = 10  # steps between metrics.jsonl rows
    checkpoint_every: int = 500  # steps between checkpoints (the last step always saves one)
    keep_checkpoints: int = 2  # older checkpoints are deleted
    sample_every: int = 0  # steps between calls of the model's sampling hook (plots, videos); 0: off
    resume: bool = True  # continue from the run dir's latest checkpoint if there is one
    init_from: str | None = None  # fine-tune: start from this model checkpoint (weights only)
    progress: bool = True  # tqdm bar

    def __post_init__(self) -> None:
        check_device(self.device)


LR_SCHEDULES = ("constant", "cosine")


def check_lr_schedule(cfg: TrainConfig) -> None:
    if cfg.lr_schedule not in LR_SCHEDULES:
        raise ValueError(f"train.lr_schedule={cfg.lr_schedule!r}: allowed {', '.join(LR_SCHEDULES)}")


def lr_schedule(optimizer: torch.optim.Optimizer, cfg: TrainConfig, start_step: int = 0) -> torch.optim.lr_scheduler.LambdaLR:
    """diffusers' linear warm-up, then constant or half-cosine, placed for optimizer step ``start_step``.

    The loop's optimizer step s (0-based) trains at the schedule's value for step s + 1: the first
    step already has lr / warmup (not 0), and the cosine reaches 0 just after the last step (hence
    ``steps + 1`` training steps). Stepped once per optimizer step.
    """
    from diffusers.optimization import get_constant_schedule_with_warmup, get_cosine_schedule_with_warmup

    check_lr_schedule(cfg)
    warmup = max(1, cfg.warmup_steps)
    if cfg.lr_schedule == "constant":
        scheduler = get_constant_schedule_with_warmup(optimizer, warmup)
    else:
        scheduler = get_cosine_schedule_with_warmup(optimizer, warmup, cfg.steps + 1)
    scheduler.last_epoch = start_step
    with warnings.catch_warnings():  # "scheduler stepped before the optimizer": placing it, not training
        warnings.simplefilter("ignore", UserWarning)
        scheduler.step()
    return scheduler


def _one_thread(worker_id: int) -> None:
    """DataLoader workers only read and stack samples: one intra-op thread each. Otherwise their
    OpenMP threads spin after every small op on the cores the training step needs (measured on
    2 cores: the IDM's 300 steps took 80 s instead of 58 s)."""
    torch.set_num_threads(1)


def seed_model_init(cfg: TrainConfig) -> None:
    """Seed every RNG before a fresh model is built: its initial weights (and so the whole run)
    are then the same in every run of the same command."""
    from accelerate.utils import set_seed

    set_seed(cfg.seed)


@dataclass
class Trainable:
    """How the loop drives one model.

    module: the ``nn.Module`` whose parameters are optimised; its ``compute_loss(batch)`` returns
        ``(loss, metrics)``. (The loop calls it through ``forward`` so DDP can sync gradients.)
    save(dir): write the model's checkpoint files into ``dir``.
    load(dir): restore the model's weights (and EMA) from a directory ``save`` wrote.
    after_step(): called after every optimizer step (EMA update), optional.
    sample(step, out_dir): periodic qualitative output (plots, videos), main process only, optional.
    """

    module: nn.Module
    save: Callable[[Path], Any]
    load: Callable[[Path], Any]
    after_step: Callable[[], Any] | None = None
    sample: Callable[[int, Path], Any] | None = None
    parameters: Callable[[], list[nn.Parameter]] | None = None  # default: module's trainable params
    to: Callable[[torch.device], Any] | None = None  # move everything (model, EMA) to the device


class _LossModule(nn.Module):
    """forward(batch) = inner.compute_loss(batch): the call DDP wraps."""

    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner = inner

    def forward(self, batch):
        return self.inner.compute_loss(batch)


@dataclass
class TrainResult:
    steps: int
    resumed_from: int
    last_loss: float
    checkpoint: Path
    wall_s: float
    history: list[dict[str, Any]] = field(default_factory=list)
    main_process: bool = True  # False on the other ranks of a DDP run: they write no files

    def summary(self, what: str, path: Path) -> str:
        """The line a training CLI prints at the end."""
        return (f"trained {self.steps} steps (resumed from {self.resumed_from}) in {self.wall_s:.0f} s, "
                f"last loss {self.last_loss:.4f}; {what}: {path}")


# --- optimizer state without pickles -----------------------------------------------------------
def _save_optimizer(optimizer: torch.optim.Optimizer, path: Path) -> None:
    from safetensors.torch import save_file

    state = optimizer.state_dict()
    tensors, scalars = {}, {}
    for pid, pstate in state["state"].items():
        for name, value in pstate.items():
            if torch.is_tensor(value):
                tensors[f"{pid}.{name}"] = value.detach().contiguous().cpu()
            else:
                scalars[f"{pid}.{name}"] = value
    save_file(tensors, str(path.with_suffix(".safetensors")))
    path.with_suffix(".json").write_text(json.dumps({"param_groups": state["param_groups"], "scalars": scalars}))


def _load_optimizer(optimizer: torch.optim.Optimizer, path: Path) -> None:
    from safetensors.torch import load_file

    tensors = load_file(str(path.with_suffix(".safetensors")))
    meta = json.loads(path.with_suffix(".json").read_text())
    state: dict[int, dict[str, Any]] = {}
    for key, value in [*tensors.items(), *meta["scalars"].items()]:
        pid, name = key.split(".", 1)
        state.setdefault(int(pid), {})[name] = value
    optimizer.load_state_dict({"state": state, "param_groups": meta["param_groups"]})


def latest_checkpoint(run_dir: str | Path) -> Path | None:
    """The newest complete checkpoint of a run directory, or None."""
    pointer = Path(run_dir) / CHECKPOINTS / LATEST
    if not pointer.exists():
        return None
    path = pointer.parent / pointer.read_text().strip()
    return path if (path / "trainer_state.json").exists() else None


def write_atomic(path: Path, text: str) -> None:
    """Write ``text`` under a temporary name and rename it into place: a kill leaves the old file
    or the new one, never half of either."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


# --- the loop ----------------------------------------------------------------------------------
def fit(
    model: Trainable,
    dataset: torch.utils.data.Dataset,
    cfg: TrainConfig,
    run_dir: str | Path,
    collate_fn: Callable | None = None,
    config_record: dict[str, Any] | None = None,
) -> TrainResult:
    """Train ``model`` on ``dataset`` for ``cfg.steps`` optimizer steps, checkpointing into ``run_dir``."""
    from accelerate import Accelerator
    from accelerate.utils import set_seed
    from tqdm.auto import tqdm

    if len(dataset) == 0:
        raise ValueError("the training dataset is empty: check the store path and its task/source filters")
    if cfg.steps < 1 or cfg.batch_size < 1 or cfg.grad_accum < 1:
        raise ValueError(f"steps, batch_size and grad_accum must be >= 1, got {cfg.steps}, {cfg.batch_size}, {cfg.grad_accum}")
    if cfg.mixed_precision not in ("no", "fp16", "bf16"):
        raise ValueError(f"mixed_precision must be no | fp16 | bf16, got {cfg.mixed_precision!r}")
    device = resolve_device(cfg.device)
    check_lr_schedule(cfg)  # before anything is written
    if cfg.torch_threads:
        torch.set_num_threads(int(cfg.torch_threads))
    run_dir = Path(run_dir)
    ckpt_root = run_dir / CHECKPOINTS

    if device.startswith("cuda:"):  # accelerate trains on the current GPU of a single process
        torch.cuda.set_device(torch.device(device))
    accelerator = Accelerator(cpu=device == "cpu", mixed_precision=cfg.mixed_precision,
                              gradient_accumulation_steps=cfg.grad_accum)
    set_seed(cfg.seed, device_specific=True)

    # Where to start: the run's own latest checkpoint (resume) or a given model (fine-tune).
    start_step = 0
    resume_dir = latest_checkpoint(run_dir) if cfg.resume else None
    if resume_dir is not None:
        model.load(resume_dir)
        start_step = json.loads((resume_dir / "trainer_state.json").read_text())["step"]
        log.info("resuming from %s (step %d)", resume_dir, start_step)
    elif cfg.init_from:
        if not Path(cfg.init_from).is_dir():
            raise FileNotFoundError(f"init_from={cfg.init_from!r} is not a checkpoint directory")
        model.load(Path(cfg.init_from))
        log.info("fine-tuning from %s", cfg.init_from)

    params = model.parameters() if model.parameters else [p for p in model.module.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    if resume_dir is not None and (resume_dir / "optimizer.safetensors").exists():
        _load_optimizer(optimizer, resume_dir / "optimizer")
    scheduler = lr_schedule(optimizer, cfg, start_step)  # the LR the schedule gives at this step

    loader_kw: dict[str, Any] = dict(batch_size=cfg.batch_size, shuffle=True, drop_last=len(dataset) >= cfg.batch_size,
                                     collate_fn=collate_fn, num_workers=cfg.num_workers)
    if cfg.num_workers > 0:
        loader_kw.update(multiprocessing_context="spawn", persistent_workers=True, worker_init_fn=_one_thread)
    loader = torch.utils.data.DataLoader(dataset, generator=torch.Generator().manual_seed(cfg.seed + start_step),
                                         **loader_kw)
    if model.to is not None:  # e.g. the EMA's shadow weights live beside the model
        model.to(accelerator.device)
    wrapped = _LossModule(model.module)
    # The scheduler is stepped by hand once per optimizer step: accelerate's wrapper would step it
    # once per process, so N processes would warm up N times faster than one.
    wrapped, optimizer, loader = accelerator.prepare(wrapped, optimizer, loader)

    main = accelerator.is_main_process
    if main:
        run_dir.mkdir(parents=True, exist_ok=True)
    metrics_file = open(run_dir / "metrics.jsonl", "a") if main else None
    bar = tqdm(total=cfg.steps, initial=start_step, desc="train", unit="step", disable=not (main and cfg.progress))
    step, last_loss, history = start_step, float("nan"), []
    t_start = t_log = time.perf_counter()
    samples_since_log = 0
    last_ckpt = resume_dir

    def save_checkpoint() -> Path:
        path = ckpt_root / f"step_{step:07d}"
        if path.exists():
            shutil.rmtree(path)
        path.mkdir(parents=True)
        model.save(path)
        _save_optimizer(optimizer.optimizer, path / "optimizer")
        (path / "trainer_state.json").write_text(json.dumps(
            {"step": step, "train_config": asdict(cfg), "config": config_record or {}, "time": time.time()}, indent=1))
        write_atomic(ckpt_root / LATEST, path.name)  # the commit point of a checkpoint
        old = sorted(p for p in ckpt_root.glob("step_*") if p != path)
        for stale in old[: max(0, len(old) - (cfg.keep_checkpoints - 1))]:
            shutil.rmtree(stale, ignore_errors=True)
        return path

    try:
        wrapped.train()
        while step < cfg.steps:
            for batch in loader:
                with accelerator.accumulate(wrapped):
                    loss, metrics = wrapped(batch)
                    accelerator.backward(loss)
                    if accelerator.sync_gradients and cfg.max_grad_norm > 0:
                        accelerator.clip_grad_norm_(params, cfg.max_grad_norm)
                    optimizer.step()
                    optimizer.zero_grad(set_to_none=True)
                samples_since_log += cfg.batch_size * accelerator.num_processes
                if not accelerator.sync_gradients:
                    continue
                step += 1
                scheduler.step()
                if model.after_step:
                    model.after_step()
                last_loss = float(loss.detach())
                if not math.isfinite(last_loss):
                    raise FloatingPointError(f"training loss is {last_loss} at step {step}: lower lr or check the data")
                bar.update(1)
                if step % cfg.log_every == 0 or step == cfg.steps:
                    now = time.perf_counter()
                    row = {"step": step, "loss": last_loss, "lr": scheduler.get_last_lr()[0],
                           "samples_per_s": samples_since_log / max(now - t_log, 1e-9),
                           "elapsed_s": now - t_start, **{k: float(v) for k, v in metrics.items()}}
                    t_log, samples_since_log = now, 0
                    history.append(row)
                    bar.set_postfix(loss=f"{last_loss:.4f}")
                    if metrics_file:
                        metrics_file.write(json.dumps(row) + "\n")
                        metrics_file.flush()
                if main and model.sample and cfg.sample_every and step % cfg.sample_every == 0:
                    model.sample(step, run_dir)
                if step % cfg.checkpoint_every == 0 or step == cfg.steps:
                    accelerator.wait_for_everyone()
                    if main:
                        last_ckpt = save_checkpoint()
                if step >= cfg.steps:
                    break
    finally:
        bar.close()
        if metrics_file:
            metrics_file.close()
    accelerator.wait_for_everyone()
    return TrainResult(steps=step, resumed_from=start_step, last_loss=last_loss,
                       checkpoint=last_ckpt or latest_checkpoint(run_dir), wall_s=time.perf_counter() - t_start,
                       history=history, main_process=main)
