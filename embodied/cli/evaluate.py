"""`embodied-eval`: a planner + policy in simulation, beside the expert and oracle-plan upper bounds (embodied.evaluate).

    embodied-eval task_set=target_12 planner=<video ckpt dir> policy_ckpt=<policy ckpt dir>
"""

from __future__ import annotations

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import OmegaConf

from embodied.config import refuse_policy_override
from embodied.errors import user_errors
from embodied.evaluate import EvalConfig, evaluate


@hydra.main(config_path="pkg://configs", config_name="eval", version_base="1.3")
@user_errors("embodied-eval")
def _app(cfg) -> None:
    cfg_obj: EvalConfig = OmegaConf.to_object(cfg)
    print(evaluate(cfg_obj, output_dir=HydraConfig.get().runtime.output_dir).table)


@user_errors("embodied-eval")
def main() -> None:
    refuse_policy_override("<checkpoint dir>|expert")
    _app()


if __name__ == "__main__":
    main()
