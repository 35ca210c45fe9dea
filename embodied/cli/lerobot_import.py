"""`embodied-import`: a LeRobot dataset's episodes into a store (embodied.lerobot_io).
"""

from __future__ import annotations

import hydra
from omegaconf import OmegaConf

from embodied.errors import user_errors
from embodied.lerobot_io import import_dataset


@hydra.main(config_path="pkg://configs", config_name="import", version_base="1.3")
@user_errors("embodied-import")
def main(cfg) -> None:
    indices = import_dataset(OmegaConf.to_object(cfg))
    span = f": store indices {indices[0]}..{indices[-1]}" if indices else ""
    print(f"imported {len(indices)} episodes{span}")


if __name__ == "__main__":
    main()
