"""What every row of the answers table is made of, how it is read (DESIGN §3d), and its Markdown.

A row is an estimate with its 95 % interval, its p, and what the interval rests on. Only the
*primary* analyses (named in the study's config before it runs, ``open_questions.primary``)
get a verdict; every other row is *secondary*: read as an effect size with its interval, with
a Benjamini–Hochberg q over all secondary rows that have a p. A *note* (runs left out, and
why) has no statistic. Where the study names a reference answers table (a study at another
scale), each row carries the reference's estimate and interval and whether it reads the same
(the same sign of its interval: above 0, below 0, or holding 0).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ncplasticity.tsv import markdown_row

COLUMNS = [
    "question",
    "statistic",
    "subject",
    "role",
    "estimate",
    "interval_low",
    "interval_high",
    "p",
    "q",
    "n",
    "n_unit",
    "method",
    "reading",
]
REFERENCE_COLUMNS = ["reference_estimate", "reference_low", "reference_high", "same_reading"]
KEY = ["question", "statistic", "subject"]
PRIMARY, SECONDARY, NOTE = "primary", "secondary", "note"


def fmt(value) -> str:
    return "n/a" if value is None or not np.isfinite(value) else f"{value:.3g}"


def span(row) -> str:
    return f"{fmt(row['estimate'])} [{fmt(row['interval_low'])}, {fmt(row['interval_high'])}]"


def sign(low, high) -> int:
    """+1 / −1 when the interval lies above / below 0, 0 when it holds 0 or is undefined."""
    if not (np.isfinite(low) and np.isfinite(high)):
        return 0
    return 1 if low > 0 else -1 if high < 0 else 0


def answer_row(
    question, statistic, subject, estimate, low, high, p, n, unit, method, description, verdict=None
) -> dict:
    """A row before it is read: ``description`` says what the estimate is; ``verdict`` (sign of
    the interval -> words), used only where the row is primary."""
    return {
        "question": question,
        "statistic": statistic,
        "subject": subject,
        "estimate": estimate,
        "interval_low": low,
        "interval_high": high,
        "p": p,
        "n": int(n),
        "n_unit": unit,
        "method": method,
        "description": description,
        "verdict": verdict,
    }


def effect_row(question: str, effect: dict, method: str, description: str, verdict=None) -> dict:
    """:func:`answer_row` of an analysis table's row with ``statistic``, ``subject``,
    ``estimate``, ``ci_low``, ``ci_high``, ``p``, ``n`` and ``unit``."""
    return answer_row(
        question,
        effect["statistic"],
        effect["subject"],
        effect["estimate"],
        effect["ci_low"],
        effect["ci_high"],
        effect["p"],
        effect["n"],
        effect["unit"],
        method,
        description,
        verdict,
    )


def note_row(question: str, statistic: str, subject: str, n: int, unit: str, text: str) -> dict:
    """A row without a statistic (e.g. the runs a condition leaves out of pooled analyses)."""
    row = answer_row(
        question, statistic, subject, float(n), np.nan, np.nan, np.nan, n, unit, "", text
    )
    return row | {"role": NOTE}


def _bh(p: pd.Series) -> pd.Series:
    from statsmodels.stats.multitest import multipletests

    q = pd.Series(np.nan, index=p.index)
    finite = p.notna()
    if finite.any():
        q[finite] = multipletests(p[finite].to_numpy(), method="fdr_bh")[1]
    return q


def _reading(row: dict) -> str:
    if row["role"] == NOTE:
        return row["description"]
    text = f"{row['description']}: {span(row)} over {row['n']} {row['n_unit']}"
    if row["role"] == PRIMARY:
        verdict = row["verdict"](sign(row["interval_low"], row["interval_high"]))
        return f"{text}. Primary: {verdict}"
    return f"{text} (secondary, q = {fmt(row['q'])})."


def finish(rows: list[dict], primary, reference: pd.DataFrame | None = None) -> pd.DataFrame:
    """The table (:data:`COLUMNS`, then :data:`REFERENCE_COLUMNS` with a ``reference``
    table) from :func:`answer_row` dicts: roles from ``primary`` (statistic names; one that
    names no row is an error), q-values over the secondary rows, the readings."""
    primary = list(primary or [])
    unknown = sorted(set(primary) - {row["statistic"] for row in rows})
    if unknown:
        known = ", ".join(sorted({row["statistic"] for row in rows}))
        raise ValueError(
            f"open_questions.primary: {unknown} name no row of the answers table; its "
            f"statistics are: {known}"
        )
    table = pd.DataFrame(rows)
    if "role" not in table:
        table["role"] = np.nan
    named = table["statistic"].isin(primary)
    # A primary analysis that could not be estimated stays in the table as a note saying why.
    no_verdict = table["verdict"].isna() & (table["role"] != NOTE)
    if (named & no_verdict).any():
        names = sorted(table.loc[named & no_verdict, "statistic"].unique())
        raise ValueError(f"open_questions.primary: {names} cannot be primary (no verdict)")
    table["role"] = table["role"].where(table["role"].notna(), np.where(named, PRIMARY, SECONDARY))
    table["p"] = table["p"].astype(float)
    secondary = table["role"] == SECONDARY
    table["q"] = np.nan
    table.loc[secondary, "q"] = _bh(table.loc[secondary, "p"])
    table["reading"] = [_reading(row) for row in table.to_dict("records")]
    table = table[COLUMNS]
    if reference is not None:
        table = with_reference(table, reference)
    return table


def with_reference(table: pd.DataFrame, reference: pd.DataFrame) -> pd.DataFrame:
    """``table`` with each row's estimate and interval in ``reference`` (matched on
    :data:`KEY`) and ``same_reading``: "yes" where both intervals have the same sign, "no"
    where not, "" where the reference lacks the row or either row has no interval."""
    ref = reference[[*KEY, "estimate", "interval_low", "interval_high"]].rename(
        columns={
            "estimate": "reference_estimate",
            "interval_low": "reference_low",
            "interval_high": "reference_high",
        }
    )
    ref = ref.assign(subject=ref["subject"].astype(str)).drop_duplicates(KEY)
    out = table.assign(subject=table["subject"].astype(str)).merge(ref, on=KEY, how="left")
    same = []
    for row in out.to_dict("records"):
        bounds = [row[c] for c in ("interval_low", "interval_high", "reference_low")]
        bounds.append(row["reference_high"])
        if row["role"] == NOTE or not np.all(np.isfinite(np.asarray(bounds, dtype=float))):
            same.append("")
            continue
        ours = sign(row["interval_low"], row["interval_high"])
        theirs = sign(row["reference_low"], row["reference_high"])
        same.append("yes" if ours == theirs else "no")
    out["same_reading"] = same
    return out


def markdown(answers: pd.DataFrame, reference_name: str | None = None) -> str:
    header = (
        "Generated by the workflow (rule open_questions_answers, from results/continual/tables "
        "through results/open_questions/*.tsv); do not edit. Intervals are 95 %; *n* counts "
        "what each interval rests on. Only the **primary** analyses, named in the study's "
        "config before it ran, get a verdict; every other row is an effect size with its "
        "interval and a Benjamini–Hochberg *q* over the secondary rows."
    )
    with_reference = reference_name is not None and "same_reading" in answers
    if with_reference:
        header += f" *Reference*: the same row in {reference_name}; *same*: the same reading."
    lines = [header, "", *_markdown_table(answers, with_reference)]
    if with_reference:
        holds = answers[(answers["same_reading"] == "yes") & _directional(answers)]
        lines += [
            "",
            "## Readings that hold at both scales",
            "",
            "The rows above whose interval excludes 0 and whose reference interval excludes 0 "
            f"on the same side ({len(holds)} of {len(answers)} rows).",
            "",
            *_markdown_table(holds, with_reference),
        ]
    return "\n".join(lines) + "\n"


def _directional(answers: pd.DataFrame) -> pd.Series:
    return pd.Series(
        [sign(low, high) != 0 for low, high in answers[["interval_low", "interval_high"]].values],
        index=answers.index,
    )


def _markdown_table(answers: pd.DataFrame, with_reference: bool) -> list[str]:
    names = ["question", "statistic", "subject", "role", "estimate [95 % interval]", "n", "q"]
    if with_reference:
        names += ["reference [95 % interval]", "same"]
    names.append("reading")
    lines = [markdown_row(names), markdown_row(["---"] * len(names))]
    for row in answers.to_dict("records"):
        cells = [row["question"], row["statistic"], str(row["subject"]), row["role"]]
        cells.append(f"{fmt(row['estimate'])} [{fmt(row['interval_low'])}, ")
        cells[-1] += f"{fmt(row['interval_high'])}]"
        cells += [f"{row['n']} {row['n_unit']}", fmt(row["q"])]
        if with_reference:
            cells.append(
                f"{fmt(row['reference_estimate'])} [{fmt(row['reference_low'])}, "
                f"{fmt(row['reference_high'])}]"
            )
            cells.append(row["same_reading"])
        cells.append(row["reading"])
        lines.append(markdown_row(cells))
    return lines
