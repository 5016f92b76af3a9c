"""``collect`` logs imported runs (``<results>/imported/<site>/<run_id>/``) beside the local ones: tagged with their
source, verification and code fingerprint, apart from a local run of the same run id, idempotently."""

import json
import shutil

import pytest

from harness.runs import run_dir
from harness.tracking import TAG, collect, default_uri, runs_frame

NOTHING = {"logged": 0, "unchanged": 0, "merged": 0, "skipped": 0, "malformed": 0}
VERIFIED = {"verdict": "verified", "date": "2026-12-01T10:00:00Z", "images": 64, "disagreements": 0}


def counts(**changed) -> dict[str, int]:
    return {**NOTHING, **changed}


def import_copy(root, run, site="labA"):
    """A copy of the local run ``run`` filed as imported from ``site``, with its ``origin.json``."""
    target = root / "imported" / site / run.name
    shutil.copytree(run, target)
    (target / "origin.json").write_text(json.dumps({"site": site, "bundle_sha256": "0" * 64}))
    return target


def logged(uri, run_id):
    from mlflow.tracking import MlflowClient

    client = MlflowClient(uri)
    experiment = client.get_experiment_by_name("spikebench/tiny")
    return client.search_runs([experiment.experiment_id], filter_string=f"tags.`{TAG}run_id` = '{run_id}'")


@pytest.fixture
def imported(tiny_results_copy):
    root = tiny_results_copy["root"]
    good = run_dir(root, tiny_results_copy["specs"][0])
    return {**tiny_results_copy, "uri": default_uri(root), "local": good, "imported": import_copy(root, good)}


def test_an_imported_run_is_logged_apart_from_the_local_run_of_its_run_id(imported):
    root, uri, local = imported["root"], imported["uri"], imported["local"]
    assert collect(root, uri) == counts(logged=1, unchanged=2)
    runs = logged(uri, local.name)
    assert sorted((r.data.tags[TAG + "source"], r.data.tags[TAG + "imported"]) for r in runs) == [
        ("labA", "true"), ("local", "false")]
    assert all(r.data.tags[TAG + "verified"] == "not verified" for r in runs)
    assert len({r.data.tags[TAG + "code_fingerprint"] for r in runs}) == 1
    frame = runs_frame(uri, "tiny")
    assert sorted(frame.loc[frame["run_id"] == local.name, "source"]) == ["labA", "local"]


def test_collect_is_idempotent_for_imported_runs_and_replaces_a_reverified_one(imported):
    root, uri, run = imported["root"], imported["uri"], imported["imported"]
    collect(root, uri)
    assert collect(root, uri) == counts(unchanged=3)
    (run / "verification.json").write_text(json.dumps(VERIFIED))
    assert collect(root, uri) == counts(logged=1, unchanged=2)
    assert collect(root, uri) == counts(unchanged=3)
    runs = logged(uri, run.name)
    assert len(runs) == 2  # replaced, not duplicated; the local run untouched
    tags = next(r.data.tags for r in runs if r.data.tags[TAG + "imported"] == "true")
    assert (tags[TAG + "verified"], tags[TAG + "verified_date"], tags[TAG + "verified_images"],
            tags[TAG + "disagreements"]) == ("verified", VERIFIED["date"], "64", "0")
    (run / "origin.json").write_text(json.dumps({"site": "labA", "bundle_sha256": "1" * 64}))  # imported again
    assert collect(root, uri) == counts(logged=1, unchanged=2)
    assert len(logged(uri, run.name)) == 2


def test_the_local_run_of_a_run_id_keeps_its_hash_and_is_not_relogged(tiny_results_copy):
    """A local run logged before sources were tagged stays "unchanged": the source files only count when present."""
    root = tiny_results_copy["root"]
    uri = default_uri(root)
    assert collect(root, uri) == counts(unchanged=2)
    good = run_dir(root, tiny_results_copy["specs"][0])
    import_copy(root, good, site="local")  # a bundle exported under the default site name
    assert collect(root, uri) == counts(logged=1, unchanged=2)
    frame = runs_frame(uri, "tiny")
    assert sorted(frame.loc[frame["run_id"] == good.name, "imported"]) == ["false", "true"]


@pytest.mark.parametrize("name, content, expected", [
    ("origin.json", "{not json", "origin.json: not valid JSON"),
    ("origin.json", json.dumps({"site": 3}), "origin.json: field 'site' is 3; expected str"),
    ("verification.json", json.dumps({**VERIFIED, "verdict": "fine"}),
     "verification.json: field 'verdict' is 'fine'; expected 'verified' or 'disagrees'"),
    ("verification.json", json.dumps({**VERIFIED, "images": "many"}),
     "verification.json: field 'images' is 'many'; expected int"),
])
def test_a_malformed_origin_or_verification_is_skipped_with_one_warning_naming_it(imported, recwarn, name, content,
                                                                                   expected):
    (imported["imported"] / name).write_text(content)
    assert collect(imported["root"], imported["uri"]) == counts(unchanged=2, malformed=1)
    (message,) = [str(w.message) for w in recwarn if "skipped" in str(w.message)]
    assert message.startswith(f"skipped {imported['imported'] / name}") and expected in message
