"""SLURM launches through hydra-submitit-launcher, checked without a cluster.

The shipped ``hydra/launcher=submitit_slurm`` config is composed with an entry point's config and
multirun sweep overrides; the plugin's launcher then submits the sweep through submitit's real
SlurmExecutor, with a fake ``sbatch`` on PATH that keeps the generated script. The test reads the
``#SBATCH`` lines of that script and the pickled job of every array task.
"""

from __future__ import annotations

import os
import stat
import warnings
from pathlib import Path

import pytest

submitit = pytest.importorskip("submitit")
pytest.importorskip("hydra_plugins.hydra_submitit_launcher")

from hydra import compose, initialize_config_module  # noqa: E402
from hydra._internal.core_plugins.basic_sweeper import BasicSweeper  # noqa: E402
from hydra.core.override_parser.overrides_parser import OverridesParser  # noqa: E402
from hydra.utils import instantiate  # noqa: E402
from omegaconf import OmegaConf  # noqa: E402

import embodied.sail  # noqa: E402,F401  (registers the schemas)
import embodied.train_video  # noqa: E402,F401

ROOT = Path(__file__).resolve().parents[1]


def _compose(config_name: str, *overrides: str):
    with warnings.catch_warnings():
        # Same name as the plugin's schema: Hydra merges the file onto it (and says the matching is deprecated).
        warnings.filterwarnings("ignore", message=r"(?s).*validated against ConfigStore schema")
        with initialize_config_module(config_module="configs", version_base="1.3"):
            return compose(config_name, overrides=["hydra/launcher=submitit_slurm", *overrides], return_hydra_config=True)


def test_shipped_config_extends_the_plugin_schema():
    assert (ROOT / "configs" / "hydra" / "launcher" / "submitit_slurm.yaml").is_file()
    for preset, cpus in (("gpu", 16), ("cpu_tiny", 2)):
        cfg = _compose("train_video", f"preset={preset}")
        launcher = OmegaConf.to_container(cfg.hydra.launcher, resolve=True)
        assert launcher["_target_"].endswith("submitit_launcher.SlurmLauncher")
        assert launcher["cpus_per_task"] == cpus  # from the preset
        assert launcher["gpus_per_node"] == 1 and launcher["nodes"] == 1 and launcher["tasks_per_node"] == 1
        assert launcher["timeout_min"] == 720 and launcher["mem_gb"] == 64 and launcher["partition"] is None
        assert "qos" in launcher and "additional_parameters" in launcher  # the plugin's own keys are kept
    # A preset (or the command line) can change the per-node GPUs / memory.
    cfg = _compose("train_video", "preset=gpu", "+preset.extra.slurm_gpus_per_node=4", "+preset.extra.slurm_mem_gb=200")
    assert cfg.hydra.launcher.gpus_per_node == 4 and cfg.hydra.launcher.mem_gb == 200
    # Typos are caught by the plugin's schema.
    with pytest.raises(Exception, match="partitoin"):
        _compose("train_video", "hydra.launcher.partitoin=gpu")


@pytest.fixture
def fake_sbatch(tmp_path, monkeypatch):
    """An ``sbatch`` that keeps the submitted script and answers with a job id; results are not awaited."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    kept = tmp_path / "submitted"
    kept.mkdir()
    sbatch = bin_dir / "sbatch"
    sbatch.write_text(f'#!/bin/sh\nn=$(ls {kept} | wc -l)\ncp "$1" {kept}/script_$n.sh\necho "Submitted batch job 4242"\n')
    sbatch.chmod(sbatch.stat().st_mode | stat.S_IEXEC)
    srun = bin_dir / "srun"  # only looked for (submitit's "are we on SLURM" check), never run
    srun.write_text("#!/bin/sh\nexit 1\n")
    srun.chmod(srun.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    # The launcher waits for every job's result: answer at once instead of polling a cluster.
    monkeypatch.setattr(submitit.slurm.slurm.SlurmJob, "results", lambda self: [f"result of {self.job_id}"])
    return kept


def _sweep(cfg, sweep_args: list[str]) -> list[list[str]]:
    """The job overrides Hydra's basic sweeper makes of ``--multirun`` arguments (cartesian product)."""
    parsed = OverridesParser.create().parse_overrides(sweep_args)
    (batch,) = BasicSweeper.split_arguments(parsed, None)
    return batch


@pytest.mark.parametrize("config_name, sweep_args", [
    ("train_video", ["train.lr=1e-4,3e-4", "train.seed=0,1"]),
    ("sail", ["grader=oracle,none", "self_training=true,false"]),
])
def test_multirun_sweep_generates_the_sbatch_array(tmp_path, fake_sbatch, config_name, sweep_args):
    sweep_dir = tmp_path / "sweep"
    cfg = _compose(config_name, "preset=gpu", "hydra.launcher.partition=gpu-long", "hydra.launcher.account=robots",
                   "hydra.launcher.timeout_min=90", "hydra.launcher.array_parallelism=2",
                   f"hydra.sweep.dir={sweep_dir}")  # the base config; the
    # sweep arguments go to the sweeper, as with ``--multirun``, and each job re-composes with its own.
    job_overrides = _sweep(cfg, sweep_args)
    assert len(job_overrides) == 4

    launcher = instantiate(cfg.hydra.launcher)
    launcher.setup(hydra_context=None, task_function=lambda c: None, config=cfg)
    returns = launcher.launch(job_overrides, initial_job_idx=0)
    assert returns == [f"result of 4242_{i}" for i in range(4)]

    (script,) = sorted(fake_sbatch.glob("*.sh"))  # one sbatch call: a job array
    lines = script.read_text().splitlines()
    sbatch = {line.split("=", 1)[0][len("#SBATCH "):]: line.split("=", 1)[1]
              for line in lines if line.startswith("#SBATCH ") and "=" in line}
    assert sbatch["--partition"] == "gpu-long"
    assert sbatch["--account"] == "robots"
    assert sbatch["--gpus-per-node"] == "1"
    assert sbatch["--cpus-per-task"] == "16"  # preset=gpu: 16 workers
    assert sbatch["--nodes"] == "1" and sbatch["--ntasks-per-node"] == "1"
    assert sbatch["--mem"] == "64GB"
    assert sbatch["--time"] == "90"
    assert sbatch["--array"] == "0-3%2"  # 4 tasks, at most 2 at once
    assert sbatch["--job-name"] == cfg.hydra.job.name
    assert sbatch["--signal"] == "USR2@120"  # signal_delay_s
    assert str(sweep_dir / ".submitit") in sbatch["--output"]
    assert "export MUJOCO_GL=egl" in lines and "export HF_HUB_OFFLINE=1" in lines
    assert any(line.startswith("srun ") and "submitit.core._submit" in line for line in lines)

    # Every array task carries its own sweep overrides (the pickled submissions submitit will run).
    pickles = sorted((sweep_dir / ".submitit").rglob("*_submitted.pkl"))
    assert len(pickles) == 4
    seen = set()
    for path in pickles:
        delayed = submitit.helpers.DelayedSubmission.load(path)
        seen.add(tuple(delayed.args[0]))
    assert seen == {tuple(o) for o in job_overrides}
