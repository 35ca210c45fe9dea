"""One checkpoint format for the planner, the policy and the grader, written as a whole.

A checkpoint is a directory of safetensors weights and a ``config.json`` ``{"format",
"format_version", "config", ...}``; ``format`` names its kind:

    planner  video_models.planner              model.safetensors, ema.safetensors, config.json
    policy   policies.checkpoint               model.safetensors, config.json
    grader   embodied.vlm.success_classifier   model.safetensors, config.json

    write_checkpoint("runs/x/planner", planner.save)    # the model writes its files, then the swap
    kind = checkpoint_kind("runs/x/planner")             # "planner"
    planner = load_checkpoint("runs/x/planner", "planner", device="cuda")

``write_checkpoint`` has the model write into a fresh directory beside the destination and renames
it into place, so a crash leaves the old checkpoint or the new one, never new weights beside an
old config. A kill between its two renames leaves the old checkpoint under a side name: the next
read or write of that path puts it back.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

CONFIG = "config.json"
# kind -> the config.json "format" its package writes (video_models.planner.FORMAT, ...)
FORMATS = {"planner": "video_models.planner", "policy": "policies.checkpoint",
           "grader": "embodied.vlm.success_classifier"}
KINDS = tuple(FORMATS)
_TMP, _OLD = ".tmp-", ".old-"  # side names: .<name>.tmp-<pid> (being written), .<name>.old-<pid> (being replaced)


def _side(path: Path, tag: str) -> Path:
    return path.with_name(f".{path.name}{tag}{os.getpid()}")


def _siblings(path: Path, tag: str) -> list[Path]:
    return sorted(path.parent.glob(f".{path.name}{tag}*")) if path.parent.is_dir() else []


def recover(path: str | Path, drop_partial: bool = False) -> None:
    """Undo what a killed ``write_checkpoint`` left: put a replaced checkpoint back when nothing
    took its place; ``drop_partial``: also delete half-written directories (a writer, before it
    starts its own)."""
    path = Path(path)
    old = _siblings(path, _OLD)
    if old and not path.exists():
        os.replace(old[-1], path)
        old = old[:-1]
    for stale in old + (_siblings(path, _TMP) if drop_partial else []):
        shutil.rmtree(stale, ignore_errors=True)


def write_checkpoint(path: str | Path, save: Callable[[Path], Any]) -> Path:
    """``save(dir)`` writes the model's files into a fresh directory; it then replaces ``path`` as a whole."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    recover(path, drop_partial=True)
    tmp = _side(path, _TMP)
    tmp.mkdir()
    try:
        save(tmp)
        kind = checkpoint_kind(tmp)  # what was written is a checkpoint this module can read back
        if path.exists():
            found = checkpoint_kind(path) if (path / CONFIG).is_file() else None
            if found not in (None, kind):
                raise ValueError(f"{path} holds a {found} checkpoint; refusing to replace it with a {kind}")
            old = _side(path, _OLD)
            os.replace(path, old)
            os.replace(tmp, path)
            shutil.rmtree(old)
        else:
            os.replace(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return path


def read_config(path: str | Path) -> dict[str, Any]:
    """The parsed config.json of checkpoint directory ``path`` (FileNotFoundError / ValueError)."""
    path = Path(path)
    recover(path)
    if not (path / CONFIG).is_file():
        what = "does not exist" if not path.exists() else f"has no {CONFIG}"
        raise FileNotFoundError(f"no checkpoint at {path}: the directory {what} (a checkpoint is a directory of "
                                f"safetensors weights and {CONFIG})")
    try:
        doc = json.loads((path / CONFIG).read_text())
    except (ValueError, UnicodeDecodeError) as exc:
        raise ValueError(f"{path / CONFIG} is not valid JSON ({exc})") from exc
    if not isinstance(doc, dict):
        raise ValueError(f"{path / CONFIG} is not a checkpoint config (a JSON object with 'format')")
    return doc


def checkpoint_kind(path: str | Path) -> str:
    """planner | policy | grader: the kind of checkpoint directory ``path`` holds, from its format."""
    return _kind(read_config(path), path)


def _kind(doc: dict[str, Any], path: str | Path) -> str:
    for kind, fmt in FORMATS.items():
        if doc.get("format") == fmt:
            return kind
    raise ValueError(f"{path} is not a checkpoint of this project: format {doc.get('format')!r} "
                     f"(known: {', '.join(f'{f} ({k})' for k, f in FORMATS.items())})")


def check_kind(path: str | Path, kind: str) -> dict[str, Any]:
    """config.json of ``path`` after checking it holds a ``kind`` checkpoint; ValueError naming what it holds."""
    if kind not in FORMATS:
        raise ValueError(f"unknown checkpoint kind {kind!r}; the kinds are {', '.join(KINDS)}")
    doc = read_config(path)
    found = _kind(doc, path)
    if found != kind:
        raise ValueError(f"{str(path)!r} is a {found} checkpoint ({FORMATS[found]}), not a {kind} ({FORMATS[kind]})")
    return doc


def load_checkpoint(path: str | Path, kind: str, device: str = "cpu") -> Any:
    """The model of checkpoint directory ``path``, refused unless it is a ``kind``, on ``device``."""
    check_kind(path, kind)
    if kind == "planner":
        from video_models import load_planner

        return load_planner(path, device=device)
    if kind == "policy":
        from policies import load_policy

        return load_policy(path, device=device)
    from embodied.graders.learned import SuccessClassifier

    return SuccessClassifier.load(path, device=device)
