"""A table's display form (columns under optional group headers, row panels, notes) written as Markdown
or LaTeX (booktabs)."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from itertools import groupby
from typing import Callable, Iterable

MISSING = "—"


def is_missing(value: object) -> bool:
    """None or NaN: a value that was not measured or not claimed."""
    return value is None or (isinstance(value, float) and math.isnan(value))


def fixed(value: float | None, digits: int = 2) -> str:
    """``value`` with ``digits`` decimals (``MISSING`` when absent)."""
    return MISSING if is_missing(value) else f"{value:.{digits}f}"


def mean_std(mean: float | None, std: float | None, show: Callable[[float], str] = fixed) -> str:
    """``mean ± std`` (two decimals by default; the mean alone for one seed, ``MISSING`` for none)."""
    return MISSING if is_missing(mean) else show(mean) if is_missing(std) else f"{show(mean)} ± {show(std)}"


def nan_or(value: float | None, show: Callable[[], str]) -> str:
    """``nan`` for a NaN (a value logged as NaN, not a missing one), else what ``show`` makes of it."""
    return "nan" if isinstance(value, float) and math.isnan(value) else show()


def interval(low: float | None, high: float | None, show: Callable[[float], str] | None = None) -> str:
    """A confidence interval as ``[low, high]`` (``MISSING`` without one)."""
    show = show or fixed
    return MISSING if is_missing(low) or is_missing(high) else f"[{show(low)}, {show(high)}]"


def readable(value: float | None) -> str:
    """Two decimals from 1 up, three significant digits below (energies and firing rates span decades)."""
    return MISSING if is_missing(value) else f"{value:.2f}" if abs(value) >= 1 else f"{value:.3g}"


# Energy units and their factor from mJ, largest first.
ENERGY_UNITS = (("mJ", 1.0), ("µJ", 1e3), ("nJ", 1e6))


def energy_unit(values_mj: Iterable[float | None]) -> tuple[str, float]:
    """The largest unit (and its factor from mJ) in which the median of these energies reads 0.1 or more: one
    unit per column, so that its values compare at a glance (0.00393 mJ reads as 3.93 µJ, 0.9 mJ stays). mJ
    without values."""
    present = sorted(abs(v) for v in values_mj if not is_missing(v) and math.isfinite(v) and v != 0)
    if not present:
        return ENERGY_UNITS[0]
    median = present[len(present) // 2]
    return next(((u, f) for u, f in ENERGY_UNITS if median * f >= 0.1), ENERGY_UNITS[-1])


@dataclass(frozen=True)
class Column:
    """One displayed column: the row key it shows, its header, the group header above it, its alignment."""

    key: str
    header: str
    group: str | None = None
    align: str = "r"


@dataclass(frozen=True)
class Panel:
    """A run of rows under an optional label (Table 2 has one panel per dataset)."""

    label: str | None
    rows: tuple[dict[str, str], ...]


@dataclass(frozen=True)
class DisplayTable:
    """What a rendered table shows: formatted cells only, every number already turned into text."""

    name: str
    title: str
    columns: tuple[Column, ...]
    panels: tuple[Panel, ...]
    notes: tuple[str, ...]


_MARKDOWN_ENTITIES = {"&": "&amp;", "<": "&lt;", ">": "&gt;"}
_MARKDOWN_SPECIAL = "\\`*[]|"
_MARKDOWN_PATTERN = re.compile(f"[{re.escape(''.join(_MARKDOWN_ENTITIES) + _MARKDOWN_SPECIAL)}]|\n")


def markdown_escape(text: str) -> str:
    """Text shown literally in a Markdown table cell or line: raw HTML becomes entities, the characters of
    links, code, emphasis and table pipes are backslash-escaped, a newline becomes a space."""
    def escaped(match: re.Match) -> str:
        char = match.group()
        return " " if char == "\n" else _MARKDOWN_ENTITIES.get(char, "\\" + char)

    return _MARKDOWN_PATTERN.sub(escaped, text)


def to_markdown(table: DisplayTable, level: int = 2) -> str:
    """The table as GitHub Markdown: a heading, one pipe table per panel, then the notes."""
    header = "| " + " | ".join(markdown_escape(f"{c.group} {c.header}" if c.group else c.header)
                               for c in table.columns) + " |"
    rule = "|" + "|".join("---" if c.align == "l" else "---:" for c in table.columns) + "|"
    lines = [f"{'#' * level} {markdown_escape(table.title)}", ""]
    for panel in table.panels:
        if panel.label:
            lines += [f"{'#' * (level + 1)} {markdown_escape(panel.label)}", ""]
        lines += [header, rule]
        lines += ["| " + " | ".join(markdown_escape(row[c.key]) for c in table.columns) + " |" for row in panel.rows]
        lines.append("")
    lines += [f"- {markdown_escape(note)}" for note in table.notes]
    return "\n".join(lines).rstrip() + "\n"


_LATEX_SPECIAL = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_",
                  "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}",
                  "±": r"$\pm$", "Δ": r"$\Delta$", "—": "--", "−": "$-$", "†": r"\dag{}", "‡": r"\ddag{}",
                  "<": r"\textless{}", ">": r"\textgreater{}", "µ": r"$\mu$"}
_LATEX_PATTERN = re.compile("|".join(re.escape(k) for k in _LATEX_SPECIAL))


def latex_escape(text: str) -> str:
    """Text safe inside a LaTeX tabular (special characters and the symbols the tables use)."""
    return _LATEX_PATTERN.sub(lambda m: _LATEX_SPECIAL[m.group()], text)


def _latex_headers(columns: tuple[Column, ...]) -> list[str]:
    if not any(c.group for c in columns):
        return [" & ".join(latex_escape(c.header) for c in columns) + r" \\"]
    cells, rules, start = [], [], 1
    for group, members in groupby(columns, key=lambda c: c.group):
        width = len(list(members))
        if group is None:
            cells += [""] * width
        else:
            cells.append(rf"\multicolumn{{{width}}}{{c}}{{{latex_escape(group)}}}")
            rules.append(rf"\cmidrule(lr){{{start}-{start + width - 1}}}")
        start += width
    return [" & ".join(cells) + r" \\", " ".join(rules),
            " & ".join(latex_escape(c.header) for c in columns) + r" \\"]


def to_latex(table: DisplayTable) -> str:
    """The table as a LaTeX ``table`` float with booktabs rules (needs ``\\usepackage{booktabs}``)."""
    width = len(table.columns)
    lines = [r"\begin{table}[t]", r"\centering", r"\small",
             rf"\caption{{{latex_escape(table.title)}}}",
             rf"\begin{{tabular}}{{{''.join(c.align for c in table.columns)}}}", r"\toprule",
             *_latex_headers(table.columns)]
    for panel in table.panels:
        lines.append(r"\midrule")
        if panel.label:
            lines.append(rf"\multicolumn{{{width}}}{{l}}{{\textit{{{latex_escape(panel.label)}}}}} \\")
        lines += [" & ".join(latex_escape(row[c.key]) for c in table.columns) + r" \\" for row in panel.rows]
    lines += [r"\bottomrule", r"\end{tabular}"]
    if table.notes:
        lines += [r"\par\smallskip", r"\begin{minipage}{\linewidth}\footnotesize",
                  *[latex_escape(note) + r"\par" for note in table.notes], r"\end{minipage}"]
    lines.append(r"\end{table}")
    return "\n".join(lines) + "\n"
