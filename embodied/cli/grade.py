"""`embodied-grade`: a grader over a store's episodes, against the simulator's labels (embodied.grade).
"""

from __future__ import annotations

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import OmegaConf

from embodied.errors import user_errors
from embodied.grade import GradeConfig, grade_store


@hydra.main(config_path="pkg://configs", config_name="grade", version_base="1.3")
@user_errors("embodied-grade")
def main(cfg) -> None:
    cfg_obj: GradeConfig = OmegaConf.to_object(cfg)
    report = grade_store(cfg_obj, HydraConfig.get().runtime.output_dir)
    print(report.markdown(f"Grader {cfg_obj.grader.name} on {cfg_obj.store}"))


if __name__ == "__main__":
    main()
