"""Figures. Shared helpers first, then one section per experiment."""

from __future__ import annotations

import os

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402


def save_figure(fig, pdf_path: str | os.PathLike, png_path: str | os.PathLike) -> None:
    """Write one figure as PDF and PNG, then close it."""
    fig.savefig(pdf_path, bbox_inches="tight")
    fig.savefig(png_path, bbox_inches="tight", dpi=150)
    plt.close(fig)


def mean_band(ax, x, values, label=None, color=None):
    """Plot the mean over rows of ``values`` (seeds x points) with a ±1 std band."""
    values = np.asarray(values, dtype=float)
    mean = np.nanmean(values, axis=0)
    std = np.nanstd(values, axis=0)
    (line,) = ax.plot(x, mean, label=label, color=color)
    ax.fill_between(x, mean - std, mean + std, color=line.get_color(), alpha=0.25, lw=0)
    return line


# --- Permuted MNIST ---------------------------------------------------------------------


# --- Warm starting ----------------------------------------------------------------------
