"""Episode store speed and size on real rendered MetaWorld frames.

    MUJOCO_GL=egl python benchmarks/store_throughput.py          # ~1 min on 2 CPU cores

1. Append throughput: scripted-expert episodes (rendered at --size px) appended to a fresh store,
   MB/s of raw episode bytes (rgb + action + state + success), one ``append`` per episode and
   one ``extend`` per batch of episodes. Goal: >= 100 MB/s.
2. Window read latency: random 16-step rgb windows ``store.get(i, "rgb", slice(t, t + 16))`` from
   a freshly opened read-only store, median ms. Goal: < 5 ms.
3. Compression: raw rgb bytes / rgb bytes on disk. Goal: >= 5x.
4. The same appends through zarr's public calls alone, into the same layout (arrays, chunks,
   codecs, metadata columns, episode ends): whole chunks buffered in memory as the store does,
   arrays grown ahead of need, ``zarr.config`` async concurrency; the ratio to the store's append
   is what its one module below zarr's public API (embodied/store/chunks.py) buys.

The last line is machine-readable:
    append_mb_s=<x> window_ms=<x> compression=<x> extend_mb_s=<x>
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

os.environ.setdefault("MUJOCO_GL", "egl")

import numpy as np

TASKS = ("drawer-open-v3", "button-press-v3", "door-open-v3", "reach-v3")


def dir_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def public_zarr_appends(path: Path, episodes: list, copies: int) -> float:
    """Seconds to append ``episodes`` ``copies`` times with zarr's public API only (see 4. above)."""
    import zarr

    from embodied.store.schema import (CODE_COLUMNS, EPISODE_META_DEFAULTS, KIND_DTYPES, LOWDIM_CHUNK_STEPS,
                                       META_CHUNK_EPISODES, RGB_CHUNK_STEPS, codec)

    root = zarr.open_group(path, mode="w")
    first = episodes[0]
    data = {k: root.create_array(f"data/{k}", shape=(0, *getattr(first, k).shape[1:]), dtype=getattr(first, k).dtype,
                                 chunks=(RGB_CHUNK_STEPS if k == "rgb" else LOWDIM_CHUNK_STEPS, *getattr(first, k).shape[1:]),
                                 compressors=codec(k), fill_value=0)
            for k in ("rgb", "action", "state", "success")}
    columns = {name: root.create_array(f"meta/episodes/{name}", shape=(0,), dtype=KIND_DTYPES[kind],
                                       chunks=(META_CHUNK_EPISODES,), fill_value=EPISODE_META_DEFAULTS[name],
                                       **({} if kind == "str" else {"compressors": None}))
               for name, kind in CODE_COLUMNS.items()}
    ends = root.create_array("meta/episode_ends", shape=(0,), dtype="int64", chunks=(META_CHUNK_EPISODES,),
                             fill_value=-1, compressors=None)
    tails: dict[str, tuple[int, np.ndarray]] = {}
    meta: dict[str, list] = {name: [] for name in [*columns, "ends"]}

    def write_whole_chunks(key, array, start, values):
        chunk = array.chunks[0]
        lo = start - start % chunk
        hi = -(-(start + len(values)) // chunk) * chunk
        if array.shape[0] < hi:  # grow ahead of need: a resize writes metadata
            array.resize((max(hi, 2 * array.shape[0]), *array.shape[1:]))
        tail = tails.get(key)
        head = tail[1] if tail is not None and tail[0] == lo else array[lo:start]
        end = start + len(values)
        pad = np.full((hi - end, *array.shape[1:]), array.fill_value, dtype=np.asarray(values).dtype)
        block = np.concatenate([np.asarray(head, dtype=pad.dtype), values, pad])
        array[lo:hi] = block
        last = (end - 1) // chunk * chunk
        tails[key] = (last, block[last - lo : end - lo].copy())

    t0 = time.perf_counter()
    with zarr.config.set({"async.concurrency": 32}):
        steps = 0
        for _ in range(copies):
            for ep in episodes:
                for key, array in data.items():
                    write_whole_chunks(key, array, steps, getattr(ep, key))
                n = len(meta["ends"])
                for name, array in columns.items():
                    meta[name].append(EPISODE_META_DEFAULTS[name])
                    write_whole_chunks(name, array, n, np.asarray(meta[name][n:], dtype=array.dtype))
                steps += len(ep)
                meta["ends"].append(steps)
                write_whole_chunks("ends", ends, n, np.asarray([steps]))  # the commit, last
    return time.perf_counter() - t0


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--size", type=int, default=64, help="frame size (pixels)")
    p.add_argument("--seeds", type=int, default=3, help="expert episodes rendered per task")
    p.add_argument("--copies", type=int, default=8, help="times the rendered episodes are appended")
    p.add_argument("--windows", type=int, default=500, help="random windows read")
    p.add_argument("--window", type=int, default=16)
    args = p.parse_args()

    from embodied.store import EpisodeStore
    from sim.rollout import rollout_many

    jobs = [dict(task=t, seed=s, image_size=args.size) for t in TASKS for s in range(args.seeds)]
    episodes = list(rollout_many(jobs, workers=2, progress=False))
    raw_per_round = sum(ep.rgb.nbytes + ep.action.nbytes + ep.state.nbytes + ep.success.nbytes for ep in episodes)
    steps = sum(len(ep) for ep in episodes) * args.copies
    print(f"{len(episodes)} rendered expert episodes ({', '.join(TASKS)}), {args.size}px, "
          f"appended {args.copies}x: {steps} steps, {raw_per_round * args.copies / 1e6:.0f} MB raw")

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "bench.zarr"
        with EpisodeStore(path, mode="a") as store:
            store.append(episodes[0])  # creates the arrays: not part of the timing
            t0 = time.perf_counter()
            for _ in range(args.copies):
                for ep in episodes:
                    store.append(ep)
            append_s = time.perf_counter() - t0
        append_mb_s = raw_per_round * args.copies / 1e6 / append_s
        with EpisodeStore(Path(tmp) / "batched.zarr", mode="a") as batched:
            batched.append(episodes[0])
            t0 = time.perf_counter()
            for _ in range(args.copies):
                batched.extend(episodes)  # one write per array for the whole batch
            extend_s = time.perf_counter() - t0
        extend_mb_s = raw_per_round * args.copies / 1e6 / extend_s
        public_mb_s = raw_per_round * args.copies / 1e6 / public_zarr_appends(Path(tmp) / "public.zarr", episodes,
                                                                               args.copies)

        raw_rgb = sum(ep.rgb.nbytes for ep in episodes) * args.copies + episodes[0].rgb.nbytes
        compression = raw_rgb / dir_bytes(path / "data" / "rgb")

        store = EpisodeStore(path)
        rng = np.random.default_rng(0)
        lengths = store.episode_lengths()
        candidates = np.flatnonzero(lengths >= args.window)
        latencies = []
        for _ in range(args.windows):
            i = int(rng.choice(candidates))
            t = int(rng.integers(0, lengths[i] - args.window + 1))
            t0 = time.perf_counter()
            window = store.get(i, "rgb", slice(t, t + args.window))
            latencies.append((time.perf_counter() - t0) * 1e3)
            assert window.shape[0] == args.window
        window_ms = statistics.median(latencies)

    print()
    print("| measure | value | goal | ratio to goal |")
    print("|---|---:|---:|---:|")
    print(f"| append, one episode per call (raw MB/s) | {append_mb_s:.0f} | >= 100 | {append_mb_s / 100:.1f}x |")
    print(f"| extend, {len(episodes)} episodes per call (raw MB/s) | {extend_mb_s:.0f} | >= 100 | {extend_mb_s / 100:.1f}x |")
    print(f"| append through zarr's public calls alone (raw MB/s) | {public_mb_s:.0f} | - | "
          f"store {append_mb_s / public_mb_s:.1f}x faster |")
    print(f"| 16-step window read (median ms; p90 {np.percentile(latencies, 90):.2f}) | {window_ms:.2f} | < 5 | "
          f"{5 / window_ms:.1f}x |")
    print(f"| rgb compression (raw / on disk) | {compression:.1f}x | >= 5x | {compression / 5:.1f}x |")
    print()
    print(f"append_mb_s={append_mb_s:.1f} window_ms={window_ms:.2f} compression={compression:.1f} "
          f"extend_mb_s={extend_mb_s:.1f} public_zarr_mb_s={public_mb_s:.1f}")


if __name__ == "__main__":
    main()
