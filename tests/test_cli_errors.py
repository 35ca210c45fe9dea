"""A user's mistake is one line on stderr and exit status 2; a bug keeps its traceback."""

import os
import subprocess
import sys

import pytest

from embodied.errors import EXIT_USER_ERROR, user_errors
from embodied.stats import wilson_interval


def _raises_from_project():
    wilson_interval(3, 2)  # the project's own ValueError: more successes than trials


@user_errors("embodied-demo")
def _cli(fail):
    fail()


def test_a_user_error_is_one_line_and_status_2(capsys, monkeypatch):
    monkeypatch.delenv("HYDRA_FULL_ERROR", raising=False)
    with pytest.raises(SystemExit) as exit_info:
        _cli(_raises_from_project)
    err = capsys.readouterr().err
    assert exit_info.value.code == EXIT_USER_ERROR
    assert err.startswith("embodied-demo: ") and "Traceback" not in err


def test_bugs_and_errors_raised_outside_the_project_keep_their_traceback(monkeypatch):
    monkeypatch.delenv("HYDRA_FULL_ERROR", raising=False)
    with pytest.raises(TypeError):
        _cli(lambda: len(3))
    with pytest.raises(ValueError):  # raised inside Python itself, not by the project on purpose
        _cli(lambda: int("three"))


def test_hydra_full_error_shows_the_traceback(monkeypatch):
    monkeypatch.setenv("HYDRA_FULL_ERROR", "1")
    with pytest.raises(ValueError):
        _cli(_raises_from_project)


def test_a_cli_with_a_bad_value_prints_one_message(tmp_path):
    env = {**os.environ, "MUJOCO_GL": "egl"}
    env.pop("HYDRA_FULL_ERROR", None)
    proc = subprocess.run([sys.executable, "-m", "embodied.cli.sail", "preset.plan_batch=0", f"hydra.run.dir={tmp_path / 'run'}"],
                          capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == EXIT_USER_ERROR, proc.stderr[-2000:]
    assert "embodied-sail: preset.plan_batch must be an integer >= 1" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "run" / "store.zarr").exists()  # nothing half-written


def test_device_cuda_without_a_gpu_is_one_message_before_any_work(tmp_path):
    env = {**os.environ, "MUJOCO_GL": "egl", "CUDA_VISIBLE_DEVICES": ""}
    env.pop("HYDRA_FULL_ERROR", None)
    proc = subprocess.run([sys.executable, "-m", "embodied.cli.sail", "device=cuda", f"hydra.run.dir={tmp_path / 'run'}"],
                          capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == EXIT_USER_ERROR, proc.stderr[-2000:]
    assert "embodied-sail: device=cuda needs a CUDA GPU" in proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp_path / "run" / "store.zarr").exists()


def test_policy_instead_of_policy_ckpt_is_one_message():
    env = {**os.environ, "MUJOCO_GL": "egl"}
    env.pop("HYDRA_FULL_ERROR", None)
    proc = subprocess.run([sys.executable, "-m", "embodied.cli.evaluate", "policy=runs/idm"],
                          capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == EXIT_USER_ERROR, proc.stderr[-2000:]
    assert "embodied-eval: the policy is given as policy_ckpt=<checkpoint dir>|expert" in proc.stderr
    assert "Traceback" not in proc.stderr
