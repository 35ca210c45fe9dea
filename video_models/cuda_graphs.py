"""The planner's network replayed from CUDA graphs: a plan at batch 1 is bound by kernel launches.

A 128 px planner step at batch 1 launches hundreds of small kernels (measured on an H200: ~32 ms a
step, 1.6 s for 50 DDIM steps, with the GPU mostly idle). A CUDA graph records one forward pass
and replays it with one launch. One graph is captured per input shape (batch size, guidance
doubling), with torch's public capture API (``torch.cuda.CUDAGraph``, warm-up on a side stream);
inputs are copied into the graph's static tensors before each replay, the output is cloned out.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn


class GraphedNetwork:
    """``unet(sample, first_frame, timestep, text)`` through CUDA graphs, one per input shape."""

    def __init__(self, unet: nn.Module) -> None:
        device = next(unet.parameters()).device
        if device.type != "cuda":
            raise ValueError(f"CUDA graphs need the planner on a CUDA device, it is on {device} "
                             f"(plan_compile=cuda_graphs is for GPUs; use none or inductor on the CPU)")
        self.unet = unet
        self.graphs: dict[tuple, tuple[list[torch.Tensor], torch.cuda.CUDAGraph, torch.Tensor]] = {}

    def __call__(self, sample: torch.Tensor, first_frame: torch.Tensor, timestep: Any, text: torch.Tensor) -> torch.Tensor:
        t = torch.as_tensor(timestep, device=sample.device).reshape(-1).expand(sample.shape[0])
        args = (sample, first_frame, t, text)
        key = tuple((a.shape, a.dtype) for a in args) + (torch.is_autocast_enabled("cuda"),)
        if key not in self.graphs:
            self.graphs[key] = self._capture(args)
        static, graph, out = self.graphs[key]
        for dst, src in zip(static, args):
            dst.copy_(src)
        graph.replay()
        return out.clone()

    def _capture(self, args: tuple[torch.Tensor, ...]) -> tuple[list[torch.Tensor], torch.cuda.CUDAGraph, torch.Tensor]:
        static = [a.clone() for a in args]
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):  # warm-up (cuDNN / cuBLAS choose their kernels) off the capture
            for _ in range(2):
                self.unet(*static)
        torch.cuda.current_stream().wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        # thread_local: the plan server captures in its own thread; other threads' CUDA calls
        # during a capture are theirs, not this graph's.
        with torch.cuda.graph(graph, capture_error_mode="thread_local"):
            out = self.unet(*static)
        return static, graph, out
