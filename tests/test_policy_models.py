"""policies: relabelling, datasets, normaliser, the image policy (IDM / goal policy), checkpoints."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from policies import (
    CheckpointError,
    FrameGoalDataset,
    FrameGoalPolicy,
    GoalPolicyConfig,
    IDMConfig,
    Normalizer,
    chunk_indices,
    load_policy,
    make_config,
    sample_goal_index,
)
from policies.data import EpisodeSource, read_lowdim
from policies.latency import measure_latency, random_policy
from policies.testing import InMemoryEpisodeSource, point_mass_episodes

SIZE = 32
# A tiny network for tests: a few ms per step on one core.
TINY = dict(image_size=SIZE, channels=[8, 16, 16], pooled_size=4, hidden_dim=64, state_embed_dim=16, random_shift=0)


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """One torch thread: on 2 shared cores a second thread mostly waits (a 10x slowdown measured)."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture(scope="module")
def source() -> InMemoryEpisodeSource:
    return InMemoryEpisodeSource(point_mass_episodes(6, seed=0, size=SIZE))


@pytest.fixture(scope="module")
def trained(source):
    """An IDM overfitted on one fixed batch (shared by the tests that need a trained model)."""
    torch.manual_seed(0)
    config = IDMConfig(chunk=4, min_gap=2, max_gap=6, **TINY)
    policy = FrameGoalPolicy.from_source(config, source, range(len(source)))
    ds = FrameGoalDataset.from_config(source, range(len(source)), policy.config)
    batch = torch.utils.data.default_collate([ds[k] for k in range(0, len(ds), max(1, len(ds) // 32))][:32])
    opt = torch.optim.Adam(policy.parameters(), lr=3e-3)
    losses = []
    for _ in range(60):
        loss, metrics = policy.compute_loss(batch)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(metrics["loss"])
    return policy, batch, losses


# --- relabelling and padding ----------------------------------------------------------------------
def test_goal_index_is_later_in_episode_and_within_bounds():
    rng = np.random.default_rng(0)
    for _ in range(3000):
        length = int(rng.integers(2, 60))
        t = int(rng.integers(0, length - 1))
        min_gap = int(rng.integers(1, 10))
        max_gap = None if rng.random() < 0.3 else min_gap + int(rng.integers(0, 20))
        goal = sample_goal_index(t, length, rng, min_gap, max_gap)
        assert t < goal <= length - 1
        gap = goal - t
        if length - 1 - t >= min_gap:  # enough room: the gap is in range
            assert min_gap <= gap <= (max_gap if max_gap is not None else length)
        else:  # near the end: the last frame
            assert goal == length - 1


def test_goal_index_is_deterministic_and_covers_the_range():
    a = [sample_goal_index(3, 100, np.random.default_rng(7), 8, 32) for _ in range(5)]
    assert len(set(a)) == 1  # same seed, same goal
    rng = np.random.default_rng(1)
    gaps = {sample_goal_index(10, 200, rng, 8, 32) - 10 for _ in range(2000)}
    assert gaps == set(range(8, 33))  # every gap of the plan-frame spacing is trained
    hindsight = {sample_goal_index(0, 30, rng) for _ in range(2000)}
    assert hindsight == set(range(1, 30))  # any later frame, up to the last


@pytest.mark.parametrize("t, length", [(-1, 10), (9, 10), (10, 10), (0, 1)])
def test_goal_index_rejects_steps_without_an_action(t, length):
    with pytest.raises(ValueError):
        sample_goal_index(t, length, np.random.default_rng(0))


def test_chunk_indices_pad_past_the_last_action():
    idx, pad = chunk_indices(0, 10, 4)
    assert idx.tolist() == [0, 1, 2, 3] and not pad.any()
    idx, pad = chunk_indices(7, 10, 4)  # steps 7, 8 have actions; 9 is the zero action; 10 is past the end
    assert idx.tolist() == [7, 8, 9, 9] and pad.tolist() == [False, False, True, True]
    idx, pad = chunk_indices(8, 10, 1)
    assert idx.tolist() == [8] and not pad.any()


# --- dataset ---------------------------------------------------------------------------------------
def test_dataset_items_are_consistent_with_the_episode(source):
    assert isinstance(source, EpisodeSource)
    ids = [1, 3, 4]
    ds = FrameGoalDataset(source, ids, chunk=6, min_gap=2, max_gap=8, image_size=SIZE)
    assert len(ds) == sum(source.episode_length(i) - 1 for i in ids)
    torch.manual_seed(0)
    for k in range(len(ds)):
        item = ds[k]
        ep, t, g = int(item["episode"]), int(item["t"]), int(item["goal_t"])
        full = source.episodes[ep]
        length = len(full["rgb"])
        assert ep in ids and 0 <= t <= length - 2 and t < g <= length - 1
        assert item["obs_rgb"].dtype == torch.uint8 and item["obs_rgb"].shape == (SIZE, SIZE, 3)
        np.testing.assert_array_equal(item["obs_rgb"].numpy(), full["rgb"][t])
        np.testing.assert_array_equal(item["goal_rgb"].numpy(), full["rgb"][g])  # same episode, later frame
        np.testing.assert_array_equal(item["state"].numpy(), full["state"][t])
        real = min(6, length - 1 - t)
        assert item["action_is_pad"].tolist() == [False] * real + [True] * (6 - real)
        np.testing.assert_array_equal(item["action"][:real].numpy(), full["action"][t : t + real])
        assert (item["action"][real:] == 0).all()  # padding: zero actions, masked in the loss


def test_dataset_reads_windows_not_whole_episodes(source):
    ds = FrameGoalDataset(source, [0], chunk=4, min_gap=2, max_gap=6)
    source.reads.clear()
    ds[3]
    assert {key for _, key, _ in source.reads} == {"rgb", "state", "action"}
    assert all(n <= 4 for _, key, n in source.reads) and max(n for _, k, n in source.reads if k == "rgb") == 2


def test_dataset_batches_collate(source):
    ds = FrameGoalDataset.from_config(source, [0, 2], GoalPolicyConfig(**TINY))
    loader = torch.utils.data.DataLoader(ds, batch_size=5, shuffle=True)
    batch = next(iter(loader))
    assert batch["obs_rgb"].shape == (5, SIZE, SIZE, 3) and batch["goal_rgb"].dtype == torch.uint8
    assert batch["state"].shape == (5, 4) and batch["action"].shape == (5, 4, 2)
    assert batch["action_is_pad"].shape == (5, 4) and batch["action_is_pad"].dtype == torch.bool


def test_dataset_rejects_bad_ids_and_sizes(source):
    with pytest.raises(ValueError, match="out of range"):
        FrameGoalDataset(source, [0, 99], chunk=2)
    ds = FrameGoalDataset(source, [0], chunk=2, image_size=64)
    with pytest.raises(ValueError, match="32x32.*64x64"):
        ds[0]
    with pytest.raises(IndexError):
        FrameGoalDataset(source, [0], chunk=2)[10_000]


# --- normaliser ------------------------------------------------------------------------------------
@pytest.mark.parametrize("mode", ["minmax", "gaussian"])
def test_normalizer_round_trip(mode):
    rng = np.random.default_rng(0)
    data = rng.normal(3.0, 5.0, (500, 4))
    data[:, 2] = 7.0  # a dimension that never varies
    norm = Normalizer.fit(data, mode)
    x = torch.as_tensor(data, dtype=torch.float32)
    y = norm.normalize(x)
    torch.testing.assert_close(norm.unnormalize(y), x, rtol=1e-5, atol=1e-4)
    assert torch.isfinite(y).all() and torch.allclose(y[:, 2], torch.zeros(500))
    if mode == "minmax":
        assert y[:, [0, 1, 3]].min() >= -1 - 1e-5 and y[:, [0, 1, 3]].max() <= 1 + 1e-5
    else:
        assert abs(float(y[:, 0].mean())) < 1e-4 and abs(float(y[:, 0].std()) - 1) < 1e-2
    again = Normalizer.from_dict(json.loads(json.dumps(norm.to_dict())))  # JSON lists, not pickles
    torch.testing.assert_close(again.normalize(x), y)
    with pytest.raises(ValueError, match="NaN"):
        Normalizer.fit(np.array([[np.nan, 1.0]]), mode)


# --- the policy ------------------------------------------------------------------------------------
def test_overfits_a_tiny_dataset(trained):
    _, _, losses = trained
    assert losses[-1] < 0.3 * losses[0], losses[::10]


def test_compute_loss_masks_padding_and_does_not_step(trained):
    policy, batch, _ = trained
    before = [p.detach().clone() for p in policy.parameters()]
    loss, metrics = policy.compute_loss(batch)
    assert loss.requires_grad and set(metrics) >= {"loss", "action_l1_norm", "action_mse_norm", "pad_fraction"}
    assert all(torch.equal(a, b) for a, b in zip(before, policy.parameters()))
    # Garbage in padded steps changes nothing: they are left out of the loss.
    noisy = dict(batch, action=batch["action"].clone())
    pad = batch["action_is_pad"]
    assert pad.any()
    noisy["action"][pad] = 123.0
    assert torch.isclose(policy.compute_loss(noisy)[0], loss)


def test_predict_action_shapes_dtypes_and_clipping(trained, source):
    policy, _, _ = trained
    ep = source.episodes[0]
    chunk = policy.predict_action(ep["rgb"][0], ep["rgb"][5], ep["state"][0])
    assert chunk.shape == (4, 2) and chunk.dtype == np.float32
    lo, hi = policy.action_low.numpy(), policy.action_high.numpy()  # learned from the data
    assert (chunk >= lo - 1e-6).all() and (chunk <= hi + 1e-6).all()
    batched = policy.predict_action_batch(ep["rgb"][:3], ep["rgb"][5:8], ep["state"][:3])
    assert batched.shape == (3, 4, 2) and batched.dtype == np.float32
    np.testing.assert_allclose(batched[0], chunk, atol=1e-5)

    # Declared bounds clip a policy that wants to go far outside them.
    config = make_config("goal", **TINY, action_low=[-0.5, -0.25], action_high=[0.5, 0.25])
    wild = FrameGoalPolicy.from_source(config, source, [0, 1])
    with torch.no_grad():
        wild.head[-1].bias.fill_(50.0)
    out = wild.predict_action(ep["rgb"][0], ep["rgb"][3], ep["state"][0])
    np.testing.assert_allclose(out, np.tile([0.5, 0.25], (4, 1)))


def test_predict_action_rejects_bad_inputs(trained, source):
    policy, _, _ = trained
    ep = source.episodes[0]
    obs, goal, state = ep["rgb"][0], ep["rgb"][3], ep["state"][0]
    with pytest.raises(ValueError, match=r"\(32, 32, 3\).*\(64, 64, 3\)"):
        policy.predict_action(np.zeros((64, 64, 3), np.uint8), goal, state)
    with pytest.raises(ValueError, match="uint8"):
        policy.predict_action(obs.astype(np.float32) / 255, goal, state)
    with pytest.raises(ValueError, match="NaN"):
        policy.predict_action(obs, goal, np.array([np.nan, 0, 0, 0], np.float32))
    with pytest.raises(ValueError, match=r"state must have shape \(1, 4\)"):
        policy.predict_action(obs, goal, state[:3])
    with pytest.raises(ValueError, match="uses the state"):
        policy.predict_action(obs, goal, None)
    with pytest.raises(KeyError, match="goal_rgb"):
        policy.compute_loss({"obs_rgb": torch.zeros(1, SIZE, SIZE, 3, dtype=torch.uint8)})


def test_config_validation():
    with pytest.raises(ValueError, match="min_gap"):
        IDMConfig(min_gap=0)
    with pytest.raises(ValueError, match="max_gap"):
        IDMConfig(min_gap=10, max_gap=5)
    with pytest.raises(ValueError, match="loss"):
        IDMConfig(loss="huber")
    with pytest.raises(ValueError, match="both"):
        IDMConfig(action_low=[-1.0])
    with pytest.raises(ValueError, match="preset"):
        make_config("idm", "tpu")
    gpu = make_config("goal", "gpu")
    assert gpu.type == "goal" and gpu.image_size == 128 and gpu.min_gap == 1 and gpu.max_gap is None


def test_from_source_checks_declared_dims(source):
    with pytest.raises(ValueError, match="action_dim=4 but the data has 2"):
        FrameGoalPolicy.from_source(IDMConfig(action_dim=4, **TINY), source, [0])
    assert read_lowdim(source, [0], "action").shape[0] == source.episode_length(0) - 1  # last (zero) step left out


# --- checkpoints -----------------------------------------------------------------------------------
def test_checkpoint_round_trip(trained, source, tmp_path):
    policy, _, _ = trained
    policy.save(tmp_path / "idm")
    assert sorted(p.name for p in (tmp_path / "idm").iterdir()) == ["config.json", "model.safetensors"]
    doc = json.loads((tmp_path / "idm" / "config.json").read_text())
    assert doc["format_version"] == 1 and doc["config"]["type"] == "idm" and doc["normalizers"]["action"]["mode"] == "minmax"
    loaded = load_policy(tmp_path / "idm")
    assert type(loaded) is FrameGoalPolicy and type(loaded.config) is IDMConfig and loaded.config == policy.config
    ep = source.episodes[2]
    args = (ep["rgb"][:4], ep["rgb"][4:8], ep["state"][:4])
    np.testing.assert_array_equal(loaded.predict_action_batch(*args), policy.predict_action_batch(*args))

    goal = FrameGoalPolicy.from_source(GoalPolicyConfig(**TINY), source, [0])
    assert type(load_policy(goal.save(tmp_path / "goal")).config) is GoalPolicyConfig


def test_checkpoint_errors_are_clear(trained, tmp_path):
    policy, _, _ = trained
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_policy(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(CheckpointError, match="missing config.json, model.safetensors"):
        load_policy(tmp_path / "empty")
    ckpt = policy.save(tmp_path / "ok")

    def broken(name: str, edit) -> Path:
        d = tmp_path / name
        d.mkdir()
        for f in ("config.json", "model.safetensors"):
            (d / f).write_bytes((ckpt / f).read_bytes())
        edit(d)
        return d

    bad_json = broken("json", lambda d: (d / "config.json").write_text("{not json"))
    with pytest.raises(CheckpointError, match="not valid JSON"):
        load_policy(bad_json)
    newer = broken("newer", lambda d: (d / "config.json").write_text(
        json.dumps({**json.loads((ckpt / "config.json").read_text()), "format_version": 99})))
    with pytest.raises(CheckpointError, match="version 99"):
        load_policy(newer)
    truncated = broken("trunc", lambda d: (d / "model.safetensors").write_bytes((ckpt / "model.safetensors").read_bytes()[:100]))
    with pytest.raises(CheckpointError, match="safetensors"):
        load_policy(truncated)

    def other_width(d: Path) -> None:
        doc = json.loads((d / "config.json").read_text())
        doc["config"]["hidden_dim"] = 32
        (d / "config.json").write_text(json.dumps(doc))

    with pytest.raises(CheckpointError, match="does not match"):
        load_policy(broken("shape", other_width))


# --- package hygiene and speed ---------------------------------------------------------------------
def test_policies_imports_no_sibling_package():
    for path in (Path(__file__).resolve().parents[1] / "policies").glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else (
                [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            for name in names:
                assert name.split(".")[0] not in {"sim", "video_models", "embodied"}, f"{path} imports {name}"


def test_executor_import_does_not_load_torch():
    code = "import policies, policies.executor, sys; assert 'torch' not in sys.modules, 'torch loaded'"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_cpu_tiny_inference_latency():
    """cpu_tiny target: < 20 ms per query on CPU, one thread (python -m policies.latency reports 1 and 2)."""
    for kind in ("idm", "goal"):
        r = measure_latency(random_policy(kind, "cpu_tiny"), threads=1, queries=20, warmup=3)
        print(f"{kind} cpu_tiny threads=1: {r['ms_per_query']:.2f} ms/query, {r['ms_per_action']:.2f} ms/action")
        assert r["ms_per_query"] < 20, r


# --- the goal's distance as an input (condition_on_gap) ---------------------------------------------
def two_speed_episodes(n: int, seed: int = 0) -> list[dict]:
    """Point-mass episodes, each at one speed: full (factor 1) or slow (0.4), as the expert's demos
    beside a policy's own slower rollouts."""
    from policies.testing import PointMassEnv, expert_action

    rng = np.random.default_rng(seed)
    episodes = []
    for i in range(n):
        factor = 1.0 if i % 2 == 0 else 0.4
        env = PointMassEnv(size=SIZE, max_episode_steps=30)
        obs, _ = env.reset(seed=int(rng.integers(1 << 31)))
        rgb, state, action = [obs["rgb"]], [obs["state"]], []
        for _ in range(30):
            a = expert_action(env.pos, env.goal) * factor
            obs, _, _, truncated, info = env.step(a)
            rgb.append(obs["rgb"]), state.append(obs["state"]), action.append(a)
            if info["success"] or truncated:
                break
        action.append(np.zeros(2, np.float32))
        episodes.append(dict(rgb=np.stack(rgb), action=np.stack(action), state=np.stack(state),
                             success=np.zeros(len(rgb), bool), meta=dict(task="point", seed=i, factor=factor)))
    return episodes


def test_the_goal_distance_input_tells_slow_from_fast_data():
    """Trained on fast and slow episodes alike, an IDM that is told the goal's distance recovers
    each episode's speed from the motion; one that is not can only guess a speed in between."""
    source = InMemoryEpisodeSource(two_speed_episodes(32))
    held_out = two_speed_episodes(16, seed=1)
    errors = {}
    for conditioned in (False, True):
        torch.manual_seed(0)
        config = IDMConfig(chunk=2, min_gap=2, max_gap=8, use_state=False, condition_on_gap=conditioned, **TINY)
        policy = FrameGoalPolicy.from_source(config, source, range(len(source)))
        ds = FrameGoalDataset.from_config(source, range(len(source)), policy.config)
        loader = torch.utils.data.DataLoader(ds, batch_size=64, shuffle=True, generator=torch.Generator().manual_seed(0))
        opt = torch.optim.Adam(policy.parameters(), lr=3e-3)
        for step, batch in zip(range(250), (b for _ in range(100) for b in loader)):
            loss, _ = policy.compute_loss(batch)
            opt.zero_grad()
            loss.backward()
            opt.step()
        # Speed of the first action on (t, t + g) pairs of new episodes: |a| against the truth.
        misses = []
        for ep in held_out:
            for g in (2, 4, 6):
                chunk = policy.predict_action(ep["rgb"][1], ep["rgb"][1 + g], **({"gap": g} if conditioned else {}))
                misses.append(abs(np.abs(chunk[0]).mean() - np.abs(ep["action"][1]).mean()))
        errors[conditioned] = float(np.mean(misses))
    assert errors[True] < 0.5 * errors[False], errors


def test_a_gap_conditioned_policy_needs_the_gap_and_the_executor_gives_steps_left(source):
    from policies import ExecutorConfig, PlanExecutor
    from policies.testing import PointMassEnv, PointMassPlanner

    policy = FrameGoalPolicy.from_source(IDMConfig(chunk=3, min_gap=2, max_gap=8, condition_on_gap=True, **TINY),
                                         source, [0, 1])
    ep = source.episodes[0]
    with pytest.raises(ValueError, match="conditioned on the goal's distance: pass gap"):
        policy.predict_action(ep["rgb"][0], ep["rgb"][3], ep["state"][0])
    with pytest.raises(ValueError, match="gap must be 1 finite step count"):
        policy.predict_action(ep["rgb"][0], ep["rgb"][3], ep["state"][0], gap=0)
    with pytest.raises(KeyError, match="gap"):
        batch = FrameGoalDataset.from_config(source, [0], policy.config)[0]
        policy.compute_loss({k: v[None] for k, v in batch.items() if k != "gap"})

    gaps = []
    original = policy.predict_action
    policy.predict_action = lambda *args, gap: gaps.append(gap) or original(*args, gap=gap)
    env = PointMassEnv(size=SIZE)
    cfg = ExecutorConfig(max_steps=20, steps_per_subgoal=5, replan_every=None, stall_window=None)
    PlanExecutor(policy, PointMassPlanner(env, k=8), cfg).run(env, "go", seed=0)
    assert gaps[:4] == [5, 2, 5, 2]  # a chunk of 3 at 5 steps a sub-goal: queried with 5 and 2 steps left


def test_the_checkpoint_format_does_not_import_the_models():
    """policies.checkpoint knows the file format; policies.modeling builds policies from it (no cycle)."""
    import subprocess
    import sys

    code = "import sys, policies.checkpoint; assert 'policies.modeling' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)
