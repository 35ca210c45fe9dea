"""embodied-collect end to end on a tiny budget, called in-process with a config."""

import json

import pytest
from hydra import compose, initialize_config_module
from omegaconf import OmegaConf

from embodied.collect import CollectConfig, collect
from embodied.report import markdown_table
from embodied.store import EpisodeStore


def _cfg(tmp_path, *overrides) -> CollectConfig:
    with initialize_config_module(config_module="configs", version_base="1.3"):
        cfg = compose(
            config_name="collect",
            overrides=["task_set=debug_2", "episodes_per_task=2", "workers=0", "image_size=32",
                       f"store={tmp_path / 'demos.zarr'}", "progress=false", *overrides],
        )
    return OmegaConf.to_object(cfg)


def test_collect_writes_store_table_and_report(tmp_path):
    out = tmp_path / "run"
    stats = collect(_cfg(tmp_path), output_dir=out)

    assert [s.task for s in stats] == ["reach-v3", "button-press-v3"]
    assert all(s.episodes == 2 for s in stats)
    # Scripted experts solve these two easy tasks; the table reflects the store's ground truth.
    assert all(s.successes == 2 for s in stats)
    with EpisodeStore(tmp_path / "demos.zarr", mode="r") as store:
        assert len(store) == 4
        metas = [store.meta(i) for i in range(4)]
        assert {(m["task"], m["seed"]) for m in metas} == {(t, s) for t in ["reach-v3", "button-press-v3"] for s in (0, 1)}
        assert all(m["source"] == "expert" and m["success_gt"] == 1 and m["instruction"] for m in metas)
        actions = {(m["task"], m["seed"]): store.episode_length(i) - 1 for i, m in enumerate(metas)}
    for s in stats:  # mean length counts actions (env steps), not stored frames
        assert s.mean_length == pytest.approx((actions[(s.task, 0)] + actions[(s.task, 1)]) / 2)

    rows = [json.loads(line) for line in (out / "episodes.jsonl").read_text().splitlines()]
    assert len(rows) == 4 and {r["task"] for r in rows} == {"reach-v3", "button-press-v3"}
    assert (out / "success.png").stat().st_size > 1000
    assert "| mean (all episodes) | 4 | 1.00 [" in (out / "summary.md").read_text()
    assert "reach-v3" in markdown_table(stats)


def test_collect_again_skips_what_the_store_holds(tmp_path):
    collect(_cfg(tmp_path, "task_set.tasks=[reach-v3]"))
    stats = collect(_cfg(tmp_path, "task_set.tasks=[reach-v3]", "episodes_per_task=3"))
    with EpisodeStore(tmp_path / "demos.zarr", mode="r") as store:
        seeds = sorted(store.meta(i)["seed"] for i in range(len(store)))
    assert seeds == [0, 1, 2]  # seeds 0 and 1 were not collected twice
    assert stats[0].episodes == 3


def test_noisy_demos_get_their_own_source_tag(tmp_path):
    """The SAIL loop's exploration demos: same store and seeds as the clean ones, other tag, not
    taken for already collected; the noise really changes the actions."""
    collect(_cfg(tmp_path, "task_set.tasks=[reach-v3]", "episodes_per_task=1"))
    stats = collect(_cfg(tmp_path, "task_set.tasks=[reach-v3]", "episodes_per_task=1", "noise_std=0.5",
                         "source=expert_noisy"))
    assert stats[0].episodes == 1
    with EpisodeStore(tmp_path / "demos.zarr", mode="r") as store:
        assert [store.meta(i)["source"] for i in range(len(store))] == ["expert", "expert_noisy"]
        clean, noisy = store.episode(0), store.episode(1)
        n = min(len(clean), len(noisy)) - 1
        assert abs(noisy.action[:n] - clean.action[:n]).mean() > 0.1
    with pytest.raises(ValueError, match="source"):
        collect(_cfg(tmp_path, "source="))


def test_unknown_task_fails_before_anything_is_written(tmp_path):
    with pytest.raises(ValueError, match="drawer-open-v3"):
        collect(_cfg(tmp_path, "task_set.tasks=[drawer-opne-v3]"))
    assert not (tmp_path / "demos.zarr").exists()
