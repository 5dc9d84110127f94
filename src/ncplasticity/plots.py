"""Drawing helpers shared by every figure. Experiments load their data (their analysis
modules) and describe panels; this module only draws.

Conventions: one colour per series name (a variant keeps its colour in every figure, also when
variants are added or reordered), registry labels and scales, integer ticks for tasks and
epochs, markers on short curves, and a visible "no data" note on an empty panel.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402

# Curves with at most this many points get markers.
MARKER_POINTS = 30
# Saturated colours only (tab10, then Dark2), so every line reads on white.
_PALETTE = [plt.get_cmap("tab10")(i) for i in range(10)] + [
    plt.get_cmap("Dark2")(i) for i in range(8)
]
REFERENCE_COLOR = "k"


def _slot(name: str) -> int:
    digest = hashlib.md5(name.encode()).digest()
    return int.from_bytes(digest[:4], "little") % len(_PALETTE)


def series_colors(names) -> dict:
    """Colours of named series (variants): each name hashes to a palette slot, so its colour
    depends on the name, not on the order or on which other variants are shown; names whose
    slots collide take the next free slot, in sorted order (so reordering never changes a
    colour, and adding a variant changes another's only on a collision)."""
    taken, colors = set(), {}
    for name in sorted(set(names)):
        slot = _slot(name)
        while slot in taken and len(taken) < len(_PALETTE):
            slot = (slot + 1) % len(_PALETTE)
        taken.add(slot)
        colors[name] = _PALETTE[slot]
    return colors


@dataclass
class Series:
    """One line: x values and either per-seed rows (mean ± std drawn) or one row."""

    x: np.ndarray
    values: np.ndarray  # [seeds, points] or [points]
    std: np.ndarray | None = None  # a precomputed band (values then is the mean)


@dataclass
class Panel:
    ylabel: str
    series: Mapping[str, Series]
    scale: str = "linear"
    ylim: tuple[float, float] | None = None
    zero_line: bool = False
    references: Mapping[str, tuple[float, float]] = field(default_factory=dict)  # mean, std


def save_figure(
    fig, pdf_path: str | os.PathLike | None, png_path: str | os.PathLike, tight: bool = True
) -> None:
    """Write one figure as PDF and PNG (PNG only when ``pdf_path`` is None), then close it;
    cropped to what is drawn (``tight``, which draws the figure once more), or as laid out."""
    bbox = "tight" if tight else None
    if pdf_path is not None:
        fig.savefig(pdf_path, bbox_inches=bbox)
    fig.savefig(png_path, bbox_inches=bbox, dpi=150)
    plt.close(fig)


def _draw_series(ax, name: str, series: Series, color) -> bool:
    values = np.asarray(series.values, dtype=float)
    x = np.asarray(series.x, dtype=float)
    if values.ndim == 2:
        # Mean and std over the finite seeds of each point (NaN where there is none).
        finite = np.isfinite(values)
        count = finite.sum(axis=0)
        filled = np.where(finite, values, 0.0)
        mean = np.where(count > 0, filled.sum(axis=0) / np.maximum(count, 1), np.nan)
        squares = np.where(finite, (values - mean) ** 2, 0.0).sum(axis=0)
        std = np.where(count > 0, np.sqrt(squares / np.maximum(count, 1)), np.nan)
    else:
        mean = values
        std = None if series.std is None else np.asarray(series.std, dtype=float)
    if not np.isfinite(mean).any():
        return False
    marker = "o" if len(x) <= MARKER_POINTS else None
    ax.plot(x, mean, color=color, marker=marker, ms=3, lw=1.3, label=name)
    if std is not None and len(x) == 1:
        ax.errorbar(x, mean, yerr=std, color=color, capsize=3, lw=1)
    elif std is not None:
        ax.fill_between(x, mean - std, mean + std, color=color, alpha=0.2, lw=0)
    return True


def draw_panel(ax, panel: Panel, xlabel: str, integer_x: bool = True, colors=None) -> None:
    colors = colors or series_colors(panel.series)
    drawn = [_draw_series(ax, name, series, colors[name]) for name, series in panel.series.items()]
    for name, (mean, std) in panel.references.items():
        if np.isfinite(mean):
            ax.axhline(mean, color=REFERENCE_COLOR, ls="--", lw=1, label=name)
            ax.axhspan(mean - std, mean + std, color=REFERENCE_COLOR, alpha=0.1, lw=0)
            drawn.append(True)
    if not any(drawn):
        ax.text(
            0.5,
            0.5,
            "no data",
            transform=ax.transAxes,
            ha="center",
            va="center",
            color="0.4",
            fontsize="large",
        )
    elif panel.scale == "log" and _all_positive(panel):
        ax.set_yscale("log")
    if panel.zero_line:
        ax.axhline(0, color="0.5", lw=0.8)
    if panel.ylim is not None:
        ax.set_ylim(*panel.ylim)
    if integer_x:
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        xs = [np.asarray(series.x, dtype=float) for series in panel.series.values()]
        xs = np.concatenate(xs) if xs else np.array([])
        if len(xs) and np.ptp(xs) < 2:  # a single point: leave room for integer ticks
            ax.set_xlim(xs.min() - 1, xs.max() + 1)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(panel.ylabel)
    ax.grid(alpha=0.3)


def _all_positive(panel: Panel) -> bool:
    values = [np.asarray(s.values, dtype=float) for s in panel.series.values()]
    finite = np.concatenate([v[np.isfinite(v)].ravel() for v in values]) if values else []
    return len(finite) > 0 and bool(np.all(finite > 0))


def panels_figure(
    panels: Sequence[Panel],
    xlabel: str,
    pdf,
    png,
    *,
    integer_x: bool = True,
    title: str | None = None,
    sharey: bool = False,
    color_names=(),
    fixed_layout: bool = False,
) -> None:
    """Panels side by side (any number), one legend for the whole figure. ``color_names``:
    every variant of the study, so that colours agree between figures showing subsets.
    ``fixed_layout``: margins set in inches instead of fitted to the drawn text, which costs
    two extra draws (1.1 s instead of 0.55 s for a five-panel figure here): for figures drawn
    by the hundred, the per-run curves."""
    n = max(1, len(panels))
    width = 3.3 * n if n > 1 else 5.5  # a lone panel carries the whole legend above it
    height = 3.0 if n > 1 else 3.8
    fig, axes = plt.subplots(1, n, figsize=(width, height), squeeze=False, sharey=sharey)
    colors = series_colors([*color_names, *(name for panel in panels for name in panel.series)])
    for ax, panel in zip(axes[0], panels, strict=False):
        draw_panel(ax, panel, xlabel, integer_x, colors)
    if not panels:
        axes[0][0].text(0.5, 0.5, "no data", transform=axes[0][0].transAxes, ha="center")
    handles, labels = {}, {}
    for ax in axes[0]:
        for handle, label in zip(*ax.get_legend_handles_labels(), strict=True):
            handles.setdefault(label, handle)
            labels[label] = label
    # Fixed layout: inches above the axes for the title's line, then the legend's.
    title_inches = 0.3 if title else 0.0
    if handles:
        fig.legend(
            handles.values(),
            labels.values(),
            loc="upper center",
            ncol=min(len(handles), 6),
            fontsize="small",
            bbox_to_anchor=(0.5, 1 - title_inches / height if fixed_layout else 1.0),
        )
    if title:
        fig.suptitle(title, y=1 - 0.05 / height if fixed_layout else 1.08, fontsize="medium")
    if fixed_layout:
        above = title_inches + (0.35 if handles else 0.0) + 0.1
        # Room for tick labels and axis labels: 0.95 in left of each panel, 0.55 in below.
        panel = (width - 1.05 - 0.95 * (n - 1)) / n
        fig.subplots_adjust(
            left=0.95 / width,
            right=1 - 0.1 / width,
            bottom=0.55 / height,
            top=1 - above / height,
            wspace=0.95 / panel,
        )
    else:
        fig.tight_layout(rect=(0, 0, 1, 0.88 if handles else 1))
    save_figure(fig, pdf, png, tight=not fixed_layout)
