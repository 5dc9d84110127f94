"""Writing tab-separated tables: one format for every stage. Training jobs write rows with
:func:`write_tsv` (no pandas needed); analyses write pandas tables with :func:`write_table`
and read them with :func:`ncplasticity.tables.read_table`. Generated Markdown copies of tables
are built with :func:`markdown_row` and written with :func:`write_text`."""

from __future__ import annotations

import math
import os
import sys
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import TextIO

import numpy as np


def _format(value) -> str:
    if value is None:
        return ""
    if isinstance(value, (bool, np.bool_)):
        return str(bool(value))
    if isinstance(value, (float, np.floating)):
        value = float(value)
        return "nan" if math.isnan(value) else repr(value)
    return str(value)


def write_tsv(
    path: str | os.PathLike, rows: Iterable[Mapping], columns: Sequence[str] | None = None
) -> None:
    """Write rows (dicts) as a TSV with a header; missing values are written empty.

    Columns default to the union of the rows' keys in first-seen order. The file is written
    to a temporary name and renamed, so a reader never sees half a table. A path of ``-`` is
    standard output.
    """
    if str(path) == "-":
        write_tsv_stream(sys.stdout, rows, columns)
        return
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w") as fh:
        write_tsv_stream(fh, rows, columns)
    os.replace(tmp, path)


def write_tsv_stream(
    stream: TextIO, rows: Iterable[Mapping], columns: Sequence[str] | None = None
) -> None:
    """The TSV of :func:`write_tsv`, written to an open text stream."""
    rows = list(rows)
    if columns is None:
        columns = list(dict.fromkeys(key for row in rows for key in row))
    stream.write("\t".join(columns) + "\n")
    for row in rows:
        stream.write("\t".join(_format(row.get(col)) for col in columns) + "\n")


def write_table(table, path: str | os.PathLike) -> None:
    """Write a pandas DataFrame in :func:`write_tsv`'s format (atomically)."""
    write_tsv(path, table.to_dict("records"), list(table.columns))


def markdown_row(cells) -> str:
    """One row of a Markdown table (pipes inside cells escaped)."""
    return "| " + " | ".join(str(cell).replace("|", "\\|") for cell in cells) + " |"


def write_text(path: str | os.PathLike, text: str) -> None:
    """Write ``text`` to ``path`` atomically (a reader never sees half a file)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)
