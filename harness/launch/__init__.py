"""Launchers: run a suite's specs locally (a subprocess per run) or on SLURM (submitit)."""
