"""Plans on one device for every rollout worker (embodied.plan_server), and the device option."""

import logging

import numpy as np
import pytest
import torch

from embodied import device as devices
from embodied.rollouts import PlanJob, RolloutSettings, rollout_plan_many
from policies import ExecutorConfig
from test_batched_rollouts import SIZE, TASK, random_planner, tiny_policy  # noqa: F401  (a fixture)

pytestmark = pytest.mark.filterwarnings("ignore:Constant\\(s\\) may be too high")  # MetaWorld's experts


# --- device=auto|cpu|cuda[:N] -------------------------------------------------------------------------
def test_devices_resolve_to_what_the_machine_has(monkeypatch):
    monkeypatch.setattr(devices, "cuda_count", lambda: 0)
    assert devices.resolve_device("cpu") == "cpu"
    assert devices.resolve_device("auto") == "cpu"
    assert devices.plan_device("auto") is None  # on the CPU each worker plans alone
    with pytest.raises(ValueError, match="device=cuda needs a CUDA GPU"):
        devices.resolve_device("cuda")
    with pytest.raises(ValueError, match="device must be one of auto | cpu | cuda | cuda:N, got 'gpu'"):
        devices.resolve_device("gpu")
    monkeypatch.setattr(devices, "cuda_count", lambda: 2)
    assert devices.resolve_device("auto") == "cuda" and devices.plan_device("cuda:1") == "cuda:1"
    with pytest.raises(ValueError, match="has 2 GPU"):
        devices.resolve_device("cuda:2")


def test_presets_choose_the_device():
    from hydra import compose, initialize_config_module

    import embodied.sail  # noqa: F401  (registers the schema)

    with initialize_config_module(config_module="configs", version_base=None):
        cpu = compose("sail", overrides=["preset=cpu_tiny"])
        gpu = compose("sail", overrides=["preset=gpu"])
        moved = compose("sail", overrides=["preset=cpu_tiny", "device=cuda:1"])
    assert cpu.device == "cpu" and cpu.pretrain_video.device == "cpu" and cpu.finetune_policy.device == "cpu"
    assert gpu.device == "auto" and gpu.pretrain_video.device == "auto" and gpu.preset.plan_compile == "cuda_graphs"
    assert {moved.pretrain_video.device, moved.pretrain_policy.device, moved.grader_training.train.device} == {"cuda:1"}


# --- one planner serving every worker -------------------------------------------------------------------
def _plan_seed(episode_seed: int, i: int) -> int:  # VideoPlanFn's seed of an episode's i-th plan
    return int(np.random.SeedSequence([episode_seed, i]).generate_state(1)[0])


def test_served_plans_are_the_planners_plans_in_merged_batches(tmp_path, tiny_policy, caplog):  # noqa: F811
    """Two workers, two episodes each side by side, every plan sampled by one planner in this
    process: results in job order, each plan the one the planner gives for its seed, and plan
    requests answered in calls of several plans."""
    from video_models import load_planner

    planner_dir = random_planner().save(tmp_path / "planner")
    policy_dir = tiny_policy.save(tmp_path / "policy")
    jobs = [PlanJob(task, seed, text, str(planner_dir), str(policy_dir), method=f"{task}:{seed}")
            for task, text in ((TASK, "reach the goal"), ("push-v3", "push it")) for seed in (10_000, 10_001, 10_002)]
    jobs.append(PlanJob(TASK, 10_003, method="expert"))
    settings = RolloutSettings(image_size=SIZE, executor=ExecutorConfig(max_steps=8, replan_every=3), plan_batch=2,
                               plan_device="cpu")
    with caplog.at_level(logging.INFO, logger="embodied.rollouts"):
        results = list(rollout_plan_many(jobs, settings, workers=2, progress=False))
    assert [r.job for r in results] == jobs

    planner = load_planner(planner_dir)
    n_plans = 0
    for r in results[:-1]:
        assert len(r.plans) >= 3
        for i, record in enumerate(r.plans):
            want = planner.plan(r.job.instruction, r.episode.rgb[record.step], seed=_plan_seed(r.job.seed, i))
            diff = np.abs(record.frames[1:].astype(int) - want.astype(int))
            assert diff.max() <= 2, (r.job, i, diff.max())  # the same plan, up to batched float rounding
            n_plans += 1
    served = [rec for rec in caplog.records if rec.getMessage().startswith("plan server on cpu")]
    assert len(served) == 1
    calls = int(served[0].getMessage().split(": ")[1].split(" calls")[0])
    assert 0 < calls < n_plans  # requests were answered together


def test_a_planner_the_server_cannot_load_fails_the_job_that_asked(tmp_path, tiny_policy):  # noqa: F811
    planner_dir = random_planner().save(tmp_path / "planner")
    (planner_dir / "ema.safetensors").write_bytes(b"not weights")
    policy_dir = tiny_policy.save(tmp_path / "policy")
    jobs = [PlanJob(TASK, 10_000 + i, "reach the goal", str(planner_dir), str(policy_dir)) for i in range(2)]
    settings = RolloutSettings(image_size=SIZE, executor=ExecutorConfig(max_steps=4), plan_device="cpu")
    with pytest.raises(RuntimeError, match=r"task='reach-v3' seed=1000[01] failed: PlanServerError: the plan server "
                                           r"failed on planner .*corrupt or mismatched planner weights"):
        list(rollout_plan_many(jobs, settings, workers=2, progress=False))


# --- a planner prepared for serving ------------------------------------------------------------------------
def test_an_inference_planner_plans_as_before_and_refuses_training():
    planner = random_planner()
    frames = np.random.default_rng(0).integers(0, 255, (3, SIZE, SIZE, 3), dtype=np.uint8)
    texts = ["reach the goal", "push it", "push it"]
    before = planner.plan_batch(texts, frames, seed=[1, 2, 3])
    planner.for_inference()
    np.testing.assert_array_equal(planner.plan_batch(texts, frames, seed=[1, 2, 3]), before)  # EMA weights kept loaded
    planner.for_inference(precision="bfloat16")
    bf16 = planner.plan_batch(texts, frames, seed=[1, 2, 3])
    assert np.abs(bf16.astype(int) - before.astype(int)).mean() < 4  # bf16 autocast: close, not equal
    with pytest.raises(RuntimeError, match="plans only"):
        planner.compute_loss({"frames": torch.zeros(1, 4, SIZE, SIZE, 3, dtype=torch.uint8), "instruction": ["push it"]})
    with pytest.raises(ValueError, match="float32, bfloat16"):
        planner.for_inference(precision="fp8")


def test_cuda_graphs_are_refused_on_the_cpu():
    with pytest.raises(ValueError, match="CUDA graphs need the planner on a CUDA device"):
        random_planner().for_inference(compile="cuda_graphs")
    with pytest.raises(ValueError, match="plan_compile must be one of none, cuda_graphs, inductor"):
        random_planner().for_inference(compile="fast")


def test_embodied_eval_on_a_plan_device_serves_its_plans(tmp_path, tiny_policy, monkeypatch, caplog):  # noqa: F811
    """The evaluation passes its device to the rollouts: on a plan device (the CPU standing in for
    a GPU here) its video plans come from the server."""
    from hydra import compose, initialize_config_module
    from omegaconf import OmegaConf

    from embodied.evaluate import evaluate
    from sim.catalog import instructions

    monkeypatch.setattr(devices, "plan_device", lambda spec: "cpu")
    planner_dir = random_planner(instructions=instructions(TASK)).save(tmp_path / "planner")
    policy_dir = tiny_policy.save(tmp_path / "policy")
    with initialize_config_module(config_module="configs", version_base="1.3"):
        cfg = compose(config_name="eval", overrides=[
            f"task_set.tasks=[{TASK}]", "task_set.name=one", "workers=2", f"image_size={SIZE}", "progress=false",
            f"planner={planner_dir}", f"policy_ckpt={policy_dir}", "episodes_per_task=2", "executor.max_steps=6",
            "videos=0", "upper_bounds=false"])
    with caplog.at_level(logging.INFO, logger="embodied.rollouts"):
        result = evaluate(OmegaConf.to_object(cfg), tmp_path / "eval")
    assert len(result.episodes) == 2
    assert any(rec.getMessage().startswith("plan server on cpu") for rec in caplog.records)
