"""Load Triton's LLVM before Mesa's: the two clash when Triton comes second.

Headless rendering uses Mesa's llvmpipe, which loads an LLVM; the CUDA build of torch ships
Triton, whose ``libtriton`` carries another. Importing Triton (diffusers does, through torch
utilities) in a process that has already rendered a frame crashes it with a segmentation fault
in ``triton/_C/libtriton.so``. Loaded in the other order both work, so the env preloads Triton
before its first renderer, when Triton is installed (~0.6 s, once per process).
"""

from __future__ import annotations

import importlib
import importlib.util

_done = False


def preload_triton() -> None:
    global _done
    if _done:
        return
    _done = True
    if importlib.util.find_spec("triton") is None:
        return
    try:
        importlib.import_module("triton._C.libtriton")
    except Exception:  # an incompatible or partial Triton: nothing to protect then
        pass
