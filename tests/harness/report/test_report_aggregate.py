"""Seed statistics, verdicts, configuration grouping, the runs-frame checks, text escaping and plot geometry."""

import math

import numpy as np
import pandas as pd
import pytest

from harness.report import verdict
from harness.report.aggregate import (INCONCLUSIVE, NO_CLAIM, NOT_REPRODUCED, NOT_RUN, REPRODUCED, SINGLE_RUN, Stat,
                                      claim_verdict, distinguishing, group_configs, sampling_half_width,
                                      unique_runs)
from harness.report.formats import latex_escape, to_markdown, Column, DisplayTable, Panel
from harness.report.frame import load_runs
from harness.report.plots import Point, pareto_front, scatter
from report_runs import fixture_runs, run

T_975_DF2 = 4.302652729749462  # Student t quantile 0.975 with 2 degrees of freedom (statistical tables)


def test_stat_is_mean_sample_std_and_t_interval():
    stat = Stat.of([1.0, 2.0, 3.0])
    half = T_975_DF2 * 1.0 / math.sqrt(3)
    assert (stat.n, stat.mean, stat.std) == (3, 2.0, 1.0)
    assert stat.ci_low == pytest.approx(2.0 - half) and stat.ci_high == pytest.approx(2.0 + half)
    assert Stat.of([5.0, float("nan")]) == Stat(1, 5.0, None, None, None)
    assert Stat.of([]) == Stat(0, None, None, None, None)


def _t_interval(values):
    """The 95% two-sided t-interval of the mean, computed here independently with scipy."""
    from scipy import stats

    return stats.t.interval(0.95, len(values) - 1, loc=np.mean(values), scale=stats.sem(values))


@pytest.mark.parametrize("values, claim, margin, expected", [
    ([79.0, 84.0], 80.0, 0.5, INCONCLUSIVE),  # issue 12: noise no longer passes (interval [49.7, 113.3])
    ([80.4, 80.5, 80.6], 81.35, 0.5, NOT_REPRODUCED),  # issue 12: tight seeds wholly below the margin
    ([80.4, 80.5, 80.6], 80.6, 0.5, REPRODUCED),  # the same seeds, interval inside 80.6 +- 0.5
    ([80.4, 80.5, 80.6], 81.0, 0.5, INCONCLUSIVE),  # interval [80.25, 80.75] straddles 80.5
    ([85.2, 84.9, 85.1], 85.06, 0.5, REPRODUCED),
    ([45.1, 45.5, 45.3], 45.88, 0.1 * 45.88, REPRODUCED),  # energy: a relative margin of 10%
    ([45.1, 45.5, 45.3], 60.0, 0.1 * 60.0, NOT_REPRODUCED),
    ([70.0, 70.0], 70.2, 0.5, REPRODUCED),  # zero spread and no test-set size: the interval is the mean
    ([71.0, 71.0], 70.2, 0.5, NOT_REPRODUCED),
    ([80.0], 80.0, 0.5, SINGLE_RUN),  # one seed has no interval, however close
    ([], 80.0, 0.5, NOT_RUN),
])
def test_verdict_is_an_equivalence_test(values, claim, margin, expected):
    assert verdict(values, claim, margin) == expected
    if len(values) >= 2 and np.std(values) > 0:
        low, high = _t_interval(values)
        stat = Stat.of(values)
        assert (stat.ci_low, stat.ci_high) == (pytest.approx(low), pytest.approx(high))
        inside = claim - margin <= low and high <= claim + margin
        outside = high < claim - margin or low > claim + margin
        assert expected == (REPRODUCED if inside else NOT_REPRODUCED if outside else INCONCLUSIVE)


def test_verdict_boundaries_follow_the_hand_computed_interval():
    values = [80.4, 80.5, 80.6]
    low, high = _t_interval(values)
    assert (low, high) == (pytest.approx(80.2516, abs=1e-4), pytest.approx(80.7484, abs=1e-4))
    margin = 0.5
    assert verdict(values, high - margin + 1e-9, margin) == REPRODUCED  # upper edge just inside
    assert verdict(values, high - margin - 1e-6, margin) == INCONCLUSIVE
    assert verdict(values, low - margin - 1e-6, margin) == NOT_REPRODUCED  # interval wholly above
    assert verdict([79.0, 84.0], 80.0, 0.5) == INCONCLUSIVE
    assert _t_interval([79.0, 84.0]) == (pytest.approx(49.7345, abs=1e-3), pytest.approx(113.2655, abs=1e-3))


def test_claim_verdict_names_missing_claims_and_runs():
    assert claim_verdict(None, [80.0, 80.1], 0.5) == NO_CLAIM
    assert claim_verdict(80.0, [], 0.5) == NOT_RUN
    assert claim_verdict(80.0, [float("nan")], 0.5) == f"{NOT_REPRODUCED} (1 of 1 seeds diverged)"
    assert claim_verdict(80.0, [80.0, 80.02, 79.98], 0.5) == REPRODUCED


def test_one_seed_is_a_single_run_not_a_bare_inconclusive():
    assert verdict([81.35], 81.35, 0.5) == SINGLE_RUN == "single run"
    assert verdict([81.35], 81.35, 0.5, n_test=50_000) == SINGLE_RUN


def test_identical_seeds_cannot_claim_certainty_on_a_small_test_set():
    """Three identical seeds have a t-interval of zero width; the sampling error of a top-1 on 100 images
    (p ~ 0.1: about 6 points) floors it, so the claim half a point away is not reproduced."""
    assert verdict([10, 10, 10], 10.5, 0.5) == REPRODUCED  # without the test-set size: false certainty
    assert verdict([10, 10, 10], 10.5, 0.5, n_test=100) == INCONCLUSIVE
    p = (0.10 * 100 + 2) / (100 + 4)  # Agresti-Coull, computed here by hand
    half = 1.959963984540054 * 100 * math.sqrt(p * (1 - p) / 100)
    stat = Stat.of([10, 10, 10], n_test=100)
    assert (stat.ci_low, stat.ci_high) == (pytest.approx(10 - half), pytest.approx(10 + half))
    assert sampling_half_width(10.0, 100) == pytest.approx(half)
    assert sampling_half_width(100.0, 100) > 0  # a perfect score still has a sampling error


def test_the_sampling_floor_only_widens_a_narrower_t_interval():
    values = [80.4, 80.5, 80.6]  # t half-width 0.248
    assert Stat.of(values, n_test=10_000_000) == Stat.of(values)  # the floor (0.025) is narrower
    wide = Stat.of(values, n_test=10_000)  # floor 1.96 sqrt(.8 .2 / 1e4) = 0.78 points
    assert wide.ci_high - wide.mean == pytest.approx(sampling_half_width(80.5, 10_000))
    assert verdict(values, 80.6, 0.5) == REPRODUCED and verdict(values, 80.6, 0.5, n_test=10_000) == INCONCLUSIVE


@pytest.mark.parametrize("values, expected", [
    ([80.0, 80.1, float("nan")], f"{INCONCLUSIVE} (1 of 3 seeds diverged)"),  # survivors inside: not enough
    ([80.0, None, float("nan")], f"{SINGLE_RUN} (2 of 3 seeds diverged)"),
    ([float("nan")] * 3, f"{NOT_REPRODUCED} (3 of 3 seeds diverged)"),
    ([70.0, 70.1, float("nan")], f"{NOT_REPRODUCED} (1 of 3 seeds diverged)"),
])
def test_diverged_seeds_are_counted_never_dropped(values, expected):
    assert verdict(values, 80.0, 0.5) == expected


def test_a_configuration_weighs_its_diverged_seeds_and_its_test_set_size():
    rows = [run(f"x{s}", "sdt_2_512.cifar10", "cifar10", 4, s, 90.0, eval_images=n)
            for s, n in ((0, 10_000), (1, 9_000))]
    rows.append(run("x2", "sdt_2_512.cifar10", "cifar10", 4, 2, None, state="diverged", reason="loss is nan"))
    (config,) = group_configs(load_runs(pd.DataFrame(rows)))
    assert config.n_test == 9_000  # the fewest images any seed was evaluated on: the widest sampling error
    assert config.seed_values("best_top1")[:2] == [90.0, 90.0] and math.isnan(config.seed_values("best_top1")[2])
    assert config.top1_stat() == Stat.of([90.0, 90.0], n_test=9_000) != Stat.of([90.0, 90.0])
    assert config.top1_verdict(90.0, 0.5) == f"{INCONCLUSIVE} (1 of 3 seeds diverged)"
    unrecorded = pd.DataFrame([{**r, "eval_images": None} for r in rows[:2]])  # runs logged before eval_images
    (old,) = group_configs(load_runs(unrecorded))
    assert old.n_test is None and old.top1_stat() == Stat.of([90.0, 90.0])


def test_configurations_pool_seeds_and_keep_unfinished_runs_apart():
    configs = {(c.dataset, c.model, c.T, c.variant, c.recipe): c for c in group_configs(load_runs(fixture_runs()))}
    msvit = configs[("cifar100", "msvit_4_384.cifar100", 4, None, "msvit_cifar100")]
    assert msvit.runs["seed"].tolist() == [0, 1, 2, 3]
    assert msvit.stat("top1").n == 3 and msvit.unfinished == 1
    assert msvit.suites == ["other", "paper"]  # run c100s0 is logged in both suites, counted once
    by_run = {run_id: c for c in group_configs(load_runs(fixture_runs())) for run_id in c.runs["run_id"]}
    assert by_run["qkc10e5"].budget == "epochs=5" and by_run["qkc10e5"].variant_label is None
    assert by_run["tinyqk0"].variant_label == "depths=[1, 1, 1], widths=[16, 32, 64]"
    assert configs[("imagenet", "msvit_10_768.in1k", 4, None, "msvit_imagenet")].budget is None
    assert len(set(map(id, by_run.values()))) == 18


def test_budget_is_not_recorded_without_spec_params():
    frame = fixture_runs()
    bare = frame.drop(columns=[c for c in frame.columns if c.startswith("params.")])
    assert {c.budget for c in group_configs(load_runs(bare))} == {"not recorded"}


def test_unique_runs_keeps_the_latest_copy_and_all_suites():
    frame = load_runs(pd.DataFrame([run("a", "m", "d", 4, 0, 1.0, suite="s1", day=1),
                                    run("a", "m", "d", 4, 0, 2.0, suite="s2", day=5)]))
    runs = unique_runs(frame)
    assert runs["best_top1"].tolist() == [2.0] and runs["suites"].tolist() == [("s1", "s2")]


def test_distinguishing_names_what_differs():
    frame = load_runs(pd.DataFrame([run("a", "m", "d", 4, 0, 1.0, recipe="r1"),
                                    run("b", "m", "d", 4, 0, 1.0, recipe="r2"),
                                    run("c", "m", "d", 4, 0, 1.0, recipe="r2", epochs=3)]))
    configs = group_configs(frame)
    labels = {configs[i].runs["run_id"].item(): label for i, label in distinguishing(configs).items()}
    assert labels == {"a": "recipe=r1, epochs=None", "b": "recipe=r2, epochs=None", "c": "recipe=r2, epochs=3"}
    assert distinguishing(group_configs(frame)[:1]) == {0: ""}


def test_load_runs_checks_columns_and_skips_malformed_runs():
    frame = fixture_runs()
    with pytest.raises(ValueError, match=r"lacks the columns \['seed'\]"):
        load_runs(frame.drop(columns=["seed"]))
    bad = frame.copy()
    bad.loc[0, "T"] = "four"
    bad.loc[1, "seed"] = "1.5"
    bad.loc[2, "run_id"] = None
    with pytest.warns(UserWarning) as caught:
        runs = load_runs(bad)
    messages = [str(w.message) for w in caught]
    assert messages == ["runs frame: MLflow run mlflow-in1k768s2-paper has no run_id tag; skipped",
                        "runs frame: run in1k768s0 (MLflow run mlflow-in1k768s0-paper) has T='four', not an integer; "
                        "skipped",
                        "runs frame: run in1k768s1 (MLflow run mlflow-in1k768s1-paper) has seed='1.5', not an "
                        "integer; skipped"]
    assert len(runs) == len(frame) - 3 and "in1k768s0" not in set(runs["run_id"])
    runs = load_runs(frame, suite="other")
    assert sorted(runs["run_id"]) == ["c100s0", "sdt384s0"]
    assert runs["variant"].tolist() == [None, None] and runs["T"].dtype.kind == "i"


def test_text_escaping():
    assert latex_escape("a_b & 5% ± Δ — {x} ‡") == r"a\_b \& 5\% $\pm$ $\Delta$ -- \{x\} \ddag{}"
    table = DisplayTable("t", "T", (Column("a", "A", align="l"),), (Panel(None, ({"a": "x|y"},)),), ())
    assert "| x\\|y |" in to_markdown(table)


def test_pareto_front_and_log_axis():
    points = [Point(1.0, 70.0, "a", True), Point(2.0, 60.0, "b", True), Point(3.0, 80.0, "c", True),
              Point(50.0, 81.0, "d", True), Point(0.5, 90.0, "paper", False)]
    assert [p.label for p in pareto_front(points[:4])] == ["a", "c", "d"]
    plot = scatter(points, "t", "x", "y", log_x=True)
    assert plot.log_x and [p.label for p in plot.points if p.on_front] == ["a", "c", "d"]
    assert not scatter(points, "t", "x", "y").log_x  # the caller chooses the scale, not the spread of the points
    single = scatter([Point(10.0, 50.0, "one", True)], "t", "x", "y", log_x=True)
    assert single.plot_left <= single.points[0].px <= single.plot_right  # one point: a decade around it
    assert scatter([Point(0.0, 50.0, "zero", True)], "t", "x", "y", log_x=True) is None  # no place on a log axis
    assert plot.points[0].label == "paper"  # claims are drawn first, under the measured points
    xs = {p.label: p.px for p in plot.points}
    assert plot.plot_left <= xs["paper"] < xs["a"] < xs["c"] < xs["d"] <= plot.plot_right
    assert scatter([], "t", "x", "y") is None


def test_many_logged_params_do_not_fragment_the_frame():
    """Real runs log a hundred-odd recipe params; cleaning them column by column fragmented the frame."""
    import warnings

    frame = fixture_runs()
    params = pd.DataFrame({f"params.recipe.k{i}": [str(i)] * len(frame) for i in range(150)})
    with warnings.catch_warnings():
        warnings.simplefilter("error", pd.errors.PerformanceWarning)
        runs = load_runs(pd.concat([frame, params], axis=1))
    assert runs["params.recipe.k149"].tolist() == ["149"] * len(frame)
