"""The column-wise aggregation (``PooledRuns``, ``pooled_stats``) against the per-configuration definitions it
replaces: the same statistics, verdicts, outcomes, badges and stale flags on runs with NaN and infinite metrics,
single seeds, failed and diverged runs, several code fingerprints and sources."""

import math

import numpy as np
import pandas as pd
import pytest

from harness.bundle.origin import DISAGREES, VERIFIED
from harness.engine.provenance import run_code
from harness.report.aggregate import (ALWAYS_LOGGED, COMPARED_TOP1, TEACHER_PARAM, Stat, claim_verdict,
                                      group_configs, pooled_stats, short_reason)
from harness.report.claims import load_claims
from harness.report.frame import load_runs
from harness.runs import checkout_fingerprint
from report_runs import fixture_runs, run
from test_report_sources import imported

NAN, INF = math.nan, math.inf
C10 = dict(model="spikformer_4_384.cifar10", dataset="cifar10", T=4, params=9_324_730)


def _same(a: Stat, b: Stat) -> bool:
    """Field-wise identity, NaN equal to NaN (an infinite sum's mean)."""
    return all(x == y or (isinstance(x, float) and isinstance(y, float) and math.isnan(x) and math.isnan(y))
               for x, y in zip(vars(a).values(), vars(b).values()))


def test_pooled_stats_are_stat_of_each_group_bit_for_bit():
    rng = np.random.default_rng(0)
    groups, values, n_test = [], [], []
    for group in range(400):
        size = int(rng.integers(0, 6))  # empty groups and single values among them
        draws = rng.uniform(0, 100, size)
        kinds = rng.random(size)
        draws[kinds < 0.1] = NAN
        draws[(kinds >= 0.1) & (kinds < 0.13)] = INF
        draws[(kinds >= 0.13) & (kinds < 0.15)] = -INF
        values += draws.tolist()
        groups += [group] * size
        n_test.append(rng.choice([NAN, 0.0, 50.0, 10_000.0]))
    pooled = pooled_stats(np.array(values), np.array(groups, dtype=int), 400, np.array(n_test))
    plain = pooled_stats(np.array(values), np.array(groups, dtype=int), 400)
    for group in range(400):
        members = [v for v, g in zip(values, groups) if g == group]
        images = None if math.isnan(n_test[group]) else int(n_test[group])
        assert _same(pooled.at(group), Stat.of(members, images)), (members, images)
        assert _same(plain.at(group), Stat.of(members))
    assert any(plain.at(g).ci_low is not None and pooled.at(g).ci_low < plain.at(g).ci_low for g in range(400))


def _mixed_runs() -> pd.DataFrame:
    """The tables' fixture plus what the pooled columns must get right: a finished run that logged NaN and one that
    logged an infinity, single seeds, failed and diverged runs with reasons, a configuration computed by two code
    fingerprints, imported copies verified or disagreeing, one configuration whose runs all failed."""
    rows = fixture_runs().to_dict("records") + [
        run("nan0", seed=0, top1=NAN, energy=1.0, **C10), run("nan1", seed=1, top1=91.0, energy=NAN, **C10),
        run("inf0", seed=2, top1=INF, energy=INF, **C10),
        run("div0", seed=3, top1=None, state="diverged", reason="loss is nan at epoch 3\ntraceback", **C10),
        run("old0", seed=0, top1=88.0, code="0123456789abcdef", **C10),
        run("fail0", "qkformer_4_384.cifar10", "cifar10", 4, 0, None, state="failed", reason="dataset missing"),
        run("fail1", "qkformer_4_384.cifar10", "cifar10", 4, 1, None, state="failed", reason="out of memory"),
        imported(run("imp0", seed=0, top1=90.0, **C10), verified=VERIFIED),
        imported(run("imp1", seed=1, top1=90.4, **C10), verified=DISAGREES, disagreements=3),
        imported(run("imp2", seed=2, top1=None, state="failed", reason="killed", **C10)),
    ]
    return load_runs(pd.DataFrame(rows))


def _finished(runs: pd.DataFrame) -> pd.DataFrame:
    return runs[runs["state"] == "finished"]


def _values(runs: pd.DataFrame, metric: str) -> list[float]:
    return [float(v) for v in _finished(runs)[metric] if not pd.isna(v)]


def _seed_values(runs: pd.DataFrame, metric: str) -> list[float]:
    finished = [float(v) for v in _finished(runs)[metric]] if metric in ALWAYS_LOGGED else _values(runs, metric)
    return finished + [math.nan] * int((runs["state"] == "diverged").sum())


def _n_test(runs: pd.DataFrame) -> int | None:
    counts = [int(v) for v in _finished(runs)["eval_images"] if not pd.isna(v)]
    return min(counts) if counts else None


def _outcome(runs: pd.DataFrame) -> str:
    others = runs[runs["state"] != "finished"]
    parts = []
    for state, group in sorted(others.groupby(others["state"].fillna("unknown state"), sort=False),
                               key=lambda item: (item[0] != "diverged", item[0])):
        reasons = sorted({short_reason(r) for r in group["reason"] if isinstance(r, str) and r.strip()})
        parts.append(f"{len(group)} {state}" + (f": {'; '.join(reasons)}" if reasons else ""))
    return ", ".join(parts)


def _stale(runs: pd.DataFrame) -> bool:
    finished = _finished(runs)
    teachers = finished.get(TEACHER_PARAM, pd.Series(None, index=finished.index))
    return any(recorded != checkout_fingerprint(*run_code(model, recipe, {"distill": {"teacher": teacher}}))
               for model, recipe, teacher, recorded in zip(finished["model"], finished["recipe"], teachers,
                                                           finished["code_fingerprint"]))


def test_every_configuration_gets_the_per_configuration_statistics_and_verdicts():
    configs = group_configs(_mixed_runs())
    metrics = (COMPARED_TOP1, "top1", "energy_mj", "params", "firing_rate", "train_device_hours", "sops")
    seen = set()
    for config in configs:
        runs = config.runs
        n_test = _n_test(runs)
        assert config.n_test == n_test and config.outcome == _outcome(runs)
        assert config.unfinished == int((runs["state"] != "finished").sum())
        assert config.stale == _stale(runs)
        for metric in metrics:
            assert _same(config.stat(metric), Stat.of(_values(runs, metric))), (config.model, metric)
            assert config.values(metric) == _values(runs, metric)
            assert config.seeds(metric) == len(_seed_values(runs, metric))
            assert config.only_nan(metric) == (len(_finished(runs)) > 0 and _finished(runs)[metric].isna().all())
        assert _same(config.top1_stat(), Stat.of(_values(runs, COMPARED_TOP1), n_test))
        mean = config.top1_stat().mean
        for claim in (None, 90.0, 95.3, 60.0, mean if mean is not None and math.isfinite(mean) else 50.0):
            expected = claim_verdict(claim, _seed_values(runs, COMPARED_TOP1), 0.5, n_test)
            if not _seed_values(runs, COMPARED_TOP1) and _outcome(runs):
                expected = _outcome(runs)
            assert config.top1_verdict(claim, 0.5) == expected
            assert (config.claim_verdict("energy_mj", claim, 0.5)
                    == claim_verdict(claim, _seed_values(runs, "energy_mj"), 0.5))
            seen.add(config.top1_verdict(claim, 0.5).split(" (")[0])
        verdicts = list(_finished(runs)["verified"])
        assert config.verification.state == (DISAGREES if DISAGREES in verdicts else VERIFIED
                                             if verdicts and set(verdicts) == {VERIFIED} else "not verified")
    assert {"reproduced", "not reproduced", "inconclusive", "single run", "no claim"} <= seen
    sources = {c.source for c in configs}
    assert len(sources) == 2 and any(c.code_label == "0123456789ab" for c in configs)
    assert any(c.outcome.startswith("2 failed") and c.seeds(COMPARED_TOP1) == 0 for c in configs)


def test_a_configuration_reads_its_own_rows_of_the_pooled_columns():
    configs = group_configs(_mixed_runs())
    for config in configs:
        assert config.column("run_id") == config.runs["run_id"].tolist()
        assert config.finished_column("run_id") == _finished(config.runs)["run_id"].tolist()
        assert config.runs["seed"].is_monotonic_increasing
    assert sum(len(c.runs) for c in configs) == len({(c.source, r) for c in configs for r in c.column("run_id")})


def test_claims_are_found_by_configuration_as_by_a_scan():
    claims = load_claims()
    keys = {(c.model, c.dataset, c.T, c.variant) for c in claims.claims} | {("nope", "cifar10", 4, None)}
    for key in keys:
        assert claims.matching(*key) == [c for c in claims.claims if (c.model, c.dataset, c.T, c.variant) == key]
    assert claims.matching("nope", "cifar10", 4, None) == []


@pytest.mark.parametrize("raw, expected", [("x", "x"), ("", None), ("None", None), ("nan", None), (None, None),
                                           (math.nan, None), (4.0, "4.0"), ("null", None), (True, "True")])
def test_tags_are_cleaned_column_wise_as_text_or_none(raw, expected):
    row = run("r", "spikformer_4_384.cifar10", "cifar10", 4, 0, 90.0)
    frame = load_runs(pd.DataFrame([{**row, "host": raw, "params.spec.subset": raw}]))
    assert frame["host"].iloc[0] == expected and frame["params.spec.subset"].iloc[0] == expected


def test_report_reads_the_store_once_without_cycle_collection_and_writes_the_suites_tables(
        tiny_results_copy, tmp_path, monkeypatch):
    import gc

    from harness import cli, tracking
    from harness.report import render_tables
    from harness.suite import load_suite

    root, suite = tiny_results_copy["root"], load_suite(tiny_results_copy["suite_path"])
    uri = tracking.default_uri(root)
    direct = render_tables(uri, suite.name, tmp_path / "direct", suite.margins)  # the suite's experiment only
    reads = []

    def counted(*args, **kwargs):
        reads.append(gc.isenabled())
        return real(*args, **kwargs)

    real = tracking.runs_frame
    monkeypatch.setattr(tracking, "runs_frame", counted)
    cli._report(suite, uri, root, out=tmp_path / "once")
    assert reads == [False] and gc.isenabled()
    for name, path in direct.items():
        assert (tmp_path / "once" / "tables" / path.parent.name / name).read_text() == path.read_text(), name
