"""Cluster profiles (slurm/*.yaml): the shipped ones load, bad ones fail naming file, line and field."""

import textwrap
from pathlib import Path

import pytest

from harness.launch.slurm import (
    PROFILE_DIR, ProfileError, check_fits_cluster, chunks, load_profile, partitions_from_sinfo, resolve_profile,
    sbatch_reason,
)

SHIPPED = sorted(PROFILE_DIR.glob("*.yaml"))


def write(tmp_path: Path, text: str, name: str = "cluster.yaml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


def test_an_example_profile_per_layout_ships_and_validates():
    names = {p.stem for p in SHIPPED}
    assert {"local", "single-gpu", "full-node-ddp", "multi-node-ddp", "preemptible", "cpu-only"} <= names
    layouts = {load_profile(p).name: load_profile(p).layout for p in SHIPPED}
    assert layouts["single-gpu"] == (1, 1)
    assert layouts["full-node-ddp"] == (1, 8), "a whole node: one task per GPU"
    assert layouts["multi-node-ddp"] == (2, 4), "8 GPUs on nodes of 4: two nodes of four tasks"
    assert layouts["cpu-only"] == (1, 1)


def test_profiles_resolve_by_name_and_unknown_names_list_the_known_ones():
    assert resolve_profile("local") == PROFILE_DIR / "local.yaml"
    with pytest.raises(ProfileError, match=r"'nope' not found.*local"):
        resolve_profile("nope")


@pytest.mark.parametrize("text, minutes", [("90", 90), ("30:30", 31), ("02:00:00", 120), ("1-00:00:00", 1440),
                                           ("2-12", 3600), ("0-00:00:30", 1)])
def test_time_limits_in_every_slurm_form_become_minutes(tmp_path, text, minutes):
    path = write(tmp_path, f"gpus_per_node: 1\ntime_limit: '{text}'\n")
    assert load_profile(path).timeout_min == minutes


@pytest.mark.parametrize("text, line, field, expected", [
    ("gpus_per_node: 4\ngpus_per_run: 1\nqueue: gpu\n", 3, "queue", "allowed keys"),
    ("gpus_per_node: 4\ntime_limit: 'two days'\n", 2, "time_limit", "HH:MM:SS"),
    ("gpus_per_node: 4\nmem_per_gpu: lots\n", 2, "mem_per_gpu", "16G"),
    ("gpus_per_node: 4\ngpus_per_run: -1\n", 2, "gpus_per_run", "greater than or equal to 0"),
    ("gpus_per_node: 4\nsbatch:\n  time: '10:00'\n", 3, "sbatch", "set by time_limit"),
    ("gpus_per_node: 4\nsbatch:\n  comment: mine\n", 3, "sbatch", "the job pickle's SHA-256"),
    ("gpus_per_node: 4\nsetup: module load cuda\n", 2, "setup", "valid list"),
    ("partition: gpu\n", 1, "gpus_per_node", "Field required"),
])
def test_errors_name_file_line_and_field(tmp_path, text, line, field, expected):
    path = write(tmp_path, text)
    with pytest.raises(ProfileError) as err:
        load_profile(path)
    message = str(err.value)
    assert f"{path}: line {line}: field {field}:" in message
    assert expected in message


@pytest.mark.parametrize("text, expected", [
    ("gpus_per_node: 4\ngpus_per_run: 6\n", "must be at most 4 or a multiple of it"),
    ("gpus_per_node: 0\n", "gpus_per_run is 1 but gpus_per_node is 0"),
    ("gpus_per_node: 0\ngpus_per_run: 0\ngpu_type: a100\n", "gpu_type is set but gpus_per_run is 0"),
])
def test_gpu_layouts_that_cannot_be_scheduled_are_rejected(tmp_path, text, expected):
    with pytest.raises(ProfileError, match=expected):
        load_profile(write(tmp_path, text))


def test_a_profile_must_be_a_mapping_of_valid_yaml(tmp_path):
    with pytest.raises(ProfileError, match=r"line 1: a cluster profile must be a mapping"):
        load_profile(write(tmp_path, "- gpu\n"))
    with pytest.raises(ProfileError, match=r"not valid YAML"):
        load_profile(write(tmp_path, "partition: [gpu\n"))


def test_extra_sbatch_flags_are_normalized_and_the_name_defaults_to_the_file(tmp_path):
    profile = load_profile(write(tmp_path, "gpus_per_node: 2\nsbatch: {--mail_type: END, exclusive: true}\n",
                                 name="mine.yaml"))
    assert profile.name == "mine"
    assert profile.sbatch == {"mail-type": "END", "exclusive": True}


def test_arrays_split_into_pieces_of_at_most_the_limit():
    assert chunks(list(range(7)), 3) == [[0, 1, 2], [3, 4, 5], [6]]
    assert chunks([1, 2], 3) == [[1, 2]]


SINFO = "short*|gpu:a100:4(S:0-1)|1:00:00\nshort*|gpu:v100:2,gpu:a100:1|1:00:00\ncpu|(null)|2-00:00:00\n"


def test_sinfo_lines_merge_into_partitions():
    partitions = partitions_from_sinfo(SINFO)
    short, cpu = partitions["short"], partitions["cpu"]
    assert short.default and short.gpus_per_node == 4 and short.gpu_types == frozenset({"a100", "v100"})
    assert short.time_limit_s == 3600 and cpu.time_limit_s == 2 * 86400
    assert not cpu.default and cpu.gpus_per_node == 0


@pytest.mark.parametrize("text, expected", [
    ("partition: short\ngpus_per_node: 4\ntime_limit: '02:00:00'\n",
     "line 3: field time_limit: 02:00:00 is longer than partition 'short' allows (1:00:00, sinfo)"),
    ("gpus_per_node: 4\ntime_limit: '61'\n",
     "line 2: field time_limit: 61 is longer than partition 'short' allows (1:00:00, sinfo)"),
    ("partition: cpu\ngpus_per_node: 1\n",
     "line 2: field gpus_per_node: 1 GPUs, but the nodes of partition 'cpu' have at most 0 (sinfo)"),
    ("partition: short\ngpus_per_node: 4\ngpu_type: h100\n",
     "line 3: field gpu_type: 'h100' is not a GPU type of partition 'short' (sinfo lists: a100, v100)"),
], ids=["time-limit", "default-partition-time-limit", "gpus-on-a-cpu-partition", "gpu-type"])
def test_a_profile_is_checked_against_the_partitions_sinfo_reports(tmp_path, text, expected):
    path = tmp_path / "p.yaml"
    path.write_text(text)
    with pytest.raises(ProfileError) as refused:
        check_fits_cluster(load_profile(path), path, partitions_from_sinfo(SINFO))
    assert str(refused.value) == f"{path}: {expected}"


def test_a_profile_that_fits_passes_and_an_unset_partition_is_the_default(tmp_path):
    path = tmp_path / "p.yaml"
    path.write_text("gpus_per_node: 4\ngpus_per_run: 4\ngpu_type: a100\ntime_limit: '60'\n")
    check_fits_cluster(load_profile(path), path, partitions_from_sinfo(SINFO))
    with pytest.raises(ProfileError, match=r"field partition \(not set\): the cluster has no default partition"):
        check_fits_cluster(load_profile(path), path, partitions_from_sinfo(SINFO.replace("*", "")))


@pytest.mark.parametrize("stderr, reason", [
    ("sbatch: error: invalid partition specified: gpu\nsbatch: error: Batch job submission failed: Invalid partition "
     "name specified", "invalid partition specified: gpu"),
    ("sbatch: error: Batch job submission failed: Invalid feature specification", "Invalid feature specification"),
    ("Traceback (most recent call last):\n  ...\nsome other failure\n", "some other failure"),
], ids=["two-lines", "one-line", "no-sbatch-error"])
def test_sbatch_errors_reduce_to_their_meaningful_line(stderr, reason):
    assert sbatch_reason(stderr) == reason
