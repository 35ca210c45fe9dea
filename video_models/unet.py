"""Pseudo-3D UNet: 2D spatial ResBlocks per frame + 1D temporal convs across frames.

Shapes: B batch, K future frames, C channels, H x W spatial, E embedding width.
Inside the network frames are folded into the batch (B*K, C, H, W) for spatial layers and
spatial positions into the batch (B*H*W, C, K) for temporal layers (as in Video Diffusion Models
/ AVDC's factorised space-time blocks). Conditioning:
- the clean first frame is concatenated on channels to every noisy future frame (in = 2*C),
- timestep + instruction + frame-index embeddings are summed and applied by FiLM
  (per-channel scale and shift) in every ResBlock.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from diffusers.models.embeddings import TimestepEmbedding, Timesteps
from torch import nn

from video_models.config import VideoModelConfig


def _zero(module: nn.Module) -> nn.Module:
    """Zero a layer's parameters: the residual branch it ends starts as the identity."""
    for p in module.parameters():
        nn.init.zeros_(p)
    return module


class ResBlock(nn.Module):
    """GroupNorm-SiLU-conv twice, FiLM from the embedding between them. (N, C, H, W) -> (N, C', H, W)."""

    def __init__(self, c_in: int, c_out: int, emb_dim: int, groups: int, dropout: float) -> None:
        super().__init__()
        self.norm1 = nn.GroupNorm(groups, c_in)
        self.conv1 = nn.Conv2d(c_in, c_out, 3, padding=1)
        self.film = nn.Linear(emb_dim, 2 * c_out)  # -> (scale, shift)
        self.norm2 = nn.GroupNorm(groups, c_out)
        self.dropout = nn.Dropout(dropout)
        self.conv2 = _zero(nn.Conv2d(c_out, c_out, 3, padding=1))
        self.skip = nn.Conv2d(c_in, c_out, 1) if c_in != c_out else nn.Identity()

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        scale, shift = self.film(F.silu(emb))[:, :, None, None].chunk(2, dim=1)
        h = self.norm2(h) * (1 + scale) + shift
        h = self.conv2(self.dropout(F.silu(h)))
        return self.skip(x) + h


class TemporalConv(nn.Module):
    """Residual 1D conv over frames; zero-initialised, so it starts as the identity. (B*K, C, H, W)."""

    def __init__(self, channels: int, groups: int) -> None:
        super().__init__()
        self.norm = nn.GroupNorm(groups, channels)
        self.conv = _zero(nn.Conv1d(channels, channels, 3, padding=1))

    def forward(self, x: torch.Tensor, k: int) -> torch.Tensor:
        n, c, h, w = x.shape
        y = F.silu(self.norm(x))
        y = y.view(n // k, k, c, h, w).permute(0, 3, 4, 2, 1).reshape(-1, c, k)  # (B*H*W, C, K)
        y = self.conv(y)
        y = y.view(n // k, h, w, c, k).permute(0, 4, 3, 1, 2).reshape(n, c, h, w)
        return x + y


class Attention(nn.Module):
    """Residual self-attention over spatial positions (per frame) or over frames (per position)."""

    def __init__(self, channels: int, groups: int, head_dim: int, temporal: bool, max_frames: int = 64) -> None:
        super().__init__()
        self.temporal = temporal
        self.heads = max(1, channels // head_dim)
        self.norm = nn.GroupNorm(groups, channels)
        self.qkv = nn.Linear(channels, 3 * channels)
        self.out = _zero(nn.Linear(channels, channels))
        # Frames need an order signal; spatial tokens get theirs from the convolutions.
        self.pos = nn.Parameter(torch.zeros(max_frames, channels)) if temporal else None

    def forward(self, x: torch.Tensor, k: int) -> torch.Tensor:
        n, c, h, w = x.shape
        y = self.norm(x)
        if self.temporal:
            tokens = y.view(n // k, k, c, h * w).permute(0, 3, 1, 2).reshape(-1, k, c)  # (B*H*W, K, C)
            tokens = tokens + self.pos[:k]
        else:
            tokens = y.view(n, c, h * w).transpose(1, 2)  # (B*K, H*W, C)
        q, kk, v = self.qkv(tokens).unflatten(-1, (3, self.heads, -1)).permute(2, 0, 3, 1, 4)
        a = F.scaled_dot_product_attention(q, kk, v).transpose(1, 2).flatten(2)
        a = self.out(a)
        if self.temporal:
            a = a.view(n // k, h * w, k, c).permute(0, 2, 3, 1).reshape(n, c, h, w)
        else:
            a = a.transpose(1, 2).reshape(n, c, h, w)
        return x + a


class SpaceTimeBlock(nn.Module):
    """ResBlock (space) -> temporal conv (time) -> optional spatial / temporal attention."""

    def __init__(self, c_in: int, c_out: int, emb_dim: int, cfg: VideoModelConfig, attend: bool) -> None:
        super().__init__()
        g = cfg.norm_groups
        self.res = ResBlock(c_in, c_out, emb_dim, g, cfg.dropout)
        self.time = TemporalConv(c_out, g)
        attn = []
        if attend:
            attn.append(Attention(c_out, g, cfg.attention_head_dim, temporal=False))
            if cfg.temporal_attention:
                attn.append(Attention(c_out, g, cfg.attention_head_dim, temporal=True))
        self.attn = nn.ModuleList(attn)

    def forward(self, x: torch.Tensor, emb: torch.Tensor, k: int) -> torch.Tensor:
        x = self.time(self.res(x, emb), k)
        for a in self.attn:
            x = a(x, k)
        return x


class VideoUNet(nn.Module):
    """(noisy future frames, clean first frame, timestep, instruction embedding) -> model output.

    forward(sample (B, K, C, H, W), first_frame (B, C, H, W), timestep (B,) or scalar,
            text (B, D)) -> (B, K, C, H, W)
    """

    def __init__(self, cfg: VideoModelConfig, channels: int, size: int, text_dim: int) -> None:
        super().__init__()
        self.channels = channels
        ch = [cfg.base_channels * m for m in cfg.channel_mult]
        emb_dim = 4 * cfg.base_channels
        self.time_proj = Timesteps(cfg.base_channels, flip_sin_to_cos=True, downscale_freq_shift=0)
        self.time_emb = TimestepEmbedding(cfg.base_channels, emb_dim)
        self.text_emb = nn.Sequential(nn.Linear(text_dim, emb_dim), nn.SiLU(), nn.Linear(emb_dim, emb_dim))
        self.frame_emb = nn.Embedding(cfg.num_frames, emb_dim)  # which future frame: FiLM differs per frame

        # Patching (pixel unshuffle) trades full-resolution convs for channels: ~p**2 fewer FLOPs.
        self.patch = cfg.patch_size
        self.conv_in = nn.Conv2d(2 * channels * self.patch**2, ch[0], 3, padding=1)
        size //= self.patch
        attn_levels = {lvl for lvl in range(len(ch)) if size >> lvl in cfg.attention_resolutions}

        # Down path: blocks per level, then a stride-2 conv (all levels but the last).
        self.down = nn.ModuleList()
        self.downsample = nn.ModuleList()
        skips, c = [ch[0]], ch[0]
        for level, c_out in enumerate(ch):
            blocks = nn.ModuleList()
            for _ in range(cfg.num_res_blocks):
                blocks.append(SpaceTimeBlock(c, c_out, emb_dim, cfg, level in attn_levels))
                c = c_out
                skips.append(c)
            self.down.append(blocks)
            last = level == len(ch) - 1
            self.downsample.append(nn.Identity() if last else nn.Conv2d(c, c, 3, stride=2, padding=1))
            if not last:
                skips.append(c)

        self.mid = nn.ModuleList([
            SpaceTimeBlock(c, c, emb_dim, cfg, attend=True),
            SpaceTimeBlock(c, c, emb_dim, cfg, attend=False),
        ])

        # Up path: one more block per level than down, each eating one skip connection.
        self.up = nn.ModuleList()
        self.upsample = nn.ModuleList()
        for level in reversed(range(len(ch))):
            blocks = nn.ModuleList()
            for _ in range(cfg.num_res_blocks + 1):
                blocks.append(SpaceTimeBlock(c + skips.pop(), ch[level], emb_dim, cfg, level in attn_levels))
                c = ch[level]
            self.up.append(blocks)
            self.upsample.append(
                nn.Sequential(nn.Upsample(scale_factor=2, mode="nearest"), nn.Conv2d(c, c, 3, padding=1))
                if level > 0 else nn.Identity()
            )

        self.norm_out = nn.GroupNorm(cfg.norm_groups, c)
        self.conv_out = nn.Conv2d(c, channels * self.patch**2, 3, padding=1)

    def forward(
        self, sample: torch.Tensor, first_frame: torch.Tensor, timestep: torch.Tensor | int, text: torch.Tensor
    ) -> torch.Tensor:
        b, k, c, h, w = sample.shape
        if c != self.channels or first_frame.shape != (b, c, h, w):
            raise ValueError(f"expected sample (B, K, {self.channels}, H, W) and first_frame (B, C, H, W), "
                             f"got {tuple(sample.shape)} and {tuple(first_frame.shape)}")
        t = torch.as_tensor(timestep, device=sample.device).reshape(-1).expand(b)

        # One embedding per (video, frame): timestep + instruction + frame index.  (B*K, E)
        emb = self.time_emb(self.time_proj(t).to(sample.dtype)) + self.text_emb(text.to(sample.dtype))
        emb = (emb[:, None] + self.frame_emb.weight[:k][None]).reshape(b * k, -1)

        x = torch.cat([sample, first_frame[:, None].expand(b, k, c, h, w)], dim=2).reshape(b * k, 2 * c, h, w)
        x = self.conv_in(F.pixel_unshuffle(x, self.patch))
        skips = [x]
        for blocks, down in zip(self.down, self.downsample):
            for block in blocks:
                x = block(x, emb, k)
                skips.append(x)
            if not isinstance(down, nn.Identity):
                x = down(x)
                skips.append(x)
        for block in self.mid:
            x = block(x, emb, k)
        for blocks, up in zip(self.up, self.upsample):
            for block in blocks:
                x = block(torch.cat([x, skips.pop()], dim=1), emb, k)
            x = up(x)
        x = F.pixel_shuffle(self.conv_out(F.silu(self.norm_out(x))), self.patch)
        return x.view(b, k, c, h, w)
