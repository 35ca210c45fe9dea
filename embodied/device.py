"""The ``device=auto|cpu|cuda[:N]`` every command that plans or trains takes.

    resolve_device("auto")     # "cuda" when torch sees a GPU, else "cpu"
    resolve_device("cuda:1")   # "cuda:1", or one ValueError saying why not (no CUDA, no such GPU)

Presets choose the default: ``cpu_tiny`` says ``cpu`` (its recipe and numbers were measured on CPU
cores, even on a machine with a GPU), ``gpu`` and ``gpu_quick`` say ``auto``.
"""

from __future__ import annotations

import re

DEVICE_CHOICES = "auto | cpu | cuda | cuda:N"
_PATTERN = re.compile(r"^(auto|cpu|cuda(:\d+)?)$")


def check_device(spec: object) -> str:
    """``spec`` if it is one of auto | cpu | cuda | cuda:N, else ValueError (nothing is probed)."""
    if not isinstance(spec, str) or not _PATTERN.match(spec):
        raise ValueError(f"device must be one of {DEVICE_CHOICES}, got {spec!r}")
    return spec


def cuda_count() -> int:
    """GPUs torch can use here (0 without a CUDA build or driver)."""
    import torch

    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def resolve_device(spec: object) -> str:
    """The torch device a spec means on this machine: ``cpu``, ``cuda`` or ``cuda:N``.

    ``auto`` is the GPU when there is one. ``cuda`` / ``cuda:N`` on a machine without one, or an N
    past the last GPU, is one ValueError that says what this machine has.
    """
    spec = check_device(spec)
    if spec == "cpu":
        return "cpu"
    count = cuda_count()
    if spec == "auto":
        return "cuda" if count else "cpu"
    if count == 0:
        raise ValueError(f"device={spec} needs a CUDA GPU, but torch sees none on this machine "
                         f"(torch.cuda.is_available() is False); use device=cpu or device=auto")
    index = int(spec.split(":")[1]) if ":" in spec else 0
    if index >= count:
        raise ValueError(f"device={spec}: this machine has {count} GPU(s), cuda:0 .. cuda:{count - 1}")
    return spec


def plan_device(spec: object) -> str | None:
    """Where rollouts sample their plans: a GPU device (one planner there serves every rollout
    worker), or None on the CPU (each worker plans on its own core, as the CPU recipe measured)."""
    device = resolve_device(spec)
    return None if device == "cpu" else device
