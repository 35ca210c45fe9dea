"""The episode store: whole episodes appended to one zarr 3 group, read back by window.

    with EpisodeStore("data/demos.zarr", mode="a") as store:
        index = store.append(episode)                  # one writer at a time (file lock)
    store = EpisodeStore("data/demos.zarr")            # mode="r": any number of readers
    frames = store.get(index, "rgb", slice(10, 26))    # a 16-step window, nothing else is read
    ids = store.filter(task="reach-v3", source="expert", success_gt=1)

Crash safety. An append writes the data arrays, then the metadata columns, then
``meta/episode_ends`` last: that entry is the commit point. Chunk files are replaced atomically
(temp file + rename, as zarr's local store does), so a process killed at any moment leaves each
file whole, old or new; the uncompressed fixed-width metadata chunks of new stores are updated
in place, but only in rows past the last commit (and the commit itself, last). On open, the
committed prefix is what ``episode_ends`` says; a writer cuts anything past it (the remains of
a killed append), a reader ignores it. This survives a killed process, not a power cut (nothing
is fsynced).
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import zarr
from filelock import FileLock, Timeout

from embodied.store.chunks import ChunkFiles, resize_all, setitem_all
from embodied.store.schema import (
    CODE_COLUMNS,
    DATA_DTYPES,
    DATA_KEYS,
    FORMAT_NAME,
    KIND_DTYPES,
    LOWDIM_CHUNK_STEPS,
    META_CHUNK_EPISODES,
    RGB_CHUNK_STEPS,
    SCHEMA_VERSION,
    Schema,
    StoreFormatError,
    StoreLockedError,
    codec,
    coerce_meta,
    episode_problems,
    episode_schema,
    same_value,
    schema_problems,
)
from sim.types import EPISODE_META_DEFAULTS, Episode

MODES = ("r", "a", "w")
# The writer lock is a file beside the store (``store.zarr.lock``), not in it: plain zarr readers see
# zarr's files only. Stores written before kept it inside as ``writer.lock``; it is ignored there.
LEGACY_LOCK_NAME = "writer.lock"
EPISODE_ENDS = "meta/episode_ends"


def lock_path(store_path: str | Path) -> Path:
    """Where the single-writer lock of the store at ``store_path`` lives."""
    store_path = Path(os.path.abspath(store_path))
    return store_path.with_name(store_path.name + ".lock")


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _check_is_store(path: Path) -> dict[str, Any]:
    """The root attributes of the store at ``path``; StoreFormatError if it is not one (reads only)."""
    root = _read_json(path / "zarr.json")
    if root is None:
        raise StoreFormatError(
            f"{path} is not an episode store: it has no readable zarr.json (a foreign or damaged directory; "
            f"nothing was changed). Point the store option at a new path or at a store written by embodied."
        )
    attrs = root.get("attributes") or {}
    if root.get("node_type") != "group" or attrs.get("format") != FORMAT_NAME:
        raise StoreFormatError(
            f"{path} is a zarr directory but not an episode store (format={attrs.get('format')!r}, "
            f"expected {FORMAT_NAME!r}); nothing was changed."
        )
    version = attrs.get("schema_version")
    if not isinstance(version, int) or version > SCHEMA_VERSION:
        raise StoreFormatError(
            f"{path} has schema_version={version!r}; this code reads versions <= {SCHEMA_VERSION} "
            f"(upgrade embodied-sail to read it). Nothing was changed."
        )
    return attrs


_POOL = None


def _io_pool():
    """Threads for the chunk writes of an append (created on first use, shared by all stores)."""
    global _POOL
    if _POOL is None:
        from concurrent.futures import ThreadPoolExecutor

        _POOL = ThreadPoolExecutor(max_workers=8, thread_name_prefix="episode-store-io")
    return _POOL


def _whole_chunks(start: int, end: int, chunk: int) -> tuple[int, int]:
    """The rows [start, end) widened to whole chunks of ``chunk`` rows."""
    return start - start % chunk, -(-end // chunk) * chunk


def _committed_prefix(ends: np.ndarray, steps: int) -> int:
    """How many leading entries of ``ends`` are real commits: strictly increasing and within data."""
    n = 0
    previous = 0
    for end in ends:
        if end <= previous or end > steps:
            break
        previous = int(end)
        n += 1
    return n


class EpisodeStore:
    """Episodes of (rgb, action, state, success) steps plus per-episode metadata, in zarr 3.

    mode: "r" read only (the default; any number of readers, no lock), "a" read/append (creates
    the store if missing; one writer at a time), "w" like "a" but empties an existing store first.
    The schema arguments (image size, camera, action bounds, dims) are checked against an
    existing store and recorded in a new one; whatever is not given is fixed by the first episode.
    """

    def __init__(
        self,
        path: str | os.PathLike,
        mode: str = "r",
        *,
        image_size: int | tuple[int, int] | None = None,
        camera: str | None = None,
        action_dim: int | None = None,
        state_dim: int | None = None,
        action_low=None,
        action_high=None,
    ) -> None:
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
        self.path = Path(path)
        self.mode = mode
        self._lock: FileLock | None = None
        self._tails: dict[str, tuple[int, np.ndarray]] = {}  # a writer's copy of each data array's last chunk
        self._chunk_files: dict[str, ChunkFiles] = {}  # array path -> its chunk writer
        wanted = Schema.from_args(image_size, action_dim, state_dim, camera, action_low, action_high)

        # Read only first, before anything is written (even the lock file): a foreign or damaged
        # path is refused untouched.
        try:
            found = self._inspect(wanted, "r")
        except Exception:
            # A store another writer is creating right now looks damaged. It already holds a lock
            # file (made before anything else), so taking the lock writes nothing: let it decide.
            if mode == "r" or not lock_path(self.path).is_file():
                raise
        else:
            if not found and mode == "r":
                raise FileNotFoundError(f"no episode store at {self.path} (open it with mode='a' to create one)")
        if mode != "r":
            self._acquire_lock()
            # Create or open is decided again under the lock: another writer may have created the
            # store (or appended to it) since the check above.
            try:
                found = self._inspect(wanted, "r+")
            except Exception:
                self._lock.release()  # not close(): nothing was opened, nothing to trim
                self._lock = None
                raise
            try:
                if not found:
                    self._create(wanted)
                    self._load_index()
                elif mode == "w":
                    self._clear()
                    self._load_index()
                self._trim()
            except Exception:
                self.close()
                raise

    # --- opening -----------------------------------------------------------------------------------
    def _acquire_lock(self) -> None:
        self.path.mkdir(parents=True, exist_ok=True)
        lock = FileLock(lock_path(self.path), timeout=0)
        try:
            lock.acquire()
        except Timeout:
            raise StoreLockedError(
                f"{self.path} is being written by another process (or another EpisodeStore in this one): "
                f"one writer at a time. Wait for it to finish, or open the store with mode='r' to read."
            ) from None
        self._lock = lock

    def _inspect(self, wanted: Schema, zarr_mode: str) -> bool:
        """Open the store at the path (False if it is not created yet); StoreFormatError if the
        path is something else. Writes nothing, except the schema fields ``wanted`` adds ("r+")."""
        # An empty directory (or one holding only an old-style lock file) is a store not yet created.
        if not self.path.exists() or (self.path.is_dir() and all(p.name == LEGACY_LOCK_NAME for p in self.path.iterdir())):
            return False
        if not self.path.is_dir():
            raise StoreFormatError(f"{self.path} is a file, not an episode store directory; nothing was changed.")
        self._open_existing(_check_is_store(self.path), wanted, zarr_mode)
        return True

    def _open_existing(self, attrs: dict[str, Any], wanted: Schema, zarr_mode: str) -> None:
        self._root = zarr.open_group(self.path, mode=zarr_mode)
        stored = Schema.from_attrs(attrs)
        self._schema = stored.merge(wanted, f"opening {self.path}")
        self._load_index()
        if zarr_mode != "r" and self._schema != stored:  # the caller named fields the store lacked
            self._root.attrs.update(self._schema.to_attrs())

    def _create(self, schema: Schema) -> None:
        self._root = zarr.open_group(self.path, mode="a")  # not "w": it would delete the lock file
        self._schema = schema
        self._root.attrs.update({"format": FORMAT_NAME, "schema_version": SCHEMA_VERSION, **schema.to_attrs(),
                                 "created_at": time.time()})
        self._root.create_group("meta").create_group("episodes")
        self._create_meta_arrays()
        self._root.create_group("data")
        if schema.complete:
            self._create_data_arrays()

    def _create_meta_arrays(self) -> None:
        """episode_ends and one array per metadata column. Fixed-width columns are stored
        uncompressed (a few KB per 256 episodes): an append then updates their chunk files in
        place (store/chunks.py) instead of replacing a file per column."""
        self._root["meta"].create_array("episode_ends", shape=(0,), dtype="int64", chunks=(META_CHUNK_EPISODES,),
                                        fill_value=-1, compressors=None)
        columns = self._root["meta/episodes"]
        for name, kind in CODE_COLUMNS.items():
            columns.create_array(name, shape=(0,), dtype=KIND_DTYPES[kind], chunks=(META_CHUNK_EPISODES,),
                                 fill_value=EPISODE_META_DEFAULTS[name], **({} if kind == "str" else {"compressors": None}))

    def _create_data_arrays(self) -> None:
        data = self._root["data"]
        for key, shape in self._schema.data_shapes().items():
            steps = RGB_CHUNK_STEPS if key == "rgb" else LOWDIM_CHUNK_STEPS
            data.create_array(key, shape=(0, *shape), dtype=DATA_DTYPES[key], chunks=(steps, *shape),
                              compressors=codec(key), fill_value=False if key == "success" else 0)

    def _clear(self) -> None:
        """Empty an existing store (mode="w"): keep its schema, drop every episode.

        Arrays are deleted and made anew (not shrunk): a shrunk zarr array keeps old values in
        its last chunk, which would come back when it grows.
        """
        self._tails.clear()
        self._chunk_files.clear()
        for name in list(self._root["data"].array_keys()):
            del self._root["data"][name]
        del self._root[EPISODE_ENDS]
        for name in CODE_COLUMNS:
            del self._root["meta/episodes"][name]
        self._create_meta_arrays()
        if self._schema.complete:
            self._create_data_arrays()

    def _load_index(self) -> None:
        """Open the arrays; read episode ends and metadata columns into memory (they are small)."""
        try:
            self._ends_array = self._root[EPISODE_ENDS]
            self._columns_arrays = {name: self._root[f"meta/episodes/{name}"] for name in CODE_COLUMNS}
            self._arrays = {key: self._root[f"data/{key}"] for key in DATA_KEYS} if "rgb" in self._root["data"] else {}
            ends = np.asarray(self._ends_array[:], dtype=np.int64)
            steps = min((a.shape[0] for a in self._arrays.values()), default=0)
            n = _committed_prefix(ends, steps)
            self._columns = {}
            for name, kind in CODE_COLUMNS.items():
                values = self._columns_arrays[name][:n]
                if len(values) < n:
                    raise StoreFormatError(f"metadata column {name!r} has {len(values)} entries, {n} episodes are committed")
                self._columns[name] = [str(v) if kind == "str" else (bool(v) if kind == "bool" else v.item()) for v in values]
        except StoreFormatError as exc:
            raise StoreFormatError(f"{self.path} is damaged: {exc}") from None
        except (KeyError, ValueError, TypeError, OSError) as exc:
            raise StoreFormatError(
                f"{self.path} is damaged or incomplete ({type(exc).__name__}: {exc}); nothing was changed."
            ) from None
        self._ends = ends[:n]

    def _trim(self, leftovers: bool = True) -> None:
        """Shrink every array to exactly the committed episodes (writers: on open and on close).

        Appends grow arrays ahead of need (fewer metadata writes); a killed append leaves data
        past the last commit. Entries of ``episode_ends`` past the commits are always -1 (its
        fill value, written explicitly when it grows), so shrinking it never uncovers an old end.
        ``leftovers``: also delete the temp files of a killed writer's atomic writes (on open; a
        writer that lives to close removes its own, so closing skips this walk over every file).
        """
        steps, n = self.num_steps, len(self)
        resizes = [(a, (steps, *a.shape[1:])) for a in self._arrays.values() if a.shape[0] != steps]
        resizes += [(a, (n,)) for a in (*self._columns_arrays.values(), self._ends_array) if a.shape[0] != n]
        resize_all(resizes)
        for leftover in self.path.rglob("*.partial") if leftovers else ():
            leftover.unlink(missing_ok=True)

    # --- writing -----------------------------------------------------------------------------------
    def append(self, episode: Episode) -> int:
        """Append one whole episode; return its index. Nothing is written if it does not fit the store."""
        return self.extend([episode])[0]

    def extend(self, episodes: Iterable[Episode]) -> list[int]:
        """Append several episodes in one write per array (faster than one ``append`` each).

        All are checked before anything is written; they are committed together by one write
        of ``episode_ends`` (a kill leaves a committed prefix of them, never a partial episode).
        """
        if self.mode == "r":
            raise PermissionError(f"{self.path} is open read-only; open it with mode='a' to append")
        if self._lock is None:
            raise RuntimeError(f"{self.path}: the store is closed")
        episodes = list(episodes)
        if not episodes:
            return []
        schema, metas = self._schema, []
        for n, episode in enumerate(episodes):
            problems = episode_problems(episode)
            if not problems:
                problems = schema_problems(episode, schema)
            if problems:
                where = f"episode {n} of {len(episodes)}" if len(episodes) > 1 else "episode"
                raise ValueError(f"{where} does not fit the store: " + "; ".join(problems))
            schema = schema.merge(episode_schema(episode), "episode")
            meta = coerce_meta(episode.meta, CODE_COLUMNS, EPISODE_META_DEFAULTS)
            if not meta["created_at"] or meta["created_at"] != meta["created_at"]:
                meta["created_at"] = time.time()
            metas.append(meta)

        if not self._arrays:  # the first episode fixes the shapes
            self._schema = schema
            self._root.attrs.update(self._schema.to_attrs())
            self._create_data_arrays()
            self._arrays = {key: self._root[f"data/{key}"] for key in DATA_KEYS}

        start, first = self.num_steps, len(self)
        ends = start + np.cumsum([len(ep) for ep in episodes])
        end, last = int(ends[-1]), first + len(episodes)
        self._reserve(end, last)
        # Data and metadata first, all files written concurrently, then the commit point: one
        # atomic chunk write of episode_ends. Every write covers whole chunks (the committed part
        # of the first one comes from memory, the rest is the fill value), so zarr never reads and
        # decodes a chunk to change part of it: that read-modify-write was most of an append's time.
        data = {key: getattr(episodes[0], key) if len(episodes) == 1 else
                np.concatenate([getattr(ep, key) for ep in episodes]) for key in DATA_KEYS}
        try:
            blocks = [self._whole_chunks_write(key, array, start, data[key]) for key, array in self._arrays.items()]
            for name, array in self._columns_arrays.items():
                blocks.append(self._whole_chunks_meta(array, first, self._columns[name], [m[name] for m in metas],
                                                      EPISODE_META_DEFAULTS[name]))
            self._write_blocks(blocks)
            self._write_blocks([self._whole_chunks_meta(self._ends_array, first, self._ends, list(ends), -1)])
            ends_all = np.concatenate([self._ends, ends])
        except BaseException:
            self._tails.clear()  # re-read from the store on the next append
            self._chunk_files.clear()
            raise
        self._ends = ends_all
        for name in self._columns:
            self._columns[name].extend(m[name] for m in metas)
        return list(range(first, last))

    def _whole_chunks_write(self, key: str, array, start: int, values: np.ndarray):
        """The write of ``values`` at step ``start`` of a data array, widened to whole chunks."""
        chunk = array.chunks[0]
        end = start + len(values)
        lo, hi = _whole_chunks(start, end, chunk)
        tail = self._tails.get(key)
        if tail is None or tail[0] != lo or len(tail[1]) != start - lo:
            tail = (lo, array[lo:start])  # once per open: the committed steps of the last chunk
        block = np.zeros((hi - lo, *array.shape[1:]), array.dtype)  # 0 / False: the arrays' fill value
        block[: start - lo] = tail[1]
        block[start - lo : end - lo] = values
        last = (end - 1) - (end - 1) % chunk  # the chunk the next append starts in, as committed
        self._tails[key] = (last, block[last - lo : end - lo].copy())
        return array, lo, block

    @staticmethod
    def _whole_chunks_meta(array, first: int, committed, new: list, fill):
        """Entries ``new`` at ``first`` of a metadata array, widened to whole chunks (the committed
        entries of the first chunk from ``committed``, the values in memory; the rest ``fill``)."""
        last = first + len(new)
        lo, hi = _whole_chunks(first, last, array.chunks[0])
        block = [*committed[lo:first], *new] + [fill] * (hi - last)
        return array, lo, np.asarray(block, dtype=array.dtype)

    def _write_blocks(self, blocks: list[tuple[Any, int, np.ndarray]]) -> None:
        """Write each (array, first row, whole-chunk block): chunk files directly where the array's
        codecs allow (store/chunks.py), through zarr otherwise (all of those concurrently)."""
        fallback, direct = [], []
        for array, lo, block in blocks:
            files = self._chunk_files.get(array.path)
            if files is None:
                files = self._chunk_files[array.path] = ChunkFiles(array, self.path)
            if files.supported:  # one task per chunk: an episode's frames span several
                c, size = lo // files.chunk, files.chunk
                direct += [(files, c + k, block[k * size : (k + 1) * size]) for k in range(len(block) // size)]
            else:
                fallback.append((array, slice(lo, lo + len(block)), block))
        if len(direct) > 1:  # file system calls and the codecs release the GIL: overlap them
            for future in [_io_pool().submit(f.write, c, b) for f, c, b in direct]:
                future.result()
        elif direct:
            direct[0][0].write(direct[0][1], direct[0][2])
        setitem_all(fallback)

    def _reserve(self, steps: int, episodes: int) -> None:
        """Grow the arrays (shape only: unwritten chunks cost nothing) to hold this many."""
        # Capacities are whole chunks of every array: appends write whole chunks.
        resizes = []
        capacity = self._arrays["rgb"].shape[0]
        step_unit = int(np.lcm.reduce([a.chunks[0] for a in self._arrays.values()]))
        if capacity < -(-steps // step_unit) * step_unit:
            grown = max(steps, 2 * capacity, 16 * RGB_CHUNK_STEPS)
            grown = -(-grown // step_unit) * step_unit
            resizes += [(a, (grown, *a.shape[1:])) for a in self._arrays.values()]
        capacity = self._ends_array.shape[0]
        meta_unit = int(np.lcm.reduce([a.chunks[0] for a in (*self._columns_arrays.values(), self._ends_array)]))
        fill_ends = None
        if capacity < -(-episodes // meta_unit) * meta_unit:
            grown = -(-max(episodes, META_CHUNK_EPISODES) // meta_unit) * meta_unit
            resizes += [(a, (grown,)) for a in (*self._columns_arrays.values(), self._ends_array)]
            fill_ends = (capacity, grown)
        if resizes:
            resize_all(resizes)
            for files in self._chunk_files.values():  # zarr writes below and may drop chunks
                files.forget()
        if fill_ends:  # explicit -1s: a chunk may hold ends from before a shrink (see _trim)
            self._ends_array[fill_ends[0] : fill_ends[1]] = -1

    # --- reading -----------------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self._ends)

    @property
    def num_steps(self) -> int:
        """Committed steps over all episodes."""
        return int(self._ends[-1]) if len(self._ends) else 0

    @property
    def schema(self) -> Schema:
        return self._schema

    @property
    def image_size(self) -> tuple[int, int] | None:
        return self._schema.image_size

    @property
    def attrs(self) -> dict[str, Any]:
        """The store's root attributes (schema, format, and what callers recorded with ``set_attrs``)."""
        return dict(self._root.attrs)

    def set_attrs(self, **values: Any) -> None:
        """Record JSON values in the root attributes (writers only; the schema's keys are refused)."""
        if self.mode == "r" or self._lock is None:
            raise PermissionError(f"{self.path} is not open for writing: open it with mode='a' to set attributes")
        schema_keys = Schema.from_args(None, None, None, None, None, None).to_attrs()
        reserved = set(values) & {"format", "schema_version", "created_at", *schema_keys}
        if reserved:
            raise ValueError(f"attributes {sorted(reserved)} belong to the store's schema and cannot be set")
        self._root.attrs.update(values)

    def _check_index(self, i: int) -> int:
        if isinstance(i, bool) or not isinstance(i, (int, np.integer)):
            raise TypeError(f"episode index must be an int, got {type(i).__name__}")
        n = len(self)
        if not -n <= i < n:
            raise IndexError(f"episode {i} out of range: the store holds {n} episodes")
        return int(i) % n

    def episode_bounds(self, i: int) -> tuple[int, int]:
        """(start, end) step indices of episode ``i`` in the data arrays."""
        i = self._check_index(i)
        return (int(self._ends[i - 1]) if i else 0), int(self._ends[i])

    def episode_length(self, i: int) -> int:
        start, end = self.episode_bounds(i)
        return end - start

    def episode_lengths(self) -> np.ndarray:
        return np.diff(self._ends, prepend=0)

    def get(self, i: int, key: str, index: slice | int | np.ndarray | list[int] = slice(None)) -> np.ndarray:
        """Steps ``index`` (relative to the episode's start) of data array ``key`` of episode ``i``.

        ``index``: a slice (a contiguous window), an int, or a 1-D array of step indices (e.g. frames
        spread over the episode); only the chunks holding those steps are read.
        """
        if key not in DATA_KEYS:
            raise KeyError(f"unknown data key {key!r}; the store holds {DATA_KEYS}")
        start, end = self.episode_bounds(i)
        length = end - start
        array = self._arrays[key]
        if isinstance(index, slice):
            a, b, step = index.indices(length)
            if step == 1:
                return array[start + a : start + max(a, b)]
            index = np.arange(a, b, step)
        if isinstance(index, (int, np.integer)):
            if not -length <= index < length:
                raise IndexError(f"step {index} out of range for episode {i} of length {length}")
            return array[start + int(index) % length]
        idx = np.asarray(index, dtype=np.int64).reshape(-1)
        if idx.size and (idx.min() < -length or idx.max() >= length):
            raise IndexError(f"steps {idx.min()}..{idx.max()} out of range for episode {i} of length {length}")
        idx = start + idx % length
        if idx.size == 0:
            return np.empty((0, *array.shape[1:]), array.dtype)
        # zarr reads sorted unique indices by chunk; put them back in the order asked.
        unique, inverse = np.unique(idx, return_inverse=True)
        return array.get_orthogonal_selection((unique,))[inverse]

    def meta(self, i: int) -> dict[str, Any]:
        i = self._check_index(i)
        return {name: values[i] for name, values in self._columns.items()}

    def column(self, name: str) -> list[Any]:
        """One metadata column over all committed episodes."""
        if name not in self._columns:
            raise KeyError(f"unknown metadata column {name!r}; columns: {sorted(self._columns)}")
        return list(self._columns[name])

    def episode(self, i: int) -> Episode:
        """Episode ``i`` whole (for small episodes or export; training reads windows with ``get``)."""
        start, end = self.episode_bounds(i)
        arrays = {key: self._arrays[key][start:end] for key in DATA_KEYS}
        return Episode(**arrays, meta=self.meta(i))

    def filter(self, **conditions: Any) -> list[int]:
        """Indices of episodes whose metadata matches: ``column=value`` or ``column=[values...]``."""
        unknown = set(conditions) - set(self._columns)
        if unknown:
            raise KeyError(f"unknown metadata column(s) {sorted(unknown)}; columns: {sorted(self._columns)}")
        keep = np.ones(len(self), dtype=bool)
        for name, wanted in conditions.items():
            options = list(wanted) if isinstance(wanted, (list, tuple, set, frozenset)) else [wanted]
            values = self._columns[name]
            keep &= np.array([any(same_value(v, w) for w in options) for v in values], dtype=bool)
        return [int(i) for i in np.flatnonzero(keep)]

    def refresh(self) -> None:
        """Re-read the index (a reader sees episodes committed since it opened)."""
        self._tails.clear()
        self._chunk_files.clear()
        self._root = zarr.open_group(self.path, mode="r" if self.mode == "r" else "r+")
        self._load_index()

    # --- lifetime ----------------------------------------------------------------------------------
    def close(self) -> None:
        """Release the writer lock (after trimming the arrays to the committed episodes)."""
        if self._lock is not None:
            try:
                if hasattr(self, "_ends_array"):
                    self._trim(leftovers=False)
            finally:
                self._lock.release()
                self._lock = None

    def __enter__(self) -> EpisodeStore:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __del__(self) -> None:
        # Only the lock: zarr's I/O thread may be gone at interpreter exit, and untrimmed
        # arrays are cut back by the next writer's open anyway.
        lock = getattr(self, "_lock", None)
        if lock is not None:
            try:
                lock.release()
            except Exception:
                pass

    def __reduce__(self):
        """Pickled as (path, "r"): a DataLoader worker reopens the store read-only."""
        if self.mode != "r":
            raise TypeError(f"{self.path} is open for writing: only read-only stores can be sent to other processes")
        return (EpisodeStore, (str(self.path), "r"))

    def __repr__(self) -> str:
        return f"EpisodeStore({str(self.path)!r}, mode={self.mode!r}, episodes={len(self)}, steps={self.num_steps})"
