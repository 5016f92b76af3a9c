"""The released-weights table's arithmetic: the implied firing rate inverts Eq. 18, the verdict of one evaluation
rests on the binomial sampling interval of its top-1."""

import pandas as pd
import pytest
from report_runs import run

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


def _released_frame():
    """An eval-only QKFormer-10-384 run (as logged), a failed eval-only run, and a trained run of the same model."""
    evaluated = {**run("rel", "qkformer_10_384.in1k", "imagenet", 4, 0, None, suite="released", energy=20.0),
                 "top1": 78.73, "eval_images": 50000.0, "eval_batch": 64.0, "top1_batch1": 74.20,
                 "top1_batch_diff": 4.53, "first_layer_macs": 4.0e8, "dense_sops": 9.0e9, "batch_dependent": "true",
                 "weights_sha256": "c" * 64}
    failed = {**run("relfail", "msvit_10_768.in1k", "imagenet", 4, 0, None, suite="released", state="failed"),
              "weights_sha256": "d" * 64}
    trained = run("trained", "qkformer_10_384.in1k", "imagenet", 4, 0, 78.5, suite="released")
    return pd.DataFrame([evaluated, failed, trained])


def test_released_lines_join_the_papers_claims_and_leave_trained_runs_out():
    from harness.report.claims import load_claims
    from harness.report.frame import load_runs
    from harness.report.released import released_records

    records = {r["model"]: r for r in released_records(load_runs(_released_frame()), load_claims())}
    assert set(records) == {"qkformer_10_384.in1k", "msvit_10_768.in1k"}  # the trained run is not a line
    qk = records["qkformer_10_384.in1k"]
    assert (qk["top1_claimed"], qk["energy_mj_claimed"]) == (78.8, 15.13)  # the paper's Table 1 row
    assert qk["top1"] == 78.73 and qk["top1_batch1"] == 74.20 and qk["eval_batch"] == 64
    assert qk["verdict"] == released_verdict(78.8, 78.73, 50000, 0.5) == REPRODUCED
    assert qk["implied_firing_rate"] == pytest.approx((15.13e9 - E_MAC_PJ * 4.0e8) / (E_AC_PJ * 9.0e9))
    assert records["msvit_10_768.in1k"]["verdict"] == f"{NOT_RUN} (1 failed)"


def test_the_arguments_a_released_checkpoint_needs_keep_its_claim_and_other_overrides_drop_it():
    # SDT v2's released 55M checkpoint needs its distillation head (the packaged catalog's model_args {kd: true}):
    # a run built so measures the paper's row; a model shrunk by overrides does not
    from harness.report.claims import load_claims
    from harness.report.frame import load_runs
    from harness.report.released import released_records
    from harness.weights.catalog import active_catalog

    assert active_catalog().get("sdtv2_10_768.in1k").model_args == {"kd": True}
    rows = []
    for run_id, overrides in (("kd", {"kd": True}), ("shrunk", {"kd": True, "depths": [1, 1]})):
        rows.append({**run(run_id, "sdtv2_10_768.in1k", "imagenet", 4, 0, None, suite="released", energy=50.0,
                           overrides=overrides),
                     "top1": 79.9, "eval_images": 50000.0, "weights_sha256": run_id[0] * 64})
    records = {r["run_id"]: r for r in released_records(load_runs(pd.DataFrame(rows)), load_claims())}
    assert records["kd"]["top1_claimed"] == 80.00 and records["kd"]["energy_mj_claimed"] == 52.40
    assert records["shrunk"]["top1_claimed"] is None
