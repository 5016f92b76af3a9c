"""The packaged released-weights catalog validates against the zoo; a malformed catalog is one line naming the
file, line and field."""

from __future__ import annotations

import subprocess
import sys

import pytest
import yaml
from conftest import MODEL, write_catalog

import zoo
from harness.weights import CatalogError, load_catalog, stored_path

FAMILIES_WITH_RELEASES = {"qkformer", "sdt", "sdt_v2", "sdt_v3", "spikingresformer", "swformer", "sglformer",
                          "spikingformer"}


def test_packaged_catalog_names_zoo_models_with_their_sources():
    catalog = load_catalog()
    known = set(zoo.list_models())
    assert catalog.entries and set(catalog.entries) <= known
    for entry in catalog.entries.values():
        assert entry.source.startswith("https://") and entry.checked.strip()
        assert entry.url or entry.download_page, f"{entry.model}: neither a direct link nor a page to download from"
        assert set(entry.model_args) <= set(zoo.model_arguments(entry.model))
    assert {zoo.model_card(m).family for m in catalog.entries} == FAMILIES_WITH_RELEASES


def test_released_kd_checkpoint_is_built_with_its_distillation_head():
    """SDT v2's only release is the distilled 55M model: its entry builds the model with head_kd."""
    entry = load_catalog().get("sdtv2_10_768.in1k")
    assert entry.model_args == {"kd": True}
    import torch

    with torch.device("meta"):
        model = zoo.create_model(entry.model, **entry.model_args)
    assert "head_kd.weight" in model.state_dict()


def test_unknown_release_name_is_stored_under_the_model_name(tmp_path):
    path = write_catalog(tmp_path / "c.yaml", file=None)
    entry = load_catalog(path).get(MODEL)
    assert stored_path(tmp_path, entry) == tmp_path / "weights" / MODEL / f"{MODEL}.pth"
    entry = load_catalog(write_catalog(tmp_path / "c.yaml", file=None, format="safetensors")).get(MODEL)
    assert stored_path(tmp_path, entry).name == f"{MODEL}.safetensors"


def test_model_without_released_weights_says_so():
    with pytest.raises(KeyError, match="no released weights in the catalog"):
        load_catalog().get("msvit_4_384.cifar10")


@pytest.mark.parametrize("fields, line, field, message", [
    ({"model": "qkformer_2_256"}, 2, "model", "not a registered zoo model"),
    ({"model_args": {"kd": True}}, 9, "model_args", "kd not arguments of"),
    ({"sha256": "abc"}, 8, "sha256", "expected 64 lowercase hex digits"),
    ({"url": "ftp://example.org/x.pth"}, 4, "url", "expected an http(s) URL"),
    ({"file": "../x.pth"}, 5, "file", "plain name"),
    ({"source": ""}, 3, "source", "at least 1 character"),
], ids=["unknown-model", "model-args", "sha256", "url", "file", "source"])
def test_bad_catalog_is_one_line_naming_file_line_and_field(tmp_path, fields, line, field, message):
    path = write_catalog(tmp_path / "catalog.yaml", **fields)
    with pytest.raises(CatalogError) as err:
        load_catalog(path)
    text = str(err.value)
    assert "\n" not in text and text.startswith(f"{path}: line {line}: field entries.0.{field}: ") and message in text


def test_duplicate_entry_is_refused_at_its_line(tmp_path):
    path = write_catalog(tmp_path / "catalog.yaml")
    doc = yaml.safe_load(path.read_text())
    path.write_text(yaml.safe_dump({"entries": [dict(doc["entries"][0]) for _ in range(2)]}, sort_keys=False))
    with pytest.raises(CatalogError, match=rf"^{path}: line 8: field entries.1.model: '{MODEL}' has an entry"):
        load_catalog(path)


def test_weights_help_answers_without_importing_torch():
    code = ("import sys\nfrom harness.cli import main\n"
            "for argv in (['weights', '--help'], ['weights', 'fetch', '--help']):\n"
            "    try:\n        main(argv)\n    except SystemExit as done:\n        assert done.code == 0\n"
            "print('TORCH=' + str('torch' in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert "ls" in out and "--max-bytes" in out and out.strip().endswith("TORCH=False")
