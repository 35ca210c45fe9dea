"""Sharded rollout collection: one writer per shard store, then one atomic, idempotent merge.

    # N collectors (processes here, nodes through hydra/launcher=submitit_slurm), each its own store:
    embodied-collect --multirun episodes_per_task=50 seed_start=0,50,100,150 \\
        'store=data/shards/seeds_${seed_start}.zarr'                 # 4 shards, disjoint seeds
    # then, once, one writer for the destination:
    python -m embodied.shards data/demos.zarr data/shards/seeds_*.zarr

Each shard store has exactly one writer (the store's file lock), so shards never interfere; a
killed collector leaves its shard with a committed prefix (``meta/episode_ends`` is the commit
point) and the remains of its last append, which readers ignore. ``merge_stores`` copies the
committed episodes of every shard into the destination with ``EpisodeStore.extend`` in batches;
each batch is committed by one write of the destination's ``episode_ends``, so a merge killed at
any moment leaves whole batches and nothing partial.

Idempotent: an episode is identified by its whole metadata row (task, instruction, source,
sail_iteration, seed, success_gt, grader, grader_score, checkpoint, created_at: the shard's own
append time, kept by the copy) plus its length. Episodes of the destination already carrying that
identity are skipped, counted as a multiset, so rerunning a merge after a crash (or twice) copies
only what is missing and never duplicates; two genuinely identical rows in the shards are both
kept. The provenance is therefore stored in the destination itself, committed together with the
episodes, not in a side file that a crash could leave out of step.
"""

from __future__ import annotations

import logging
import math
import os
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from embodied.errors import user_errors
from embodied.store import EpisodeStore

log = logging.getLogger(__name__)


def episode_key(meta: dict[str, Any], length: int) -> tuple:
    """The identity of an episode across stores: its metadata row (NaN made comparable) and length."""
    items = []
    for name in sorted(meta):
        value = meta[name]
        if isinstance(value, float) and math.isnan(value):
            value = "nan"
        items.append((name, value))
    return (*items, ("length", int(length)))


@dataclass
class MergeReport:
    dest: Path
    copied: int = 0  # episodes appended to the destination by this call
    skipped: int = 0  # shard episodes already in the destination (an earlier, maybe killed, merge)
    per_shard: dict[str, dict[str, int]] = field(default_factory=dict)  # committed / copied / skipped


def merge_stores(shard_paths: Sequence[str | os.PathLike], dest: str | os.PathLike, *,
                 batch_episodes: int = 32, batch_steps: int = 4096) -> MergeReport:
    """Copy every committed episode of the shard stores into ``dest`` (created if missing), once.

    Shards are read (mode "r": their committed prefix only; a shard still being written is fine,
    its later episodes come with the next merge). ``dest`` is opened as its one writer. Episodes
    are appended with ``extend`` in batches of at most ``batch_episodes`` episodes / ``batch_steps``
    steps; each batch commits atomically. Rerunning skips what is already there (see the module
    docstring). Raises ValueError when a shard's schema (image size, dims, camera, bounds) does
    not fit the destination's, before that shard writes anything.
    """
    dest = Path(dest)
    shards = [Path(p) for p in shard_paths]
    if len(set(map(os.path.realpath, shards))) != len(shards):
        raise ValueError(f"a shard is listed twice: {[str(p) for p in shards]}")
    if any(os.path.realpath(p) == os.path.realpath(dest) for p in shards):
        raise ValueError(f"the destination {dest} is also a shard")
    report = MergeReport(dest=dest)
    readers = [EpisodeStore(path, mode="r") for path in shards]
    try:
        first = next((r.schema for r in readers if r.schema.image_size is not None), None)
        kwargs = {}
        if first is not None:
            kwargs = dict(image_size=first.image_size, camera=first.camera, action_dim=first.action_dim,
                          state_dim=first.state_dim, action_low=first.action_low, action_high=first.action_high)
        with EpisodeStore(dest, mode="a", **kwargs) as out:
            present = Counter(episode_key(out.meta(i), out.episode_length(i)) for i in range(len(out)))
            for path, shard in zip(shards, readers):
                stats = {"committed": len(shard), "copied": 0, "skipped": 0}
                report.per_shard[str(path)] = stats
                todo = []
                for i in range(len(shard)):
                    key = episode_key(shard.meta(i), shard.episode_length(i))
                    if present[key] > 0:  # already merged (a multiset: identical rows are counted)
                        present[key] -= 1
                        stats["skipped"] += 1
                    else:
                        todo.append(i)
                if todo:
                    _check_schema(shard, out, path)
                for batch in _batches(shard, todo, batch_episodes, batch_steps):
                    out.extend(shard.episode(i) for i in batch)  # one atomic commit per batch
                    stats["copied"] += len(batch)
                report.copied += stats["copied"]
                report.skipped += stats["skipped"]
                log.info("merged %s: %d committed, %d copied, %d already in %s", path, stats["committed"],
                         stats["copied"], stats["skipped"], dest)
    finally:
        for reader in readers:
            reader.close()
    return report


def _check_schema(shard: EpisodeStore, out: EpisodeStore, path: Path) -> None:
    a, b = shard.schema, out.schema
    for name in ("image_size", "action_dim", "state_dim", "camera", "action_low", "action_high"):
        x, y = getattr(a, name), getattr(b, name)
        if x is not None and y is not None and x != y:
            raise ValueError(f"shard {path} has {name}={x!r}, the destination {out.path} has {y!r}: "
                             f"merge shards collected with the same settings")


def _batches(shard: EpisodeStore, indices: list[int], max_episodes: int, max_steps: int) -> Iterable[list[int]]:
    batch, steps = [], 0
    for i in indices:
        length = shard.episode_length(i)
        if batch and (len(batch) >= max_episodes or steps + length > max_steps):
            yield batch
            batch, steps = [], 0
        batch.append(i)
        steps += length
    if batch:
        yield batch


@user_errors("python -m embodied.shards")
def main(argv: Sequence[str] | None = None) -> None:
    import argparse

    parser = argparse.ArgumentParser(description="Merge shard episode stores into one store (idempotent).")
    parser.add_argument("dest", help="destination store (created if missing)")
    parser.add_argument("shards", nargs="+", help="shard stores")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    report = merge_stores(args.shards, args.dest)
    print(f"{args.dest}: {report.copied} episodes copied, {report.skipped} already there")


if __name__ == "__main__":
    main()
