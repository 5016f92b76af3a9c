"""The released-weights table's arithmetic: the implied firing rate inverts Eq. 18, the verdict of one evaluation
rests on the binomial sampling interval of its top-1."""

import pytest

from harness.metrics.energy import E_AC_PJ, E_MAC_PJ, PJ_PER_MJ
from harness.report.aggregate import INCONCLUSIVE, NO_CLAIM, NOT_REPRODUCED, NOT_RUN, REPRODUCED
from harness.report.released import implied_firing_rate, released_verdict, wilson_interval


def test_the_implied_firing_rate_puts_back_the_energy_it_came_from():
    encoding, dense = 3.2e7, 6.0e9
    for rate in (0.05, 0.3, 0.71):
        energy_mj = (E_MAC_PJ * encoding + E_AC_PJ * rate * dense) / PJ_PER_MJ
        assert implied_firing_rate(energy_mj, encoding, dense) == pytest.approx(rate)
    assert implied_firing_rate(None, encoding, dense) is None
    assert implied_firing_rate(1.0, encoding, 0.0) is None


def test_the_wilson_interval_matches_the_textbook_value_and_narrows_with_more_images():
    low, high = wilson_interval(80.0, 100)  # p = 0.8, n = 100: [0.7112, 0.8666]
    assert (low, high) == (pytest.approx(71.12, abs=0.01), pytest.approx(86.66, abs=0.01))
    low_50k, high_50k = wilson_interval(80.0, 50000)
    assert high_50k - low_50k < (high - low) / 20
    assert wilson_interval(100.0, 10)[1] == pytest.approx(100.0)


@pytest.mark.parametrize("claim, top1, images, expected", [
    (78.80, 78.73, 50000, REPRODUCED),  # 50k images: +-0.36 points, inside +-0.5 of 78.80
    (78.80, 74.20, 50000, NOT_REPRODUCED),  # QKFormer issue #14's batch-1 top-1
    (78.80, 78.73, 1000, INCONCLUSIVE),  # 1000 images: +-2.5 points straddle the margin
    (None, 78.73, 50000, NO_CLAIM),
    (78.80, None, None, NOT_RUN),
])
def test_the_verdict_of_one_evaluation_uses_the_sampling_error_of_its_images(claim, top1, images, expected):
    assert released_verdict(claim, top1, images, 0.5) == expected
