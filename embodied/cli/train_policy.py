"""`embodied-train-policy`: the inverse dynamics model or goal policy (embodied.train_policy).

    embodied-train-policy policy=idm preset=cpu_tiny task_set=train_8 store=data/demos.zarr
"""

from __future__ import annotations

from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import OmegaConf

from embodied.errors import user_errors
from embodied.train_policy import TrainPolicyConfig, train_policy


@hydra.main(config_path="pkg://configs", config_name="train_policy", version_base="1.3")
@user_errors("embodied-train-policy")
def main(cfg) -> None:
    cfg_obj: TrainPolicyConfig = OmegaConf.to_object(cfg)
    out = Path(HydraConfig.get().runtime.output_dir)
    print(train_policy(cfg_obj, out).summary("policy", out / "policy"))


if __name__ == "__main__":
    main()
