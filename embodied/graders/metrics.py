"""How well a grader agrees with the simulator: accuracy (95 % Wilson interval), precision, recall, F1."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from embodied.stats import Rate, success_rate


@dataclass(frozen=True)
class BinaryMetrics:
    """Confusion counts of predicted success against the ground truth (positive = success)."""

    tp: int
    fp: int
    fn: int
    tn: int

    @classmethod
    def from_labels(cls, truth: Sequence[bool], predicted: Sequence[bool]) -> BinaryMetrics:
        if len(truth) != len(predicted):
            raise ValueError(f"{len(truth)} labels but {len(predicted)} predictions")
        pairs = list(zip(map(bool, truth), map(bool, predicted)))
        return cls(tp=pairs.count((True, True)), fp=pairs.count((False, True)),
                   fn=pairs.count((True, False)), tn=pairs.count((False, False)))

    @property
    def total(self) -> int:
        return self.tp + self.fp + self.fn + self.tn

    @property
    def accuracy(self) -> Rate:
        return success_rate(self.tp + self.tn, self.total)

    @property
    def precision(self) -> float:  # of the episodes kept, how many truly succeeded
        return self.tp / (self.tp + self.fp) if self.tp + self.fp else float("nan")

    @property
    def recall(self) -> float:  # of the true successes, how many were kept
        return self.tp / (self.tp + self.fn) if self.tp + self.fn else float("nan")

    @property
    def f1(self) -> float:  # undefined (NaN) when there is no positive, predicted or true
        errors_and_hits = 2 * self.tp + self.fp + self.fn
        return 2 * self.tp / errors_and_hits if errors_and_hits else float("nan")

    def to_dict(self) -> dict:
        acc = self.accuracy
        row = {"episodes": self.total, "tp": self.tp, "fp": self.fp, "fn": self.fn, "tn": self.tn,
               "accuracy": acc.value, "accuracy_low": acc.low, "accuracy_high": acc.high,
               "precision": self.precision, "recall": self.recall, "f1": self.f1}
        return {k: None if isinstance(v, float) and math.isnan(v) else v for k, v in row.items()}  # JSON: null


def metrics_table(rows: dict[str, BinaryMetrics], label: str = "episodes") -> str:
    """Markdown: one row per named group (e.g. all episodes, then per source); ``label`` heads the names."""
    lines = [f"| {label} | n | accuracy [95% CI] | precision | recall | F1 | TP | FP | FN | TN |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for name, m in rows.items():
        lines.append(f"| {name} | {m.total} | {m.accuracy} | {_num(m.precision)} | {_num(m.recall)} | {_num(m.f1)} | "
                     f"{m.tp} | {m.fp} | {m.fn} | {m.tn} |")
    return "\n".join(lines)


def _num(x: float) -> str:
    return "n/a" if math.isnan(x) else f"{x:.3f}"


def confusion_table(m: BinaryMetrics) -> str:
    return "\n".join([
        "| sim \\ grader | success | failure |",
        "|---|---:|---:|",
        f"| success | {m.tp} | {m.fn} |",
        f"| failure | {m.fp} | {m.tn} |",
    ])
