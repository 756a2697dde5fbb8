#!/usr/bin/env python3
"""Weighing benchmark: generate the standard and hard sets, weigh them, score them.

    .venv/bin/python bench/weigh.py [--count-standard 2000] [--count-hard 1000] [--perturb]

Needs ../shared (the generator and the scorer). Prints the scorer's table per set, the solver's
compute time per session (p50, p99), and, as a baseline measured in the same run, a naive
solver (trusts the transmitter's stable flag, rounds each shelf to its nearest take, never
uncertain) with the ratio of exact verdicts. ``--perturb`` also weighs perturbed copies of the
standard set (spikes, heavier-tailed noise, catalogue weights off by 1 %, stock counts off by
one, resampled to 5 Hz), phenomena the generator does not make.
"""

from __future__ import annotations

import argparse
import copy
import gc
import itertools
import json
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared" / "bench"
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(SHARED))

from kiosk.weighing import solve_scenario  # noqa: E402


def generate(profile: str, count: int, seed: int = 1) -> list[dict]:
    out = subprocess.run(
        [
            sys.executable,
            str(SHARED / "weighgen.py"),
            "--seed",
            str(seed),
            "--count",
            str(count),
            "--profile",
            profile,
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return [json.loads(line) for line in out.splitlines() if line.strip()]


def naive(sc: dict) -> dict:
    """Baseline: stable flag after the close, nearest take of up to 4 items per shelf."""
    hz, t_open, t_close = sc["sample_hz"], sc["door_open_s"], sc["door_close_s"]
    taken: dict[str, int] = {}
    decided = t_close
    for sh in sc["shelves"]:
        rd = sc["readings"][sh["id"]]
        ts = [rd["t0"] + i / hz for i in range(len(rd["g"]))]
        pre = sorted(g for t, g in zip(ts, rd["g"], strict=False) if t < t_open and g is not None)
        post = [
            (t, g)
            for t, g, s in zip(ts, rd["g"], rd["stable"], strict=False)
            if t >= t_close and s == "1"
        ]
        if not pre or not post:
            continue
        decided = max(decided, post[0][0])
        delta = post[0][1] - pre[len(pre) // 2]
        lanes = sh["stock"]
        best = min(
            (r for r in itertools.product(range(5), repeat=len(lanes)) if sum(r) <= 4),
            key=lambda r: abs(
                delta + sum(k * ln["unit_g"] for k, ln in zip(r, lanes, strict=False))
            ),
        )
        for k, ln in zip(best, lanes, strict=False):
            if k:
                taken[ln["sku"]] = taken.get(ln["sku"], 0) + k
    return {
        "id": sc["id"],
        "taken": taken,
        "misplaced": [],
        "foreign": [],
        "fault": [],
        "uncertain": False,
        "confidence": 1.0,
        "decided_s": decided,
    }


def weigh(scenarios: list[dict], solver) -> tuple[list[dict], list[float]]:
    results, times = [], []
    for sc in scenarios:
        blind = {k: v for k, v in sc.items() if k != "truth"}
        t = time.perf_counter()
        results.append(solver(blind))
        times.append(time.perf_counter() - t)
    return results, sorted(times)


def perturbations(scenarios: list[dict], seed: int = 7) -> dict[str, list[dict]]:
    rng = random.Random(seed)
    out: dict[str, list[dict]] = {}

    def each(fn) -> list[dict]:
        res = []
        for sc in scenarios:
            sc = copy.deepcopy(sc)
            fn(sc)
            res.append(sc)
        return res

    def spikes(sc):
        for rd in sc["readings"].values():
            rd["g"] = [
                g + rng.choice((-1, 1)) * rng.uniform(50, 3000)
                if g is not None and rng.random() < 0.01
                else g
                for g in rd["g"]
            ]

    def heavy(sc):  # student-t(3)-like extra noise
        for rd in sc["readings"].values():
            rd["g"] = [
                None if g is None else round(g + rng.gauss(0, 1) / max(rng.random(), 0.05) ** 0.5)
                for g in rd["g"]
            ]

    def unit_off(sc):
        for sh in sc["shelves"]:
            for ln in sh["stock"]:
                ln["unit_g"] = round(ln["unit_g"] * rng.choice((0.99, 1.01)), 1)

    def count_off(sc):
        lanes = [ln for sh in sc["shelves"] for ln in sh["stock"]]
        ln = rng.choice(lanes)
        ln["count"] = max(0, ln["count"] + rng.choice((-1, 1)))

    def to_5hz(sc):
        if sc["sample_hz"] == 10.0:
            sc["sample_hz"] = 5.0
            for rd in sc["readings"].values():
                rd["g"] = rd["g"][::2]
                rd["stable"] = rd["stable"][::2]

    def creep(sc):  # 0.05 % of each load change, creeping in over ~20 s after the close
        hz = sc["sample_hz"]
        for rd in sc["readings"].values():
            g = rd["g"]
            k0 = next((i for i, v in enumerate(g) if v is not None), 0)
            base = g[k0]
            for i, v in enumerate(g):
                t = rd["t0"] + i / hz
                if v is not None and base is not None and t > sc["door_close_s"]:
                    g[i] = round(v + 0.0005 * (v - base) * min((t - sc["door_close_s"]) / 20, 1))

    for name, fn in (
        ("spikes", spikes),
        ("heavy-tailed noise", heavy),
        ("catalogue +-1 %", unit_off),
        ("stock count +-1", count_off),
        ("resampled 5 Hz", to_5hz),
        ("creep", creep),
    ):
        out[name] = each(fn)
    return out


def table(name: str, results: list[dict], scenarios: list[dict]) -> dict:
    from weighscore import score

    fig, _ = score(results, scenarios)
    return fig


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--count-standard", type=int, default=2000)
    ap.add_argument("--count-hard", type=int, default=1000)
    ap.add_argument("--perturb", action="store_true")
    args = ap.parse_args()
    if not (SHARED / "weighgen.py").exists():
        sys.exit(f"bench/weigh.py: needs {SHARED}")
    sets = {
        "standard": generate("standard", args.count_standard),
        "hard": generate("hard", args.count_hard),
    }
    if args.perturb:
        for k, v in perturbations(sets["standard"][: min(500, args.count_standard)]).items():
            sets[f"standard/{k}"] = v
    # Thousands of scenarios held in memory make each full garbage collection slow; that is
    # the benchmark's data, not the solver's work, so keep it out of the collector's sight.
    gc.collect()
    gc.freeze()
    for name, scenarios in sets.items():
        results, times = weigh(scenarios, solve_scenario)
        base, _ = weigh(scenarios, naive)
        fig, fb = table(name, results, scenarios), table(name, base, scenarios)
        with tempfile.NamedTemporaryFile("w", suffix=".jsonl", delete=False) as f:
            f.writelines(json.dumps(r) + "\n" for r in results)
        print(f"== {name} ({len(scenarios)} scenarios)")
        for k in ("exact", "uncertain", "silent_wrong", "silent_overcharge"):
            print(f"  {k.replace('_', ' '):<26}{fig[k]:>8.2f} %   (naive {fb[k]:.2f} %)")
        print(
            f"  {'decision lag p50 / p95':<26}{fig['lag_p50_s']:>8.2f} / {fig['lag_p95_s']:.2f} s"
        )
        print(f"  {'ambiguous (limit)':<26}{fig['ambiguous']:>8.2f} %")
        ratio = fig["exact"] / fb["exact"] if fb["exact"] else float("inf")
        print(f"  exact vs naive baseline   {ratio:8.2f} x")
        p50, p99 = times[len(times) // 2], times[min(len(times) - 1, int(0.99 * len(times)))]
        print(f"  compute per session       p50 {p50 * 1000:.1f} ms, p99 {p99 * 1000:.1f} ms")
        print(f"  results: {f.name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
