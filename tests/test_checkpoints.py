"""One checkpoint format for planner, policy and grader (embodied.checkpoints): written as a whole,
read back by one loader that names the kind it found; checkpoints of format version 1 still load."""

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from embodied import checkpoints as ck

FIXTURES = Path(__file__).parent / "fixtures" / "checkpoints_v1"  # written by the code of format version 1


def tiny_planner(seed=0):
    from video_models import Planner, VideoModelConfig

    torch.manual_seed(seed)
    cfg = VideoModelConfig(image_size=8, num_frames=2, base_channels=4, channel_mult=(1,), attention_resolutions=(),
                           norm_groups=2, text_encoder="learned", instructions=["reach the goal"], text_dim=4,
                           sample_steps=2)
    planner = Planner(cfg)
    with torch.no_grad():
        for p in planner.parameters():
            p.add_(torch.randn(p.shape))
    return planner


def tiny_policy(seed=0):
    from policies import FrameGoalPolicy, IDMConfig
    from policies.testing import InMemoryEpisodeSource

    rng = np.random.default_rng(seed)
    n = 4
    action = np.clip(rng.normal(0, 1, (n, 4)), -1, 1).astype(np.float32)
    action[0], action[1] = -1, 1
    episode = dict(rgb=rng.integers(0, 255, (n, 16, 16, 3), dtype=np.uint8), action=action,
                   state=rng.normal(0, 1, (n, 39)).astype(np.float32), success=np.zeros(n, bool), meta={})
    torch.manual_seed(seed)
    return FrameGoalPolicy.from_source(IDMConfig(image_size=16, channels=[4], hidden_dim=8, chunk=2),
                                       InMemoryEpisodeSource([episode]), [0])


def weights(path):
    return load_file(str(Path(path) / "model.safetensors"))


def same(a, b):
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.parametrize("kind", ["planner", "policy", "grader"])
def test_format_version_1_checkpoints_load_and_name_their_kind(kind):
    path = FIXTURES / kind
    assert ck.checkpoint_kind(path) == kind
    model = ck.load_checkpoint(path, kind)
    state = {k: v for k, v in model.model.state_dict().items()} if kind == "planner" else model.state_dict()
    on_disk = weights(path)
    assert same({k: state[k] for k in on_disk}, on_disk)  # the online weights, as written


def test_round_trip_and_replacing_a_checkpoint_as_a_whole(tmp_path):
    path = tmp_path / "planner"
    first, second = tiny_planner(0), tiny_planner(1)
    ck.write_checkpoint(path, first.save)
    ck.write_checkpoint(path, second.save)
    loaded = ck.load_checkpoint(path, "planner")
    frame = np.random.default_rng(0).integers(0, 255, (8, 8, 3), dtype=np.uint8)
    np.testing.assert_array_equal(loaded.plan("reach the goal", frame, seed=3), second.plan("reach the goal", frame, seed=3))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["planner"]  # no side directories left


def test_a_mismatched_kind_is_refused_with_what_was_found(tmp_path):
    ck.write_checkpoint(tmp_path / "policy", tiny_policy().save)
    with pytest.raises(ValueError, match=r"is a policy checkpoint \(policies.checkpoint\), not a planner"):
        ck.load_checkpoint(tmp_path / "policy", "planner")
    with pytest.raises(ValueError, match="holds a policy checkpoint; refusing to replace it with a planner"):
        ck.write_checkpoint(tmp_path / "policy", tiny_planner().save)
    assert ck.checkpoint_kind(tmp_path / "policy") == "policy"
    with pytest.raises(FileNotFoundError, match="no checkpoint at"):
        ck.load_checkpoint(tmp_path / "nothing", "policy")
    (tmp_path / "foreign").mkdir()
    (tmp_path / "foreign" / "config.json").write_text(json.dumps({"format": "someone.else"}))
    with pytest.raises(ValueError, match="not a checkpoint of this project: format 'someone.else'"):
        ck.checkpoint_kind(tmp_path / "foreign")


def test_a_crash_between_weights_and_config_keeps_the_old_checkpoint_whole(tmp_path):
    path = tmp_path / "policy"
    old, new = tiny_policy(0), tiny_policy(1)
    ck.write_checkpoint(path, old.save)
    before = weights(path)
    config_before = (path / "config.json").read_text()

    def crash_after_the_weights(directory):
        new.save(directory)
        (directory / "config.json").unlink()  # as if killed after the weights, before the config
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        ck.write_checkpoint(path, crash_after_the_weights)
    assert same(weights(path), before) and (path / "config.json").read_text() == config_before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["policy"]
    assert same(ck.load_checkpoint(path, "policy").state_dict(), old.state_dict())


def test_a_kill_between_the_two_renames_is_undone_on_the_next_read(tmp_path):
    """Killed after the old checkpoint moved aside and before the new one moved in: the path is
    empty, the old one is under its side name, a half-written one beside it."""
    path = tmp_path / "policy"
    ck.write_checkpoint(path, tiny_policy(0).save)
    before = weights(path)
    shutil.move(path, tmp_path / ".policy.old-123")
    tiny_policy(1).save(tmp_path / ".policy.tmp-123")
    assert ck.checkpoint_kind(path) == "policy" and same(weights(path), before)  # reading puts it back
    ck.write_checkpoint(path, tiny_policy(2).save)  # the next write drops the half-written one
    assert sorted(p.name for p in tmp_path.iterdir()) == ["policy"]
