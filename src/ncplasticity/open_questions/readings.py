"""What every row of the answers table is made of: its columns, the number formats, and the
interval's sign that a reading says in words."""

from __future__ import annotations

import numpy as np

COLUMNS = [
    "question",
    "statistic",
    "subject",
    "estimate",
    "interval_low",
    "interval_high",
    "n",
    "n_unit",
    "method",
    "reading",
]


def fmt(value) -> str:
    return "n/a" if value is None or not np.isfinite(value) else f"{value:.3g}"


def span(row) -> str:
    return f"{fmt(row['estimate'])} [{fmt(row['interval_low'])}, {fmt(row['interval_high'])}]"


def sign(low, high) -> int:
    """+1 / −1 when the interval lies above / below 0, 0 when it holds 0 or is undefined."""
    if not (np.isfinite(low) and np.isfinite(high)):
        return 0
    return 1 if low > 0 else -1 if high < 0 else 0


def answer_row(question, statistic, subject, estimate, low, high, n, unit, method, reading) -> dict:
    row = {
        "question": question,
        "statistic": statistic,
        "subject": subject,
        "estimate": estimate,
        "interval_low": low,
        "interval_high": high,
        "n": int(n),
        "n_unit": unit,
        "method": method,
    }
    row["reading"] = reading(row, sign(low, high))
    return row


def relation(s: int, what: str, beyond: str = "") -> str:
    if s > 0:
        return f"PL rises with {what}{beyond}"
    if s < 0:
        return f"PL falls as {what} rises{beyond}"
    return f"no relation of {what} with PL{beyond} can be told from zero"


def effect_row(question: str, effect: dict, method: str, reading) -> dict:
    """:func:`answer_row` of an analysis table's row with ``statistic``, ``subject``,
    ``estimate``, ``ci_low``, ``ci_high``, ``n`` and ``unit``."""
    return answer_row(
        question,
        effect["statistic"],
        effect["subject"],
        effect["estimate"],
        effect["ci_low"],
        effect["ci_high"],
        effect["n"],
        effect["unit"],
        method,
        reading,
    )
