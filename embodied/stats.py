"""Honest success rates: a proportion with its 95 % Wilson interval, and the paired test between
two measurements of the same (task, seed) episodes (exact McNemar). Both through scipy."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Rate:
    successes: int
    trials: int
    low: float
    high: float

    @property
    def value(self) -> float:
        return self.successes / self.trials if self.trials else float("nan")

    def __str__(self) -> str:
        if not self.trials:
            return "n/a"
        return f"{self.value:.2f} [{self.low:.2f}, {self.high:.2f}]"


def wilson_interval(successes: int, trials: int, confidence: float = 0.95) -> tuple[float, float]:
    """Wilson score interval of a binomial proportion (scipy's ``binomtest(...).proportion_ci``).

    Unlike the normal approximation it stays inside [0, 1] and is sensible at 0/n and n/n,
    which is exactly where small robot evaluations live. (0, 1) for no trials.
    """
    from scipy.stats import binomtest

    if trials < 0 or successes < 0 or successes > trials:
        raise ValueError(f"need 0 <= successes <= trials, got {successes}/{trials}")
    if trials == 0:
        return (0.0, 1.0)
    ci = binomtest(int(successes), int(trials)).proportion_ci(confidence_level=confidence, method="wilson")
    # exact ends at 0/n and n/n, no float noise
    return (0.0 if successes == 0 else float(ci.low), 1.0 if successes == trials else float(ci.high))


def success_rate(successes: int, trials: int) -> Rate:
    low, high = wilson_interval(successes, trials)
    return Rate(successes, trials, low, high)


@dataclass(frozen=True)
class Paired:
    """Two measurements ``before`` / ``after`` of the same episodes (same task, same seed).

    gained: episodes that failed before and succeed after; lost: the reverse. The exact McNemar
    test is the two-sided binomial test of ``gained`` among the ``gained + lost`` discordant
    pairs at p = 0.5 (the concordant pairs carry no information about a difference).
    """

    episodes: int
    before: int  # successes
    after: int
    gained: int
    lost: int
    p_value: float

    def __str__(self) -> str:
        return f"+{self.gained} / -{self.lost}, p = {self.p_value:.3g}"


def mcnemar_exact(gained: int, lost: int) -> float:
    """Two-sided exact McNemar p-value from the two discordant counts (1.0 when there are none)."""
    from scipy.stats import binomtest

    if gained < 0 or lost < 0:
        raise ValueError(f"discordant counts must be >= 0, got {gained}, {lost}")
    if gained + lost == 0:
        return 1.0
    return float(binomtest(int(gained), int(gained + lost), 0.5).pvalue)


def paired(before: Sequence[bool | int], after: Sequence[bool | int]) -> Paired:
    """The paired comparison of two outcome vectors aligned episode by episode."""
    if len(before) != len(after):
        raise ValueError(f"paired outcomes need the same episodes: {len(before)} vs {len(after)}")
    b, a = [bool(x) for x in before], [bool(x) for x in after]
    gained = sum(1 for x, y in zip(b, a) if y and not x)
    lost = sum(1 for x, y in zip(b, a) if x and not y)
    return Paired(len(b), sum(b), sum(a), gained, lost, mcnemar_exact(gained, lost))
