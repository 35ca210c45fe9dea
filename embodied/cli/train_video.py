"""`embodied-train-video`: the text + first-frame video planner on store episodes (embodied.train_video).

    embodied-train-video preset=cpu_tiny task_set=train_8 store=data/demos.zarr
    accelerate launch --num_processes 2 -m embodied.cli.train_video ...   # DDP, no code change
"""

from __future__ import annotations

from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import OmegaConf

from embodied.errors import user_errors
from embodied.train_video import TrainVideoConfig, train_video


@hydra.main(config_path="pkg://configs", config_name="train_video", version_base="1.3")
@user_errors("embodied-train-video")
def main(cfg) -> None:
    cfg_obj: TrainVideoConfig = OmegaConf.to_object(cfg)
    out = Path(HydraConfig.get().runtime.output_dir)
    print(train_video(cfg_obj, out).summary("planner", out / "planner"))


if __name__ == "__main__":
    main()
