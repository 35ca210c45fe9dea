"""video_models.compose: IPA / score composition with a large diffusers text-to-video model.

The "large" model is a tiny random diffusers pipeline directory (UNet3DConditionModel or
UNetMotionModel, AutoencoderKL, CLIP text encoder, a CLIP tokenizer written offline), saved with
save_pretrained and reloaded through the same loader a real checkpoint goes through.
"""

import json

import numpy as np
import pytest
import torch

from video_models import Planner, VideoModelConfig, load_planner
from video_models.compose import BigVideoModel, ComposeConfig, ComposedPlanner, combine_epsilon

INSTRUCTIONS = ["open the drawer", "push the red button"]


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny models: one thread (OpenMP threads spin against each other on a loaded 2-core box)."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def write_clip_tokenizer(path) -> "CLIPTokenizer":  # noqa: F821
    """A byte-level CLIP tokenizer with no merges (every character a token): built without a download."""
    from transformers import CLIPTokenizer
    from transformers.models.clip.tokenization_clip import bytes_to_unicode

    chars = list(bytes_to_unicode().values())
    vocab = {t: i for i, t in enumerate(chars + [c + "</w>" for c in chars] + ["<|startoftext|>", "<|endoftext|>"])}
    path.mkdir(parents=True)
    (path / "vocab.json").write_text(json.dumps(vocab))
    (path / "merges.txt").write_text("#version: 0.2\n")
    tok = CLIPTokenizer(str(path / "vocab.json"), str(path / "merges.txt"), model_max_length=16)
    tok.save_pretrained(path)
    return tok


@pytest.fixture(scope="module", params=["UNet3DConditionModel", "UNetMotionModel"])
def big_dir(request, tmp_path_factory):
    from diffusers import AutoencoderKL, DDPMScheduler, UNet3DConditionModel, UNetMotionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    torch.manual_seed(0)
    d = tmp_path_factory.mktemp("big")
    tok = write_clip_tokenizer(d / "tokenizer")
    CLIPTextModel(CLIPTextConfig(
        vocab_size=len(tok), hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2,
        max_position_embeddings=16, bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id,
        pad_token_id=tok.pad_token_id,
    )).save_pretrained(d / "text_encoder")
    AutoencoderKL(
        block_out_channels=(8, 16), norm_num_groups=4, latent_channels=4, layers_per_block=1, sample_size=16,
        down_block_types=("DownEncoderBlock2D",) * 2, up_block_types=("UpDecoderBlock2D",) * 2,
    ).save_pretrained(d / "vae")
    common = dict(sample_size=8, in_channels=4, out_channels=4, block_out_channels=(8, 16), layers_per_block=1,
                  norm_num_groups=4, cross_attention_dim=16)
    if request.param == "UNet3DConditionModel":
        unet = UNet3DConditionModel(**common, attention_head_dim=4,
                                    down_block_types=("CrossAttnDownBlock3D", "DownBlock3D"),
                                    up_block_types=("UpBlock3D", "CrossAttnUpBlock3D"))
    else:
        unet = UNetMotionModel(**common, num_attention_heads=2, motion_num_attention_heads=2, motion_max_seq_length=8,
                               down_block_types=("CrossAttnDownBlockMotion", "DownBlockMotion"),
                               up_block_types=("UpBlockMotion", "CrossAttnUpBlockMotion"))
    unet.save_pretrained(d / "unet")
    DDPMScheduler(beta_schedule="scaled_linear", beta_start=0.00085, beta_end=0.012,
                  prediction_type="epsilon").save_pretrained(d / "scheduler")
    return d


def latent_planner(vae_path, **overrides) -> Planner:
    cfg = VideoModelConfig(
        image_size=16, num_frames=2, space="latent", vae_path=str(vae_path), patch_size=1, base_channels=8,
        channel_mult=(1, 2), attention_resolutions=(4,), attention_head_dim=8, norm_groups=4,
        text_encoder="learned", instructions=INSTRUCTIONS, text_dim=16, sample_steps=2, **overrides,
    )
    torch.manual_seed(1)
    return Planner(cfg)


def first_frame(seed=0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (16, 16, 3), dtype=np.uint8)


def test_latent_space_planner_trains_plans_and_round_trips(big_dir, tmp_path):
    planner = latent_planner(big_dir / "vae")
    assert planner.model.channels == 4 and planner.model.size == 8  # diffuses the big model's latents
    video = torch.randint(0, 256, (2, 3, 16, 16, 3), dtype=torch.uint8)
    loss, _ = planner.compute_loss({"frames": video, "instruction": INSTRUCTIONS})
    loss.backward()
    assert all(p.grad is None for p in planner.model.vae.parameters())  # the VAE stays frozen
    assert not any(k.startswith("_vae") for k in planner.model.state_dict())  # and out of checkpoints
    plan = planner.plan(INSTRUCTIONS[0], first_frame(), seed=0)
    assert plan.shape == (2, 16, 16, 3) and plan.dtype == np.uint8
    planner.save(tmp_path / "ckpt")
    assert np.array_equal(load_planner(tmp_path / "ckpt").plan(INSTRUCTIONS[0], first_frame(), seed=0), plan)


def test_composed_plan_end_to_end(big_dir):
    small = latent_planner(big_dir / "vae")
    big = BigVideoModel(big_dir)

    def plan(seed=0, **cfg):
        composed = ComposedPlanner(big, small, ComposeConfig(path=str(big_dir), sample_steps=3, **cfg))
        return composed.plan(INSTRUCTIONS[0], first_frame(), seed=seed)

    out = plan()
    assert out.shape == (2, 16, 16, 3) and out.dtype == np.uint8
    assert np.array_equal(out, plan())  # deterministic for a seed
    assert not np.array_equal(out, plan(seed=1))
    assert not np.array_equal(out, plan(w=6.0))  # guidance strength matters
    assert not np.array_equal(out, plan(g=2.0))  # prior strength matters
    assert not np.array_equal(out, plan(mode="sum"))

    composed = ComposedPlanner.from_config(ComposeConfig(path=str(big_dir), sample_steps=2), small)
    batch = composed.plan_batch(INSTRUCTIONS, np.stack([first_frame(0), first_frame(1)]), seed=0)
    assert batch.shape == (2, 2, 16, 16, 3)
    # Cosine (small) vs scaled-linear (big) schedules: the small model is queried at the same noise level.
    a_small = small.model.noise_scheduler.alphas_cumprod[composed._small_t]
    assert (a_small - big.alphas_cumprod).abs().max() < 5e-3


def test_combine_epsilon_rules():
    u, t, s = torch.tensor(1.0), torch.tensor(2.0), torch.tensor(4.0)
    assert combine_epsilon(u, t, s, "ipa", w=2.5, g=0.5) == 1 + 2.5 * (2 + 2 - 1)
    assert combine_epsilon(u, t, s, "sum", g=0.5) == 4.0
    assert combine_epsilon(u, t, s, "ipa", w=1.0, g=0.5) == combine_epsilon(u, t, s, "sum", g=0.5)
    assert combine_epsilon(u, t, s, "ipa_centered", w=2.5, g=0.5) == 1 + 2.5 * (2 - 1 + 0.5 * (4 - 1))
    x = torch.tensor(3.0)  # near pure noise every epsilon is ~x_t: the centered weights sum to 1, ipa's do not
    assert combine_epsilon(x, x, x, "ipa_centered", w=2.5, g=0.5) == x != combine_epsilon(x, x, x, "ipa", w=2.5, g=0.5)
    with pytest.raises(ValueError, match="mode"):
        ComposeConfig(mode="product")


@pytest.mark.parametrize("prediction_type", ["epsilon", "v_prediction", "sample"])
def test_outputs_convert_to_the_same_epsilon(prediction_type):
    """Models that predict v or x0 are put in epsilon space before their scores are combined."""
    from diffusers import DDPMScheduler

    from video_models.diffusion import to_epsilon

    sched = DDPMScheduler(beta_schedule="squaredcos_cap_v2")
    x0, eps, t = torch.randn(3, 2, 4, 5, 5), torch.randn(3, 2, 4, 5, 5), torch.tensor([10, 400, 990])
    x_t = sched.add_noise(x0, eps, t)
    output = {"epsilon": eps, "v_prediction": sched.get_velocity(x0, eps, t), "sample": x0}[prediction_type]
    a = sched.alphas_cumprod[t].view(3, 1, 1, 1, 1)
    assert torch.allclose(to_epsilon(output, x_t, a, prediction_type), eps, atol=1e-3)


def test_missing_dir_or_hub_id_says_to_use_a_local_directory(tmp_path):
    with pytest.raises(FileNotFoundError, match="Hugging Face Hub id.*local directory"):
        BigVideoModel("ali-vilab/text-to-video-ms-1.7b")
    with pytest.raises(FileNotFoundError, match="not a local directory.*prior.path"):
        BigVideoModel(tmp_path / "absent")
    (tmp_path / "partial" / "unet").mkdir(parents=True)
    with pytest.raises(FileNotFoundError, match="missing .*'vae'"):
        BigVideoModel(tmp_path / "partial")


def test_pixel_space_small_model_is_rejected(big_dir):
    pixel = Planner(VideoModelConfig(image_size=16, num_frames=2, patch_size=1, base_channels=8, channel_mult=(1, 2),
                                     norm_groups=4, text_encoder="learned", instructions=INSTRUCTIONS, text_dim=16))
    with pytest.raises(ValueError, match="space='latent' and vae_path='<big model dir>/vae'"):
        ComposedPlanner(BigVideoModel(big_dir), pixel, ComposeConfig(path=str(big_dir)))


def test_diffusers_prior_checks_and_loads_through_the_one_loader(big_dir, tmp_path):
    from video_models import ComposedPlanner as Composed, check_prior, load_plan_model

    small = latent_planner(big_dir / "vae").save(tmp_path / "small")
    prior = {"kind": "diffusers", "path": str(big_dir), "sample_steps": 2}
    assert check_prior(prior, small).kind == "diffusers"
    composed = load_plan_model(small, prior)
    assert isinstance(composed, Composed) and composed.small.model.vae is composed.big.vae  # one VAE
    assert composed.plan(INSTRUCTIONS[0], first_frame(), seed=0).shape == (2, 16, 16, 3)
    pixel = VideoModelConfig(image_size=16, num_frames=2, patch_size=1, base_channels=8, channel_mult=(1, 2), norm_groups=4)
    with pytest.raises(ValueError, match="space='latent' and vae_path="):
        check_prior(prior, pixel)
    with pytest.raises(FileNotFoundError, match="Hugging Face Hub id"):
        check_prior({"kind": "diffusers", "path": "guoyww/animatediff"}, small)
