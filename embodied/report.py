"""Tables and plots a person reads after a run: per-task success with 95 % Wilson intervals."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from embodied.stats import Rate, success_rate


@dataclass(frozen=True)
class TaskStats:
    task: str
    episodes: int
    successes: int
    success_low: float  # 95 % Wilson interval
    success_high: float
    mean_length: float  # steps (actions) per episode

    @classmethod
    def from_episodes(cls, task: str, successes: Sequence[bool], lengths: Sequence[int]) -> TaskStats:
        rate = success_rate(int(sum(successes)), len(successes))
        mean_len = float(np.mean(lengths)) if len(lengths) else float("nan")
        return cls(task, len(successes), rate.successes, rate.low, rate.high, mean_len)

    @property
    def rate(self) -> Rate:
        return Rate(self.successes, self.episodes, self.success_low, self.success_high)


def overall(stats: Sequence[TaskStats], name: str = "mean (all episodes)") -> TaskStats:
    """Pooled over all episodes; mean length weighted by episodes."""
    n = sum(s.episodes for s in stats)
    k = sum(s.successes for s in stats)
    rate = success_rate(k, n)
    lengths = sum(s.mean_length * s.episodes for s in stats if s.episodes)
    return TaskStats(name, n, k, rate.low, rate.high, lengths / n if n else float("nan"))


def markdown_table(stats: Sequence[TaskStats]) -> str:
    rows = ["| task | episodes | expert success [95% CI] | mean length |", "|---|---:|---:|---:|"]
    for s in [*stats, overall(stats)]:
        rows.append(f"| {s.task} | {s.episodes} | {s.rate} | {s.mean_length:.1f} |")
    return "\n".join(rows)


def plot_success(stats: Sequence[TaskStats], path: Path, title: str) -> None:
    """Horizontal bar chart of success rates with their Wilson intervals."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    values = np.array([s.rate.value for s in stats])
    err = np.array([[v - s.success_low for v, s in zip(values, stats)], [s.success_high - v for v, s in zip(values, stats)]])
    fig, ax = plt.subplots(figsize=(7, 0.28 * len(stats) + 1.2))
    y = np.arange(len(stats))
    ax.barh(y, values, xerr=err, color="#4c72b0", ecolor="#333333", capsize=2)
    ax.set_yticks(y, [s.task for s in stats], fontsize=7)
    ax.invert_yaxis()
    ax.set_xlim(0, 1)
    ax.set_xlabel("success rate (95% Wilson interval)")
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def write_collect_report(stats: Sequence[TaskStats], out_dir: Path, title: str) -> None:
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "summary.md").write_text(f"# {title}\n\n{markdown_table(stats)}\n")
    (out_dir / "summary.json").write_text(json.dumps([asdict(s) for s in [*stats, overall(stats)]], indent=1))
    plot_success(stats, out_dir / "success.png", title)


# --- several methods on the same tasks and seeds (embodied-eval) -----------------------------------
MEAN_ROW = "mean over tasks"  # pooled over all episodes: the mean of the task rates when every task has as many


def with_mean(stats: Sequence[TaskStats]) -> list[TaskStats]:
    return [*stats, overall(stats, name=MEAN_ROW)]


def method_table(stats_by_method: dict[str, Sequence[TaskStats]]) -> str:
    """Markdown: one row per task (and the mean), per method its success [95% CI] and mean length."""
    methods = list(stats_by_method)
    head = "| task | episodes | " + " | ".join(f"{m}: success [95% CI] | {m}: mean length" for m in methods) + " |"
    rows = [head, "|---|---:|" + "---:|---:|" * len(methods)]
    columns = [with_mean(stats_by_method[m]) for m in methods]
    for cells in zip(*columns):
        values = " | ".join(f"{s.rate} | {s.mean_length:.1f}" for s in cells)
        rows.append(f"| {cells[0].task} | {cells[0].episodes} | {values} |")
    return "\n".join(rows)


def write_method_csv(stats_by_method: dict[str, Sequence[TaskStats]], path: Path) -> None:
    """Long format: one line per (method, task), the mean over tasks included."""
    import csv

    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["method", "task", "episodes", "successes", "success_rate", "success_low", "success_high",
                         "mean_length"])
        for method, stats in stats_by_method.items():
            for s in with_mean(stats):
                writer.writerow([method, s.task, s.episodes, s.successes, f"{s.rate.value:.4f}", f"{s.success_low:.4f}",
                                 f"{s.success_high:.4f}", f"{s.mean_length:.2f}"])


def plot_success_by_method(stats_by_method: dict[str, Sequence[TaskStats]], path: Path, title: str) -> None:
    """Grouped vertical bars: per task (and the mean), the methods side by side with Wilson intervals."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    methods = list(stats_by_method)
    columns = [with_mean(stats_by_method[m]) for m in methods]
    tasks = [s.task for s in columns[0]]
    x = np.arange(len(tasks))
    width = 0.8 / max(len(methods), 1)
    fig, ax = plt.subplots(figsize=(max(6.0, 0.5 * len(tasks) * max(len(methods), 1) + 2), 4.2))
    for i, (method, stats) in enumerate(zip(methods, columns)):
        values = np.array([s.rate.value for s in stats])
        err = np.array([values - [s.success_low for s in stats], [s.success_high for s in stats] - values])
        ax.bar(x + (i - (len(methods) - 1) / 2) * width, values, width, yerr=err, capsize=2, label=method,
               ecolor="#333333")
    ax.set_xticks(x, tasks, rotation=35, ha="right", fontsize=7)
    ax.set_ylim(0, 1.18)  # room for the legend above the bars
    ax.set_ylabel("success rate (95% Wilson interval)")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=7, loc="upper center", ncol=len(methods))
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def write_eval_report(stats_by_method: dict[str, Sequence[TaskStats]], out_dir: Path, title: str) -> str:
    """summary.md, summary.csv and success.png in ``out_dir``; returns the Markdown table."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    table = method_table(stats_by_method)
    (out_dir / "summary.md").write_text(f"# {title}\n\n{table}\n")
    write_method_csv(stats_by_method, out_dir / "summary.csv")
    plot_success_by_method(stats_by_method, out_dir / "success.png", title)
    return table
