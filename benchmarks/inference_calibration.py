"""Calibration rates of the open questions' inference over simulated studies (DESIGN §3d).

Each study is one :func:`ncplasticity.open_questions.inference.simulate_panel` (5 seeds × 3
conditions × 60 tasks, a shared non-polynomial trend, same-task innovations correlated 0.6
between PL and every measure), with white noise (phi = 0) or persistent AR(1) noise
(phi = 0.8), without a lead or with a true lead β = 0.05 of x0. Prints:

- the lead interval's false-positive rate (excludes 0) in null studies, and its coverage of β;
- the placebo's firing rate (its interval excludes 0) in null and in lead studies;
- the tournament's null rate: the share of uninformative measures (4 a study) with ``low`` > 0,
  over the null studies (half white, half AR);
- the informative measure's rank: the share of lead studies (half white, half AR) where x0
  ranks first among the measures, and its mean rank in the whole table (baselines included).

Usage: ``python benchmarks/inference_calibration.py [--studies 1000]`` (about 3 minutes on 2
cores). A benchmark, not a test: the test is ``tests/test_inference_calibration.py``.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from ncplasticity.open_questions import inference

BETA = 0.05
NOISE = {"white": 0.0, "AR": 0.8}
MEASURES = ["x1", "x2", "x0", "x3"]


def _rate(flags) -> str:
    return f"{np.mean(flags):.3f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--studies", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    rng = np.random.default_rng(args.seed)
    start = time.perf_counter()
    null_fp, coverage, placebo_null, placebo_lead = {}, {}, {}, {}
    tournament_null, first, ranks = [], [], []
    for label, phi in NOISE.items():
        null_fp[label], coverage[label], placebo_null[label], placebo_lead[label] = [], [], [], []
        for study in range(args.studies):
            panel = inference.simulate_panel(rng, phi=phi, measures=4)
            r = inference.lead_lag(panel, "x0")
            null_fp[label].append(r["low"] > 0 or r["high"] < 0)
            placebo_null[label].append(r["placebo_low"] > 0 or r["placebo_high"] < 0)
            scored = study < args.studies // 2
            if scored:
                table = inference.tournament(panel, MEASURES)
                tournament_null.extend(table.loc[table["kind"] == "measure", "low"] > 0)
            panel = inference.simulate_panel(rng, phi=phi, beta=BETA, measures=4)
            r = inference.lead_lag(panel, "x0")
            coverage[label].append(r["low"] <= BETA <= r["high"])
            placebo_lead[label].append(r["placebo_low"] > 0 or r["placebo_high"] < 0)
            if scored:
                table = inference.tournament(panel, MEASURES)
                measures = table.loc[table["kind"] == "measure", "measure"]
                first.append(measures.iloc[0] == "x0")
                ranks.append(int(table.set_index("measure").loc["x0", "rank"]))
    print(f"studies per noise kind: {args.studies} (tournament: {args.studies // 2} each)")
    print(f"lead null false-positive rate (white): {_rate(null_fp['white'])}")
    print(f"(AR): {_rate(null_fp['AR'])}")
    print(f"lead coverage (white): {_rate(coverage['white'])}")
    print(f"(AR): {_rate(coverage['AR'])}")
    print(f"placebo firing, null (white): {_rate(placebo_null['white'])}")
    print(f"(AR): {_rate(placebo_null['AR'])}")
    print(f"placebo firing, true lead (white): {_rate(placebo_lead['white'])}")
    print(f"(AR): {_rate(placebo_lead['AR'])}")
    print(f"tournament null rate: {_rate(tournament_null)}")
    print(
        f"informative measure rank: first among measures in {_rate(first)} of studies, "
        f"mean rank {np.mean(ranks):.2f} among all rows (baselines included)"
    )
    print(f"time: {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
