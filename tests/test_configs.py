"""Configs ship inside the wheel and compose for every task set and preset."""

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from hydra import compose, initialize_config_module
from omegaconf import OmegaConf

import embodied.collect  # noqa: F401  (registers the collect schema)
from sim.catalog import TASKS

ROOT = Path(__file__).resolve().parents[1]
TASK_SETS = sorted(p.stem for p in (ROOT / "configs" / "task_set").glob("*.yaml"))


def _compose(*overrides):
    with initialize_config_module(config_module="configs", version_base="1.3"):
        return compose(config_name="collect", overrides=list(overrides))


@pytest.mark.parametrize("task_set", TASK_SETS)
def test_every_task_set_composes_with_valid_tasks(task_set):
    cfg = _compose(f"task_set={task_set}")
    assert cfg.task_set.name == task_set
    assert len(cfg.task_set.tasks) == len(set(cfg.task_set.tasks)) > 0
    assert set(cfg.task_set.tasks) <= set(TASKS)


def test_mt50_is_the_whole_catalog_and_targets_are_unseen():
    assert list(_compose("task_set=mt50").task_set.tasks) == list(TASKS)
    train = set(_compose("task_set=train_8").task_set.tasks)
    target = set(_compose("task_set=target_12").task_set.tasks)
    assert len(train) == 8 and len(target) == 12 and not train & target


@pytest.mark.parametrize("preset, size", [("cpu_tiny", 64), ("gpu", 128)])
def test_presets_set_the_budget_and_cli_overrides_win(preset, size):
    cfg = _compose(f"preset={preset}")
    assert cfg.image_size == size and cfg.preset.name == preset
    cfg = _compose(f"preset={preset}", "image_size=96", "workers=1")
    assert cfg.image_size == 96 and cfg.workers == 1


def test_schema_rejects_unknown_keys_and_bad_types():
    from hydra.errors import ConfigCompositionException

    with pytest.raises(ConfigCompositionException):
        _compose("episodes_per_tsk=3")
    with pytest.raises(ConfigCompositionException):
        _compose("workers=many")


def test_wheel_ships_configs_and_pkg_path_resolves(tmp_path):
    """Hydra's pkg://configs must resolve from an installed wheel, not only from the checkout."""
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(tmp_path), str(ROOT)],
        check=True,
        capture_output=True,
    )
    (wheel,) = tmp_path.glob("embodied_sail-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    for stem in ["collect", "preset/cpu_tiny", "task_set/mt50", "env/metaworld"]:
        assert f"configs/{stem}.yaml" in names
    for package in ["embodied", "sim", "policies", "video_models", "configs"]:
        assert f"{package}/__init__.py" in names
    # The console script composes its config from a directory that has no configs/ folder.
    script = Path(sys.executable).with_name("embodied-collect")
    out = subprocess.run(
        [str(script), "--cfg", "job", "task_set=debug_2"], cwd=tmp_path, capture_output=True, text=True,
        env={**os.environ, "HYDRA_FULL_ERROR": "1"},
    )
    assert out.returncode == 0, out.stderr
    printed = OmegaConf.create(out.stdout)
    assert list(printed.task_set.tasks) == ["reach-v3", "button-press-v3"]


PRESETS = sorted(p.stem for p in (ROOT / "configs" / "preset").glob("*.yaml"))
APPS = {"sail": "embodied.sail", "eval": "embodied.evaluate", "train_video": "embodied.train_video",
        "train_policy": "embodied.train_policy", "train_grader": "embodied.train_grader", "collect": "embodied.collect"}


@pytest.mark.parametrize("preset", PRESETS)
@pytest.mark.parametrize("app", sorted(APPS))
def test_every_preset_builds_every_app_config(preset, app):
    """Each preset has its file in every group the apps choose by ${preset}, and the typed config
    builds (its checks pass), with the preset's device passed to every model the app trains."""
    import importlib

    importlib.import_module(APPS[app])
    with initialize_config_module(config_module="configs", version_base="1.3"):
        cfg = compose(config_name=app, overrides=[f"preset={preset}"])
    built = OmegaConf.to_object(cfg)
    assert built.preset.name == preset
    trains = [getattr(built, name) for name in ("train", "pretrain_video", "finetune_video", "pretrain_policy",
                                                   "finetune_policy") if hasattr(built, name)]
    assert all(t.device == built.device == built.preset.device for t in trains)
    video = getattr(built, "video_model", None)
    if video is not None and video.text_encoder == "learned":  # its vocabulary covers every task it plans for
        from sim.catalog import instruction_for

        tasks = list(built.task_set.tasks) + list(getattr(getattr(built, "target_set", None), "tasks", []))
        assert {instruction_for(t, s) for t in tasks for s in range(6)} <= set(video.instructions)
