"""Sharded collection: two writer processes fill two shard stores, one is SIGKILLed mid-append,
and the merge holds exactly every committed episode of both, nothing partial, and never twice
(a merge killed halfway and rerun, or run again, adds nothing twice)."""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from embodied.shards import merge_stores
from embodied.store import EpisodeStore

from test_store import _wait_for, assert_same, make_episode

ROOT = Path(__file__).resolve().parents[1]
LENGTH, SIZE = 12, 16

WRITER = textwrap.dedent(
    """
    import sys, time
    from embodied.store.chunks import ChunkFiles
    sys.path.insert(0, {tests!r})
    from test_store import make_episode
    from embodied.store import EpisodeStore

    path, seeds, freeze_seed = {path!r}, {seeds!r}, {freeze_seed!r}
    store = EpisodeStore(path, mode="a", image_size={size})
    store.extend([make_episode(s, length={length}, size={size}) for s in seeds[:2]])  # a batch ...
    for seed in seeds[2:]:                                                              # ... and singles
        store.append(make_episode(seed, length={length}, size={size}))
    print("COMMITTED", flush=True)
    if freeze_seed is not None:
        # Stop inside the next append after its data and metadata are written, just before the
        # commit point (meta/episode_ends), and wait there to be killed.
        original = ChunkFiles.write
        def write(self, *args, **kwargs):
            if self.array.path == "meta/episode_ends":
                print("FROZEN", flush=True)
                time.sleep(600)
            return original(self, *args, **kwargs)
        ChunkFiles.write = write
        store.append(make_episode(freeze_seed, length=40, size={size}))
    store.close()
    """
)

MERGER = textwrap.dedent(
    """
    import sys, time
    from embodied.store.chunks import ChunkFiles
    from embodied.shards import merge_stores

    # Freeze inside the second batch's write to the destination (the first batch is committed).
    original, seen = ChunkFiles.write, []
    def write(self, *args, **kwargs):
        if self.array.path == "data/rgb":
            seen.append(1)
            if len(seen) == 2:
                print("FROZEN", flush=True)
                time.sleep(600)
        return original(self, *args, **kwargs)
    ChunkFiles.write = write
    merge_stores({shards!r}, {dest!r}, batch_episodes=2)
    """
)


def _popen(code: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            cwd=ROOT)


def _kill(proc: subprocess.Popen) -> None:
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL


def _check_merged(dest: Path, seeds: list[int]) -> None:
    store = EpisodeStore(dest)
    got = sorted(store.meta(i)["seed"] for i in range(len(store)))
    assert got == sorted(seeds)  # every committed episode, each once, nothing else
    for i in range(len(store)):
        assert_same(make_episode(store.meta(i)["seed"], length=LENGTH, size=SIZE), store.episode(i))
    assert store.num_steps == LENGTH * len(seeds)


@pytest.fixture
def shards(tmp_path):
    """Two shards written concurrently by two processes; the second is killed inside an append."""
    a, b = tmp_path / "shard_0.zarr", tmp_path / "shard_1.zarr"
    fmt = dict(tests=str(Path(__file__).parent), size=SIZE, length=LENGTH)
    done = _popen(WRITER.format(path=str(a), seeds=[0, 1, 2, 3, 4], freeze_seed=None, **fmt))
    killed = _popen(WRITER.format(path=str(b), seeds=[100, 101, 102], freeze_seed=999, **fmt))
    try:
        _wait_for(killed, "COMMITTED")
        _wait_for(killed, "FROZEN")
        assert done.wait(timeout=60) == 0, done.stderr.read()
    finally:
        _kill(killed)
    # The killed shard holds the remains of its last append past the commit point; readers ignore them.
    assert len(EpisodeStore(b)) == 3 and EpisodeStore(b)._root["data/rgb"].shape[0] > 3 * LENGTH
    return [a, b], [0, 1, 2, 3, 4, 100, 101, 102]


def test_merge_keeps_every_committed_episode_once(tmp_path, shards):
    paths, seeds = shards
    dest = tmp_path / "merged.zarr"
    report = merge_stores(paths, dest, batch_episodes=2)
    assert (report.copied, report.skipped) == (8, 0)
    assert report.per_shard[str(paths[1])] == {"committed": 3, "copied": 3, "skipped": 0}
    _check_merged(dest, seeds)
    # Shard order is kept: shard 0's episodes, then shard 1's.
    assert EpisodeStore(dest).column("seed") == seeds

    again = merge_stores(paths, dest)  # idempotent
    assert (again.copied, again.skipped) == (0, 8)
    _check_merged(dest, seeds)

    # A shard that gained episodes since (its writer came back) brings only the new ones.
    with EpisodeStore(paths[1], mode="a") as store:
        store.append(make_episode(103, length=LENGTH, size=SIZE))
    more = merge_stores(paths, dest)
    assert (more.copied, more.skipped) == (1, 8)
    _check_merged(dest, seeds + [103])


def test_merge_killed_midway_then_rerun_does_not_duplicate(tmp_path, shards):
    paths, seeds = shards
    dest = tmp_path / "merged.zarr"
    proc = _popen(MERGER.format(shards=[str(p) for p in paths], dest=str(dest)))
    try:
        _wait_for(proc, "FROZEN")
    finally:
        _kill(proc)
    partial = EpisodeStore(dest)
    assert len(partial) == 2  # the first batch committed, the second never did
    report = merge_stores(paths, dest, batch_episodes=3)  # the rerun (the dead merger's lock is free)
    assert (report.copied, report.skipped) == (6, 2)
    _check_merged(dest, seeds)


def test_merge_rejects_a_shard_of_another_schema(tmp_path, shards):
    paths, _ = shards
    other = tmp_path / "other.zarr"
    with EpisodeStore(other, mode="a", image_size=8) as store:
        store.append(make_episode(7, length=LENGTH, size=8))
    with pytest.raises(ValueError, match="image_size"):
        merge_stores([*paths, other], tmp_path / "merged.zarr")
    with pytest.raises(ValueError, match="also a shard"):
        merge_stores(paths, paths[0])
