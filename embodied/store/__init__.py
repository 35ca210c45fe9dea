"""The zarr 3 episode store (see ``episode_store`` for the format and its crash safety)."""

from embodied.store.episode_store import EpisodeStore
from embodied.store.schema import SCHEMA_VERSION, Schema, StoreFormatError, StoreLockedError

__all__ = ["EpisodeStore", "Schema", "StoreFormatError", "StoreLockedError", "SCHEMA_VERSION", "WindowDataset"]


def __getattr__(name: str):
    if name == "WindowDataset":  # imports torch: only when asked for
        from embodied.store.dataset import WindowDataset

        return WindowDataset
    raise AttributeError(f"module 'embodied.store' has no attribute {name!r}")
