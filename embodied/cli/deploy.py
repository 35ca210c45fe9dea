"""`embodied-deploy`: a planner + policy on a robot (robot=sim_twin is the dry run), episodes into the store (embodied.deploy).
"""

from __future__ import annotations

import json

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import OmegaConf

from embodied.config import refuse_policy_override
from embodied.deploy import deploy
from embodied.errors import user_errors


@hydra.main(config_path="pkg://configs", config_name="deploy", version_base="1.3")
@user_errors("embodied-deploy")
def _app(cfg) -> None:
    result = deploy(OmegaConf.to_object(cfg), output_dir=HydraConfig.get().runtime.output_dir)
    for row in result.rows:
        print(json.dumps(row))


@user_errors("embodied-deploy")
def main() -> None:
    refuse_policy_override("<checkpoint dir>")
    _app()


if __name__ == "__main__":
    main()
