"""The shipped paper suites: every claimed configuration of a claims table is measured by its suite, with
three seeds, beside the configurations its papers compare it with."""

from pathlib import Path

from harness.report.claims import load_claims
from harness.suite import expand, load_suite

SUITES = Path(__file__).resolve().parents[3] / "suites"


def _configurations(suite: str) -> dict[tuple, set[int]]:
    """(model, dataset, T, variant) -> seeds of a suite's runs."""
    seeds: dict[tuple, set[int]] = {}
    for spec in expand(load_suite(SUITES / f"{suite}.yaml")):
        seeds.setdefault((spec.model, spec.dataset, spec.T, spec.variant), set()).add(spec.seed)
    return seeds


def test_table4_measures_every_new_family_claim_with_three_seeds():
    runs = _configurations("table4")
    table4 = [c for c in load_claims().of_table("table4") if c.model is not None]
    assert table4
    for claim in table4:
        assert runs.get((claim.model, claim.dataset, claim.T, claim.variant)) == {0, 1, 2}, claim.row


def test_table4_keeps_the_five_families_paper_rows_beside_the_new_ones():
    runs = _configurations("table4")
    claims = load_claims()
    compared = [c for table in ("table1", "table2") for c in claims.of_table(table)
                if c.model is not None and c.source == "table"]
    assert all((c.model, c.dataset, c.T, c.variant) in runs for c in compared)
    families = {model.split("_")[0] for model, *_ in runs}
    assert families == {"msvit", "qkformer", "spikformer", "sdt", "sdtv2", "sdtv3", "spikingresformer", "swformer",
                        "sglformer", "spikingformer"}
    assert {dataset for _, dataset, *_ in runs} == {"imagenet", "cifar10", "cifar100", "dvs128", "cifar10dvs"}
