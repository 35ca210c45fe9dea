"""`embodied-collect`: scripted-expert episodes into a store (embodied.collect).

    embodied-collect task_set=train_8 episodes_per_task=20 workers=2 image_size=64
"""

from __future__ import annotations

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import OmegaConf

from embodied.collect import CollectConfig, collect
from embodied.errors import user_errors
from embodied.report import markdown_table


@hydra.main(config_path="pkg://configs", config_name="collect", version_base="1.3")
@user_errors("embodied-collect")
def main(cfg) -> None:
    cfg_obj: CollectConfig = OmegaConf.to_object(cfg)
    print(markdown_table(collect(cfg_obj, output_dir=HydraConfig.get().runtime.output_dir)))


if __name__ == "__main__":
    main()
