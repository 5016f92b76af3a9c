"""The claims file: every printed value is there with its table and row, and bad files say what is wrong."""

import pytest
import yaml

from harness.report.claims import CLAIMS_PATH, load_claims

def test_every_printed_table_value_is_a_claim_with_its_table_and_row():
    claims = load_claims()
    assert [len(claims.of_table(t)) for t in ("table1", "table2", "table3")] == [20, 26, 8]
    msvit = [c for c in claims.of_table("table1") if c.row == "MSViT 10-768"]
    assert [(c.model, c.params_m, c.T, c.energy_mj, c.top1, c.top5) for c in msvit] == [
        ("msvit_10_768.in1k", 69.80, 4, 45.88, 85.06, 97.58)]
    gesture = {(c.row, c.T): c.top1 for c in claims.of_table("table2") if c.dataset == "dvs128"}
    assert gesture[("MSViT", 16)] == 98.80 and gesture[("MSViT (T=10, text)", 10)] == 98.37
    ablation = {c.row: (c.variant, c.params_m, c.top1) for c in claims.of_table("table3")}
    assert ablation["MSSA + MSSA(P+Q)"] == ("MSSA + MSSA(P+Q)", 8.48, 81.65)
    assert ablation["MSSA(P+Q) + SSA (MSViT)"] == ("MSSA(P+Q) + SSA (MSViT)", 7.59, 81.98)
    assert claims.tables["table1"].datasets == ("imagenet",)


def test_table4_holds_the_new_families_claims_with_their_paper_source_and_caveat():
    import zoo

    claims = load_claims()
    table4 = claims.of_table("table4")
    assert claims.tables["table4"].layout == "datasets"
    for claim in table4:  # the values are the model cards'
        card = zoo.model_card(claim.model)
        assert (claim.params_m, claim.top1, claim.energy_mj, claim.paper) == (
            card.claimed_params_m, card.claimed_top1, card.claimed_energy_mj, card.paper)
        assert claim.cited, claim.row
    resformer = {c.row: c for c in table4 if c.model and c.model.startswith("spikingresformer_") and c.top1}
    ti, s, m, large = (resformer[f"SpikingResformer-{size}"] for size in ("Ti", "S", "M", "L"))
    assert ti.T == 4 and ti.input == 224 and (ti.energy_mj, m.energy_mj) == (2.46, 5.46)
    assert all("checked against the paper's text" in c.note for c in (ti, m))
    assert "NOT checked" in s.note and "aggregator" in large.note and "wizwand.com" in large.cited
    assert {c.model for c in table4 if c.top1 is None} == {
        "sdtv3_5m.in1k", "spikingresformer_tistar.cifar10", "spikingresformer_tistar.cifar100",
        "spikingresformer_tistar.cifar10dvs", "spikingresformer_dvsg.dvs128", "swformer_4_384.cifar10",
        "swformer_4_384.cifar100", "swformer_2_256.cifar10dvs", "swformer_2_256.dvs128"}
    assert {c.paper for c in claims.of_table("table1")} == {claims.source}
    assert [c.row for c in claims.matching("sdtv3_19m.in1k", "imagenet", 1, None)] == ["E-SpikeFormer 19M"]


def test_claims_only_rows_are_the_models_outside_the_zoo():
    claims_only = sorted({c.row for c in load_claims().claims if c.model is None})
    assert claims_only == ["CML", "DeiT-B", "ResNet-19", "Spikformer V2 8-384", "Spikformer V2 8-512", "Swin-S",
                           "Swin-T", "Transformer (4-384)", "ViT-B/16"]


def test_matching_finds_the_claims_a_configuration_measures():
    claims = load_claims()
    assert [(c.table, c.row) for c in claims.matching("msvit_4_384.cifar100", "cifar100", 4, None)] == [
        ("table2", "MSViT")]
    assert [(c.table, c.row) for c in claims.matching("msvit_4_384.cifar100", "cifar100", 4, "MSSA(Q) + SSA")] == [
        ("table3", "MSSA(Q) + SSA")]
    assert claims.matching("msvit_4_384.cifar100", "digits", 4, None) == []
    assert [c.row for c in claims.matching("msvit_2_256.cifar10dvs", "cifar10dvs", 10, None)] == ["MSViT (T=10, text)"]


def test_bad_claims_files_name_the_file_and_the_row(tmp_path):
    path = tmp_path / "claims.yaml"
    doc = yaml.safe_load(CLAIMS_PATH.read_text())
    doc["tables"]["table3"]["rows"][2]["top1"] = "81.35%"
    path.write_text(yaml.safe_dump(doc))
    expected = r"claims\.yaml: invalid claims file: tables\.table3\.rows\.2\.top1: Input should be a valid number"
    with pytest.raises(ValueError, match=expected):
        load_claims(path)
    for field in ("top1", "params_m"):
        doc["tables"]["table3"]["rows"][2].pop(field)
    path.write_text(yaml.safe_dump(doc))
    with pytest.raises(ValueError, match=r"table 'table3' row 'MSSA\(P\) \+ SSA' \(cifar100\): claims neither "
                                         r"top1 nor params_m; expected one of them, or a note"):
        load_claims(path)
    doc = yaml.safe_load(CLAIMS_PATH.read_text())
    doc["tables"]["table2"]["rows"][0]["cells"]["imagenet"] = {"top1": 1.0}
    path.write_text(yaml.safe_dump(doc))
    with pytest.raises(ValueError, match="dataset 'imagenet' is not one of the table's datasets"):
        load_claims(path)
    doc["tables"]["table1"]["rows"][0]["accuracy"] = 3
    path.write_text(yaml.safe_dump(doc))
    with pytest.raises(ValueError, match=r"invalid claims file: tables\.table1\.rows\.0\.accuracy: Extra inputs"):
        load_claims(path)
    doc = yaml.safe_load(CLAIMS_PATH.read_text())
    doc["tables"]["controlled"] = doc["tables"].pop("table3")
    path.write_text(yaml.safe_dump(doc))
    with pytest.raises(ValueError, match="tables.controlled: the name is the report's own table"):
        load_claims(path)
    doc["tables"]["table3"] = doc["tables"].pop("controlled")
    doc["tables"]["table3"].pop("layout")
    path.write_text(yaml.safe_dump(doc))
    with pytest.raises(ValueError, match=r"tables\.table3\.layout: Field required"):
        load_claims(path)
    with pytest.raises(ValueError, match="missing.yaml: claims file not found"):
        load_claims(tmp_path / "missing.yaml")


def test_a_claims_file_is_read_as_hostile_input(tmp_path):
    """An alias bomb in a claims file is refused before it expands, like any config file."""
    path = tmp_path / "claims.yaml"
    levels = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    levels += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]" for i in range(1, 8)]
    path.write_text("\n".join(levels) + "\ntables: *a7\n")
    with pytest.raises(ValueError, match="claims.yaml: line .*aliases expand to"):
        load_claims(path)


def test_every_claimed_model_is_a_zoo_model_of_that_dataset():
    import zoo

    for claim in load_claims().claims:
        if claim.model is not None:
            card = zoo.model_card(claim.model)
            assert card.dataset == claim.dataset, claim.row
            if claim.source == "table":  # the text's T=10 claims run the T=16 configurations at T=10
                assert card.T == claim.T, claim.row
