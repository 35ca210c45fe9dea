"""`embodied-train-grader`: the learned success grader (embodied.train_grader).

    embodied-train-grader store=data/grader.zarr task_set=train_8 max_seed=13
"""

from __future__ import annotations

from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import OmegaConf

from embodied.errors import user_errors
from embodied.train_grader import TrainGraderConfig, train_grader


@hydra.main(config_path="pkg://configs", config_name="train_grader", version_base="1.3")
@user_errors("embodied-train-grader")
def main(cfg) -> None:
    cfg_obj: TrainGraderConfig = OmegaConf.to_object(cfg)
    out = Path(HydraConfig.get().runtime.output_dir)
    print(train_grader(cfg_obj, out).summary("grader", out / "grader"))


if __name__ == "__main__":
    main()
