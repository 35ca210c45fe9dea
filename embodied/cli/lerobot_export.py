"""`embodied-export`: a store's episodes as a LeRobot dataset (embodied.lerobot_io).
"""

from __future__ import annotations

import hydra
from omegaconf import OmegaConf

from embodied.errors import user_errors
from embodied.lerobot_io import export_dataset


@hydra.main(config_path="pkg://configs", config_name="export", version_base="1.3")
@user_errors("embodied-export")
def main(cfg) -> None:
    print(export_dataset(OmegaConf.to_object(cfg)))


if __name__ == "__main__":
    main()
