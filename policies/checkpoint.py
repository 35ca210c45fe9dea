"""Policy checkpoints: a directory with ``model.safetensors`` (weights) and ``config.json``.

config.json::

    {"format": "policies.checkpoint", "format_version": 1,
     "config": {<PolicyConfig fields; "type" picks the class>},
     "normalizers": {"state": {"mode", "min", "max", "mean", "std"}, "action": {...}}}

Nothing is pickled: safetensors holds plain tensors and the rest is JSON. The files are written in
place: ``embodied.checkpoints.write_checkpoint(path, policy.save)`` replaces a checkpoint as a whole.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

FORMAT = "policies.checkpoint"
FORMAT_VERSION = 1
WEIGHTS = "model.safetensors"
CONFIG = "config.json"


class CheckpointError(Exception):
    """A directory is not a loadable policy checkpoint (missing files, corrupt, or from a newer version)."""


def save_policy(policy, path: str | Path) -> Path:
    """Write ``policy`` (a ``FrameGoalPolicy``) into directory ``path``; returns the path."""
    from safetensors.torch import save_file

    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    doc: dict[str, Any] = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "config": policy.config.to_dict(),
        "normalizers": {"state": policy.state_normalizer.to_dict(), "action": policy.action_normalizer.to_dict()},
    }
    tensors = {k: v.detach().cpu().contiguous() for k, v in policy.state_dict().items()}
    # One metadata key: safetensors writes several in a per-process random order (same weights,
    # different bytes); the version is in config.json.
    save_file(tensors, str(path / WEIGHTS), metadata={"format": FORMAT})
    (path / CONFIG).write_text(json.dumps(doc, indent=2))
    return path


def read_checkpoint_config(path: str | Path) -> dict[str, Any]:
    """The parsed, checked config.json of checkpoint directory ``path``."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no policy checkpoint at {path}: the directory does not exist")
    if not path.is_dir():
        raise CheckpointError(f"{path} is a file; a policy checkpoint is a directory with {WEIGHTS} and {CONFIG}")
    missing = [name for name in (CONFIG, WEIGHTS) if not (path / name).is_file()]
    if missing:
        raise CheckpointError(f"{path} is not a policy checkpoint: missing {', '.join(missing)}")
    try:
        doc = json.loads((path / CONFIG).read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise CheckpointError(f"{path / CONFIG} is not valid JSON ({e})") from e
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise CheckpointError(f"{path / CONFIG} is not a policy checkpoint config (format != {FORMAT!r})")
    version = doc.get("format_version")
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise CheckpointError(
            f"{path} has checkpoint format version {version!r}; this code reads up to {FORMAT_VERSION} (update the code)"
        )
    for key in ("config", "normalizers"):
        if not isinstance(doc.get(key), dict):
            raise CheckpointError(f"{path / CONFIG} has no {key!r} section")
    return doc


def read_weights(path: str | Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """config.json (checked) and the weights of checkpoint directory ``path``; rebuilding the
    policy from them is ``policies.modeling.load_policy``'s (this module knows the format only)."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    path = Path(path)
    doc = read_checkpoint_config(path)
    try:
        weights = load_file(str(path / WEIGHTS))
    except (SafetensorError, OSError, ValueError) as e:
        raise CheckpointError(f"{path / WEIGHTS} is not a readable safetensors file ({e})") from e
    return doc, weights
