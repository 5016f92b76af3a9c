"""The harness at scale: N synthetic finished runs, then the commands a user runs on them, timed.

    python -m harness bench scale --runs N [--suites 4] [--keep DIR] [--json]

Writes N run directories in the real format (``harness.runs.prepare``'s spec and status, the engine's
``config.json`` with the checkout's provenance, ``metrics.jsonl``, ``final.json`` with both energy conventions and
NeuroBench's metrics, ``energy.json`` from a real ``EnergyReport``, ``firing.json``/``firing.md``, predictions),
spread over a few suites of every zoo model on its paper's dataset, 3 seeds per configuration and a weight-decay
sweep for more configurations; about 3% failed and 1% diverged runs. Fills the MLflow store through the real
``collect``, then times in subprocesses, as a user runs them: ``status`` of a suite including every suite,
``report`` of the first suite, ``leaderboard`` (with the page's size) and ``collect`` with nothing new; ``status``
first with nothing cached (an empty user cache, no status index), then as a user repeats it.
``--keep DIR``: write everything under DIR and keep it (a later call with the same DIR and N only re-times; one
whose runs were written but not collected collects them first).
"""

from __future__ import annotations

import json
import math
import os
import random
import resource
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from harness.argtypes import OneLineParser, positive_int
from harness.status_index import INDEX_NAME

REPO = Path(__file__).resolve().parent.parent
SEEDS = (0, 1, 2)
FAILED_EVERY, DIVERGED_EVERY = 33, 97  # about 3% failed and 1% diverged runs
MARKER = "scale.json"  # in the kept directory: the N it holds, so that a rerun only re-times


@dataclass(frozen=True)
class Plan:
    """The suites to write: suite name -> its run entries (suite file ``runs:`` items)."""

    suites: dict[str, list[dict[str, Any]]]


def plan(runs: int, suites: int) -> Plan:
    """``runs`` run entries: configurations (each zoo model on its paper's dataset and T, then again with a
    weight-decay override per sweep step) round-robin over ``suites`` suites, 3 seeds each."""
    import zoo

    models = sorted(zoo.list_models())
    planned: dict[str, list[dict[str, Any]]] = {f"site{k}": [] for k in range(suites)}
    names = list(planned)
    count, config = 0, 0
    while count < runs:
        step, model = divmod(config, len(models))
        card = zoo.model_card(models[model])
        entry = {"model": card.name, "dataset": card.dataset, "T": card.T}
        if step:
            entry["recipe_overrides"] = {"optim.weight_decay": round(0.01 * step, 4)}
        for seed in SEEDS[:runs - count]:
            planned[names[config % suites]].append({**entry, "seed": seed})
            count += 1
        config += 1
    return Plan(planned)


def write_suites(directory: Path, planned: Plan) -> tuple[list[Path], Path]:
    """One suite file per planned suite, and one (``all``) that includes them all; returns (suites, all)."""
    directory.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, entries in planned.suites.items():
        path = directory / f"{name}.yaml"
        path.write_text(yaml.safe_dump({"name": name, "runs": entries}, sort_keys=False))
        paths.append(path)
    every = directory / "all.yaml"
    every.write_text(yaml.safe_dump({"name": "all", "include": [p.name for p in paths]}, sort_keys=False))
    return paths, every


def _energy_report(rng: random.Random, T: int, params: int):
    """A small but real ``EnergyReport``: two audited layers, the two Eq. 18 terms, firing rates per layer."""
    from harness.metrics.energy import E_AC_PJ, E_MAC_PJ, AuditRow, EnergyReport, PaperRow

    macs, dense = rng.uniform(1e6, 1e9), rng.uniform(1e8, 1e10)
    rate = rng.uniform(0.05, 0.3)
    acs = rate * T * dense
    rows = [AuditRow("stem.conv", "conv", "MAC", macs * T, macs * T, 1.0, E_MAC_PJ * macs * T),
            AuditRow("blocks", "linear", "AC", dense * T, acs, rate, E_AC_PJ * acs)]
    paper = [PaperRow("stem.conv", "conv", "image", macs, None, 1, 0.0, E_MAC_PJ * macs),
             PaperRow("blocks", "linear", "spikes", dense, rate, T, acs, E_AC_PJ * acs, "nonzero")]
    ops_mj = (E_MAC_PJ * macs * T + E_AC_PJ * acs) / 1e9
    return EnergyReport(images=1000, T=T, rows=rows, macs=macs * T, acs=acs, energy_mj=ops_mj, paper_rows=paper,
                        first_layer_macs=macs, sops=acs, paper_energy_mj=(E_MAC_PJ * macs + E_AC_PJ * acs) / 1e9,
                        firing_overall=rate, firing_per_layer={"blocks.lif": rate}, params=params,
                        firing_per_layer_step={"blocks.lif": [rate] * T},
                        neurobench={"footprint_bytes": params * 4, "connection_sparsity": 0.0,
                                    "activation_sparsity": 1 - rate, "effective_macs": macs, "effective_acs": acs})


class RunWriter:
    """Writes finished (or failed, diverged) run directories with the engine's files, sharing per model and
    recipe what a real run computes once (the resolved recipe, the model card, the checkout's provenance)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._shared: dict[tuple[str, str], dict[str, Any]] = {}

    def shared(self, model: str, recipe: str) -> dict[str, Any]:
        if (model, recipe) not in self._shared:
            import zoo
            from harness.engine.provenance import provenance
            from harness.recipe import load_recipe

            self._shared[model, recipe] = {"recipe": load_recipe(recipe).model_dump(mode="json"),
                                           "model_card": zoo.model_card(model).as_dict(),
                                           "provenance": provenance(model, recipe)}
        return self._shared[model, recipe]

    def write(self, spec, index: int) -> Path:
        from harness.atomicfile import atomic_write_text
        from harness.runs import prepare, write_status

        rng = random.Random(index)
        directory = prepare(self.root, spec)
        shared = self.shared(spec.model, spec.recipe)
        card = shared["model_card"]
        params = int(card.get("code_params") or 1e6)
        epochs = 3
        config = {"spec": spec.model_dump(mode="json"), "recipe": shared["recipe"], "seed": spec.seed,
                  "resolved": {"T": spec.T, "world_size": 1, "total_epochs": epochs, "params": params},
                  "model_card": card, "provenance": shared["provenance"]}
        atomic_write_text(json.dumps(config, indent=1, default=str), directory / "config.json")
        if index % FAILED_EVERY == FAILED_EVERY - 1:
            write_status(directory, "failed", f"RuntimeError: synthetic failure of run {index}")
            return directory
        claimed = card.get("claimed_top1") or 70.0
        history = [{"epoch": e, "step": 100 * (e + 1), "lr": 1e-3, "train_loss": 2.0 / (e + 1),
                    "eval_top1": claimed - 3 + e + rng.gauss(0, 0.5), "eval_top5": 95.0 + rng.random(),
                    "eval_images": 10000, "eval_img_s": 500 + rng.random()} for e in range(epochs)]
        atomic_write_text("".join(json.dumps(line) + "\n" for line in history), directory / "metrics.jsonl")
        diverged = index % DIVERGED_EVERY == DIVERGED_EVERY - 1
        final = {"status": "diverged" if diverged else "finished",
                 "message": "loss is nan at step 250" if diverged else f"trained {epochs} epochs",
                 "epochs_completed": epochs, "global_step": 100 * epochs,
                 "best_top1": max(h["eval_top1"] for h in history), "best_epoch": epochs - 1, "last": history[-1],
                 "params": params, "wall_time_s": 3600 * rng.uniform(1, 20), "peak_memory_mb": 2048.0,
                 "eval_batch": 64, "batch_dependent": False,
                 "code_fingerprint": shared["provenance"]["code_fingerprint"]}
        if not diverged:
            self._measurements(directory, final, rng, spec.T, params)
        atomic_write_text(json.dumps(final, indent=1), directory / "final.json")
        write_status(directory, "diverged" if diverged else "finished", final["message"] if diverged else None)
        return directory

    @staticmethod
    def _measurements(directory: Path, final: dict[str, Any], rng: random.Random, T: int, params: int) -> None:
        """energy.json, firing.json/.md and the predictions, as the engine writes them; the summaries into final."""
        import numpy as np

        from harness.atomicfile import atomic_write_text
        from harness.engine.predictions import write_predictions
        from harness.metrics.layer_rates import layer_rates, render_layer_rates

        report = _energy_report(rng, T, params)
        atomic_write_text(json.dumps(report.as_dict(), indent=1), directory / "energy.json")
        final["energy"], final["neurobench"] = report.summary(), report.neurobench
        rates = layer_rates({"per_layer": report.firing_per_layer, "overall": report.firing_overall,
                             "per_layer_step": report.firing_per_layer_step}, T, report.images)
        atomic_write_text(json.dumps(rates, indent=1), directory / "firing.json")
        atomic_write_text(render_layer_rates(rates, "firing rates"), directory / "firing.md")
        predictions = np.random.default_rng(rng.randrange(2**32)).integers(0, 10, 100)
        write_predictions(directory, predictions, 10, split="test", eval_batch=64, world_size=1)


def generate(base: Path, runs: int, suites: int) -> tuple[list[Path], Path, Path]:
    """Write the suites and the run directories under ``base``; returns (suite files, the all-suite, results)."""
    from harness.suite import expand, load_suite

    paths, every = write_suites(base / "suites", plan(runs, suites))
    results = base / "results"
    writer = RunWriter(results)
    specs = expand(load_suite(every))
    for index, spec in enumerate(specs):
        writer.write(spec, index)
    return paths, every, results


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def timed(argv: list[str], cwd: Path, env: dict[str, str] | None = None) -> tuple[float, float, str, float]:
    """Wall seconds and CPU seconds (user + system) of a ``python -m harness`` command in a fresh process, its
    output's last line and the 1-minute load average when it ended. On a shared machine the CPU seconds are what
    the command costs; the wall seconds add the wait for a core."""
    start, cpu = time.monotonic(), _children_cpu()
    done = subprocess.run([sys.executable, "-m", "harness", *argv], cwd=cwd, capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(REPO), **(env or {})})
    seconds, cpu = time.monotonic() - start, _children_cpu() - cpu
    if done.returncode not in (0, 1):
        raise RuntimeError(f"`harness {' '.join(argv)}` exited {done.returncode}: {done.stderr.strip()[-2000:]}")
    lines = done.stdout.strip().splitlines()
    return seconds, cpu, lines[-1] if lines else "", os.getloadavg()[0]


def measure(base: Path, runs: int, suites: int) -> dict[str, Any]:
    """Generate (unless ``base`` already holds these N runs) and collect them (unless that was done), then time the
    commands; ``status`` twice: first with nothing cached (an empty user cache, no status index), then again."""
    marker = base / MARKER
    recorded = json.loads(marker.read_text()) if marker.exists() else {}
    results, suite_dir = base / "results", base / "suites"
    figures: dict[str, Any] = {"runs": runs, "suites": suites, "cpu": cpu_description()}
    if recorded.get("runs") == runs and recorded.get("suites") == suites:
        figures.update({k: v for k, v in recorded.items() if k.startswith(("write", "collect_new"))})
    else:
        start = time.monotonic()
        generate(base, runs, suites)
        figures["write_s"] = time.monotonic() - start
        marker.write_text(json.dumps(figures))
    if "collect_new_s" not in figures:
        collected = timed(["collect", *_store(results)], base)
        figures.update(zip(("collect_new_s", "collect_new_cpu_s", "collect_new_line", "collect_new_load"), collected))
        marker.write_text(json.dumps(figures))
    (results / INDEX_NAME).unlink(missing_ok=True)
    status = ["status", str(suite_dir / "all.yaml"), *_store(results)]
    with tempfile.TemporaryDirectory(prefix="spikebench-cache-") as empty:  # the first, then the next status
        for name in ("status_first", "status"):
            figures.update(zip((f"{name}_s", f"{name}_cpu_s", f"{name}_line", f"{name}_load"),
                               timed(status, base, {"SPIKEBENCH_CACHE": empty})))
    commands = {"report": ["report", str(suite_dir / "site0.yaml")], "leaderboard": ["leaderboard"],
                "collect_unchanged": ["collect"]}
    for name, argv in commands.items():
        figures.update(zip((f"{name}_s", f"{name}_cpu_s", f"{name}_line", f"{name}_load"),
                           timed([*argv, *_store(results)], base)))
    figures["page_mb"] = (results / "leaderboard" / "index.html").stat().st_size / 1e6
    return figures


def cpu_description() -> str:
    """The CPU's model name and whether it has native bf16 (``avx512_bf16``, ``amx_bf16`` in /proc/cpuinfo)."""
    from harness.engine.numerics import cpu_info

    model, flags = cpu_info()
    return f"{model}; " + ", ".join(f"{flag} {'yes' if flag in flags else 'no'}" for flag in ("avx512_bf16",
                                                                                            "amx_bf16"))


def _store(results: Path) -> list[str]:
    return ["--results-dir", str(results)]


TARGETS = {"status": 5, "report": 10, "leaderboard": 15, "collect_unchanged": 30}
LABELS = {"collect_new": "collect, all new", "status_first": "status, nothing cached", "status": "status",
          "report": "report", "leaderboard": "leaderboard", "collect_unchanged": "collect, nothing new"}


def table(figures: dict[str, Any]) -> str:
    """The figures as a Markdown table: wall and CPU seconds of each command and the load average when it ended,
    against its target at 10,000 runs."""
    lines = [f"runs: {figures['runs']} in {figures['suites']} suites; writing them took {figures['write_s']:.0f} s; "
             f"CPU: {figures.get('cpu', '?')}", "",
             "| command | wall (s) | CPU (s) | load (1 min) | target at 10,000 |", "|---|---:|---:|---:|---:|"]
    for key, label in LABELS.items():
        if f"{key}_s" in figures:
            target = f"< {TARGETS[key]} s" if key in TARGETS else ""
            lines.append(f"| {label} | {figures[f'{key}_s']:.2f} | {figures.get(f'{key}_cpu_s', math.nan):.2f} "
                         f"| {figures.get(f'{key}_load', math.nan):.1f} | {target} |")
    lines.append(f"| leaderboard page (MB) | {figures['page_mb']:.2f} | | | < 5 MB |")
    return "\n".join(lines)


CHROMIUM = Path("/usr/bin/chromium")


def browser_times(page_path: Path) -> dict[str, float]:
    """Milliseconds, in headless Chromium, from navigation until every table shows its first page, and for a sort
    by top-1 and a family filter of the first (largest) table, each until the table is redrawn."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True,
                                             args=["--no-sandbox", "--disable-gpu"])
        page = browser.new_page()
        start = time.monotonic()
        page.goto(page_path.as_uri())
        page.wait_for_selector("body[data-ready]", state="attached", timeout=120_000)
        times = {"ready_ms": 1000 * (time.monotonic() - start)}
        times["sort_ms"] = page.evaluate("""() => { const t = performance.now();
            document.querySelector('#d0 th[data-key=top1] button').click(); return performance.now() - t; }""")
        times["filter_ms"] = page.evaluate("""() => { const t = performance.now();
            const select = document.querySelector('#d0 form.filters select[name=family]');
            select.value = select.options[1].value; select.dispatchEvent(new Event('change', {bubbles: true}));
            return performance.now() - t; }""")
        browser.close()
    return times


def main(argv: list[str] | None = None) -> int:
    parser = OneLineParser(prog="python -m harness bench scale", description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=positive_int, required=True, help="synthetic runs to write")
    parser.add_argument("--suites", type=positive_int, default=4, help="suites they are spread over (default 4)")
    parser.add_argument("--keep", metavar="DIR", help="write under DIR and keep it (default: a temporary folder)")
    parser.add_argument("--json", action="store_true", help="also print the figures as one JSON line")
    parser.add_argument("--chromium", action="store_true", help="also time the page in headless Chromium")
    args = parser.parse_args(argv)
    if args.keep:
        base = Path(args.keep).resolve()
        base.mkdir(parents=True, exist_ok=True)
        figures = measure(base, args.runs, args.suites)
    else:
        with tempfile.TemporaryDirectory(prefix="spikebench-scale-") as folder:
            figures = measure(Path(folder), args.runs, args.suites)
    print(table(figures))
    if args.chromium and args.keep and CHROMIUM.exists():
        figures.update(browser_times(Path(args.keep).resolve() / "results" / "leaderboard" / "index.html"))
        print(", ".join(f"{key} {figures[key]:.0f}" for key in ("ready_ms", "sort_ms", "filter_ms")))
    if args.json:
        print(json.dumps(figures))
    return 0


if __name__ == "__main__":
    sys.exit(main())
