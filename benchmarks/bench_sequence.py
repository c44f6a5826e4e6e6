"""Benchmark: heralded atom–atom pairs at 11 km, diqkd versus SeQUeNCe's entanglement generation.

Acceptance criterion: time to produce 10⁵ heralded atom–atom pairs at 11 km with matched
parameters, ours versus SeQUeNCe 0.8.5 (the newest release supporting Python 3.11), the
fidelity each predicts, and the ratio.

* **Ours**: :func:`diqkd.physics.link_point` (link model) followed by
  :func:`diqkd.physics.sampler.sample_rounds` streaming 10⁵ heralded round records (round index,
  herald time, x, y, a, b). Timed cold (first call in the process, including the numba kernel's
  compile or cache load) and warm (median of ``--repeats`` further runs; the headline).
* **SeQUeNCe**: ``benchmarks/_sequence_peer.py``, run in SeQUeNCe's own interpreter (see
  "Peer interpreter" below) as a subprocess. It builds two end nodes with one ``Memory`` each,
  a midpoint ``BSMNode`` and the fiber/classical channels, and runs SeQUeNCe's
  ``EntanglementGenerationA`` (Barrett–Kok by default) attempt after attempt, as a
  discrete-event simulation, until the pairs are heralded or ``--peer-budget-s`` of wall time
  has passed; the wall time for 10⁵ pairs is then extrapolated linearly from the pairs it did
  herald (labelled, with the measured count and its 1/√n Poisson uncertainty). Its import
  time is excluded.

Parameters are mapped from our profile (see :func:`peer_params`). What cannot be matched:
SeQUeNCe 0.8.5 has no single-photon-interference (SPI) scheme — its two generation protocols,
Barrett–Kok and "single-heralded", both need two photons (success ∝ η², ours for SPI ∝ √η of
the link) — so the ``ustc-2026`` (SPI) row compares different schemes on the same hardware, and
the ``generic-two-photon`` row is the like-for-like one. SeQUeNCe's pair fidelity is an input
(the memories' raw fidelity, here our model's fidelity at 0 km), not a prediction of the link
physics; the conversion noise is folded into its dark-count rate; α, the interferometer's phase
noise and photon distinguishability, the readout and the Bell-test settings have no SeQUeNCe
counterpart.

Run (from the repository root, in diqkd's environment)::

    python benchmarks/bench_sequence.py                 # table, 10⁵ pairs at 11 km
    python benchmarks/bench_sequence.py --json          # one JSON document
    python benchmarks/bench_sequence.py --peer-budget-s 600 --peer-protocol both

Peer interpreter: ``$DIQKD_PEER_PYTHON`` if set, else ``/work/peer-venv/bin/python`` if it
exists, else this interpreter if it can import SeQUeNCe; otherwise the peer columns say
"peer unavailable". Install the peer in its own environment, never in diqkd's::

    python3 -m venv /work/peer-venv && /work/peer-venv/bin/pip install sequence==0.8.5
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import math
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from diqkd.physics import link_point
from diqkd.physics.sampler import sample_rounds
from diqkd.profiles import Profile, list_profiles, load_profile
from diqkd.rng import make_rng
from diqkd.units import fiber_transmission

PEER_SCRIPT = Path(__file__).with_name("_sequence_peer.py")
DEFAULT_PEER_PYTHON = Path("/work/peer-venv/bin/python")
PEER_ENV_VAR = "DIQKD_PEER_PYTHON"
PEER_PROTOCOLS = ("barrett-kok", "single-heralded")


# --------------------------------------------------------------------------- peer interpreter


def find_peer_python() -> tuple[str | None, str]:
    """The interpreter that runs the SeQUeNCe peer, and how it was chosen (or why none)."""
    override = os.environ.get(PEER_ENV_VAR)
    if override:
        if Path(override).exists():
            return override, f"${PEER_ENV_VAR}"
        return None, f"${PEER_ENV_VAR}={override} does not exist"
    if DEFAULT_PEER_PYTHON.exists():
        return str(DEFAULT_PEER_PYTHON), "default peer venv"
    if importlib.util.find_spec("sequence.entanglement_management") is not None:
        return sys.executable, "current interpreter"
    return None, (
        f"SeQUeNCe not found: set {PEER_ENV_VAR} to a Python with `sequence==0.8.5`, e.g. "
        f"`python3 -m venv /work/peer-venv && /work/peer-venv/bin/pip install sequence==0.8.5`"
    )


# --------------------------------------------------------------------------- parameters


def peer_params(
    profile: Profile, distance_km: float, *, protocol: str, seed: int, budget_s: float
) -> dict[str, Any]:
    """SeQUeNCe parameters matched to ``profile`` (keys and units: ``_sequence_peer.py``).

    * memory efficiency = photon collection × conversion efficiency (photon into the fiber);
    * memory raw fidelity = our model's heralded-pair fidelity at 0 km (the pair the hardware
      makes before fiber loss, dark counts and waiting enter; SeQUeNCe keeps it fixed);
    * memory frequency = 1 / local attempt time (SeQUeNCe adds the negotiation and herald
      latencies of its protocol itself);
    * dark-count rate per detector = detector dark counts + the conversion-noise photons that
      reach it (half of both converters' noise, after fiber and detector efficiency), as in
      :func:`diqkd.physics.channel.link_budget`;
    * detection window → detector time resolution (SeQUeNCe accepts ± resolution/2).
    """
    conv = profile.conversion
    det = profile.detection
    eta_conv = conv.efficiency if conv.enabled else 1.0
    arm_km = 0.5 * distance_km
    t_arm = fiber_transmission(arm_km, profile.fiber.loss_db_per_km)
    noise_hz = 0.5 * conv.noise_rate_hz * det.efficiency * 2.0 * t_arm if conv.enabled else 0.0
    raw_fidelity = link_point(profile, distance_km=0.0).fidelity
    if protocol == "single-heralded":
        raw_fidelity = max(raw_fidelity, 0.5)  # SingleHeraldedA accepts [0.5, 1]
    return {
        "protocol": protocol,
        "memory_efficiency": profile.atom.photon_collection_efficiency * eta_conv,
        "memory_fidelity": raw_fidelity,
        "memory_frequency_hz": 1.0 / profile.timing.local_attempt_time_s,
        "coherence_time_s": profile.atom.memory_coherence_time_s,
        "wavelength_nm": profile.operating_wavelength_nm,
        "fiber_loss_db_per_km": profile.fiber.loss_db_per_km,
        "group_index": profile.fiber.group_index,
        "detector_efficiency": det.efficiency,
        "dark_count_rate_hz": det.dark_count_rate_hz + noise_hz,
        "time_resolution_s": det.window_s,
        "seed": seed,
        "max_wall_s": budget_s,
    }


# --------------------------------------------------------------------------- ours


def _ours_once(profile: Profile, n_pairs: int, distance_km: float, seed: int) -> dict[str, Any]:
    t0 = time.perf_counter()
    lp = link_point(profile, distance_km=distance_km)
    t1 = time.perf_counter()
    produced = 0
    last_round = 0
    last_t_s = 0.0
    for chunk in sample_rounds(
        lp.correlations,
        n_events=n_pairs,
        rng=make_rng(seed),
        herald_probability=lp.herald_probability,
        attempt_period_s=lp.attempt_period_s,
        measurement_time_s=lp.measurement_time_s,
        duty_cycle=lp.duty_cycle,
    ):
        produced += len(chunk)
        last_round = int(chunk.round[-1])
        last_t_s = float(chunk.t_s[-1])
    t2 = time.perf_counter()
    attempts = last_round + 1
    return {
        "pairs": produced,
        "wall_time_s": t2 - t0,
        "link_model_s": t1 - t0,
        "sampling_s": t2 - t1,
        "attempts": attempts,
        "herald_probability": lp.herald_probability,
        "attempt_period_s": lp.attempt_period_s,
        "fidelity": lp.fidelity,
        "chsh": lp.chsh,
        "qber": lp.qber,
        "simulated_time_s": last_t_s,
        "attempt_time_s": attempts * lp.attempt_period_s,
    }


def run_ours(
    profile: Profile, n_pairs: int, distance_km: float, *, seed: int, repeats: int
) -> dict[str, Any]:
    """Time the link model + sampling of ``n_pairs`` heralded records: cold, then warm runs."""
    cold = _ours_once(profile, n_pairs, distance_km, seed)
    warm = [_ours_once(profile, n_pairs, distance_km, seed) for _ in range(repeats)]
    result = dict(warm[-1]) if warm else dict(cold)
    if warm:
        result["wall_time_s"] = statistics.median(w["wall_time_s"] for w in warm)
        result["link_model_s"] = statistics.median(w["link_model_s"] for w in warm)
        result["sampling_s"] = statistics.median(w["sampling_s"] for w in warm)
    result["cold_wall_time_s"] = cold["wall_time_s"]
    result["repeats"] = repeats
    return result


# --------------------------------------------------------------------------- peer


def run_peer(
    python: str | None,
    why: str,
    n_pairs: int,
    distance_km: float,
    params: dict[str, Any],
    *,
    timeout_s: float,
) -> dict[str, Any]:
    """Run ``_sequence_peer.py`` under ``python``; ``{"available": False, ...}`` on failure."""
    if python is None:
        return {"available": False, "reason": f"peer unavailable: {why}"}
    cmd = [
        python,
        str(PEER_SCRIPT),
        "--pairs",
        str(n_pairs),
        "--distance-km",
        repr(float(distance_km)),
        "--params-json",
        json.dumps(params),
    ]
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s, check=False)
    except subprocess.TimeoutExpired:
        return {"available": False, "reason": f"peer unavailable: timed out after {timeout_s} s"}
    lines = [ln for ln in done.stdout.splitlines() if ln.startswith("{")]
    if done.returncode != 0 or not lines:
        tail = (done.stderr or done.stdout).strip().splitlines()[-3:]
        return {
            "available": False,
            "reason": f"peer unavailable: {python} exited {done.returncode}: {' | '.join(tail)}",
        }
    result: dict[str, Any] = json.loads(lines[-1])
    result["available"] = True
    result["python"] = python
    result["python_source"] = why
    return result


# --------------------------------------------------------------------------- report


def _fmt(value: Any, spec: str = ".3g") -> str:
    if value is None:
        return "—"
    if isinstance(value, float):
        if math.isnan(value):
            return "—"
        return format(value, spec)
    return str(value)


def _per_s(pairs: float, seconds: float | None) -> float | None:
    return pairs / seconds if seconds else None


def compare(
    profile_name: str,
    *,
    n_pairs: int,
    distance_km: float,
    protocols: list[str],
    seed: int,
    repeats: int,
    budget_s: float,
    python: str | None,
    why: str,
) -> dict[str, Any]:
    """Ours versus each requested SeQUeNCe protocol for one profile."""
    profile = load_profile(profile_name)
    ours = run_ours(profile, n_pairs, distance_km, seed=seed, repeats=repeats)
    peers = []
    for protocol in protocols:
        params = peer_params(
            profile, distance_km, protocol=protocol, seed=seed + 1, budget_s=budget_s
        )
        peer = run_peer(python, why, n_pairs, distance_km, params, timeout_s=budget_s + 300.0)
        if peer.get("available") and peer.get("wall_time_s"):
            peer["ratio_wall_peer_over_ours"] = peer["wall_time_s"] / ours["wall_time_s"]
            peer["ratio_wall_peer_over_ours_cold"] = peer["wall_time_s"] / ours["cold_wall_time_s"]
        if peer.get("available") and peer.get("wall_time_model_s"):
            peer["ratio_wall_model_peer_over_ours"] = (
                peer["wall_time_model_s"] / ours["wall_time_s"]
            )
        peers.append({"params": params, **peer})
    return {
        "profile": profile_name,
        "scheme": profile.heralding.scheme,
        "like_for_like": profile.heralding.scheme == "two-photon",
        "ours": ours,
        "peers": peers,
    }


def print_report(report: dict[str, Any]) -> None:
    n = report["pairs"]
    print(
        f"Heralded atom–atom pairs at {report['distance_km']:g} km: diqkd vs SeQUeNCe "
        f"(target n = {n:,} pairs)"
    )
    for row in report["rows"]:
        ours = row["ours"]
        scheme = "two-photon, like-for-like" if row["like_for_like"] else "SPI vs two-photon"
        print(f"\n== profile {row['profile']} ({scheme})")
        for peer in row["peers"]:
            label = " ".join(
                part
                for part in ("SeQUeNCe", peer.get("version"), peer["params"]["protocol"])
                if part
            )
            print(f"-- {label}")
            if not peer.get("available"):
                print(f"   {peer['reason']}")
                _print_ours_only(ours, n)
                continue
            measured = peer["measured_pairs"]
            spread = _fmt(peer["relative_uncertainty"], ".0%")
            note = (
                f"extrapolated from {measured} measured pairs (±{spread})"
                if peer["extrapolated"]
                else f"measured ({measured} pairs)"
            )
            rows = [
                ("pairs (n)", f"{ours['pairs']:,} measured", f"{n:,} — {note}"),
                (
                    "wall time for n, s",
                    f"{_fmt(ours['wall_time_s'])} (cold {_fmt(ours['cold_wall_time_s'])})",
                    _fmt(peer["wall_time_s"]),
                ),
                (
                    "  cross-check: cost/attempt ÷ p_model",
                    "—",
                    f"{_fmt(peer['wall_time_model_s'])} "
                    f"({_fmt(peer['wall_time_per_attempt_s'] * 1e6)} µs × "
                    f"{_fmt(1 / peer['herald_probability_model'])} attempts/pair)",
                ),
                (
                    "ratio peer/ours (wall)",
                    "1",
                    f"{_fmt(peer.get('ratio_wall_peer_over_ours'), '.3g')} "
                    f"(model: {_fmt(peer.get('ratio_wall_model_peer_over_ours'), '.3g')})",
                ),
                (
                    "herald probability / attempt",
                    _fmt(ours["herald_probability"]),
                    f"{_fmt(peer['herald_probability_measured'])} measured, "
                    f"{_fmt(peer['herald_probability_model'])} model",
                ),
                (
                    "simulated time per attempt, s",
                    _fmt(ours["attempt_period_s"]),
                    _fmt(peer["simulated_time_per_attempt_s"]),
                ),
                (
                    "simulated time for n, s",
                    f"{_fmt(ours['attempt_time_s'])} attempting; "
                    f"{_fmt(ours['simulated_time_s'])} with dead time & duty",
                    _fmt(peer["simulated_time_s"]),
                ),
                (
                    "pairs per simulated s",
                    f"{_fmt(_per_s(n, ours['attempt_time_s']))}; "
                    f"{_fmt(_per_s(n, ours['simulated_time_s']))}",
                    _fmt(_per_s(n, peer["simulated_time_s"])),
                ),
                (
                    "fidelity predicted",
                    _fmt(ours["fidelity"], ".4f"),
                    f"{_fmt(peer['mean_fidelity'], '.4f')} assigned (= raw input "
                    f"{peer['params']['memory_fidelity']:.4f}); "
                    f"{_fmt(peer['mean_state_fidelity'], '.4f')} state",
                ),
            ]
            _print_table(rows)
    print("\nNotes:")
    for line in report["notes"]:
        print(f"  - {line}")


def _print_ours_only(ours: dict[str, Any], n: int) -> None:
    _print_table(
        [
            ("pairs (n)", f"{ours['pairs']:,}", "—"),
            ("wall time for n, s", _fmt(ours["wall_time_s"]), "—"),
            ("herald probability / attempt", _fmt(ours["herald_probability"]), "—"),
            ("fidelity predicted", _fmt(ours["fidelity"], ".4f"), "—"),
        ]
    )


def _print_table(rows: list[tuple[str, str, str]]) -> None:
    header = ("metric", "diqkd", "SeQUeNCe")
    w0 = max(len(r[0]) for r in [header, *rows])
    w1 = max(len(r[1]) for r in [header, *rows])
    print(f"   {header[0]:<{w0}}  {header[1]:<{w1}}  {header[2]}")
    for a, b, c in rows:
        print(f"   {a:<{w0}}  {b:<{w1}}  {c}")


NOTES = [
    "Ours: link_point + sample_rounds streaming n heralded records (round, herald time, x, y, "
    "a, b); wall time is the median of the warm repeats, 'cold' includes the numba kernel's "
    "first call. Herald gaps are drawn as Geometric(p), so the cost does not grow with 1/p.",
    "SeQUeNCe: discrete-event simulation of every attempt (negotiation messages, photon "
    "emission, fiber, BSM, herald messages); cost grows with attempts = n/p. Import time "
    "excluded; topology set-up included. Measured wall time is extrapolated linearly in pairs "
    "when the wall budget ends the run first (±1/√measured pairs); the cross-check multiplies "
    "the measured cost per attempt by 1/p of SeQUeNCe's component model (½·x_A·x_B, "
    "x = memory efficiency × arm transmission × detector efficiency).",
    "Matched: photon-into-fiber efficiency (collection × conversion), fiber loss (dB/km → "
    "dB/m) and group index (→ light speed), midpoint station, detector efficiency, dark counts "
    "(+ conversion noise), detection window (→ time resolution), local attempt time (→ memory "
    "frequency), coherence time (→ memory cut-off / BDS decoherence), operating wavelength.",
    "Not matchable: SeQUeNCe 0.8.5 has no SPI protocol (both of its protocols are two-photon), "
    "so the SPI row compares schemes; its per-attempt time includes a classical negotiation "
    "between the end nodes, ours the local time plus the herald round trip; its fidelity is "
    "the memories' raw fidelity (input: our model at 0 km), constant in distance for "
    "Barrett–Kok and only depolarised by memory idling for single-heralded; α, phase noise, "
    "photon distinguishability, readout and Bell-test settings have no counterpart.",
]


def main(argv: list[str] | None = None) -> int:
    default_profiles = [
        name for name in ("ustc-2026", "generic-two-photon") if name in list_profiles()
    ]
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=100_000, help="heralded pairs (10⁵)")
    parser.add_argument("--distance-km", type=float, default=11.0, help="total fiber, km")
    parser.add_argument(
        "--profiles", nargs="+", default=default_profiles, help="our profiles to compare"
    )
    parser.add_argument(
        "--peer-protocol",
        choices=[*PEER_PROTOCOLS, "both"],
        default="barrett-kok",
        help="SeQUeNCe generation protocol (default Barrett–Kok, its default)",
    )
    parser.add_argument(
        "--peer-budget-s",
        type=float,
        default=120.0,
        help="wall-clock budget per SeQUeNCe run, s; beyond it the time is extrapolated",
    )
    parser.add_argument("--repeats", type=int, default=5, help="warm repeats of ours")
    parser.add_argument("--seed", type=int, default=2026)
    parser.add_argument("--json", action="store_true", help="print one JSON document")
    parser.add_argument("--json-out", type=Path, help="also write the JSON document here")
    args = parser.parse_args(argv)

    protocols = list(PEER_PROTOCOLS) if args.peer_protocol == "both" else [args.peer_protocol]
    python, why = find_peer_python()
    report: dict[str, Any] = {
        "benchmark": "heralded pairs vs SeQUeNCe",
        "pairs": args.pairs,
        "distance_km": args.distance_km,
        "peer_python": python,
        "peer_python_source": why,
        "rows": [
            compare(
                name,
                n_pairs=args.pairs,
                distance_km=args.distance_km,
                protocols=protocols,
                seed=args.seed,
                repeats=args.repeats,
                budget_s=args.peer_budget_s,
                python=python,
                why=why,
            )
            for name in args.profiles
        ],
        "notes": NOTES,
    }
    if args.json_out is not None:
        args.json_out.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print_report(report)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
