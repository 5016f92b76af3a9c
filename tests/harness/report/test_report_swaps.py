"""The neuron swap table: each swap beside its family's own neuron with a verdict, and swaps as the Variant."""

import pandas as pd
import pytest

from harness.report.aggregate import group_configs, verdict
from harness.report.counts import overrides_label, recorded_overrides
from harness.report.swaps import OWN_NOT_RUN, swap_records, swap_table
from harness.report.tables import build_tables, render_tables
from harness.report.claims import load_claims
from harness.report.frame import load_runs
from harness.suite import Margins
from report_runs import run

MARGINS = Margins(top1=1.5)
SDT = dict(model="sdt_2_512.cifar100", dataset="cifar100", T=4, suite="ablation", recipe="qkformer_cifar")


def _runs() -> pd.DataFrame:
    rows = [
        *(run(f"own{s}", seed=s, top1=v, overrides={"dim": 480}, **SDT) for s, v in enumerate((80.0, 80.2, 80.1))),
        *(run(f"plif{s}", seed=s, top1=v, overrides={"dim": 480, "neuron": "plif"}, **SDT)
          for s, v in enumerate((80.1, 80.0, 80.2))),
        *(run(f"if{s}", seed=s, top1=v, overrides={"dim": 480, "neuron": "if"}, **SDT)
          for s, v in enumerate((70.0, 70.5, 70.2))),
        run("if3", seed=3, top1=None, state="diverged", reason="loss is nan at epoch 2",
            overrides={"dim": 480, "neuron": "if"}, **SDT),
        *(run(f"tau{s}", seed=s, top1=v, overrides={"dim": 480, "neuron.type": "lif", "neuron.tau": 3.0}, **SDT)
          for s, v in enumerate((79.0, 79.5))),
        # another size: its own neuron was never run
        run("w2", seed=0, top1=75.0, overrides={"dim": 256, "neuron": "plif"}, **SDT),
        # the same model at another budget is another configuration, not the own neuron of the swaps above
        run("short", seed=0, top1=50.0, overrides={"dim": 480}, epochs=5, **SDT),
    ]
    return pd.DataFrame(rows)


@pytest.fixture(scope="module")
def records():
    return swap_records(group_configs(_runs()), MARGINS)


def _line(records, neuron, config="dim=480"):
    line, = [r for r in records if r["neuron"] == neuron and r["config"] == config]
    return line


def test_each_swap_sits_under_its_own_neuron_with_the_verdict_against_its_mean(records):
    assert [(r["config"], r["neuron"]) for r in records] == [
        ("dim=256", "neuron: PLIF"),
        ("dim=480", "LIF (own)"), ("dim=480", "neuron: IF"), ("dim=480", "neuron: LIF (tau=3.0)"),
        ("dim=480", "neuron: PLIF")]
    own = _line(records, "LIF (own)")
    assert own["role"] == "own" and own["verdict"] is None and own["top1_n"] == 3
    plif, if_ = _line(records, "neuron: PLIF"), _line(records, "neuron: IF")
    assert own["own_top1_mean"] is None and plif["own_top1_mean"] == pytest.approx(80.1)
    assert plif["verdict"] == verdict([80.1, 80.0, 80.2], 80.1, 1.5, 10_000) == "reproduced"
    assert if_["verdict"] == verdict([70.0, 70.5, 70.2, float("nan")], 80.1, 1.5, 10_000)
    assert if_["verdict"] == "not reproduced (1 of 4 seeds diverged)"
    assert if_["top1_delta"] == pytest.approx((70.0 + 70.5 + 70.2) / 3 - 80.1)
    assert plif["run_ids"] == "plif0 plif1 plif2"


def test_a_swap_without_its_own_neuron_says_so(records):
    assert _line(records, "neuron: PLIF", "dim=256")["verdict"] == OWN_NOT_RUN


def test_the_table_is_built_only_when_a_run_swapped_a_component():
    claims = load_claims()
    runs = load_runs(_runs())
    assert [t.display.name for t in build_tables(runs, claims, MARGINS)][-1] == "neuron_swap"
    plain = runs[runs["params.spec.overrides.neuron"].isna() & runs["params.spec.overrides.neuron.type"].isna()]
    assert "neuron_swap" not in [t.display.name for t in build_tables(plain, claims, MARGINS)]


def test_swapped_runs_leave_the_other_table_and_render_with_their_variant(tmp_path):
    paths = render_tables(_runs(), "ablation", tmp_path, MARGINS)
    markdown = paths["neuron_swap.md"].read_text()
    assert "| CIFAR100 |" not in markdown  # datasets as recorded: one table, no panels
    assert "| cifar100 | sdt | sdt_2_512.cifar100 | 4 | dim=480 | neuron: PLIF | 80.10 ± 0.10 | 3 |" in markdown
    assert "| LIF (own) |" in markdown and "reference" in markdown and "verdict vs own (±1.5)" in markdown
    other = pd.read_csv(paths["other.csv"])
    assert set(other["run_ids"].dropna()) == {"own0 own1 own2", "short"}
    assert set(pd.read_csv(paths["neuron_swap.csv"])["neuron"]) >= {"LIF (own)", "neuron: IF"}


def test_the_variant_label_shows_a_swap_by_its_name():
    config, = [c for c in group_configs(_runs()) if c.config.get("params.spec.overrides.neuron.type")]
    assert config.variant_label == "dim=480, neuron: LIF (tau=3.0)"
    assert overrides_label({"neuron": "if", "surrogate.type": "atan", "surrogate.alpha": "3"}) == \
        "neuron: IF, surrogate: atan (alpha=3)"
    assert recorded_overrides({"o.neuron.type": "plif", "o.dim": "64"}, "o.") == {"dim": 64, "neuron": {"type": "plif"}}


def test_the_display_names_every_column_and_note():
    data, display = swap_table(group_configs(_runs()), MARGINS)
    assert list(data["neuron"])[1] == "LIF (own)"
    assert [c.header for c in display.columns][:6] == ["Dataset", "Family", "Model", "T", "Overrides", "Variant"]
    assert any("own ± margin" in note for note in display.notes)
