"""Neuron/surrogate swaps as a run's ``overrides``: validated against the model card, part of the run id, and the
ablation suites built from them."""

import textwrap
from pathlib import Path

import pytest
import yaml

import zoo
from harness.cli import main
from harness.suite import SuiteError, expand, load_suite

SUITES = Path(__file__).resolve().parents[3] / "suites"
MODEL = "spikformer_4_384.cifar10"


def _suite(tmp_path: Path, overrides: str, model: str = MODEL, name: str = "s") -> Path:
    path = tmp_path / f"{name}.yaml"
    path.write_text(textwrap.dedent(f"""\
        runs:
          - model: {model}
            dataset: digits
            T: 2
            overrides: {overrides}
        """))
    return path


def _spec(tmp_path, overrides: str, model: str = MODEL):
    return expand(load_suite(_suite(tmp_path, overrides, model)))[0]


def test_a_swap_is_a_valid_override_and_changes_the_run_id(tmp_path):
    ids = {text: _spec(tmp_path, text).run_id
           for text in ("{dim: 64, heads: 4}", "{dim: 64, heads: 4, neuron: plif}", "{dim: 64, heads: 4, neuron: if}",
                        "{dim: 64, heads: 4, neuron: {type: lif, tau: 3.0}}", "{dim: 64, heads: 4, surrogate: atan}")}
    assert len(set(ids.values())) == len(ids)


def test_validate_lists_each_run_with_its_swap(tmp_path, capsys):
    path = _suite(tmp_path, "{dim: 64, heads: 4, neuron: {type: lif, tau: 3.0}, surrogate: atan}")
    assert main(["validate", str(path)]) == 0
    line = capsys.readouterr().out.splitlines()[1]
    assert line.endswith("recipe=digits [neuron: LIF (tau=3.0)] [surrogate: atan]"), line


def test_equal_swaps_spelled_differently_are_one_run(tmp_path):
    plain = _spec(tmp_path, "{neuron: plif, surrogate: atan}")
    assert plain.overrides == {"neuron": "plif", "surrogate": "atan"}
    spelled = _spec(tmp_path, "{neuron: {type: plif}, surrogate: {type: atan}}")
    assert spelled.run_id == plain.run_id
    assert _spec(tmp_path, "{neuron: {type: lif, tau: 3}}").overrides == {"neuron": {"type": "lif", "tau": 3}}


@pytest.mark.parametrize("overrides,expected", [
    ("{neuron: relu}", f"{MODEL}: override 'neuron': unknown neuron 'relu'; expected one of lif, plif, if, "
                       f"multispike, ternary"),
    ("{neuron: {type: lif, taus: 3.0}}", "neuron 'lif' has no setting 'taus'; its settings: tau, v_threshold"),
    ("{neuron: {type: plif, init_tau: fast}}", "neuron 'plif' setting 'init_tau' must be a number, got 'fast'"),
    ("{surrogate: relu}", "unknown surrogate 'relu'; expected one of sigmoid, atan"),
    ("{surrogate: {type: atan, alpha: -1}}", "setting 'alpha' must be a number > 0"),
    ("{nueron: plif}", "unknown override 'nueron'; did you mean neuron?"),
    ("{neuron: null}", f"override 'neuron' of {MODEL}: a swap needs a value (leave neuron out to keep the "
                       f"model's own)"),
])
def test_a_bad_swap_fails_validation_in_one_line_naming_line_and_field(tmp_path, capsys, overrides, expected):
    path = _suite(tmp_path, overrides)
    assert main(["validate", str(path)]) == 2
    line, = capsys.readouterr().err.strip().splitlines()
    key = "nueron" if "nueron" in overrides else overrides.strip("{").split(":")[0]
    assert line.startswith(f"error: {path}: line 5: field runs.0.overrides.{key}: ") and expected in line, line


def test_a_swap_the_card_forbids_fails_with_the_cards_reason(tmp_path):
    model = "spikingresformer_tistar.cifar10"
    with pytest.raises(SuiteError) as err:
        _spec(tmp_path, "{neuron: ternary}", model)
    reason = zoo.model_card(model).swaps.forbidden["ternary"]
    assert f"{model}: override 'neuron': 'ternary' is forbidden by its model card ({reason}); allowed: lif, plif, " \
           f"if, multispike" in str(err.value)


def test_a_swap_the_neurons_cannot_take_fails_validation(tmp_path, capsys):
    """A surrogate swap of neurons without one (SDT v3's MultiSpike, as its card's swap rule names them), a setting
    the neuron rejects: found without building the model."""
    for model, overrides, expected in (
            ("sdtv3_5m.in1k", "{surrogate: atan}", "MultiSpike neurons have a straight-through gradient"),
            (MODEL, "{neuron: {type: lif, tau: 0.5}}",
             "override 'neuron': neuron 'lif': LIF tau must be > 1 (got 0.5)")):
        path = _suite(tmp_path, overrides, model)
        assert main(["validate", str(path)]) == 2
        line, = capsys.readouterr().err.strip().splitlines()
        assert line.startswith(f"error: {path}: line 5: field runs.0.overrides.") and expected in line, line
    assert _spec(tmp_path, "{neuron: lif, surrogate: atan}", "sdtv3_5m.in1k").overrides["surrogate"] == "atan"


def _grid(name: str) -> list[dict]:
    return yaml.safe_load((SUITES / name).read_text())["grid"]


@pytest.fixture(scope="module")
def ablation():
    return expand(load_suite(SUITES / "ablation.yaml"))


def _neuron_of(spec) -> str:
    return spec.overrides.get("neuron") or "own"


def test_ablation_holds_every_family_with_lif_plif_if_and_its_own_neuron_three_seeds(ablation):
    families = {zoo.model_card(name).family for name in zoo.list_models()} - {"test"}  # engine tests' tiny models
    seen: dict[tuple[str, str], set[int]] = {}
    for spec in ablation:
        assert spec.dataset == "cifar100" and spec.T == 4 and spec.recipe == "qkformer_cifar"
        seen.setdefault((zoo.model_card(spec.model).family, _neuron_of(spec)), set()).add(spec.seed)
    assert all(seeds == {0, 1, 2} for seeds in seen.values())
    assert {family for family, _ in seen} == families
    for family in families:
        neurons = {neuron for f, neuron in seen if f == family}
        assert neurons >= {"own", "plif", "if"} and ("lif" in neurons) == (family == "sdt_v3"), family


def test_ablation_own_neuron_runs_are_the_controlled_suites(ablation):
    controlled = {spec.run_id for spec in expand(load_suite(SUITES / "controlled.yaml")) if spec.dataset == "cifar100"}
    own = {spec.run_id for spec in ablation if "neuron" not in spec.overrides}
    assert own == controlled


def test_ablation_swaps_keep_each_familys_controlled_size(ablation):
    sizes = {(s.model, s.seed): {k: v for k, v in s.overrides.items() if k != "neuron"}
             for s in ablation if "neuron" not in s.overrides}
    assert all({k: v for k, v in s.overrides.items() if k != "neuron"} == sizes[(s.model, s.seed)] for s in ablation)


def test_ablation_digits_is_the_smoke_suites_static_rows_with_the_swaps():
    smoke = {e["models"][0]: e for e in _grid("smoke.yaml") if e["datasets"] == ["digits"]}
    rows = _grid("ablation_digits.yaml")
    for model, entry in smoke.items():
        mine = [e for e in rows if e["models"] == [model]]
        neurons = sorted(e["overrides"].get("neuron", "own") for e in mine)
        expected = ["if", "lif", "own", "plif"] if zoo.model_card(model).family == "sdt_v3" else ["if", "own", "plif"]
        assert neurons == expected, model
        for row in mine:
            assert {k: v for k, v in row["overrides"].items() if k != "neuron"} == entry["overrides"]
            assert row.get("recipe_overrides") == entry.get("recipe_overrides")
            assert row["T"] == [4], "stateful swapped neurons need time steps (SDT v3's smoke row has T=1)"
    assert len(expand(load_suite(SUITES / "ablation_digits.yaml"))) == 3 * len(rows)
