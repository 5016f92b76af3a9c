"""What every spikebench command line shares: a parser whose mistakes are one line (exit 2) and takes no
abbreviated flags, range-checked numeric argument types, and the hint for an unknown model name.

A flag's range is checked when the command line is parsed, before anything is built or started: ``--jobs 0``
would otherwise wait forever for a worker slot, ``--epochs -1`` fail deep inside the run's configuration.
"""

from __future__ import annotations

import argparse
import difflib
from typing import Callable, NoReturn

SEED_MAX = 2**32 - 1  # numpy's seeds stop there; torch's go further
LIST_MODELS = "`python -m harness ls models`"


class OneLineParser(argparse.ArgumentParser):
    """An argument parser that reports a mistake as one line (``error: PROG: ...``, exit 2, no usage block)
    and refuses abbreviated long flags (``--job 2`` is no ``--jobs 2``)."""

    def __init__(self, *args, **kwargs) -> None:
        kwargs.setdefault("allow_abbrev", False)
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> NoReturn:  # type: ignore[override]
        self.exit(2, f"error: {self.prog}: {message}\n")


def int_range(low: int, high: int | None = None) -> Callable[[str], int]:
    """An argparse ``type`` taking a whole number in ``[low, high]`` (no upper end when ``high`` is None)."""
    allowed = f"a whole number >= {low}" if high is None else f"a whole number from {low} to {high}"

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {allowed}, got {text!r}") from None
        if value < low or (high is not None and value > high):
            raise argparse.ArgumentTypeError(f"expected {allowed}, got {value}")
        return value

    return parse


positive_int = int_range(1)
non_negative_int = int_range(0)
seed_int = int_range(0, SEED_MAX)


def fraction(text: str) -> float:
    """A share between 0 and 1, both included (``--tolerance 0.01``)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a fraction from 0 to 1, got {text!r}") from None
    if not 0 <= value <= 1:  # also refuses nan
        raise argparse.ArgumentTypeError(f"expected a fraction from 0 to 1, got {text}")
    return value


def energy_images(text: str) -> int | str:
    """``--energy-images``: 'all' or a whole number of images >= 0 (0 = no energy measurement)."""
    if text == "all":
        return text
    try:
        return non_negative_int(text)
    except argparse.ArgumentTypeError:
        raise argparse.ArgumentTypeError(f"expected 'all' or a whole number of images >= 0, got {text!r}") from None


def closest(value: str, valid: list[str], n: int = 3) -> list[str]:
    """The ``n`` names of ``valid`` that look most like ``value`` (none when nothing is close)."""
    return difflib.get_close_matches(value, valid, n=n, cutoff=0.5)


def unknown_model(name: str) -> str | None:
    """None when ``name`` is a registered zoo model, else one line for it: the closest names only (the full list
    is 50 names long) and the command that lists them all."""
    import zoo

    valid = zoo.list_models()
    if name in valid:
        return None
    close = closest(name, valid)
    hint = f"did you mean {', '.join(close)}? " if close else ""
    return f"unknown model {name!r}; {hint}all {len(valid)} models: {LIST_MODELS}"
