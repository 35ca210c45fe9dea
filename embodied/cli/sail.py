"""`embodied-sail`: the Self-Adapting Improvement Loop (embodied.sail).

    embodied-sail preset=cpu_tiny                  # make demo
    embodied-sail --multirun seed=0,1,2 self_training=true,false
"""

from __future__ import annotations

from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import OmegaConf

from embodied.errors import user_errors
from embodied.sail import SailConfig, run_sail


@hydra.main(config_path="pkg://configs", config_name="sail", version_base="1.3")
@user_errors("embodied-sail")
def main(cfg) -> None:
    cfg_obj: SailConfig = OmegaConf.to_object(cfg)
    run_dir = Path(HydraConfig.get().runtime.output_dir)
    run_sail(cfg_obj, run_dir)
    print((run_dir / "report" / "summary.md").read_text())
    print(f"Report: {run_dir / 'report'} (summary.md, success.png, sail.json, videos/). Rerunning the same command "
          f"with hydra.run.dir={run_dir} resumes or, when finished, does nothing. Several runs under one multirun "
          f"dir: embodied-sail-summary <that dir>.")


if __name__ == "__main__":
    main()
