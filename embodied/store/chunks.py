"""The store's one module below zarr's public API: whole-chunk writes straight to the files of a
local store (the append path), and zarr's own async writes run concurrently.

Measured (benchmarks/store_throughput.py, which times the same appends through public calls alone
in the same run): zarr's public ``Array.__setitem__`` / ``resize`` cost ~0.5-1 ms per call
whatever the size, and an append touches ~15 arrays, so the public path appends several times
slower than this module and below the store's goal of 100 MB/s.

Why: an append changes ~15 small arrays (4 data arrays, 10 metadata columns, the episode ends).
Through ``zarr.Array.__setitem__`` each costs ~0.5-1 ms of zarr's machinery (selection, async
codec pipeline, thread hops) whatever its size, which was most of an append. The writes of an
append always cover whole chunks (EpisodeStore keeps the last chunk in memory), so they need
none of that: encode each chunk with the array's own codecs (numcodecs, the library zarr calls
for them, configured from the array's metadata) and replace its file atomically, as zarr's
LocalStore does. The bytes are the ones zarr writes (tests/test_store.py compares them) and zarr
reads them back. Arrays whose codecs or layout this does not know fall back to zarr.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import Callable, Iterable
from pathlib import Path

import numcodecs
import numpy as np
import zarr
from zarr.codecs import BloscCodec, BytesCodec, VLenUTF8Codec, ZstdCodec
from zarr.core.sync import sync

SHUFFLE = {"noshuffle": 0, "shuffle": 1, "bitshuffle": 2}
Encoder = Callable[[object], object]


def _encoder(codec, dtype: np.dtype) -> Encoder | None:
    """numcodecs' encode for one codec of a zarr 3 codec chain (None: not handled here)."""
    if isinstance(codec, BytesCodec):
        if dtype.kind not in "biuf" or (dtype.itemsize > 1 and codec.endian is not None and codec.endian.value != "little"):
            return None
        little = dtype.newbyteorder("<")
        return lambda a: np.ascontiguousarray(a, dtype=little).tobytes()
    if isinstance(codec, VLenUTF8Codec):
        vlen = numcodecs.VLenUTF8()
        return lambda a: vlen.encode(np.asarray(a, dtype=object))
    if isinstance(codec, BloscCodec):
        blosc = numcodecs.Blosc.from_config({"cname": codec.cname.name, "clevel": codec.clevel,
                                             "shuffle": SHUFFLE[codec.shuffle.value], "blocksize": codec.blocksize,
                                             "typesize": codec.typesize})
        return lambda b: blosc.encode(np.frombuffer(b, np.uint8))
    if isinstance(codec, ZstdCodec) and not codec.checksum:
        zstd = numcodecs.Zstd(level=codec.level)
        return lambda b: zstd.encode(np.frombuffer(b, np.uint8))
    return None


class ChunkFiles:
    """Encode and atomically write whole chunks (along the first axis) of one zarr 3 array."""

    def __init__(self, array: zarr.Array, store_root: Path) -> None:
        meta = array.metadata
        self.array = array
        self.dir = Path(store_root) / array.path
        self.chunk = int(array.chunks[0])
        self.full_rows = tuple(array.shape[1:]) == tuple(array.chunks[1:])  # one chunk across the other axes
        dtype = np.dtype(array.dtype)
        encoders = [_encoder(c, dtype if dtype.kind in "biuf" else np.dtype("O")) for c in meta.codecs]
        key = meta.chunk_key_encoding
        self.separator = getattr(key, "separator", "/")
        self.supported = (getattr(key, "name", "") == "default" and self.full_rows and all(encoders)
                          and isinstance(meta.codecs[0], (BytesCodec, VLenUTF8Codec)))
        self._encoders = encoders
        self._tail = "".join(self.separator + "0" for _ in array.shape[1:])
        self._dirs: set[Path] = set()  # chunk directories known to exist
        # 1-D arrays (metadata columns): the last chunk this object wrote, as (index, rows). A
        # column whose new entries equal its fill value (a demo's sail_iteration, grader, ...)
        # would rewrite a chunk with the very bytes already in its file: skipped. Safe because
        # the writer holds the store's lock (nothing else changes the file) and the entry is
        # recorded only after the file was replaced; ``forget`` drops it when zarr writes instead.
        self._remember = array.ndim == 1
        self._last: tuple[int, np.ndarray] | None = None
        # Uncompressed fixed-width 1-D arrays (metadata columns and episode ends of stores made
        # since 2026-11-26): a chunk this object wrote whole is then updated in place, only the
        # bytes of the rows that changed (one pwrite, no new file). Crash safety holds as for a
        # replaced file: the rows that change are past the last commit (ignored on open) or, for
        # episode_ends, the commit itself, written last; a killed process cannot tear a pwrite
        # of a few bytes (not a power cut: nothing is fsynced, as before).
        self._in_place = (self._remember and len(meta.codecs) == 1 and isinstance(meta.codecs[0], BytesCodec)
                          and dtype.kind in "biuf")

    def encode(self, block: np.ndarray) -> bytes:
        data = block
        for encode in self._encoders:
            data = encode(data)
        return bytes(data)

    def path(self, index: int) -> Path:
        return self.dir / f"c{self.separator}{index}{self._tail}"

    def write(self, first_chunk: int, block: np.ndarray) -> None:
        """``block`` (a whole number of chunks) from chunk ``first_chunk`` on, one file per chunk."""
        if len(block) % self.chunk:
            raise ValueError(f"{self.array.path}: {len(block)} rows is not a whole number of {self.chunk}-row chunks")
        for k in range(len(block) // self.chunk):
            self.write_chunk(first_chunk + k, block[k * self.chunk : (k + 1) * self.chunk])

    def write_chunk(self, index: int, rows: np.ndarray) -> None:
        """Chunk ``index`` (``rows``: exactly one chunk), encoded and replaced atomically."""
        if self._last is not None and self._last[0] == index and self._last[1].dtype == rows.dtype:
            changed = np.flatnonzero(~_equal_rows(self._last[1], rows))
            if not len(changed):
                return  # the file already holds exactly these rows
            if self._in_place:
                self._update_in_place(index, rows, int(changed[0]), int(changed[-1]) + 1)
                return
        path = self.path(index)
        if path.parent not in self._dirs:  # c/<i>/0/0/ is a directory per chunk of an N-d array
            path.parent.mkdir(parents=True, exist_ok=True)
            self._dirs.add(path.parent)
        self._last = None  # unknown while the file is being replaced
        write_atomic(path, self.encode(rows))
        if self._remember:
            self._last = (index, rows.copy())

    def _update_in_place(self, index: int, rows: np.ndarray, lo: int, hi: int) -> None:
        """Overwrite rows ``lo:hi`` of chunk ``index`` (the file holds the others already)."""
        data = self.encode(rows[lo:hi])  # raw little-endian bytes: row i sits at i * itemsize
        self._last = None  # unknown while the file is being written
        fd = os.open(self.path(index), os.O_WRONLY)
        try:
            if os.pwrite(fd, data, lo * rows.dtype.itemsize) != len(data):
                raise OSError(f"short write to {self.path(index)}")
        finally:
            os.close(fd)
        self._last = (index, rows.copy())

    def forget(self) -> None:
        """Drop what this object knows of the files (after writes that went around it)."""
        self._last = None


def _equal_rows(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Row-wise equality of two 1-D arrays of one chunk (NaN equals NaN)."""
    equal = a == b
    if a.dtype.kind == "f":
        equal |= np.isnan(a) & np.isnan(b)
    return equal


def write_atomic(path: Path, data: bytes) -> None:
    """Replace ``path`` with ``data`` whole or not at all (temp file + rename, like zarr's LocalStore)."""
    tmp = path.with_suffix(f".{uuid.uuid4().hex}.partial")
    try:
        with open(tmp, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


# --- zarr's own writes, several at a time ----------------------------------------------------------
def _run_all(coroutines: Iterable) -> None:
    """Run zarr's async array operations concurrently on zarr's event loop (each file is still
    replaced atomically): one wait instead of one per array."""
    coroutines = list(coroutines)
    if not coroutines:
        return

    async def gather():
        await asyncio.gather(*coroutines)

    sync(gather())


def resize_all(resizes: Iterable[tuple[zarr.Array, tuple[int, ...]]]) -> None:
    """``array.resize(shape)`` for every (array, shape), concurrently."""
    _run_all(array._async_array.resize(shape) for array, shape in resizes)


def setitem_all(writes: Iterable[tuple[zarr.Array, slice, np.ndarray]]) -> None:
    """``array[selection] = values`` for every (array, selection, values), concurrently."""
    _run_all(array._async_array.setitem(selection, values) for array, selection, values in writes)

