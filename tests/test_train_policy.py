"""embodied-train-policy end to end on a tiny budget (IDM and goal policy), resume, spawn workers."""

import json

import numpy as np
import pytest
from hydra import compose, initialize_config_module
from omegaconf import OmegaConf

from embodied.store import EpisodeStore
from embodied.train_policy import TrainPolicyConfig, train_policy


def _cfg(store, *overrides) -> TrainPolicyConfig:
    with initialize_config_module(config_module="configs", version_base="1.3"):
        cfg = compose("train_policy", overrides=["task_set=debug_2", f"store={store}", "policy.image_size=32",
                                                 "policy.channels=[8,8]", "policy.hidden_dim=32", "train.steps=3",
                                                 "train.batch_size=4", "train.log_every=1", "train.num_workers=0",
                                                 "train.progress=false", *overrides])
    return OmegaConf.to_object(cfg)


@pytest.mark.parametrize("kind", ["idm", "goal"])
def test_train_policy_and_load(demo_store, tmp_path, kind):
    from policies import load_policy

    run = tmp_path / kind
    result = train_policy(_cfg(demo_store, f"policy={kind}"), run)
    assert result.steps == 3 and np.isfinite(result.last_loss)
    policy = load_policy(run / "policy")
    assert policy.config.type == kind and policy.config.action_dim == 4 and policy.config.state_dim == 39
    with EpisodeStore(demo_store) as store:
        frames, state = store.get(0, "rgb", [0, 10]), store.get(0, "state", 0)
    chunk = policy.predict_action(frames[0], frames[1], state)
    assert chunk.shape == (policy.config.chunk, 4) and np.all(np.abs(chunk) <= 1)
    again = train_policy(_cfg(demo_store, f"policy={kind}", "train.steps=5"), run)
    assert again.resumed_from == 3 and again.steps == 5
    steps = [json.loads(line)["step"] for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert steps == [1, 2, 3, 4, 5]


def test_spawn_dataloader_workers(demo_store, tmp_path):
    result = train_policy(_cfg(demo_store, "train.num_workers=2", "train.steps=2"), tmp_path / "w")
    assert result.steps == 2


def test_bad_inputs(demo_store, tmp_path):
    with pytest.raises(ValueError, match="no episodes to train on"):
        train_policy(_cfg(demo_store, "task_set.tasks=[drawer-open-v3]"), tmp_path / "a")
    with pytest.raises(ValueError, match="image_size"):
        train_policy(_cfg(demo_store, "policy.image_size=64"), tmp_path / "b")
