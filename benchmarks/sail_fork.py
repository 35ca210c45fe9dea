"""Start a SAIL run from another run's finished phases (demos, pretraining): recipe experiments
without paying for the same pretraining again.

    python benchmarks/sail_fork.py --source runs/pre4 --target runs/roundA -- finetune=policy measure_on=validation
    embodied-sail finetune=policy measure_on=validation hydra.run.dir=runs/roundA     # resumes after them

Copies the store, the kept phases' outputs and their entries of ``sail_state.json`` into
``--target``, then records the new config (the overrides after ``--``) as that run's, so that
``embodied-sail`` with the same overrides resumes there. The kept phases must not depend on any
key that differs between the two configs: the keys each phase reads are listed below, and a
difference in one of them is refused (the phase is then left out: ``--keep``).
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

# The config keys a phase's result depends on (besides the phases before it).
PHASE_KEYS = {
    "demos": ["task_set", "target_set", "demos_per_task", "target_demos_per_task", "explore_demos_per_task",
              "explore_noise_std", "seeds", "seed", "image_size", "env"],
    "pretrain_video": ["video_model", "pretrain_video"],
    "pretrain_policy": ["policy", "pretrain_policy"],
}
OUTPUTS = {"demos": ["store.zarr", "demos"], "pretrain_video": ["pretrain/video"], "pretrain_policy": ["pretrain/policy"]}


def _training_view(record: dict, key: str, defaults: dict):
    """``record[key]``, less what only sampling reads (how a planner samples does not change its
    training), with the fields a record made before they existed filled in at their defaults."""
    value = record.get(key)
    if isinstance(value, dict) and isinstance(defaults.get(key), dict):
        value = {**{k: v for k, v in defaults[key].items() if k not in value}, **value}
    if key == "video_model" and isinstance(value, dict):
        value = {k: v for k, v in value.items() if k not in ("sampler", "sample_steps")}
    return value


def compose(overrides: list[str]):
    from hydra import compose as hydra_compose, initialize_config_module
    from omegaconf import OmegaConf

    with initialize_config_module(config_module="configs", version_base="1.3"):
        return OmegaConf.to_object(hydra_compose(config_name="sail", overrides=overrides))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--source", required=True, help="a SAIL run dir whose phases are finished")
    p.add_argument("--target", required=True, help="the new run dir (must not exist)")
    p.add_argument("--keep", default="demos,pretrain_video,pretrain_policy", help="phases to take over, in order")
    p.add_argument("overrides", nargs="*", help="the new run's overrides (after --)")
    args = p.parse_args()

    from embodied.sail import CONFIG_FILE, STATE_FILE, SailConfig, check_config, config_fingerprint, config_record
    from embodied.store import EpisodeStore

    source, target = Path(args.source), Path(args.target)
    if target.exists():
        sys.exit(f"{target} exists: give a new run dir")
    old = json.loads((source / CONFIG_FILE).read_text())
    cfg = compose(args.overrides)
    check_config(cfg)
    new = config_record(cfg)
    state = json.loads((source / STATE_FILE).read_text())
    defaults = config_record(SailConfig())
    keep = [k for k in args.keep.split(",") if k]
    for phase in keep:
        if phase not in PHASE_KEYS:
            sys.exit(f"--keep: {phase!r} is not one of {', '.join(PHASE_KEYS)}")
        if phase not in state["done"]:
            sys.exit(f"{source} has not finished {phase}")
        differ = [key for key in PHASE_KEYS[phase]
                  if _training_view(old, key, defaults) != _training_view(new, key, defaults)]
        if differ:
            sys.exit(f"{phase} depends on {differ}, which differ between {source} and the new config: "
                     f"leave it out of --keep")
    if "demos" not in keep:
        sys.exit("--keep must hold demos (the store comes with it)")

    target.mkdir(parents=True)
    for phase in keep:
        for rel in OUTPUTS[phase]:
            shutil.copytree(source / rel, target / rel)
    with EpisodeStore(target / "store.zarr", mode="a") as store:
        if len(store.filter(source=["plan", "rollout"])):
            shutil.rmtree(target)
            sys.exit(f"{source}'s store holds self-collected rollouts: fork only runs that stopped after pretraining")
        store.set_attrs(sail_config=config_fingerprint(new))
    (target / CONFIG_FILE).write_text(json.dumps(new, indent=1))
    (target / STATE_FILE).write_text(json.dumps({"done": {k: state["done"][k] for k in keep}}, indent=1))
    print(f"{target}: {', '.join(keep)} from {source}; resume with: embodied-sail {' '.join(args.overrides)} "
          f"hydra.run.dir={target}")


if __name__ == "__main__":
    main()
