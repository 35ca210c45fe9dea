"""benchmarks/gpu_sail.sh, the prepared run for a bare GPU machine: valid bash, and the wheels it
carries at the versions this project pins (a drifted pin would test other code there)."""

import re
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "benchmarks" / "gpu_sail.sh"


def _pins(text: str) -> dict[str, str]:
    return {m.group(1).lower().replace("_", "-"): m.group(2) for m in re.finditer(r"([A-Za-z0-9_.-]+)==([0-9][^\s\"',)]*)", text)}


def test_the_script_parses():
    assert subprocess.run(["bash", "-n", str(SCRIPT)], capture_output=True).returncode == 0


def test_carried_wheels_match_the_project_pins():
    script = SCRIPT.read_text()
    carried = _pins(script[script.index("WHEELS=("):script.index("EGL_DEBS=(")])
    pinned = _pins((ROOT / "pyproject.toml").read_text())
    assert {"mujoco", "metaworld", "zarr", "hydra-core", "diffusers"} <= set(carried)
    for name, version in carried.items():
        if name in pinned:
            assert version == pinned[name], f"{name}: gpu_sail.sh carries {version}, pyproject.toml pins {pinned[name]}"
