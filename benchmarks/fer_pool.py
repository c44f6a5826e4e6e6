"""Pool the frame error counts of several ``bench_ldpc.py --json`` runs into one FER table.

A frame error rate of 10⁻³ at n = 10⁶ needs ≈ 3000 frames per (n, QBER) cell — several
CPU-hours — so the evidence is gathered in many runs, on different days and code seeds. This
script adds them up, but only where they measured the same thing: rows are pooled when they
share the block length, the QBER, the first-syndrome target ``f₀`` (as resolved by the
protocol), the code family and cache format, the wire version of the messages, Bob's
iteration cap and stall rule and the blind step. Rows of different commits are pooled (the
commits are listed) unless ``--same-commit``; rows whose source tree had uncommitted changes
are refused.

The frames of a run are a function of ``(seed, n, QBER)`` (frame ``i`` is the ``i``-th draw of
that stream), so two runs with the same seed decode the same frames: per seed only the run
with the most frames counts, and the duplicates are reported.

Per cell it prints the frames, the frame-weighted mean f and the largest f, the final failures
(frames unconverged or wrong after every blind step: what verification would reject) and
the one-sided 95 % Clopper–Pearson upper bound on the FER (Clopper, Pearson, Biometrika 26,
404 (1934)); ``verified`` when that bound is at most ``--target`` (default 10⁻³). A cell
of a code family or format that this release no longer builds (``qc-bsc26j-v1`` after
format 2) is marked ``(not built now)``: its evidence is history, not a claim about the
codes a user gets; ``--current`` leaves such cells out.

Run::

    python benchmarks/fer_pool.py benchmarks/results/ldpc_fer/*.json
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any

from bench_ldpc import fer_upper
from diqkd.postproc._ldpc_codes import CODE_FAMILIES, family_format

#: The families and formats this release builds (``code_family`` of a run made with it).
CURRENT_FAMILIES = frozenset(family_format(f) for f in CODE_FAMILIES)

#: The settings that must agree for two rows to count as the same experiment.
KEY_FIELDS = (
    "n",
    "qber",
    "f0",
    "code_family",
    "wire_version",
    "max_iterations",
    "patience",
    "reveal_fraction",
)


def load(paths: list[str]) -> list[dict[str, Any]]:
    """The rows of every file, each with its run's settings and provenance merged in."""
    rows: list[dict[str, Any]] = []
    for path in paths:
        try:
            doc = json.loads(Path(path).read_text())
            run_rows = doc["rows"]
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise SystemExit(
                f"fer_pool: {path}: not a bench_ldpc.py --json output ({exc})"
            ) from None
        settings = {k: v for k, v in doc.items() if k != "rows"}
        missing = [k for k in ("code_family", "wire_version", "seed") if k not in settings]
        if missing:
            raise SystemExit(
                f"fer_pool: {path}: no {', '.join(missing)} (a run from before provenance was "
                "recorded): it cannot be pooled"
            )
        if settings.get("git_dirty"):
            raise SystemExit(f"fer_pool: {path}: decoded with uncommitted changes in src/")
        for row in run_rows:
            rows.append(settings | row | {"file": path})
    return rows


def pool(rows: list[dict[str, Any]], same_commit: bool) -> list[dict[str, Any]]:
    """One entry per cell: frames, failures, f, seeds, commits and duplicate runs."""
    cells: dict[tuple[Any, ...], dict[Any, dict[str, Any]]] = defaultdict(dict)
    duplicates: dict[tuple[Any, ...], list[str]] = defaultdict(list)
    for row in rows:
        key = tuple(round(row[k], 6) if isinstance(row[k], float) else row[k] for k in KEY_FIELDS)
        if same_commit:
            key += (row.get("git_commit"),)
        seed = row["seed"]
        held = cells[key].get(seed)
        if held is not None:
            duplicates[key].append(f"seed {seed}: {held['file']} and {row['file']}")
            if held["frames"] >= row["frames"]:
                continue
        cells[key][seed] = row
    out = []
    for key, by_seed in sorted(cells.items(), key=lambda kv: kv[0][:3]):
        runs = list(by_seed.values())
        frames = sum(r["frames"] for r in runs)
        failures = sum(len(r["failed_frames"]) for r in runs)
        out.append(
            dict(zip(KEY_FIELDS, key, strict=False))
            | {
                "frames": frames,
                "failures": failures,
                "fer_upper95": fer_upper(failures, frames),
                "f_mean": sum(r["f_mean"] * r["frames"] for r in runs) / frames,
                "f_max": max(r["f_max"] for r in runs),
                "check_refused_words": sum(r["check_refused_words"] for r in runs),
                "iterations_mean": sum(r["iterations_mean"] * r["frames"] for r in runs) / frames,
                "seeds": sorted(by_seed),
                "commits": sorted({str(r.get("git_commit"))[:12] for r in runs}),
                "duplicates": duplicates.get(key, []),
                "current": key[KEY_FIELDS.index("code_family")] in CURRENT_FAMILIES,
            }
        )
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("files", nargs="+", help="bench_ldpc.py --json outputs")
    parser.add_argument("--target", type=float, default=1e-3, help="FER to verify (95 %%)")
    parser.add_argument("--same-commit", action="store_true", help="pool one commit at a time")
    parser.add_argument(
        "--current", action="store_true", help="only the code families this release builds"
    )
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    cells = pool(load(args.files), args.same_commit)
    if args.current:
        cells = [c for c in cells if c["current"]]
    if args.json:
        print(json.dumps(cells, indent=2))
        return
    print(
        f"{'n':>8} {'QBER':>5} {'f0':>6} {'frames':>6} {'fail':>4} {'FER≤(95%)':>9} "
        f"{'verdict':>12} {'f':>6} {'f_max':>6} {'chk':>3} {'iters':>5}  seeds; commits; family"
    )
    for c in cells:
        verdict = "verified" if c["fer_upper95"] <= args.target else f"needs {need(c, args)}"
        print(
            f"{c['n']:8d} {c['qber']:5.3f} {c['f0']:6.4f} {c['frames']:6d} {c['failures']:4d} "
            f"{c['fer_upper95']:9.1e} {verdict:>12} {c['f_mean']:6.4f} {c['f_max']:6.4f} "
            f"{c['check_refused_words']:3d} {c['iterations_mean']:5.0f}  "
            f"{','.join(map(str, c['seeds']))}; {','.join(c['commits'])}; {c['code_family']}"
            + ("" if c["current"] else " (not built now)")
        )
        for d in c["duplicates"]:
            print(f"    duplicate (counted once): {d}", file=sys.stderr)


def need(cell: dict[str, Any], args: argparse.Namespace) -> str:
    """Frames still needed (with no further failure) for the bound to reach the target: the
    least ``N`` with ``fer_upper(failures, N) ≤ target`` (the bound falls with ``N``)."""
    failures, have = cell["failures"], cell["frames"]
    hi = max(have, 1)
    while fer_upper(failures, hi) > args.target:
        hi *= 2
        if hi > 10**9:
            return "∞"
    lo = have  # fer_upper(failures, lo) > target here, or lo == hi
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if fer_upper(failures, mid) > args.target:
            lo = mid
        else:
            hi = mid
    return f"+{hi - have}"


if __name__ == "__main__":
    main()
