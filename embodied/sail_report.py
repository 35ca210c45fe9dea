"""The SAIL loop's report, and the summary of several loop runs (``embodied-sail-summary``).

One run's ``report/``:
    summary.md    success per iteration and task (95 % Wilson intervals), each iteration paired
                  against iteration 0 on the same seeds (gained / lost episodes, exact McNemar p),
                  the grader against the simulator, what each fine-tuning set held, wall time
    sail.json     the numbers above and every episode's outcome: the same in every run of the same
                  config (no wall time, no absolute path)
    timing.json   wall time per phase
    success.png   the curve; videos/ the first and latest evaluations' MP4s

``embodied-sail-summary DIR`` reads every ``report/sail.json`` under DIR (a multirun dir), groups
the runs by config apart from ``seed`` and writes DIR/summary.md|json|png: per group, mean and std
over loop seeds per iteration, per task and pooled, with the pooled paired test against iteration
0; and, where a loop and its control (``self_training=false``) ran on the same loop seeds, the two
side by side with the paired test of loop against control.
"""

from __future__ import annotations

import json
import shutil
import statistics
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from embodied.stats import paired, success_rate

POOLED = "pooled"


# --- one run -------------------------------------------------------------------------------------
def _rate(k: int, n: int) -> dict[str, Any]:
    r = success_rate(k, n)
    return {"successes": k, "episodes": n, "rate": r.value, "low": r.low, "high": r.high}


def _outcomes(info: dict[str, Any], tasks: Sequence[str]) -> dict[str, list[int]]:
    return {t: list(info["success"][t]) for t in tasks if t in info.get("success", {})}


def _paired_rows(base: dict[str, list[int]], other: dict[str, list[int]], tasks: Sequence[str]) -> dict[str, Any]:
    rows = {t: paired(base[t], other[t]) for t in tasks if t in base and t in other}
    pooled_before = [x for t in rows for x in base[t]]
    pooled_after = [x for t in rows for x in other[t]]
    rows[POOLED] = paired(pooled_before, pooled_after)
    return {name: vars(p) for name, p in rows.items()}


def build_report(cfg, state) -> dict[str, Any]:
    """The numbers of one run's report, from its config and finished phases (``RunState``)."""
    from embodied.sail import config_record

    tasks = list(cfg.target_set.tasks)
    evals = [(it, state.info(f"iter_{it}/eval")) for it in range(cfg.iterations + 1) if state.done(f"iter_{it}/eval")]
    curve, outcomes = [], {}
    for it, info in evals:
        per_task = {t: info["tasks"][t] for t in tasks if t in info["tasks"]}
        k, n = sum(v[0] for v in per_task.values()), sum(v[1] for v in per_task.values())
        curve.append({"iteration": it, **_rate(k, n), "tasks": per_task})
        outcomes[str(it)] = _outcomes(info, tasks)
    comparisons = []
    if evals:
        base = outcomes[str(evals[0][0])]
        comparisons = [{"iteration": it, "against": evals[0][0], **_paired_rows(base, outcomes[str(it)], tasks)}
                       for it, _ in evals[1:]]
    graders, finetune = [], []
    for it in range(cfg.iterations):
        info = state.info(f"iter_{it}/rollouts")
        if info:
            graders.append({"iteration": it, **{k: info[k] for k in ("rollouts", "kept", "rollout_success_gt", "precision",
                                                                     "recall", "accuracy", "kept_per_task",
                                                                     "mean_length", "allocation") if k in info}})
        for model in ("video", "policy"):
            info = state.info(f"iter_{it}/finetune_{model}")
            if info:
                finetune.append({"iteration": it, "model": "planner" if model == "video" else "policy",
                                 **{k: info.get(k) for k in ("episodes", "self_episodes", "self_step_share", "steps")}})
    seeds = evals[0][1].get("seeds", []) if evals else []
    return {"config": config_record(cfg), "measured_on": {"range": cfg.measure_on, "seeds": seeds},
            "tasks": tasks, "curve": curve, "outcomes": outcomes, "paired": comparisons, "graders": graders,
            "finetune": finetune, "upper_bounds": state.info("iter_0/eval").get("upper_bounds", {})}


def _grader_name(spec: Any) -> str:
    return spec.get("name", "?") if isinstance(spec, dict) else getattr(spec, "name", "?")


def _cell(paired_row: dict[str, Any]) -> str:
    return f"+{paired_row['gained']} / -{paired_row['lost']}, p = {paired_row['p_value']:.3g}"


def summary_lines(report: dict[str, Any], phases: dict[str, Any] | None = None,
                  budget_minutes: float | None = None) -> list[str]:
    cfg = report["config"]
    tasks = report["tasks"]
    seeds = report["measured_on"]["seeds"]
    span = f"{seeds[0]}-{seeds[-1]}" if seeds else "none"
    taught = "its own filtered rollouts" if cfg["self_training"] else "the demos alone (the control)"
    lines = [f"# SAIL on {cfg['target_set']['name']} (pretrained on {cfg['task_set']['name']}), "
             f"grader={_grader_name(cfg['grader'])}, self_training={cfg['self_training']}, seed={cfg['seed']}", "",
             f"Success on {len(seeds)} {report['measured_on']['range']} seeds per task ({span}; simulator ground truth), "
             f"95 % Wilson intervals. Iteration k = the model after k rounds of fine-tuning on {taught}.", "",
             "| iteration | " + " | ".join(tasks) + " | pooled |", "|---:|" + "---:|" * (len(tasks) + 1)]
    for point in report["curve"]:
        cells = [str(success_rate(*point["tasks"][t])) if t in point["tasks"] else "n/a" for t in tasks]
        lines.append(f"| {point['iteration']} | " + " | ".join(cells)
                     + f" | {success_rate(point['successes'], point['episodes'])} |")
    for name, per_task in report["upper_bounds"].items():
        k, n = sum(v[0] for v in per_task.values()), sum(v[1] for v in per_task.values())
        cells = [str(success_rate(*per_task[t])) if t in per_task else "n/a" for t in tasks]
        lines.append(f"| upper bound: {name} | " + " | ".join(cells) + f" | {success_rate(k, n)} |")
    if report["paired"]:
        lines += ["", "## Paired against iteration 0 (the same seeds): episodes gained / lost, exact McNemar p", "",
                  "| iteration | " + " | ".join(tasks) + " | pooled |", "|---:|" + "---:|" * (len(tasks) + 1)]
        for row in report["paired"]:
            lines.append(f"| {row['iteration']} | " + " | ".join(_cell(row[t]) if t in row else "n/a" for t in tasks)
                         + f" | {_cell(row[POOLED])} |")
    if report["graders"]:
        lines += ["", "## Self-collected rollouts and the grader (against the simulator's verdict)", "",
                  "| iteration | rollouts | sim successes | kept | precision | recall | accuracy | mean length |",
                  "|---:|---:|---:|---:|---:|---:|---:|---:|"]
        for g in report["graders"]:
            lines.append(f"| {g['iteration']} | {g['rollouts']} | {g['rollout_success_gt']} | {g['kept']} | "
                         f"{g['precision']:.2f} | {g['recall']:.2f} | {g['accuracy']:.2f} | "
                         f"{g.get('mean_length', float('nan')):.0f} |")
    if any("allocation" in g for g in report["graders"]):
        proposer = cfg.get("proposer", {})
        lines += ["", f"## Rollouts per target task (proposer={proposer.get('name', '?')}): allocated / kept", "",
                  "| iteration | " + " | ".join(tasks) + " |", "|---:|" + "---:|" * len(tasks)]
        for g in report["graders"]:
            alloc, kept = g.get("allocation", {}), g.get("kept_per_task", {})
            lines.append(f"| {g['iteration']} | " + " | ".join(f"{alloc.get(t, 0)} / {kept.get(t, 0)}" for t in tasks)
                         + " |")
    if report["finetune"]:
        lines += ["", "## Fine-tuning sets", "", "| iteration | model | episodes (with repeats) | self-collected "
                  "(planner: kept; policy: all executed) | their share of steps |", "|---:|---|---:|---:|---:|"]
        for f in report["finetune"]:
            share = f["self_step_share"]
            lines.append(f"| {f['iteration']} | {f['model']} | {f['episodes']} | {f['self_episodes']} | "
                         f"{'n/a' if share is None else f'{share:.2f}'} |")
    if phases is not None:
        lines += ["", "## Wall time per phase", "", "| phase | seconds |", "|---|---:|"]
        lines += [f"| {phase} | {info.get('wall_s', float('nan')):.0f} |" for phase, info in phases.items()]
        spent = sum(info.get("wall_s", 0.0) for info in phases.values())
        lines += [f"| **total**: {spent / 60:.1f} min" + (f", budget {budget_minutes:g} min" if budget_minutes else "")
                  + f" | {spent:.0f} |"]
    return lines


def write_report(cfg, run_dir: Path, state) -> dict[str, Any]:
    """report/ of one run (see the module docstring); returns the sail.json numbers."""
    out = run_dir / "report"
    out.mkdir(parents=True, exist_ok=True)
    report = build_report(cfg, state)
    lines = summary_lines(report, state.data["done"], cfg.budget_minutes)
    videos = out / "videos"
    if videos.exists():  # the latest iteration moves on: no stale copies
        shutil.rmtree(videos)
    curve = report["curve"]
    if curve:
        for label, point in (("first", curve[0]), ("latest", curve[-1])):
            src = run_dir / f"iter_{point['iteration']}" / "eval" / "videos"
            if src.exists():
                shutil.copytree(src, videos / f"{label}_iter_{point['iteration']}", dirs_exist_ok=True)
        if videos.exists():  # none with videos=0
            lines += ["", f"Videos (plan beside execution): `videos/first_iter_{curve[0]['iteration']}/`, "
                          f"`videos/latest_iter_{curve[-1]['iteration']}/`."]
    (out / "summary.md").write_text("\n".join(lines) + "\n")
    (out / "sail.json").write_text(json.dumps(report, indent=1, sort_keys=True))
    (out / "timing.json").write_text(json.dumps({p: i.get("wall_s") for p, i in state.data["done"].items()}, indent=1))
    if curve:
        plot_curve(curve, report["tasks"], out / "success.png", lines[0].removeprefix("# "))
    return report


def plot_curve(curve: list[dict[str, Any]], tasks: list[str], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    its = [c["iteration"] for c in curve]
    fig, ax = plt.subplots(figsize=(6, 4))
    styles = ["--", ":", "-.", (0, (1, 3)), (0, (5, 2, 1, 2))]
    for n, task in enumerate(tasks):
        rates = [success_rate(*c["tasks"][task]).value if task in c["tasks"] else float("nan") for c in curve]
        ax.plot(its, rates, color="0.55", linewidth=1, linestyle=styles[n % len(styles)], label=task)
    rate = [c["rate"] for c in curve]
    err = [[c["rate"] - c["low"] for c in curve], [c["high"] - c["rate"] for c in curve]]
    ax.errorbar(its, rate, yerr=err, color="#c44e52", marker="o", capsize=4, linewidth=2, label="pooled (95% Wilson)")
    ax.set_xticks(its)
    ax.set_ylim(0, 1)
    ax.set_xlabel("SAIL iteration (rounds of self-training)")
    ax.set_ylabel("success on held-out seeds")
    ax.set_title(title, fontsize=8)
    ax.legend(loc="upper left", fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


# --- several runs: embodied-sail-summary ----------------------------------------------------------
def _flat(d: Any, prefix: str = "") -> dict[str, Any]:
    if not isinstance(d, dict):
        return {prefix: json.dumps(d, sort_keys=True)}
    out: dict[str, Any] = {}
    for k, v in d.items():
        out.update(_flat(v, f"{prefix}.{k}" if prefix else str(k)))
    return out


def _mean_std(values: list[float]) -> tuple[float, float]:
    return statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else 0.0


def _ms(pair: tuple[float, float]) -> str:
    return f"{pair[0]:.2f} ± {pair[1]:.2f}"


def _pooled_outcomes(reports: list[dict[str, Any]], it: int, tasks: list[str]) -> list[int]:
    """Every (loop seed, task, test seed) outcome of iteration ``it``, in one fixed order."""
    return [x for r in sorted(reports, key=lambda r: r["config"]["seed"]) for t in tasks for x in r["outcomes"][str(it)][t]]


def summarize(root: str | Path) -> dict[str, Any]:
    """Group the runs under ``root`` and write root/summary.md and summary.json (see the module docstring)."""
    root = Path(root)
    found = sorted(root.rglob("report/sail.json"))
    if not found:
        raise FileNotFoundError(f"no SAIL run under {root}: expected <run dir>/report/sail.json (give the multirun "
                                f"dir of embodied-sail --multirun, or a dir holding run dirs)")
    reports = [json.loads(p.read_text()) for p in found]
    groups: dict[str, list[dict[str, Any]]] = {}
    for r in reports:
        key = json.dumps({k: v for k, v in r["config"].items() if k not in ("seed", "store")}, sort_keys=True)
        groups.setdefault(key, []).append(r)
    flats = {key: _flat(json.loads(key)) for key in groups}
    differing = sorted(k for k in set().union(*flats.values()) if len({f.get(k) for f in flats.values()}) > 1)

    def label(key: str) -> str:
        """The keys this group differs in from the others; a config group by its name (grader=none)."""
        config, parts, named = json.loads(key), [], set()
        for k in differing:
            top = k.split(".")[0]
            if isinstance(config.get(top), dict) and "name" in config[top]:
                if top not in named:
                    named.add(top)
                    parts.append(f"{top}={config[top]['name']}")
            else:
                parts.append(f"{k}={json.loads(flats[key][k]) if k in flats[key] else '(absent)'}")
        return ", ".join(parts) or "all runs"

    summary: dict[str, Any] = {"root": str(root), "groups": []}
    lines = [f"# SAIL over loop seeds: {root}", "",
             "Mean ± std over loop seeds of the success rate on the same measured seeds; the paired test pools every "
             "(loop seed, task, seed) episode against iteration 0 (exact McNemar).", ""]
    for key, runs in groups.items():
        tasks = runs[0]["tasks"]
        iterations = sorted(set.intersection(*[{int(i) for i in r["outcomes"]} for r in runs]))
        loop_seeds = sorted(r["config"]["seed"] for r in runs)
        rows = []
        for it in iterations:
            per_task = {t: _mean_std([_rate_of(r, it, t) for r in runs]) for t in tasks}
            pooled = _mean_std([_rate_of(r, it) for r in runs])
            test = vars(paired(_pooled_outcomes(runs, iterations[0], tasks), _pooled_outcomes(runs, it, tasks)))
            rows.append({"iteration": it, "tasks": per_task, POOLED: pooled, "paired_vs_first": test})
        rose = [r["config"]["seed"] for r in runs if len(iterations) > 1
                and _rate_of(r, iterations[-1]) > _rate_of(r, iterations[0])]
        group = {"label": label(key), "loop_seeds": loop_seeds, "tasks": tasks, "rows": rows, "rose_in": sorted(rose),
                 "self_training": runs[0]["config"]["self_training"], "_key": key, "_runs": runs}
        summary["groups"].append(group)
        lines += [f"## {group['label']} (loop seeds {loop_seeds})", "",
                  "| iteration | " + " | ".join(tasks) + " | pooled | pooled vs iteration 0 |",
                  "|---:|" + "---:|" * (len(tasks) + 2)]
        for row in rows:
            lines.append(f"| {row['iteration']} | " + " | ".join(_ms(row["tasks"][t]) for t in tasks)
                         + f" | {_ms(row[POOLED])} | {_cell(row['paired_vs_first']) if row['iteration'] else '-'} |")
        if len(iterations) > 1:
            lines += ["", f"Pooled success at iteration {iterations[-1]} above iteration {iterations[0]} in "
                          f"{len(rose)} of {len(runs)} loop seeds ({rose})."]
        lines.append("")
    lines += _loop_vs_control(summary["groups"])
    plot_groups(summary["groups"], root / "summary.png", f"SAIL over loop seeds: {root.name}")
    lines += ["![pooled success per iteration](summary.png)", ""]
    for group in summary["groups"]:
        group.pop("_key")
        group.pop("_runs")
    text = "\n".join(lines) + "\n"
    (root / "summary.md").write_text(text)
    (root / "summary.json").write_text(json.dumps(summary, indent=1))
    summary["markdown"] = text
    return summary


def plot_groups(groups: list[dict[str, Any]], path: Path, title: str) -> None:
    """Pooled success per iteration of each group (every loop seed's episodes together), 95 %
    Wilson intervals: the loop beside its control."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for n, group in enumerate(groups):
        its = [row["iteration"] for row in group["rows"]]
        rates = [success_rate(sum(o), len(o)) for o in
                 (_pooled_outcomes(group["_runs"], it, group["tasks"]) for it in its)]
        shift = 0.04 * (n - (len(groups) - 1) / 2)  # side by side where intervals overlap
        ax.errorbar([it + shift for it in its], [r.value for r in rates],
                    yerr=[[r.value - r.low for r in rates], [r.high - r.value for r in rates]], marker="o",
                    capsize=4, linewidth=2 if group["self_training"] else 1.2,
                    linestyle="-" if group["self_training"] else "--",
                    label=f"{group['label']} ({len(group['loop_seeds'])} loop seeds)")
    ax.set_ylim(0, 1)
    ax.set_xlabel("SAIL iteration (rounds of fine-tuning)")
    ax.set_ylabel("pooled success on the measured seeds")
    ax.set_title(title, fontsize=8)
    ax.legend(loc="upper left", fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def _rate_of(report: dict[str, Any], it: int, task: str | None = None) -> float:
    outcomes = report["outcomes"][str(it)]
    values = outcomes[task] if task else [x for t in report["tasks"] for x in outcomes[t]]
    return sum(values) / len(values) if values else float("nan")


def _loop_vs_control(groups: list[dict[str, Any]]) -> list[str]:
    """Loop and control side by side, where they differ in nothing but self_training."""
    lines = []
    for loop in (g for g in groups if g["self_training"]):
        config = {**json.loads(loop["_key"]), "self_training": False}
        control = next((g for g in groups if json.loads(g["_key"]) == config), None)
        if control is None:
            continue
        seeds = sorted(set(loop["loop_seeds"]) & set(control["loop_seeds"]))
        loops = [r for r in loop["_runs"] if r["config"]["seed"] in seeds]
        controls = [r for r in control["_runs"] if r["config"]["seed"] in seeds]
        its = sorted({row["iteration"] for row in loop["rows"]} & {row["iteration"] for row in control["rows"]})
        lines += [f"## Loop against its control (self_training=false), loop seeds {seeds}", "",
                  "| iteration | loop (pooled) | control (pooled) | loop vs control: gained / lost, p |",
                  "|---:|---:|---:|---:|"]
        for it in its:
            a = _pooled_outcomes(controls, it, loop["tasks"])
            b = _pooled_outcomes(loops, it, loop["tasks"])
            loop["loop_vs_control"] = loop.get("loop_vs_control", []) + [{"iteration": it, **vars(paired(a, b))}]
            lines.append(f"| {it} | {_ms(_mean_std([_rate_of(r, it) for r in loops]))} | "
                         f"{_ms(_mean_std([_rate_of(r, it) for r in controls]))} | {paired(a, b)} |")
        lines.append("")
    return lines
