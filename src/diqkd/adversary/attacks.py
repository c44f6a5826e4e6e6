"""Attack strategies run through the real protocol, with what Eve actually learns.

Each strategy builds Eve's devices and/or channel adversary, runs
:func:`diqkd.protocol.run_session` with protocol parameters fixed beforehand from the *honest*
link prediction (as the parties would), and reports what the protocol saw (S, QBER, abort, key
bits) next to what Eve learned, computed from the simulation's ground truth. See
``docs/attacks.md`` for what each attack shows.

Determinism: for a given ``seed`` the physics uses ``np.random.default_rng(seed)`` and each
party's randomness ``SeededRandomness(seed).child(name)``, so a run is reproducible (and its
"keys" are simulation artefacts).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from diqkd.adversary.devices import BranchDevices, PredictingDevices
from diqkd.adversary.knowledge import INPUTS_KINDS, Eavesdropper, ManInTheMiddle
from diqkd.adversary.report import (
    AttackContext,
    AttackReport,
    branch_tables,
    build_report,
    guess_string,
    replay_string,
)
from diqkd.adversary.states import (
    intercept_resend_branches,
    purification_branches,
    rank2_attack_state,
)
from diqkd.errors import DiqkdError
from diqkd.physics import (
    LinkPoint,
    bell_statistics,
    chsh_from_correlations,
    link_point,
    qber_from_correlations,
)
from diqkd.profiles import Profile, load_profile
from diqkd.protocol import (
    ProtocolParameters,
    design_protocol,
)

__all__ = [
    "DEFAULT_EVENTS",
    "AttackReport",
    "Strategy",
    "entangling_target_chsh",
    "get_strategy",
    "list_strategies",
    "run_attack",
]

#: Default heralded events: the smallest round number of 10⁵ steps at which the honest
#: ``ustc-2026`` link at 11 km certifies key (2 × 10⁵ certifies none, see docs/finite-size.md).
DEFAULT_EVENTS = 300_000
#: Standard deviations above the abort threshold at which the entangling attack sits.
_ENTANGLING_MARGIN_SIGMA = 2.0


@dataclass(frozen=True)
class Strategy:
    """One registered attack: its name, a one-line summary, and whether it is outside the model."""

    name: str
    summary: str
    outside_model: bool
    run: Callable[[AttackContext], AttackReport] = field(repr=False, compare=False)


# ---------------------------------------------------------------- strategies


def _intercept_resend(ctx: AttackContext) -> AttackReport:
    branches = intercept_resend_branches(ctx.link.state, node="alice")
    tables = branch_tables(branches, ctx.shrink(), ctx.link.alice_settings, ctx.link.bob_settings)
    devices = BranchDevices(
        tables=tables,
        weights=branches.weights,
        guesses=branches.guesses,
        rng=ctx.physics_rng(),
        **ctx.herald_kwargs(),
    )
    eve = Eavesdropper()
    result = ctx.run(devices, eve)
    average = np.einsum("g,gxyab->xyab", branches.weights, tables)
    details: dict[str, Any] = {
        "predicted_chsh": chsh_from_correlations(average),
        "predicted_qber": qber_from_correlations(average),
    }
    return build_report(
        ctx,
        "intercept-resend",
        result,
        devices,
        eve,
        outside_model=False,
        notes=(
            "Eve measures the photon of Alice's node before the middle station (photon number ="
            " the atom's σ_z) and resends it: the heralded state becomes separable, so S ≤ 2."
            " Eve knows Alice's key-round outputs up to readout errors, but the Bell test fails"
            " and no key is produced."
        ),
        eve_string=guess_string(devices, details),
        extra=details,
    )


def _local_deterministic(ctx: AttackContext) -> AttackReport:
    tables = np.zeros((2, 2, 3, 2, 2))
    for lam in (0, 1):
        tables[lam, :, :, lam, lam] = 1.0
    devices = BranchDevices(
        tables=tables,
        weights=[0.5, 0.5],
        guesses=[0, 1],
        rng=ctx.physics_rng(),
        herald_table=ctx.link.correlations,
        **ctx.herald_kwargs(),
    )
    eve = Eavesdropper()
    result = ctx.run(devices, eve)
    details: dict[str, Any] = {}
    return build_report(
        ctx,
        "local-deterministic",
        result,
        devices,
        eve,
        outside_model=False,
        notes=(
            "Pre-programmed devices share a random bit λ per round and output a = b = λ for every"
            " input: the best classical CHSH strategy (wins 3/4, S = 2) with perfectly correlated"
            " key rounds. Eve knows every output, but S = 2 is below the threshold: abort."
        ),
        eve_string=replay_string(eve, devices, details),
        extra=details,
    )


def _predictable(ctx: AttackContext, *, stealthy: bool) -> AttackReport:
    target = ctx.params.expected_chsh if stealthy else 4.0
    devices = PredictingDevices(
        params=ctx.params,
        alice_copy=ctx.party("alice"),
        bob_copy=ctx.party("bob"),
        target_chsh=target,
        key_error=ctx.params.expected_qber if stealthy else 0.0,
        rng=ctx.physics_rng(),
        herald_table=ctx.link.correlations,
        **ctx.herald_kwargs(),
    )
    eve = Eavesdropper()
    result = ctx.run(devices, eve)
    details: dict[str, Any] = {"target_chsh": target}
    name = "predictable-inputs-stealthy" if stealthy else "predictable-inputs"
    if stealthy:
        notes = (
            "Eve holds copies of the parties' seeded generators, so the devices know (x, y) in"
            " advance; they fake the honest S and QBER with outputs Eve programmed. Nothing in"
            " the statistics betrays it (S below Tsirelson, inputs statistically perfect): the"
            " key is Eve's. Only trusted private randomness (SystemRandomness) prevents this."
        )
    else:
        notes = (
            "Eve holds copies of the parties' seeded generators, so the devices know (x, y) in"
            " advance and win every CHSH round (S = 4) with outputs Eve programmed; with her copy"
            " of Alice's generator she also knows the noisy-preprocessing flips, so any key would"
            " be entirely hers. S = 4 exceeds Tsirelson's 2√2 — impossible for quantum devices"
            " with private inputs — so Bob's parameter estimation aborts on the Tsirelson check"
            " (tsirelson_flag). A subtler Eve fakes a quantum S: see predictable-inputs-stealthy."
        )
    return build_report(
        ctx,
        name,
        result,
        devices,
        eve,
        outside_model=True,
        notes=notes,
        eve_string=replay_string(eve, devices, details),
        extra=details,
    )


def entangling_target_chsh(params: ProtocolParameters, *, margin_sigma: float) -> float:
    """The CHSH value ``margin_sigma`` standard deviations above the protocol's abort threshold.

    Pass iff ``W − ω₀ m ≥ t`` (``docs/finite-size.md``, step 4), i.e. a winning frequency
    ``ω_thr = ω₀ + t/m`` at ``m = γn`` expected test rounds; Eve sits at
    ``ω = ω_thr + k √(ω(1 − ω)/m)`` (never above the honest ``ω``), ``S = 8ω − 4``.
    """
    m = params.test_fraction * params.n_rounds
    omega_thr = params.score_pivot + params.statistic_threshold / m
    omega_honest = (4.0 + params.expected_chsh) / 8.0
    omega = omega_thr + margin_sigma * math.sqrt(omega_thr * (1 - omega_thr) / m)
    return 8.0 * min(omega, omega_honest) - 4.0


def _entangling(ctx: AttackContext) -> AttackReport:
    k = ctx.shrink()
    s_obs = entangling_target_chsh(ctx.params, margin_sigma=_ENTANGLING_MARGIN_SIGMA)
    s_state = min(s_obs / (k * k), 2.0 * math.sqrt(2.0))
    rho = rank2_attack_state(s_state)
    z = np.array([0.0, 0.0, 1.0])
    settings = bell_statistics(rho, shrink_a=k, shrink_b=k, key_axis=z)
    branches = purification_branches(rho, key_axis=z)
    tables = branch_tables(branches, k, settings.alice_settings, settings.bob_settings)
    devices = BranchDevices(
        tables=tables,
        weights=branches.weights,
        guesses=branches.guesses,
        rng=ctx.physics_rng(),
        **ctx.herald_kwargs(),
    )
    eve = Eavesdropper()
    result = ctx.run(devices, eve)
    r = math.sqrt(max((s_state / 2) ** 2 - 1, 0.0))
    details: dict[str, Any] = {
        "attack_state_chsh": s_state,
        "target_observed_chsh": s_obs,
        "eve_guess_probability_ideal": 0.5 * (1 + math.sqrt(1 - r * r)),
    }
    return build_report(
        ctx,
        "entangling",
        result,
        devices,
        eve,
        outside_model=False,
        notes=(
            "Eve prepares Pironio et al.'s optimal rank-2 Bell-diagonal state with S just above"
            " the abort threshold and keeps its purification; per round she makes the Helstrom"
            " measurement that best guesses Alice's key bit. She guesses most raw bits, yet after"
            " privacy amplification her guess of the key agrees with it about half the time:"
            " eve_information_bits is consistent with zero (bound at 99 % confidence in"
            " eve_information_upper_bits; the certificate allows certificate_information_bits)."
        ),
        eve_string=guess_string(devices, details),
        extra=details,
    )


def _mitm(ctx: AttackContext, *, mode: str) -> AttackReport:
    devices = BranchDevices(
        tables=ctx.link.correlations[None],
        weights=[1.0],
        rng=ctx.physics_rng(),
        **ctx.herald_kwargs(),
    )
    kinds = INPUTS_KINDS if mode == "flip" else ("PrivacyAmplification",)
    eve = ManInTheMiddle(kinds, mode)
    result = ctx.run(devices, eve)
    details: dict[str, Any] = {"tampered_kind": kinds[0], "tamper_mode": mode}
    if mode == "flip":
        name = "mitm"
        notes = (
            "Eve flips one bit of Alice's announced test inputs on the classical channel. The"
            " Wegman–Carter tag no longer verifies at Bob: the session aborts, no key."
        )
    else:
        name = "mitm-drop"
        notes = (
            "Eve drops Alice's privacy-amplification message (Alice has already hashed her key)."
            " Bob never receives it: the session aborts and neither side outputs a key."
        )
    return build_report(
        ctx,
        name,
        result,
        devices,
        eve,
        outside_model=False,
        notes=notes,
        eve_string=guess_string(devices, details),
        extra=details,
        device_knowledge=False,
    )


def _side_channel(ctx: AttackContext) -> AttackReport:
    devices = BranchDevices(
        tables=ctx.link.correlations[None],
        weights=[1.0],
        leaky=True,
        rng=ctx.physics_rng(),
        **ctx.herald_kwargs(),
    )
    eve = Eavesdropper()
    result = ctx.run(devices, eve)
    details: dict[str, Any] = {}
    return build_report(
        ctx,
        "side-channel",
        result,
        devices,
        eve,
        outside_model=True,
        notes=(
            "Honest quantum devices (the statistics pass, key is produced) that also leak every"
            " input and output to Eve, e.g. by a stray emission. With Bob's leaked (y, b) and the"
            " public transcript Eve replays his reconciliation and hashes with the public seed:"
            " she holds the whole key. DI security assumes secure labs — nothing leaves a lab"
            " except what the protocol sends — so no Bell test can detect this."
        ),
        eve_string=replay_string(eve, devices, details),
        extra=details,
    )


_STRATEGIES: tuple[Strategy, ...] = (
    Strategy(
        "intercept-resend",
        "measure one node's photon before the middle station and resend it (S ≤ 2: abort)",
        False,
        _intercept_resend,
    ),
    Strategy(
        "local-deterministic",
        "pre-programmed devices, best classical strategy (S = 2: abort)",
        False,
        _local_deterministic,
    ),
    Strategy(
        "predictable-inputs",
        "devices know the inputs (seeded QRNG in Eve's hands), fake S = 4: Tsirelson abort",
        True,
        functools.partial(_predictable, stealthy=False),
    ),
    Strategy(
        "predictable-inputs-stealthy",
        "devices know the inputs and fake the honest S and QBER: undetectable, Eve has the key",
        True,
        functools.partial(_predictable, stealthy=True),
    ),
    Strategy(
        "entangling",
        "optimal rank-2 collective attack just above the threshold: key, Eve learns ~nothing",
        False,
        _entangling,
    ),
    Strategy(
        "mitm",
        "flip a bit of a classical message: authentication fails, abort",
        False,
        functools.partial(_mitm, mode="flip"),
    ),
    Strategy(
        "mitm-drop",
        "drop a classical message: abort, no key on either side",
        False,
        functools.partial(_mitm, mode="drop"),
    ),
    Strategy(
        "side-channel",
        "devices leak their outputs (outside the DI model): key, and Eve knows all of it",
        True,
        _side_channel,
    ),
)


def list_strategies() -> tuple[Strategy, ...]:
    """Every registered strategy, in a fixed order."""
    return _STRATEGIES


def get_strategy(name: str) -> Strategy:
    """The strategy called ``name``.

    Raises
    ------
    DiqkdError
        If there is none (the message lists the known names).
    """
    for s in _STRATEGIES:
        if s.name == name:
            return s
    known = ", ".join(s.name for s in _STRATEGIES)
    raise DiqkdError(f"unknown attack strategy {name!r}; known: {known}")


@functools.lru_cache(maxsize=8)
def _design(
    profile_hash: str, profile: Profile, distance_km: float, events: int
) -> tuple[LinkPoint, ProtocolParameters]:
    del profile_hash
    link = link_point(profile, distance_km)
    params = design_protocol(expected_chsh=link.chsh, expected_qber=link.qber, n_rounds=events)
    return link, params


def run_attack(
    name: str,
    *,
    events: int = DEFAULT_EVENTS,
    seed: int = 0,
    distance_km: float = 11.0,
    profile: Profile | str = "ustc-2026",
) -> AttackReport:
    """Run strategy ``name`` through the real protocol and report the outcome.

    Parameters
    ----------
    name
        A name from :func:`list_strategies`.
    events
        Heralded events of the block. The protocol parameters are fixed from the honest link
        prediction for this many rounds (:func:`~diqkd.protocol.design_protocol`), which must
        certify key (≥ 3 × 10⁵ at 11 km for ``ustc-2026``).
    seed
        Seeds the physics and the parties' (simulation) randomness: same seed, same run.
    distance_km, profile
        The link the honest parties expect.

    Raises
    ------
    DiqkdError
        Unknown strategy, bad numbers, or a link that certifies no key at ``events``.
    """
    strategy = get_strategy(name)
    if isinstance(events, bool) or not isinstance(events, int) or events < 1:
        raise DiqkdError(f"events must be a positive integer, got {events!r}")
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise DiqkdError(f"seed must be a non-negative integer, got {seed!r}")
    if not math.isfinite(distance_km) or distance_km < 0:
        raise DiqkdError(f"distance_km must be a non-negative number, got {distance_km!r}")
    prof = load_profile(profile) if isinstance(profile, str) else profile
    link, params = _design(prof.content_hash(), prof, float(distance_km), events)
    ctx = AttackContext(
        profile=prof,
        link=link,
        params=params,
        events=events,
        seed=seed,
        distance_km=float(distance_km),
    )
    return strategy.run(ctx)
