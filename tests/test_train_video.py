"""embodied-train-video end to end on a tiny budget: metrics, checkpoints, pictures, resume, fine-tune."""

import json

import numpy as np
import pytest
import torch
from hydra import compose, initialize_config_module
from omegaconf import OmegaConf

from embodied.clips import PlanClipDataset, clip_indices
from embodied.store import EpisodeStore
from embodied.train_video import TrainVideoConfig, train_video
from embodied.training import latest_checkpoint

TINY_MODEL = ["video_model.image_size=32", "video_model.base_channels=8", "video_model.channel_mult=[1,2]",
              "video_model.attention_resolutions=[8]", "video_model.norm_groups=4", "video_model.num_frames=3",
              "video_model.sample_steps=2"]


def _cfg(store, *overrides) -> TrainVideoConfig:
    with initialize_config_module(config_module="configs", version_base="1.3"):
        cfg = compose("train_video", overrides=["task_set=debug_2", f"store={store}", *TINY_MODEL, "train.steps=4",
                                                "train.batch_size=2", "train.checkpoint_every=2", "train.sample_every=4",
                                                "train.log_every=1", "train.progress=false", "num_sample_plans=2",
                                                *overrides])
    return OmegaConf.to_object(cfg)


def test_clip_indices_span_start_to_end():
    np.testing.assert_array_equal(clip_indices(0, 9, 4), [0, 2, 4, 6, 8])
    np.testing.assert_array_equal(clip_indices(4, 9, 2), [4, 6, 8])
    with pytest.raises(ValueError):
        clip_indices(9, 9, 2)


def test_clip_dataset_reads_the_right_frames(demo_store):
    with EpisodeStore(demo_store) as store:
        ds = PlanClipDataset(store, [0, 1], num_frames=3, instruction_from_catalog=False)
        length = store.episode_length(1)
        first_of_ep1 = length_0 = store.episode_length(0) - 3
        item = ds[first_of_ep1 + 2]  # episode 1, start 2
        np.testing.assert_array_equal(item["frames"].numpy(), store.get(1, "rgb", clip_indices(2, length, 3)))
        assert item["instruction"] == store.meta(1)["instruction"]
        assert len(ds) == length_0 + length - 3


def test_train_resume_and_finetune(demo_store, tmp_path):
    run = tmp_path / "run"
    result = train_video(_cfg(demo_store), run)
    assert result.steps == 4 and result.resumed_from == 0 and np.isfinite(result.last_loss)
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [1, 2, 3, 4] and all(r["samples_per_s"] > 0 for r in rows)
    assert latest_checkpoint(run).name == "step_0000004"
    assert sorted(p.name for p in (run / "checkpoints").glob("step_*")) == ["step_0000002", "step_0000004"]
    assert (run / "samples" / "step_0000004.png").stat().st_size > 500
    assert (run / "samples" / "step_0000004.mp4").stat().st_size > 500

    from video_models import load_planner

    planner = load_planner(run / "planner")
    with EpisodeStore(demo_store) as store:
        frame = store.get(0, "rgb", 0)
    plan = planner.plan("reach the goal", frame, seed=0)
    assert plan.shape == (3, 32, 32, 3) and plan.dtype == np.uint8

    # Same run dir, more steps: resumes at 4, does only the missing steps.
    again = train_video(_cfg(demo_store, "train.steps=6"), run)
    assert again.resumed_from == 4 and again.steps == 6
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [1, 2, 3, 4, 5, 6]
    # Nothing left to do: no step is repeated.
    done = train_video(_cfg(demo_store, "train.steps=6"), run)
    assert done.resumed_from == 6 and done.steps == 6

    # Fine-tune a new run from the planner: its weights are the starting point.
    tuned = tmp_path / "tuned"
    ft = train_video(_cfg(demo_store, f"train.init_from={run / 'planner'}", "train.steps=1", "train.lr=0"), tuned)
    assert ft.resumed_from == 0
    a, b = load_planner(run / "planner"), load_planner(tuned / "planner")
    for (name, x), (_, y) in zip(a.model.state_dict().items(), b.model.state_dict().items()):
        np.testing.assert_allclose(x.numpy(), y.numpy(), atol=1e-6, err_msg=name)  # lr=0: unchanged


def test_bad_inputs(demo_store, tmp_path):
    with pytest.raises(ValueError, match="no episodes to train on"):
        train_video(_cfg(demo_store, "sources=[robot]"), tmp_path / "a")
    with pytest.raises(ValueError, match="video_model.image_size"):
        train_video(_cfg(demo_store, "video_model.image_size=64"), tmp_path / "b")
    with pytest.raises(FileNotFoundError):
        train_video(_cfg(demo_store, f"store={tmp_path / 'nope.zarr'}"), tmp_path / "c")


def test_fresh_runs_of_the_same_command_are_identical(demo_store, tmp_path):
    """The model's initial weights are seeded too: two runs give the same planner, bit for bit."""
    from video_models import load_planner

    for name in ("a", "b"):
        train_video(_cfg(demo_store, "train.steps=2", "train.sample_every=0"), tmp_path / name)
    a, b = load_planner(tmp_path / "a" / "planner"), load_planner(tmp_path / "b" / "planner")
    for (name, x), (_, y) in zip(a.model.state_dict().items(), b.model.state_dict().items()):
        assert np.array_equal(x.numpy(), y.numpy()), name
    other = train_video(_cfg(demo_store, "train.steps=2", "train.sample_every=0", "train.seed=1"), tmp_path / "c")
    assert other.steps == 2
    c = load_planner(tmp_path / "c" / "planner")
    assert any(not np.array_equal(x.numpy(), y.numpy()) for x, y in zip(a.model.state_dict().values(),
                                                                         c.model.state_dict().values()))


def test_cosine_schedule_warms_up_then_decays_to_near_zero(demo_store, tmp_path):
    import math

    from embodied.training import TrainConfig, lr_schedule

    def factors(cfg, start=0):  # the lr of optimizer steps start .. steps - 1, over cfg.lr
        optimizer = torch.optim.AdamW([torch.nn.Parameter(torch.zeros(1))], lr=cfg.lr)
        scheduler, out = lr_schedule(optimizer, cfg, start), []
        for _ in range(start, cfg.steps):
            out.append(optimizer.param_groups[0]["lr"] / cfg.lr)
            optimizer.step()
            scheduler.step()
        return out

    def measured_recipe(cfg, s):  # the schedule every measured run trained with, as a formula
        w = max(1, cfg.warmup_steps)
        if s + 1 < w or cfg.lr_schedule == "constant":
            return min(1.0, (s + 1) / w)
        return 0.5 * (1.0 + math.cos(math.pi * min(1.0, (s + 1 - w) / max(1, cfg.steps - w + 1))))

    cfg = TrainConfig(steps=100, warmup_steps=10, lr_schedule="cosine", lr=3e-4)
    f = factors(cfg)
    assert f[0] == pytest.approx(0.1) and f[9] == pytest.approx(1.0)
    assert all(x >= y for x, y in zip(f[9:], f[10:])) and 0 < f[-1] < 1e-3
    for c in (cfg, TrainConfig(steps=100, warmup_steps=10), TrainConfig(steps=7, warmup_steps=0, lr_schedule="cosine")):
        assert factors(c) == pytest.approx([measured_recipe(c, s) for s in range(c.steps)], rel=1e-12)
        assert factors(c, start=5) == pytest.approx(factors(c)[5:], rel=1e-12)  # resuming mid-run
    run = tmp_path / "cos"
    train_video(_cfg(demo_store, "train.steps=4", "train.warmup_steps=1", "train.lr_schedule=cosine",
                     "train.sample_every=0"), run)
    lrs = [json.loads(line)["lr"] for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert lrs == sorted(lrs, reverse=True) and lrs[-1] < lrs[0]
    with pytest.raises(ValueError, match="lr_schedule"):
        train_video(_cfg(demo_store, "train.lr_schedule=linear"), tmp_path / "bad")
    assert not (tmp_path / "bad").exists()
