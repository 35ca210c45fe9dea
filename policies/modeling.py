"""The image policy shared by the IDM and the goal policy: (frame, goal frame, state) -> action chunk.

One network for both (they differ only in the training-pair sampler, see config.py):

    obs, goal  uint8 (B, H, W, 3) -> stacked on channels (B, 6, H, W) in [-1, 1]
               -> conv encoder (stride-2 stages, GroupNorm, SiLU) -> pooled (B, C * p * p)
    state      (B, S) -> normalised -> MLP -> (B, E)
    gap        (B,) steps to the goal -> log -> MLP -> (B, GAP_EMBED)   (condition_on_gap only)
    concat -> MLP head -> (B, c * A) normalised actions -> unnormalised, clipped to the bounds

Early fusion (both frames in one stack) lets the first convolutions see the pixel difference
between the frames, which is what an inverse dynamics model needs; BridgeData/SOAR's GCBC stacks
the goal on channels as well. GroupNorm, not BatchNorm: no train/eval difference.

Interface (Diffusion Policy style): ``compute_loss(batch) -> (loss, metrics)`` (never steps an
optimizer) and ``predict_action(obs_rgb, goal_rgb, state[, gap]) -> (c, A)``.
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from policies.checkpoint import CONFIG, WEIGHTS, CheckpointError, read_weights, save_policy
from policies.config import CONFIG_TYPES, PolicyConfig
from policies.data import EpisodeSource, read_lowdim
from policies.normalizer import Normalizer

STATE_CLAMP = 10.0  # normalised states are clamped to [-10, 10] (10 standard deviations)
GAP_EMBED = 16  # width of the goal-distance embedding (condition_on_gap)


class ConvEncoder(nn.Module):
    """(B, C_in, H, W) float -> (B, out_dim): stride-2 conv stages, then adaptive pooling to p x p."""

    def __init__(self, in_channels: int, channels: list[int], pooled_size: int):
        super().__init__()
        layers: list[nn.Module] = []
        c = in_channels
        for i, width in enumerate(channels):
            k = 5 if i == 0 else 3  # a wider first kernel sees motion of a few pixels
            layers += [nn.Conv2d(c, width, k, stride=2, padding=k // 2), nn.GroupNorm(math.gcd(8, width), width), nn.SiLU()]
            c = width
        # Pooling to a fixed grid (not global): keeps where things are, and any image size works.
        layers += [nn.AdaptiveAvgPool2d(pooled_size), nn.Flatten()]
        self.net = nn.Sequential(*layers)
        self.out_dim = c * pooled_size * pooled_size

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def random_shift(x: torch.Tensor, pad: int) -> torch.Tensor:
    """DrQ augmentation: replicate-pad by ``pad`` and crop back at a random offset per sample.

    x: (B, C, H, W). Obs and goal are channels of one stack, so both get the same shift.
    """
    if pad <= 0:
        return x
    b, c, h, w = x.shape
    x = F.pad(x, (pad, pad, pad, pad), mode="replicate")
    oy = torch.randint(0, 2 * pad + 1, (b,), device=x.device)
    ox = torch.randint(0, 2 * pad + 1, (b,), device=x.device)
    rows = (oy[:, None] + torch.arange(h, device=x.device))[:, None, :, None]  # (B, 1, H, 1)
    cols = (ox[:, None] + torch.arange(w, device=x.device))[:, None, None, :]  # (B, 1, 1, W)
    bi = torch.arange(b, device=x.device)[:, None, None, None]
    ci = torch.arange(c, device=x.device)[None, :, None, None]
    return x[bi, ci, rows, cols]


class FrameGoalPolicy(nn.Module):
    """(frame t, goal frame, state t) -> action chunk (c, A). The IDM and the goal policy (GCBC).

    ``state_normalizer`` (gaussian) and ``action_normalizer`` (minmax) are fitted on the data
    (``from_source``) and saved with the weights.
    """

    def __init__(self, config: PolicyConfig, state_normalizer: Normalizer, action_normalizer: Normalizer):
        super().__init__()
        if config.state_dim is None or config.action_dim is None:
            raise ValueError("config.state_dim and config.action_dim must be set (from_source fills them from the data)")
        if state_normalizer.dim != config.state_dim or action_normalizer.dim != config.action_dim:
            raise ValueError(
                f"normalisers have dims state={state_normalizer.dim}, action={action_normalizer.dim}; config says "
                f"state_dim={config.state_dim}, action_dim={config.action_dim}"
            )
        self.config = config
        self.state_normalizer = state_normalizer
        self.action_normalizer = action_normalizer
        c, a, s = config.chunk, config.action_dim, config.state_dim

        # Clip bounds: declared in the config, else what the data spans.
        low = config.action_low if config.action_low is not None else action_normalizer.stats["min"]
        high = config.action_high if config.action_high is not None else action_normalizer.stats["max"]
        self.register_buffer("action_low", torch.as_tensor(np.asarray(low), dtype=torch.float32), persistent=False)
        self.register_buffer("action_high", torch.as_tensor(np.asarray(high), dtype=torch.float32), persistent=False)

        self.encoder = ConvEncoder(6, config.channels, config.pooled_size)
        self.uses_state = config.use_state and s > 0
        feat = self.encoder.out_dim
        if self.uses_state:
            e = config.state_embed_dim
            self.state_mlp = nn.Sequential(nn.Linear(s, e), nn.SiLU(), nn.Linear(e, e))
            feat += e
        if config.condition_on_gap:
            self.gap_mlp = nn.Sequential(nn.Linear(1, GAP_EMBED), nn.SiLU(), nn.Linear(GAP_EMBED, GAP_EMBED))
            feat += GAP_EMBED
        h = config.hidden_dim
        self.head = nn.Sequential(nn.Linear(feat, h), nn.SiLU(), nn.Linear(h, h), nn.SiLU(), nn.Linear(h, c * a))
        # Start at the mean action (normalised 0): the first steps learn, rather than undo, a random offset.
        nn.init.zeros_(self.head[-1].weight)
        nn.init.zeros_(self.head[-1].bias)

    # --- construction ------------------------------------------------------------------------------
    @classmethod
    def from_source(
        cls, config: PolicyConfig, source: EpisodeSource, episode_ids: list[int] | np.ndarray
    ) -> "FrameGoalPolicy":
        """A fresh policy whose dims and normalisers come from the episodes ``episode_ids``."""
        states = read_lowdim(source, episode_ids, "state")
        actions = read_lowdim(source, episode_ids, "action")
        dims = {"state_dim": states.shape[1], "action_dim": actions.shape[1]}
        for name, value in dims.items():
            declared = getattr(config, name)
            if declared is not None and declared != value:
                raise ValueError(f"config.{name}={declared} but the data has {value}")
        config = dataclasses.replace(config, **dims)
        return cls(config, Normalizer.fit(states, "gaussian"), Normalizer.fit(actions, "minmax"))

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    # --- forward -----------------------------------------------------------------------------------
    def _images(self, obs: torch.Tensor, goal: torch.Tensor) -> torch.Tensor:
        """uint8 (B, H, W, 3) x 2 -> float (B, 6, H, W) in [-1, 1]."""
        x = torch.cat([obs, goal], dim=-1).permute(0, 3, 1, 2)
        return x.to(self.device, torch.float32) / 127.5 - 1.0

    @property
    def conditions_on_gap(self) -> bool:
        """Whether ``predict_action`` needs ``gap`` (the executor passes it when so)."""
        return self.config.condition_on_gap

    def forward(self, images: torch.Tensor, state: torch.Tensor | None, gap: torch.Tensor | None = None) -> torch.Tensor:
        """images float (B, 6, H, W), raw state (B, S), gap (B,) steps -> normalised action chunk (B, c, A)."""
        feats = [self.encoder(images)]
        if self.uses_state:
            # Clamped: a new task's state can sit far outside the training range (e.g. a goal
            # position that was constant in the data), and the MLP should see bounded inputs.
            s = self.state_normalizer.normalize(state.to(self.device, torch.float32)).clamp(-STATE_CLAMP, STATE_CLAMP)
            feats.append(self.state_mlp(s))
        if self.config.condition_on_gap:
            feats.append(self.gap_mlp(torch.log(gap.to(self.device, torch.float32).clamp(min=1.0))[:, None]))
        out = self.head(torch.cat(feats, dim=-1))
        return out.view(-1, self.config.chunk, self.config.action_dim)

    # --- training ----------------------------------------------------------------------------------
    def compute_loss(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, float]]:
        """Masked L1/MSE on normalised actions. Does not step any optimizer.

        batch: obs_rgb, goal_rgb uint8 (B, H, W, 3); state float (B, S); action float (B, c, A);
        gap float (B,) (condition_on_gap); optional action_is_pad bool (B, c) (padded steps are
        left out of the loss).
        """
        needed = ("obs_rgb", "goal_rgb", "action") + (("state",) if self.uses_state else ()) + \
            (("gap",) if self.config.condition_on_gap else ())
        for key in needed:
            if key not in batch:
                raise KeyError(f"batch is missing {key!r}; it has {sorted(batch)}")
        self._check_frames(batch["obs_rgb"], "obs_rgb", batched=True)
        self._check_frames(batch["goal_rgb"], "goal_rgb", batched=True)
        images = self._images(batch["obs_rgb"], batch["goal_rgb"])
        if self.training:
            images = random_shift(images, self.config.random_shift)
        pred = self(images, batch.get("state"), batch.get("gap"))
        action = batch["action"].to(self.device, torch.float32)
        if action.shape != pred.shape:
            raise ValueError(f"batch action has shape {tuple(action.shape)}, the policy predicts {tuple(pred.shape)}")
        target = self.action_normalizer.normalize(action)
        pad = batch.get("action_is_pad")
        weight = torch.ones(action.shape[:2], device=self.device) if pad is None else (~pad.to(self.device)).float()
        weight = weight[..., None].expand_as(pred)  # (B, c, A)
        denom = weight.sum().clamp(min=1.0)
        diff = pred - target
        l1 = (diff.abs() * weight).sum() / denom
        mse = (diff.square() * weight).sum() / denom
        loss = l1 if self.config.loss == "l1" else mse
        metrics = {
            "loss": float(loss.detach()),
            "action_l1_norm": float(l1.detach()),
            "action_mse_norm": float(mse.detach()),
            "pad_fraction": float(1.0 - weight.mean().detach()),
        }
        return loss, metrics

    # --- inference ---------------------------------------------------------------------------------
    @torch.inference_mode()
    def predict_action_batch(
        self, obs_rgb: np.ndarray, goal_rgb: np.ndarray, state: np.ndarray | None = None,
        gap: np.ndarray | None = None,
    ) -> np.ndarray:
        """obs_rgb, goal_rgb uint8 (B, H, W, 3), state float32 (B, S), gap (B,) steps to the goal
        (condition_on_gap) -> float32 (B, c, A), clipped."""
        obs = self._check_frames(obs_rgb, "obs_rgb", batched=True)
        goal = self._check_frames(goal_rgb, "goal_rgb", batched=True)
        if obs.shape[0] != goal.shape[0]:
            raise ValueError(f"obs_rgb has {obs.shape[0]} frames, goal_rgb {goal.shape[0]}")
        st = self._check_state(state, obs.shape[0])
        gaps = self._check_gap(gap, obs.shape[0])
        pred = self(self._images(torch.from_numpy(obs), torch.from_numpy(goal)), st, gaps)
        act = self.action_normalizer.unnormalize(pred)
        act = torch.maximum(torch.minimum(act, self.action_high), self.action_low)
        return act.cpu().numpy().astype(np.float32, copy=False)

    def predict_action(self, obs_rgb: np.ndarray, goal_rgb: np.ndarray, state: np.ndarray | None = None,
                       gap: float | None = None) -> np.ndarray:
        """obs_rgb, goal_rgb uint8 (H, W, 3), state float32 (S,), gap steps to the goal
        (condition_on_gap) -> action chunk float32 (c, A), clipped."""
        obs = self._check_frames(obs_rgb, "obs_rgb", batched=False)
        goal = self._check_frames(goal_rgb, "goal_rgb", batched=False)
        st = None if state is None else np.asarray(state)[None]
        if st is not None and st.ndim != 2:
            raise ValueError(f"state must have shape (S,) = ({self.config.state_dim},), got {np.shape(state)}")
        return self.predict_action_batch(obs[None], goal[None], st, None if gap is None else np.array([gap]))[0]

    # --- input checks: clear errors instead of silent garbage ---------------------------------------
    def _check_frames(self, x: Any, name: str, batched: bool) -> Any:
        size = self.config.image_size
        want = ("(B, " if batched else "(") + f"{size}, {size}, 3)"
        if not isinstance(x, (np.ndarray, torch.Tensor)):
            x = np.asarray(x)
        dtype_ok = x.dtype == (torch.uint8 if isinstance(x, torch.Tensor) else np.uint8)
        if not dtype_ok:
            raise ValueError(f"{name} must be uint8 {want}, got dtype {x.dtype}")
        if tuple(x.shape[-3:]) != (size, size, 3) or x.ndim != (4 if batched else 3):
            raise ValueError(f"{name} must be uint8 {want}, got shape {tuple(x.shape)}")
        return x if isinstance(x, torch.Tensor) else np.ascontiguousarray(x)

    def _check_gap(self, gap: np.ndarray | None, batch: int) -> torch.Tensor | None:
        if not self.config.condition_on_gap:
            return None
        if gap is None:
            raise ValueError("this policy is conditioned on the goal's distance: pass gap, the steps to the goal "
                             f"(its training gaps were {self.config.min_gap}..{self.config.max_gap})")
        g = np.asarray(gap, dtype=np.float32).reshape(-1)
        if g.shape != (batch,) or not (np.isfinite(g).all() and (g >= 1).all()):
            raise ValueError(f"gap must be {batch} finite step count(s) >= 1, got {gap!r}")
        return torch.from_numpy(g)

    def _check_state(self, state: np.ndarray | None, batch: int) -> torch.Tensor | None:
        if not self.uses_state:
            return None
        s = self.config.state_dim
        if state is None:
            raise ValueError(f"this policy uses the state: pass state float32 (B, {s})")
        st = np.asarray(state, dtype=np.float32)
        if st.shape != (batch, s):
            raise ValueError(f"state must have shape ({batch}, {s}), got {st.shape}")
        if not np.isfinite(st).all():
            raise ValueError(f"state contains NaN or inf: {st[~np.isfinite(st).all(1)][:1]}")
        return torch.from_numpy(st)

    # --- checkpoints -------------------------------------------------------------------------------
    def save(self, path: str | Path) -> Path:
        """Write ``model.safetensors`` + ``config.json`` into directory ``path`` (see checkpoint.py)."""
        return save_policy(self, path)


# The "type" in config.json -> the class that rebuilds it (both types share the network today).
POLICY_CLASSES: dict[str, type[FrameGoalPolicy]] = {kind: FrameGoalPolicy for kind in CONFIG_TYPES}


def load_policy(path: str | Path, device: str = "cpu") -> FrameGoalPolicy:
    """Rebuild the policy saved in directory ``path`` (its class from config.json's "type")."""
    path = Path(path)
    doc, weights = read_weights(path)
    try:
        config = PolicyConfig.from_dict(doc["config"])
        norms = {k: Normalizer.from_dict(doc["normalizers"][k]) for k in ("state", "action")}
        policy = POLICY_CLASSES[config.type](config, norms["state"], norms["action"])
    except (KeyError, TypeError, ValueError) as e:
        raise CheckpointError(f"{path / CONFIG}: cannot rebuild the policy ({type(e).__name__}: {e})") from e
    try:
        policy.load_state_dict(weights, strict=True)
    except RuntimeError as e:
        raise CheckpointError(f"{path / WEIGHTS} does not match config.json ({e})") from e
    return policy.to(device).eval()
