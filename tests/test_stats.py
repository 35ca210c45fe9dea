import pytest

from embodied.stats import success_rate, wilson_interval


# Newcombe (1998), "Two-sided confidence intervals for the single proportion", Table II, method 3.
@pytest.mark.parametrize(
    "k, n, low, high",
    [(81, 263, 0.2553, 0.3662), (15, 148, 0.0624, 0.1605), (0, 20, 0.0, 0.1611), (1, 29, 0.0061, 0.1718)],
)
def test_wilson_matches_published_values(k, n, low, high):
    lo, hi = wilson_interval(k, n)
    assert lo == pytest.approx(low, abs=6e-5)
    assert hi == pytest.approx(high, abs=6e-5)


def test_wilson_ends_are_exact_and_symmetric():
    assert wilson_interval(10, 10)[1] == 1.0
    assert wilson_interval(0, 10)[0] == 0.0
    lo, hi = wilson_interval(3, 10)
    lo2, hi2 = wilson_interval(7, 10)
    assert lo == pytest.approx(1 - hi2) and hi == pytest.approx(1 - lo2)


def test_wilson_rejects_impossible_counts():
    with pytest.raises(ValueError, match="successes <= trials"):
        wilson_interval(5, 3)
    assert str(success_rate(0, 0)) == "n/a"
    assert str(success_rate(1, 2)).startswith("0.50 [")


def test_mcnemar_exact_is_the_binomial_test_of_the_discordant_pairs():
    from embodied.stats import mcnemar_exact, paired

    # 0 vs 6 discordant pairs: p = 2 * 0.5**6
    assert mcnemar_exact(6, 0) == pytest.approx(2 * 0.5**6)
    assert mcnemar_exact(0, 0) == 1.0 and mcnemar_exact(3, 3) == 1.0
    # Agresti (2002), Table 10.1 style check: 2 x binomial tail P(X <= 1 | n = 9) = 20 / 512
    assert mcnemar_exact(8, 1) == pytest.approx(2 * (1 + 9) / 2**9)
    result = paired([1, 1, 0, 0, 0, 1], [1, 0, 1, 1, 0, 1])
    assert (result.episodes, result.before, result.after, result.gained, result.lost) == (6, 3, 4, 2, 1)
    assert result.p_value == pytest.approx(1.0) and str(result).startswith("+2 / -1, p = ")
    with pytest.raises(ValueError, match="same episodes"):
        paired([1, 0], [1])
