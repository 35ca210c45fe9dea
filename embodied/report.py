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
