"""embodied.store: append and read back, windows, filters, the writer lock, crash safety, bad input."""

from __future__ import annotations

import hashlib
import json
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from embodied.store import EpisodeStore, StoreFormatError, StoreLockedError, WindowDataset
from embodied.store.schema import same_value
from sim.types import Episode

from conftest import FULL

ROOT = Path(__file__).resolve().parents[1]


def make_episode(seed: int, length: int | None = None, size: int = 16, **meta) -> Episode:
    """A deterministic synthetic episode: the same seed gives the same arrays in any process."""
    rng = np.random.default_rng(seed)
    length = length or int(rng.integers(5, 40))
    success = np.zeros(length, bool)
    success[-3:] = seed % 2 == 0
    return Episode(
        rgb=rng.integers(0, 256, (length, size, size, 3), dtype=np.uint8),
        action=rng.uniform(-1, 1, (length, 4)).astype(np.float32),
        state=rng.normal(size=(length, 7)).astype(np.float32),
        success=success,
        meta={"task": f"task-{seed % 3}", "seed": seed, "source": "expert", "success_gt": int(success.any()),
              "instruction": f"do thing {seed}", **meta},
    )


def assert_same(a: Episode, b: Episode) -> None:
    for key in ("rgb", "action", "state", "success"):
        np.testing.assert_array_equal(getattr(a, key), getattr(b, key))
    for key, value in a.meta.items():
        assert b.meta[key] == value, key


def tree_digest(path: Path) -> dict[str, str]:
    return {str(p.relative_to(path)): hashlib.sha1(p.read_bytes()).hexdigest() for p in sorted(path.rglob("*")) if p.is_file()}


def test_append_and_read_back(tmp_path):
    episodes = [make_episode(s) for s in range(6)]
    with EpisodeStore(tmp_path / "s.zarr", mode="a", image_size=16, camera="corner2") as store:
        assert [store.append(ep) for ep in episodes] == list(range(6))
        assert len(store) == 6
    store = EpisodeStore(tmp_path / "s.zarr")  # read-only
    assert store.num_steps == sum(len(ep) for ep in episodes)
    assert list(store.episode_lengths()) == [len(ep) for ep in episodes]
    for i, ep in enumerate(episodes):
        assert_same(ep, store.episode(i))
        assert store.meta(i)["grader"] == "" and np.isnan(store.meta(i)["grader_score"])  # defaults
        assert store.meta(i)["created_at"] > 1.6e9
    ep = episodes[3]
    np.testing.assert_array_equal(store.get(3, "rgb", slice(2, 6)), ep.rgb[2:6])
    np.testing.assert_array_equal(store.get(3, "state", [4, 0, 4, -1]), ep.state[[4, 0, 4, -1]])
    np.testing.assert_array_equal(store.get(-1, "action", 1), episodes[-1].action[1])
    np.testing.assert_array_equal(store.get(3, "rgb", slice(0, None, 2)), ep.rgb[::2])
    assert store.schema.camera == "corner2" and store.image_size == (16, 16)
    with pytest.raises(IndexError, match="holds 6 episodes"):
        store.meta(6)
    with pytest.raises(IndexError, match="out of range"):
        store.get(0, "rgb", [0, len(episodes[0])])
    with pytest.raises(KeyError, match="unknown data key"):
        store.get(0, "depth")
    with pytest.raises(PermissionError, match="read-only"):
        store.append(ep)


def test_appends_across_chunk_boundaries_and_reopens(tmp_path, monkeypatch):
    """Appends write whole chunks from the writer's copy of the last one: small chunks make every
    append cross boundaries; reopening (a fresh copy read from disk) and extend() mix in."""
    import embodied.store.episode_store as episode_store

    monkeypatch.setattr(episode_store, "RGB_CHUNK_STEPS", 8)
    monkeypatch.setattr(episode_store, "LOWDIM_CHUNK_STEPS", 24)
    monkeypatch.setattr(episode_store, "META_CHUNK_EPISODES", 4)
    episodes = [make_episode(s, length=int(n)) for s, n in enumerate([1, 3, 8, 9, 17, 2, 30, 5, 7, 16, 1, 11])]
    path = tmp_path / "s.zarr"
    for how, batch in (("append", [0, 1, 2]), ("extend", [3, 4]), ("append", [5]), ("extend", [6, 7, 8]),
                       ("append", [9, 10, 11])):
        with EpisodeStore(path, mode="a") as store:  # each session starts from what is on disk
            if how == "append":  # the second and later appends reuse the in-memory last chunk
                assert [store.append(episodes[i]) for i in batch] == batch
            else:
                assert store.extend([episodes[i] for i in batch]) == batch
        written = batch[-1] + 1
        reader = EpisodeStore(path)
        assert len(reader) == written and reader.num_steps == sum(len(ep) for ep in episodes[:written])
        for i in range(written):
            assert_same(episodes[i], reader.episode(i))
    assert EpisodeStore(path)._ends_array.chunks == (4,)  # the small chunks were really in use


def test_chunk_files_are_the_bytes_zarr_writes(tmp_path):
    """Appends write chunk files themselves (store/chunks.py): every array's chunk must be
    byte-identical to what zarr writes for the same values, and every array must take that path."""
    path = tmp_path / "s.zarr"
    with EpisodeStore(path, mode="a") as store:
        store.extend([make_episode(s, length=40, grader="oracle", grader_score=0.5) for s in range(3)])
        arrays = {**{f"data/{k}": a for k, a in store._arrays.items()},
                  **{f"meta/episodes/{k}": a for k, a in store._columns_arrays.items()}, "meta/episode_ends": store._ends_array}
        assert set(store._chunk_files) == set(arrays) and all(f.supported for f in store._chunk_files.values())
        compared_fill = False
        for name, array in arrays.items():
            chunk_file = store._chunk_files[name].path(0)
            ours = chunk_file.read_bytes()
            rows = array.chunks[0]
            values = array[:rows]
            array[:rows] = values  # zarr rewrites the same whole chunk ...
            if chunk_file.exists():
                assert chunk_file.read_bytes() == ours, name
            else:  # ... or deletes it when it holds only the fill value (read back the same)
                assert all(same_value(v, array.fill_value) for v in values.tolist()), name
                compared_fill = True
        assert compared_fill and len(arrays) == 15


def test_metadata_chunks_holding_the_same_values_are_not_rewritten(tmp_path, monkeypatch):
    """A column whose new entry equals its fill value (a demo's grader, sail_iteration, ...) would
    rewrite its chunk with the bytes already there: skipped. Any other value, a new chunk or a
    new writer session writes it (fixed-width columns in place); every value reads back."""
    import embodied.store.chunks as chunks
    import embodied.store.episode_store as episode_store

    monkeypatch.setattr(episode_store, "META_CHUNK_EPISODES", 4)
    writes: list[str] = []
    real = chunks.write_atomic
    monkeypatch.setattr(chunks, "write_atomic", lambda path, data: (writes.append(str(path)), real(path, data)))

    def grader_writes() -> list[str]:
        return [w.split("grader/")[1] for w in writes if "/episodes/grader/" in w]

    path = tmp_path / "s.zarr"
    graders = ["", "", "", "oracle", "", "", "", "vlm"]  # chunks of 4: [0..3], [4..7]
    with EpisodeStore(path, mode="a") as store:
        for n, grader in enumerate(graders[:6]):
            store.append(make_episode(n, length=5, grader=grader))
        # episode 0 writes chunk 0, 1-2 change nothing, 3 ("oracle") rewrites it; 4 starts chunk 1, 5 is skipped
        assert grader_writes() == ["c/0", "c/0", "c/1"]
        assert sum("/episodes/task/" in w for w in writes) == 6  # a string column that changes: every append
        # Fixed-width columns and the commit are uncompressed: a chunk is written whole once per
        # session, later appends overwrite their own rows in place (no file replaced).
        assert [w.split("seed/")[1] for w in writes if "/episodes/seed/" in w] == ["c/0", "c/1"]
        assert [w.split("episode_ends/")[1] for w in writes if "/episode_ends/" in w] == ["c/0", "c/1"]
        assert len(store._columns_arrays["seed"].compressors) == 0 and len(store._columns_arrays["task"].compressors) == 1
    writes.clear()
    with EpisodeStore(path, mode="a") as store:  # a new session knows nothing of the files: writes once
        for n, grader in enumerate(graders[6:], start=6):
            store.append(make_episode(n, length=5, grader=grader))
        assert grader_writes() == ["c/1", "c/1"]
    reader = EpisodeStore(path)
    assert reader.column("grader") == graders
    assert all(np.isnan(v) for v in reader.column("grader_score"))
    assert reader.column("seed") == list(range(8)) and len(reader) == 8
    assert list(reader.episode_lengths()) == [5] * 8
    assert list(reader._ends_array[:]) == list(range(5, 45, 5))  # zarr reads the in-place updates


def test_filter_and_columns(tmp_path):
    with EpisodeStore(tmp_path / "s.zarr", mode="a") as store:
        for s in range(6):
            store.append(make_episode(s, sail_iteration=s // 2, grader_score=s / 10))
        assert store.filter(task="task-0") == [0, 3]
        assert store.filter(success_gt=1, task=["task-0", "task-1"]) == [0, 4]
        assert store.filter(sail_iteration=2) == [4, 5]
        assert store.filter(grader_score=0.3) == [3]
        assert store.column("seed") == list(range(6))
        with pytest.raises(KeyError, match="columns"):
            store.filter(colour="red")


def test_reader_sees_new_commits_after_refresh(tmp_path):
    path = tmp_path / "s.zarr"
    writer = EpisodeStore(path, mode="a")
    writer.append(make_episode(0))
    reader = EpisodeStore(path)  # readers need no lock while a writer works
    writer.append(make_episode(1))
    assert len(reader) == 1
    reader.refresh()
    assert len(reader) == 2
    assert_same(make_episode(1), reader.episode(1))
    writer.close()


def test_mode_w_empties_and_keeps_schema(tmp_path):
    path = tmp_path / "s.zarr"
    with EpisodeStore(path, mode="a") as store:
        store.append(make_episode(0))
    with EpisodeStore(path, mode="w") as store:
        assert len(store) == 0
        with pytest.raises(ValueError, match="store holds"):
            store.append(make_episode(1, size=8))
        store.append(make_episode(2))
    assert len(EpisodeStore(path)) == 1


def test_bad_episodes_write_nothing(tmp_path):
    path = tmp_path / "s.zarr"
    with EpisodeStore(path, mode="a", image_size=16) as store:
        store.append(make_episode(0))
        before = tree_digest(path)
        with pytest.raises(ValueError, match=r"rgb frames are \(8, 8\)"):
            store.append(make_episode(1, size=8))
        wrong_state = make_episode(2)
        wrong_state.state = wrong_state.state[:, :3]
        with pytest.raises(ValueError, match="state_dim is 3, the store holds 7"):
            store.append(wrong_state)
        bad_meta = make_episode(3)
        bad_meta.meta["seed"] = "three"
        with pytest.raises(ValueError, match="seed.*must be int"):
            store.append(bad_meta)
        bad = make_episode(4)
        bad.action = bad.action.astype(np.float64)
        with pytest.raises(ValueError, match="action must be float32"):
            store.append(bad)
        with pytest.raises(ValueError, match="Episode"):
            store.append({"rgb": 1})
        with pytest.raises(ValueError, match="episode 1 of 2"):  # a batch is checked whole first
            store.extend([make_episode(5), make_episode(6, size=8)])
        assert tree_digest(path) == before
        assert len(store) == 1
    with pytest.raises(ValueError, match="image_size=\\(32, 32\\)"):
        EpisodeStore(path, mode="a", image_size=32)
    with pytest.raises(ValueError, match="mode"):
        EpisodeStore(path, mode="rw")


def test_one_writer_at_a_time(tmp_path):
    path = tmp_path / "s.zarr"
    first = EpisodeStore(path, mode="a")
    with pytest.raises(StoreLockedError, match="one writer at a time"):
        EpisodeStore(path, mode="a")
    # ... also from another process
    code = f"from embodied.store import EpisodeStore; EpisodeStore({str(path)!r}, mode='a')"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert out.returncode != 0 and "StoreLockedError" in out.stderr
    first.close()
    with EpisodeStore(path, mode="a") as again:  # released on close
        again.append(make_episode(0))



def test_plain_zarr_sees_only_zarr_objects_and_old_lock_files_are_ignored(tmp_path):
    import warnings

    import zarr

    from embodied.store.episode_store import LEGACY_LOCK_NAME, lock_path

    path = tmp_path / "s.zarr"
    with EpisodeStore(path, mode="a") as store:
        store.append(make_episode(0))
        assert lock_path(path) == tmp_path / "s.zarr.lock" and lock_path(path).is_file()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # zarr warns about files it does not know inside a hierarchy
        root = zarr.open_group(path, mode="r")
        assert sorted(root.group_keys()) == ["data", "meta"] and list(root.array_keys()) == []
    assert not any(p.suffix == ".lock" for p in path.rglob("*"))
    (path / LEGACY_LOCK_NAME).touch()  # a store written by an earlier version kept its lock inside
    with EpisodeStore(path, mode="a") as store:
        store.append(make_episode(1))
        assert len(store) == 2


RACER = textwrap.dedent(
    """
    import sys, time
    from embodied.store import EpisodeStore, StoreLockedError
    path, size = sys.argv[1], int(sys.argv[2])
    print("READY", flush=True)
    start = float(sys.stdin.readline())  # the same moment for both racers
    time.sleep(max(0.0, start - time.time()))
    try:
        store = EpisodeStore(path, mode="a", image_size=size)
    except StoreLockedError as exc:
        print("LOCKED", exc, flush=True)
    else:
        print("OPENED", flush=True)
        time.sleep(1.5)  # hold it open while the other one tries
        store.close()
    """
)


def test_two_processes_creating_one_store(tmp_path):
    """Two writers creating one new store at the same moment: one creates it, the other is refused."""
    sizes = (32, 48)
    paths = [tmp_path / f"s{i}.zarr" for i in range(3)]
    procs = {(path, size): subprocess.Popen([sys.executable, "-c", RACER, str(path), str(size)], cwd=ROOT, text=True,
                                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
             for path in paths for size in sizes}
    try:
        for proc in procs.values():  # all imported: the race starts together, not with the faster import
            assert proc.stdout.readline().startswith("READY"), proc.stderr.read()
        start = time.time() + 0.3
        for proc in procs.values():
            proc.stdin.write(f"{start}\n")
            proc.stdin.flush()
        outs = {key: proc.communicate(timeout=60) for key, proc in procs.items()}
    finally:
        for proc in procs.values():
            proc.kill()
    for path in paths:
        results = {size: outs[path, size][0].strip() for size in sizes}
        assert all(procs[path, size].returncode == 0 for size in sizes), [outs[path, size][1] for size in sizes]
        winners = [size for size in sizes if results[size] == "OPENED"]
        assert len(winners) == 1, results
        (loser,) = set(sizes) - set(winners)
        assert results[loser].startswith("LOCKED") and "is being written by another process" in results[loser]
        assert EpisodeStore(path).image_size == (winners[0], winners[0])


def test_writer_decides_create_or_open_under_the_lock(tmp_path, monkeypatch):
    """A store another writer creates between a writer's first look and its lock is opened, not made anew."""
    path = tmp_path / "s.zarr"
    acquire = EpisodeStore._acquire_lock

    def late(self):  # the other writer wins the race: it creates the store and closes it
        monkeypatch.setattr(EpisodeStore, "_acquire_lock", acquire)
        with EpisodeStore(path, mode="a", image_size=32) as other:
            other.append(make_episode(0, size=32))
        acquire(self)

    monkeypatch.setattr(EpisodeStore, "_acquire_lock", late)
    with pytest.raises(ValueError, match="image_size"):
        EpisodeStore(path, mode="a", image_size=48)
    store = EpisodeStore(path)
    assert store.image_size == (32, 32) and len(store) == 1
    with EpisodeStore(path, mode="a") as writer:  # the lock was released
        writer.append(make_episode(1, size=32))


def test_foreign_and_damaged_directories_are_refused_untouched(tmp_path):
    foreign = tmp_path / "photos"
    foreign.mkdir()
    (foreign / "cat.jpg").write_bytes(b"\xff\xd8 not a store")
    other_zarr = tmp_path / "other.zarr"
    other_zarr.mkdir()
    (other_zarr / "zarr.json").write_text(json.dumps({"zarr_format": 3, "node_type": "group", "attributes": {}}))
    corrupt = tmp_path / "corrupt.zarr"
    corrupt.mkdir()
    (corrupt / "zarr.json").write_text("{ this is not json")
    future = tmp_path / "future.zarr"
    with EpisodeStore(future, mode="a") as store:
        store.append(make_episode(0))
    meta = json.loads((future / "zarr.json").read_text())
    meta["attributes"]["schema_version"] = 99
    (future / "zarr.json").write_text(json.dumps(meta))
    damaged = tmp_path / "damaged.zarr"
    with EpisodeStore(damaged, mode="a") as store:
        store.append(make_episode(0))
    shutil.rmtree(damaged / "meta" / "episodes" / "task")
    a_file = tmp_path / "file.zarr"
    a_file.write_text("hello")

    cases = [(foreign, "no readable zarr.json"), (other_zarr, "not an episode store"),
             (corrupt, "no readable zarr.json"), (future, "schema_version=99"), (damaged, "damaged"),
             (a_file, "is a file")]
    for path, message in cases:
        before = tree_digest(path) if path.is_dir() else path.read_bytes()
        for mode in ("r", "a", "w"):
            with pytest.raises(StoreFormatError, match=message):
                EpisodeStore(path, mode=mode)
            assert (tree_digest(path) if path.is_dir() else path.read_bytes()) == before, (path, mode)
    with pytest.raises(FileNotFoundError, match="mode='a'"):
        EpisodeStore(tmp_path / "missing.zarr")
    assert not (tmp_path / "missing.zarr").exists()
    empty = tmp_path / "empty"
    empty.mkdir()
    with EpisodeStore(empty, mode="a") as store:  # an empty directory becomes a store
        store.append(make_episode(0))


def test_window_dataset_and_spawn_dataloader(tmp_path):
    path = tmp_path / "s.zarr"
    episodes = [make_episode(s, length=n) for s, n in [(0, 10), (1, 3), (2, 6)]]
    with EpisodeStore(path, mode="a") as store:
        store.extend(episodes)
        ds = WindowDataset(store, window=4, keys=("rgb", "action"), episodes=[0, 1, 2])
    assert len(ds) == (10 - 3) + 0 + (6 - 3)  # episode 1 is shorter than a window
    item = ds[8]
    assert item["episode"] == 2 and item["start"] == 1 and item["instruction"] == "do thing 2"
    np.testing.assert_array_equal(item["rgb"].numpy(), episodes[2].rgb[1:5])
    strided = WindowDataset(path, window=3, stride=2, keys=("state",), episodes=[0])
    assert len(strided) == 10 - 4
    np.testing.assert_array_equal(strided[1]["state"].numpy(), episodes[0].state[1:6:2])

    loader = torch.utils.data.DataLoader(ds, batch_size=5, shuffle=False, num_workers=2,
                                         multiprocessing_context="spawn")
    batches = list(loader)
    rgb = torch.cat([b["rgb"] for b in batches])
    assert rgb.shape == (len(ds), 4, 16, 16, 3) and rgb.dtype == torch.uint8
    np.testing.assert_array_equal(rgb[0].numpy(), episodes[0].rgb[0:4])
    assert batches[0]["task"] == ["task-0"] * 5
    with pytest.raises(ValueError, match="window"):
        WindowDataset(path, window=0)


# --- crash safety ------------------------------------------------------------------------------
CHILD = textwrap.dedent(
    """
    import sys, time
    from embodied.store.chunks import ChunkFiles
    sys.path.insert(0, {tests!r})
    from test_store import make_episode
    from embodied.store import EpisodeStore

    path, committed, freeze_at = {path!r}, {committed}, {freeze_at!r}
    store = EpisodeStore(path, mode="a")
    for seed in range(committed):
        store.append(make_episode(seed, length=30, size=24))
    print("COMMITTED", flush=True)
    if freeze_at:
        # Stop inside the next append, just before writing to `freeze_at`, and wait to be killed.
        # (time.sleep also blocks zarr's event loop: no other write of the append goes on.)
        original = ChunkFiles.write
        def write(self, *args, **kwargs):
            if self.array.path == freeze_at:
                print("FROZEN", flush=True)
                time.sleep(600)
            return original(self, *args, **kwargs)
        ChunkFiles.write = write
        store.append(make_episode(1000, length=200, size=24))
    else:
        # Append big episodes forever; the parent kills us at a random moment.
        seed = committed
        while True:
            store.append(make_episode(seed, length=300, size=24))
            print("COMMIT", seed, flush=True)
            seed += 1
    """
)


def _start_writer(path: Path, committed: int, freeze_at: str | None) -> subprocess.Popen:
    code = CHILD.format(tests=str(Path(__file__).parent), path=str(path), committed=committed, freeze_at=freeze_at)
    return subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            cwd=ROOT)


def _wait_for(proc: subprocess.Popen, word: str) -> None:
    for line in proc.stdout:
        if line.startswith(word):
            return
    raise AssertionError(f"process exited before {word}: {proc.stderr.read()}")


def _check_recovered(path: Path, seeds: list[int]) -> None:
    with EpisodeStore(path, mode="a") as store:  # the writer's open cuts the remains
        assert len(store) == len(seeds)
        for i, seed in enumerate(seeds):
            assert_same(make_episode(seed, length=30, size=24), store.episode(i))
        expected_steps = sum(store.episode_length(i) for i in range(len(store)))
        assert store.num_steps == expected_steps
        for key in ("rgb", "action", "state", "success"):
            assert store._root[f"data/{key}"].shape[0] == expected_steps  # nothing past the last commit
        assert store._root["meta/episode_ends"].shape[0] == len(seeds)
        assert store._root["meta/episodes/task"].shape[0] == len(seeds)
        assert not list(path.rglob("*.partial"))
        new = make_episode(77, length=12, size=24)
        store.append(new)  # and the store keeps working
    reopened = EpisodeStore(path)
    assert_same(new, reopened.episode(len(seeds)))


@pytest.mark.parametrize("freeze_at", ["data/action", "meta/episodes/task", "meta/episode_ends"])
def test_sigkill_mid_append_keeps_committed_episodes(tmp_path, freeze_at):
    path = tmp_path / "s.zarr"
    proc = _start_writer(path, committed=3, freeze_at=freeze_at)
    try:
        _wait_for(proc, "COMMITTED")
        _wait_for(proc, "FROZEN")
        # A reader while the writer is stuck mid-append sees only the committed episodes.
        assert len(EpisodeStore(path)) == 3
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert proc.returncode == -signal.SIGKILL
    _check_recovered(path, [0, 1, 2])


@pytest.mark.slow
def test_sigkill_at_random_moments(tmp_path):
    """Kill a writer appending in a loop at random times; every committed episode survives."""
    rng = np.random.default_rng(0)
    path = tmp_path / "s.zarr"
    total = 0
    for round_ in range(6 if FULL else 2):
        proc = _start_writer(path, committed=0, freeze_at=None)
        try:
            _wait_for(proc, "COMMITTED")
            _wait_for(proc, "COMMIT")
            time.sleep(float(rng.uniform(0.0, 0.3)))
        finally:
            proc.send_signal(signal.SIGKILL)
            proc.wait()
        with EpisodeStore(path, mode="a") as store:
            n = len(store)
            assert n > total
            expected_steps = 0
            for i in range(n):
                seed = store.meta(i)["seed"]
                assert_same(make_episode(seed, length=300, size=24), store.episode(i))
                expected_steps += 300
            assert store.num_steps == expected_steps
            assert store._root["data/rgb"].shape[0] == expected_steps
            total = n


def test_set_attrs_records_json_and_refuses_the_schemas_keys(tmp_path):
    with EpisodeStore(tmp_path / "s.zarr", mode="a") as store:
        store.append(make_episode(1))
        store.set_attrs(sail_config="abc123")
        with pytest.raises(ValueError, match=r"\['camera', 'format'\] belong to the store's schema"):
            store.set_attrs(format="other", camera="corner3")
    reader = EpisodeStore(tmp_path / "s.zarr")
    assert reader.attrs["sail_config"] == "abc123" and reader.attrs["format"] != "other"
    with pytest.raises(PermissionError, match="not open for writing"):
        reader.set_attrs(sail_config="x")


def test_concurrent_resizes_and_writes_are_zarrs_own(tmp_path):
    """The store's one module below zarr's public API: several arrays resized and written in one
    wait give what zarr's public calls give one by one."""
    import zarr

    from embodied.store.chunks import resize_all, setitem_all

    root = zarr.open_group(tmp_path / "g.zarr", mode="w")
    a = root.create_array("a", shape=(0, 3), dtype="float32", chunks=(4, 3))
    b = root.create_array("b", shape=(0,), dtype=str, chunks=(4,))
    resize_all([(a, (6, 3)), (b, (5,))])
    values = np.arange(18, dtype=np.float32).reshape(6, 3)
    setitem_all([(a, slice(0, 6), values), (b, slice(1, 3), np.array(["x", "yz"]))])
    again = zarr.open_group(tmp_path / "g.zarr", mode="r")
    assert again["a"].shape == (6, 3) and again["b"].shape == (5,)
    np.testing.assert_array_equal(again["a"][:], values)
    assert list(again["b"][1:3]) == ["x", "yz"]
