"""The prior of the plans (video_models/prior.py, configs/prior/): a second project planner composed
with the in-domain one in pixel space, the one loader, the up-front check and the Hydra group.

Tiny random planners built from configs and saved to tmp dirs; nothing is downloaded.
"""

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from video_models import ComposeConfig, ComposedPlanner, Planner, VideoModelConfig, check_prior, load_plan_model
from video_models import load_planner
from video_models.compose import PlannerPrior

ROOT = Path(__file__).resolve().parents[1]
INSTRUCTIONS = ["open the drawer", "push the red button"]


@pytest.fixture(autouse=True)
def one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def tiny_config(**overrides) -> VideoModelConfig:
    fields = dict(image_size=16, num_frames=2, patch_size=1, base_channels=8, channel_mult=(1, 2),
                  attention_resolutions=(8,), attention_head_dim=8, norm_groups=4, text_encoder="learned",
                  instructions=INSTRUCTIONS, text_dim=16, sample_steps=2)
    return VideoModelConfig(**{**fields, **overrides})


def tiny_planner(seed: int, **overrides) -> Planner:
    torch.manual_seed(seed)
    return Planner(tiny_config(**overrides))


def frame(seed=0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (16, 16, 3), dtype=np.uint8)


@pytest.fixture
def dirs(tmp_path):
    """An in-domain planner (x0 + first-frame residual, like cpu_tiny) and a wider v-prediction prior."""
    small = tiny_planner(1, prediction_type="sample", first_frame_residual=True).save(tmp_path / "in_domain")
    prior = tiny_planner(2, base_channels=12, num_res_blocks=2, temporal_attention=True).save(tmp_path / "prior")
    return small, prior


def planner_prior(path, **cfg) -> ComposeConfig:
    return ComposeConfig(kind="planner", path=str(path), **cfg)


@pytest.mark.parametrize("mode, w, g", [("ipa", 2.5, 0.5), ("ipa_centered", 2.0, 0.7), ("sum", 1.0, 0.3)])
def test_each_step_samples_the_expected_epsilon_combination(dirs, mode, w, g):
    """What DDIM steps on is the rule applied to the two planners' own epsilons at that step."""
    small_dir, prior_dir = dirs
    composed = load_plan_model(small_dir, planner_prior(prior_dir, mode=mode, w=w, g=g, sample_steps=3))
    steps, original = [], composed.scheduler.step

    def record(eps, t, x, **kw):
        steps.append((eps.clone(), int(t), x.clone()))
        return original(eps, t, x, **kw)

    composed.scheduler.step = record
    composed.plan(INSTRUCTIONS[0], frame(), seed=0)
    assert len(steps) == 3

    small, prior = load_planner(small_dir).model.eval(), load_planner(prior_dir).model.eval()
    first, img = small.encode_frames(frame()[None]), frame()[None]
    with torch.no_grad():
        for eps, t, x in steps:
            text_p = prior.text_encoder([INSTRUCTIONS[0]])
            u = prior.predict_epsilon(x, t, prior.encode_frames(img), torch.zeros_like(text_p), 1.0)
            c = prior.predict_epsilon(x, t, prior.encode_frames(img), text_p, 1.0)
            s = small.predict_epsilon(x, int(composed._small_t[t]), first, small.text_encoder([INSTRUCTIONS[0]]), 1.0)
            expected = {"ipa": u + w * (c + g * s - u), "ipa_centered": u + w * (c - u + g * (s - u)),
                        "sum": c + g * s}[mode]
            assert torch.allclose(eps, expected, atol=1e-4)
    assert torch.equal(composed._small_t, torch.arange(1000))  # same cosine schedule: same timesteps


@pytest.mark.parametrize("prediction_type", ["sample", "v_prediction"])
def test_sum_with_g_zero_samples_the_prior_alone(tmp_path, prediction_type):
    """Composition is a different sampler of the same DDIM path: with g = 0 it is the prior's own plan."""
    tiny_planner(3).save(tmp_path / "small")
    tiny_planner(4, prediction_type=prediction_type).save(tmp_path / "prior")
    composed = load_plan_model(tmp_path / "small", planner_prior(tmp_path / "prior", mode="sum", g=0.0))
    alone = load_planner(tmp_path / "prior")
    for seed in (0, 1):
        a = composed.plan(INSTRUCTIONS[1], frame(seed), num_steps=4, seed=seed).astype(int)
        b = alone.plan(INSTRUCTIONS[1], frame(seed), num_steps=4, seed=seed).astype(int)
        assert np.abs(a - b).max() <= 2  # float noise of epsilon <-> x0 conversions only


@pytest.mark.parametrize("prior", [None, {"kind": "none"}, ComposeConfig()])
def test_prior_none_is_the_plain_planner(dirs, prior):
    small_dir, _ = dirs
    planner = load_plan_model(small_dir, prior)
    assert type(planner) is Planner
    assert np.array_equal(planner.plan(INSTRUCTIONS[0], frame(), seed=5), load_planner(small_dir).plan(INSTRUCTIONS[0], frame(), seed=5))


def test_loader_round_trip_is_a_drop_in_planner(dirs):
    from embodied.rollouts import VideoPlanFn

    small_dir, prior_dir = dirs
    cfg = planner_prior(prior_dir, sample_steps=3)
    composed = load_plan_model(small_dir, {"kind": "planner", "path": str(prior_dir), "sample_steps": 3})
    assert isinstance(composed, ComposedPlanner) and composed.config.num_frames == 2
    plan = composed.plan(INSTRUCTIONS[0], frame(), num_steps=None, seed=7)
    assert plan.shape == (2, 16, 16, 3) and plan.dtype == np.uint8
    assert np.array_equal(plan, composed.plan(INSTRUCTIONS[0], frame(), seed=7))  # a seed per plan
    assert not np.array_equal(plan, composed.plan(INSTRUCTIONS[0], frame(), seed=8))
    by_hand = ComposedPlanner(PlannerPrior(load_planner(prior_dir)), load_planner(small_dir), cfg)
    assert np.array_equal(plan, by_hand.plan(INSTRUCTIONS[0], frame(), seed=7))
    batch = composed.plan_batch(INSTRUCTIONS, np.stack([frame(0), frame(1)]), 3, 7)
    assert batch.shape == (2, 2, 16, 16, 3)
    assert VideoPlanFn(composed, seed=10_000)(INSTRUCTIONS[0], frame()).shape == (3, 16, 16, 3)  # the rollouts' call


def test_bad_priors_fail_up_front_with_one_clear_error(dirs, tmp_path):
    small_dir, prior_dir = dirs
    small_cfg = tiny_config()
    with pytest.raises(FileNotFoundError, match="not a directory.*prior_broad.*prior=none"):
        check_prior(planner_prior(tmp_path / "absent"), small_cfg)
    with pytest.raises(ValueError, match="needs prior.path"):
        check_prior({"kind": "planner"}, small_dir)
    with pytest.raises(ValueError, match="kind must be one of"):
        check_prior({"kind": "animatediff"}, small_dir)
    with pytest.raises(ValueError, match="unknown prior config keys \\['weight'\\]"):
        check_prior({"kind": "none", "weight": 2}, small_dir)
    with pytest.raises(ValueError, match="is the in-domain planner itself"):
        check_prior(planner_prior(small_dir), small_dir)

    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="not a video_models planner checkpoint: missing"):
        check_prior(planner_prior(tmp_path / "empty"), small_cfg)
    policy = tmp_path / "policy"
    policy.mkdir()
    for f in ("model.safetensors", "ema.safetensors"):
        (policy / f).write_bytes(b"")
    (policy / "config.json").write_text(json.dumps({"format": "policies.checkpoint", "config": {}}))
    with pytest.raises(ValueError, match="'policies.checkpoint' checkpoint, not 'video_models.planner'"):
        check_prior(planner_prior(policy), small_cfg)
    (policy / "config.json").write_text("{not json")
    with pytest.raises(ValueError, match="cannot read"):
        check_prior(planner_prior(policy), small_cfg)
    (tmp_path / "pipe" / "unet").mkdir(parents=True)
    with pytest.raises(ValueError, match="use prior=diffusers"):
        check_prior(planner_prior(tmp_path / "pipe"), small_cfg)

    big = tiny_planner(5, image_size=32).save(tmp_path / "prior32")
    with pytest.raises(ValueError, match="image_size=32 but the in-domain planner 16"):
        check_prior(planner_prior(big), small_dir)
    with pytest.raises(ValueError, match="image_size=32"):
        load_plan_model(small_dir, planner_prior(big))  # the loader checks before it loads
    longer = tiny_planner(5, num_frames=3).save(tmp_path / "prior3")
    with pytest.raises(ValueError, match="num_frames=3"):
        check_prior(planner_prior(longer), small_cfg)
    with pytest.raises(ValueError, match="env renders 64 px"):
        check_prior(planner_prior(prior_dir), small_cfg, image_size=64)
    with pytest.raises(ValueError, match="space='latent'"):
        check_prior_diffusers_on_pixels(tmp_path, small_cfg)
    assert check_prior(planner_prior(prior_dir), small_cfg.to_dict(), image_size=16).kind == "planner"


def check_prior_diffusers_on_pixels(tmp_path, small_cfg):
    """A diffusers directory (config files only) checked against a pixel-space in-domain model."""
    pipe = tmp_path / "pipe_full"
    for sub in ("unet", "vae", "text_encoder", "tokenizer", "scheduler"):
        (pipe / sub).mkdir(parents=True)
    (pipe / "unet" / "config.json").write_text(json.dumps({"_class_name": "UNetMotionModel", "block_out_channels": [8, 16]}))
    (pipe / "vae" / "config.json").write_text(json.dumps({"latent_channels": 4, "block_out_channels": [8, 16]}))
    check_prior({"kind": "diffusers", "path": str(pipe)}, small_cfg)


# --- configs --------------------------------------------------------------------------------------
def compose_prior(tmp_path, *overrides):
    """configs/prior/ through Hydra, from a primary config that names the group (as the loop's will)."""
    from hydra import compose, initialize_config_dir

    (tmp_path / "app.yaml").write_text("defaults:\n  - prior: none\n  - _self_\nhydra:\n  searchpath: [pkg://configs]\n")
    with initialize_config_dir(config_dir=str(tmp_path), version_base="1.3"):
        return compose(config_name="app", overrides=list(overrides))


def test_prior_config_group_composes(tmp_path, dirs):
    from hydra.errors import ConfigCompositionException
    from omegaconf import OmegaConf

    import video_models.prior  # noqa: F401  (registers prior/schema)

    assert check_prior(compose_prior(tmp_path).prior, dirs[0]).kind == "none"
    cfg = compose_prior(tmp_path, "prior=planner", f"prior.path={dirs[1]}", "prior.w=3.0")
    prior = check_prior(cfg.prior, dirs[0])
    assert (prior.kind, prior.mode, prior.w, prior.g, prior.sample_steps) == ("planner", "ipa_centered", 3.0, 0.5, 10)
    assert isinstance(load_plan_model(dirs[0], cfg.prior), ComposedPlanner)
    diffusers = compose_prior(tmp_path, "prior=diffusers", "prior.path=/models/animatediff").prior
    assert (diffusers.kind, diffusers.w, diffusers.g, diffusers.sample_steps) == ("diffusers", 2.5, 0.5, 25)
    with pytest.raises(ConfigCompositionException):
        compose_prior(tmp_path, "prior=planner", "prior.wq=1")  # typed keys
    with pytest.raises(ValueError, match="mode must be one of"):
        OmegaConf.to_object(compose_prior(tmp_path, "prior=planner", "prior.path=x", "prior.mode=product").prior)
    with pytest.raises(ValueError, match="needs prior.path"):
        check_prior(compose_prior(tmp_path, "prior=planner").prior, dirs[0])  # path: ??? must be given


def test_prior_broad_is_mt50_without_the_targets_and_prior_cpu_fits_cpu_tiny():
    def tasks(name):
        return yaml.safe_load((ROOT / "configs" / "task_set" / f"{name}.yaml").read_text())["tasks"]

    assert tasks("prior_broad") == [t for t in tasks("mt50") if t not in set(tasks("target_12"))]
    assert set(tasks("train_8")) <= set(tasks("prior_broad"))
    load = lambda name: VideoModelConfig(**yaml.safe_load((ROOT / "configs" / "video_model" / f"{name}.yaml").read_text()))  # noqa: E731
    prior, tiny = load("prior_cpu"), load("cpu_tiny")
    assert (prior.space, prior.image_size, prior.num_frames) == (tiny.space, tiny.image_size, tiny.num_frames)
    assert prior.base_channels > tiny.base_channels and prior.num_res_blocks > tiny.num_res_blocks
