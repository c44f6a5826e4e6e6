"""Finite-size key length of CHSH DI-QKD against general (coherent) attacks.

Rényi entropy accumulation with exact single-round Rényi entropies: the f-weighted Rényi
entropy accumulation of Arqand, Hahn, Tan, PRX 15, 041013 (2025), assembled here from the
chain rule and lemmas of Dupuis, Fawzi, Renner, CMP 379, 867 (2020), with the single-round
sandwiched Rényi entropy of the (noisy-preprocessed) CHSH key bit evaluated under the rank-2
Bell-diagonal attack (the Rényi analogue of Pironio et al. 2009 / Ho et al. 2020; analytic
treatment in Hahn, Philip, Tan, Brown, arXiv:2507.07365). The protocol, every term of the
key length and the ε accounting are written out in ``docs/finite-size.md`` (Eqs. (F1)–(F8)).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from scipy.optimize import minimize, minimize_scalar
from scipy.stats import binom, norm

from diqkd.errors import DiqkdError
from diqkd.security._eat_renyi import OMEGA_MAX, single_round_rate
from diqkd.security._eat_stats import (
    log2_strings_with_few_losses,
    max_test_rounds,
    score_abort_probability,
    score_threshold,
)
from diqkd.security.asymptotic import (
    TSIRELSON_BOUND,
    binary_entropy,
    noisy_preprocessing_entropy,
)
from diqkd.security.certificate import Certificate, Epsilons

__all__ = [
    "FiniteSizeResult",
    "certificate_from_result",
    "finite_size_certificate",
    "finite_size_key_length",
]

THEOREM = (
    "Rényi entropy accumulation, f-weighted form (Arqand, Hahn, Tan, PRX 15, 041013 (2025)), "
    "from Dupuis-Fawzi-Renner CMP 379, 867 (2020) (chain rule Cor. 3.5; event conditioning "
    "Lemma B.5), H_min^ε ≥ H_α^↑ − g(ε)/(α−1) (Tomamichel, Quantum Information Processing with "
    "Finite Resources (2016), Prop. 6.5), leftover hash lemma (Tomamichel, Schaffner, Smith, "
    "Renner, IEEE TIT 57, 5524 (2011)); single-round Rényi entropy of the noisy CHSH key bit "
    "under the rank-2 Bell-diagonal attack (Pironio et al. NJP 11, 045021 (2009); Ho et al. "
    "PRL 124, 230502 (2020); Hahn, Philip, Tan, Brown arXiv:2507.07365). "
    "Key length: docs/finite-size.md Eqs. (F1)-(F8)."
)

# Fixed split of ε_sound = 2 ε_EC + ε_PA + ε_EA + 2 ε_s (docs/finite-size.md, Eq. (F8)).
_SHARE_EC = 0.01
_SHARE_PA = 0.02
_SHARE_M = 0.01  # share of the statistical completeness budget for the test-count rule


@dataclass(frozen=True, kw_only=True)
class FiniteSizeResult:
    """A finite-size key length with every parameter and ε it rests on.

    Attributes
    ----------
    key_length_bits
        ℓ, the certified key length (bits, ≥ 0, rounded down).
    key_rate_per_round
        ``ℓ / n`` (bits per heralded event).
    asymptotic_rate
        ``max_p [H(Â|E) − f·h(Q_eff)]`` (Ho et al. 2020, same EC efficiency f): the rate per
        key round that ``ℓ/n`` approaches as ``n → ∞``; for reference.
    chsh_threshold, winning_threshold
        Abort threshold expressed as a CHSH value / winning frequency at the nominal number
        of test rounds ``γn`` (the rule itself is on ``statistic_threshold``).
    statistic_threshold
        The protocol aborts unless ``Σ z_i ≥`` this, ``z`` = 1−ω₀ per win, −ω₀ per loss.
    max_test_rounds
        The protocol aborts if more test rounds than this occur.
    terms_bits
        Every term of the key-length formula, in bits (see ``docs/finite-size.md``).
    """

    key_length_bits: int
    n_rounds: int
    chsh: float
    qber: float
    key_rate_per_round: float
    asymptotic_rate: float
    test_fraction: float
    flip_probability: float
    renyi_alpha: float
    score_scale: float
    score_pivot: float
    worst_case_winning_probability: float
    chsh_threshold: float
    winning_threshold: float
    statistic_threshold: float
    max_test_rounds: int
    leak_ec_bits: float
    ec_efficiency: float
    epsilon_pa: float
    epsilon_ec: float
    epsilon_ea: float
    epsilon_smooth: float
    epsilon_pe: float
    epsilon_sound: float
    epsilon_complete: float
    terms_bits: dict[str, float] = field(default_factory=dict)
    theorem: str = THEOREM
    justification: str = ""
    reason: str = ""


def _check_inputs(
    chsh: float, qber: float, n_rounds: int, epsilon_sound: float, **others: float | None
) -> None:
    if not (math.isfinite(chsh) and math.isfinite(qber)):
        raise DiqkdError(f"CHSH value and QBER must be finite, got S={chsh}, Q={qber}")
    if chsh > TSIRELSON_BOUND + 1e-9:
        raise DiqkdError(f"CHSH value {chsh} exceeds the quantum maximum 2√2 ≈ 2.8284; check S")
    if chsh < -TSIRELSON_BOUND - 1e-9:
        raise DiqkdError(f"CHSH value {chsh} is below −2√2; check the sign convention of S")
    if not 0.0 <= qber <= 0.5:
        raise DiqkdError(f"QBER must lie in [0, 0.5], got {qber}; relabel Bob's bit if Q > 0.5")
    if isinstance(n_rounds, bool) or int(n_rounds) != n_rounds or n_rounds < 1:
        raise DiqkdError(f"n_rounds must be an integer >= 1, got {n_rounds}")
    if not 0.0 < epsilon_sound < 1.0:
        raise DiqkdError(f"epsilon_sound must lie in (0, 1), got {epsilon_sound}")
    gamma, flip = others.get("test_fraction"), others.get("flip_probability")
    if gamma is not None and not 0.0 < gamma < 1.0:
        raise DiqkdError(f"test_fraction must lie in (0, 1) or be None (auto), got {gamma}")
    if flip is not None and not 0.0 <= flip < 0.5:
        raise DiqkdError(f"flip_probability must lie in [0, 0.5) or be None (auto), got {flip}")
    leak = others.get("leak_ec_bits")
    if leak is not None and not (math.isfinite(leak) and leak >= 0.0):
        raise DiqkdError(f"leak_ec_bits must be a finite number of bits >= 0, got {leak}")
    f = others["ec_efficiency"]
    if f is None or not (math.isfinite(f) and f >= 1.0):
        raise DiqkdError(f"ec_efficiency must be >= 1 (1 = Shannon limit), got {f}")
    target, ec_fail = others["epsilon_complete_target"], others["ec_failure_probability"]
    if target is None or not 0.0 < target < 1.0:
        raise DiqkdError(f"epsilon_complete_target must lie in (0, 1), got {target}")
    if ec_fail is None or not 0.0 <= ec_fail < target:
        raise DiqkdError(
            f"ec_failure_probability must lie in [0, epsilon_complete_target={target}), "
            f"got {ec_fail}"
        )


def _g(eps: float) -> float:
    """``g(ε) = −log₂(1 − √(1 − ε²))``, evaluated without cancellation."""
    return -math.log2(eps * eps / (1.0 + math.sqrt(1.0 - eps * eps)))


def asymptotic_finite_limit(chsh: float, qber: float, ec_efficiency: float) -> tuple[float, float]:
    """``max_p [H(Â|E) − f h(p + Q − 2pQ)]`` and its p (Ho et al. 2020, Eq. (3))."""

    def rate(p: float) -> float:
        q_eff = p + qber - 2.0 * p * qber
        return noisy_preprocessing_entropy(chsh, p) - ec_efficiency * binary_entropy(q_eff)

    res = minimize_scalar(lambda p: -rate(float(p)), bounds=(0.0, 0.5), method="bounded")
    best_p = float(res.x)
    if rate(0.0) >= rate(best_p):
        best_p = 0.0
    return rate(best_p), best_p


@dataclass(frozen=True)
class _Setup:
    n: int
    chsh: float
    qber: float
    omega: float
    epsilon_sound: float
    leak_fixed: float | None
    ec_efficiency: float
    budget_score: float
    budget_m: float


def _evaluate(
    st: _Setup,
    gamma: float,
    p: float,
    alpha: float,
    kappa: float,
    pivot: float,
    *,
    final: bool = False,
) -> dict[str, float]:
    """All terms of the key length (docs/finite-size.md, Eq. (F7)) for one parameter choice.

    While optimising (``final=False``) the thresholds use normal approximations and a coarse
    grid; the reported key length is always re-evaluated with ``final=True``: exact binomial
    thresholds and the fine grid.
    """
    n = st.n
    am1 = alpha - 1.0
    r_alpha, w_star = single_round_rate(
        test_fraction=gamma,
        flip_probability=p,
        alpha=alpha,
        score_win=kappa * (1.0 - pivot),
        score_lose=-kappa * pivot,
        grid=20001 if final else 601,
    )
    if final:
        threshold = score_threshold(n, gamma, st.omega, pivot, st.budget_score)
        m_max = max_test_rounds(n, gamma, st.budget_m)
    else:
        mean = gamma * (st.omega - pivot)
        var = gamma * (st.omega * (1 - pivot) ** 2 + (1 - st.omega) * pivot**2) - mean**2
        k = float(norm.isf(st.budget_score)) + 0.05
        threshold = n * mean - k * math.sqrt(max(n * var, 0.0))
        sd_m = math.sqrt(n * gamma * (1.0 - gamma))
        m_max = math.ceil(n * gamma + (float(norm.isf(st.budget_m)) + 0.05) * sd_m)
    max_losses = math.floor(m_max * (1.0 - pivot) - threshold)
    log_nw = log2_strings_with_few_losses(m_max, max_losses)
    budget = st.epsilon_sound * (1.0 - 2.0 * _SHARE_EC - _SHARE_PA)
    eps_ea = budget * alpha / (alpha + 2.0)
    eps_s = budget / (alpha + 2.0)
    eps_ec = st.epsilon_sound * _SHARE_EC
    eps_pa = st.epsilon_sound * _SHARE_PA
    if st.leak_fixed is not None:
        leak = st.leak_fixed
    else:
        q_eff = p + st.qber - 2.0 * p * st.qber
        leak = (
            st.ec_efficiency
            * n
            * ((1.0 - gamma) * binary_entropy(q_eff) + gamma * binary_entropy(st.omega))
        )
    terms = {
        "accumulated_entropy": n * r_alpha,
        "score_offset": kappa * threshold,
        "test_outcome_register": -log_nw,
        "event_conditioning": -(alpha / am1) * math.log2(1.0 / eps_ea),
        "smoothing": -_g(eps_s) / am1,
        "leak_ec": -leak,
        "verification_tag": -float(math.ceil(math.log2(1.0 / eps_ec))),
        "privacy_amplification": -2.0 * math.log2(1.0 / eps_pa) + 2.0,
    }
    total = sum(terms.values())
    return {
        "total": total,
        "r_alpha": r_alpha,
        "w_star": w_star,
        "threshold": threshold,
        "m_max": float(m_max),
        "leak": leak,
        "eps_ea": eps_ea,
        "eps_s": eps_s,
        "eps_ec": eps_ec,
        "eps_pa": eps_pa,
        **{f"term:{k}": v for k, v in terms.items()},
    }


def _unpack(
    x: list[float], fixed_gamma: float | None, fixed_p: float | None
) -> tuple[float, float, float, float, float]:
    it = iter(x)
    gamma = fixed_gamma if fixed_gamma is not None else 1.0 / (1.0 + math.exp(-next(it)))
    p = fixed_p if fixed_p is not None else min(max(next(it), 0.0), 0.49)
    alpha = 1.0 + math.exp(min(next(it), 0.0))
    kappa = math.exp(next(it))
    pivot = min(max(next(it), 0.3), 1.0)
    return gamma, p, alpha, kappa, pivot


def _optimise(
    st: _Setup, fixed_gamma: float | None, fixed_p: float | None
) -> tuple[float, float, float, float, float]:
    n = st.n
    g0 = fixed_gamma if fixed_gamma is not None else min(0.5, max(1e-6, 60.0 / math.sqrt(n)))
    best_x: list[float] | None = None
    best_val = math.inf

    def objective(x: list[float]) -> float:
        try:
            return -_evaluate(st, *_unpack(list(x), fixed_gamma, fixed_p))["total"] / n
        except (ValueError, OverflowError, ZeroDivisionError):
            return 1e3

    for scale_g, scale_a in ((1.0, 1.0), (0.5, 0.5), (2.0, 2.0)):
        g = min(0.9, g0 * scale_g) if fixed_gamma is None else fixed_gamma
        x0: list[float] = []
        if fixed_gamma is None:
            x0.append(math.log(g / (1.0 - g)))
        if fixed_p is None:
            x0.append(0.01)
        x0 += [math.log(min(0.5, scale_a / math.sqrt(n))), math.log(9.0 / g), st.omega]
        res = minimize(
            objective,
            x0,
            method="Nelder-Mead",
            options={"maxiter": 2500, "xatol": 1e-7, "fatol": 1e-10},
        )
        if res.fun < best_val:
            best_val, best_x = float(res.fun), list(res.x)
    assert best_x is not None
    return _unpack(best_x, fixed_gamma, fixed_p)


def finite_size_key_length(
    *,
    chsh: float,
    qber: float,
    n_rounds: int,
    epsilon_sound: float = 1e-6,
    test_fraction: float | None = None,
    flip_probability: float | None = None,
    leak_ec_bits: float | None = None,
    ec_efficiency: float = 1.1,
    epsilon_complete_target: float = 1e-2,
    ec_failure_probability: float = 1e-3,
) -> FiniteSizeResult:
    """Certified key length of CHSH DI-QKD with noisy preprocessing, against general attacks.

    Parameters
    ----------
    chsh, qber
        Expected honest CHSH value S and key-round QBER Q; the abort thresholds are set from
        them with the completeness margin.
    n_rounds
        Number of rounds n (heralded events), each a test round with probability γ.
    epsilon_sound
        Total soundness ε (composed as ``2ε_EC + ε_PA + ε_EA + 2ε_s``, Eq. (F8)).
    test_fraction, flip_probability
        γ and Alice's flip probability p; ``None`` optimises them.
    leak_ec_bits
        Error-correction leak for the whole n-bit string (test rounds included); ``None``
        estimates ``f·n[(1−γ) h(Q_eff) + γ h(ω)]`` with ``f = ec_efficiency``.
    ec_efficiency
        Reconciliation efficiency f ≥ 1 for the estimate (default 1.1, as achieved by
        rate-adaptive LDPC / optimised Cascade at these block lengths).
    epsilon_complete_target
        Allowed honest abort probability; the thresholds are set so that the computed
        ``epsilon_complete`` (test statistics + EC failure) does not exceed it.
    ec_failure_probability
        Assumed frame-error probability of the reconciliation code at efficiency f (part of
        completeness; not computable from S and Q).

    Raises
    ------
    DiqkdError
        On S > 2√2, Q outside [0, 0.5], n < 1, ε outside (0, 1) or other invalid inputs.
    """
    _check_inputs(
        chsh,
        qber,
        n_rounds,
        epsilon_sound,
        test_fraction=test_fraction,
        flip_probability=flip_probability,
        leak_ec_bits=leak_ec_bits,
        ec_efficiency=ec_efficiency,
        epsilon_complete_target=epsilon_complete_target,
        ec_failure_probability=ec_failure_probability,
    )
    n = int(n_rounds)
    s = min(chsh, TSIRELSON_BOUND)
    omega = (4.0 + s) / 8.0
    asym, _ = asymptotic_finite_limit(s, qber, ec_efficiency)
    stat_budget = epsilon_complete_target - ec_failure_probability
    st = _Setup(
        n=n,
        chsh=s,
        qber=qber,
        omega=min(omega, OMEGA_MAX),
        epsilon_sound=epsilon_sound,
        leak_fixed=leak_ec_bits,
        ec_efficiency=ec_efficiency,
        budget_score=stat_budget * (1.0 - _SHARE_M),
        budget_m=stat_budget * _SHARE_M,
    )
    base = _Base(
        n_rounds=n,
        chsh=chsh,
        qber=qber,
        asymptotic_rate=max(asym, 0.0),
        ec_efficiency=ec_efficiency,
        epsilon_sound=epsilon_sound,
    )
    if s <= 2.0 or asym <= 0.0:
        why = (
            "no Bell violation (S ≤ 2): nothing is certified"
            if s <= 2.0
            else f"the asymptotic rate at S={chsh:.4f}, Q={qber:.4f} is {asym:.4f} ≤ 0 "
            f"(beyond the noise threshold with f={ec_efficiency})"
        )
        return _empty(base, test_fraction, flip_probability, why)
    gamma, p, alpha, kappa, pivot = _optimise(st, test_fraction, flip_probability)
    ev = _evaluate(st, gamma, p, alpha, kappa, pivot, final=True)
    threshold = ev["threshold"]
    m_max = int(ev["m_max"])
    p_abort = (
        score_abort_probability(n, gamma, st.omega, pivot, threshold)
        + float(binom.sf(m_max, n, gamma))
        + ec_failure_probability
    )
    length = max(0, math.floor(ev["total"])) if math.isfinite(ev["total"]) else 0
    eps_sound_used = 2.0 * ev["eps_ec"] + ev["eps_pa"] + ev["eps_ea"] + 2.0 * ev["eps_s"]
    if eps_sound_used > epsilon_sound * (1.0 + 1e-12):  # pragma: no cover - invariant
        raise DiqkdError(f"internal ε bookkeeping exceeded ε_sound ({eps_sound_used}); report")
    w_thr = pivot + threshold / (n * gamma)
    terms = {k[5:]: float(v) for k, v in ev.items() if k.startswith("term:")}
    reason = ""
    if length == 0:
        gain = ev["term:accumulated_entropy"] + ev["term:leak_ec"]
        reason = (
            f"n={n} rounds are too few: the key-length bound is {ev['total']:.4g} bits ≤ 0; "
            f"the entropy minus the EC leak ({gain:.4g} bits) does not cover the finite-size "
            f"corrections ({ev['total'] - gain:.4g} bits)"
        )
    justification = (
        f"ℓ = ⌊n r_α + κ·t − log₂N_W − α/(α−1) log₂(1/ε_EA) − g(ε_s)/(α−1) − leak_EC "
        f"− ⌈log₂(1/ε_EC)⌉ − 2 log₂(1/ε_PA) + 2⌋ = {length} bits from n={n} rounds at "
        f"γ={gamma:.4g}, p={p:.4g}, α={alpha:.6g}, scores (win {kappa * (1 - pivot):.4g}, "
        f"lose {-kappa * pivot:.4g}); r_α={ev['r_alpha']:.5f} bits/round (worst ω="
        f"{ev['w_star']:.4f}); abort unless Σz ≥ {threshold:.1f} (≈ winning frequency "
        f"{w_thr:.4f}, S ≈ {8 * w_thr - 4:.4f}) and m ≤ {m_max} test rounds. "
        + ", ".join(f"{k} {v:+.4g}" for k, v in terms.items())
        + f". Honest abort probability {p_abort:.3g}."
    )
    return FiniteSizeResult(
        **base.as_kwargs(),
        key_length_bits=length,
        key_rate_per_round=length / n,
        test_fraction=gamma,
        flip_probability=p,
        renyi_alpha=alpha,
        score_scale=kappa,
        score_pivot=pivot,
        worst_case_winning_probability=ev["w_star"],
        chsh_threshold=8.0 * w_thr - 4.0,
        winning_threshold=w_thr,
        statistic_threshold=threshold,
        max_test_rounds=m_max,
        leak_ec_bits=ev["leak"],
        epsilon_pa=ev["eps_pa"],
        epsilon_ec=ev["eps_ec"],
        epsilon_ea=ev["eps_ea"],
        epsilon_smooth=ev["eps_s"],
        epsilon_pe=ev["eps_ea"] + 2.0 * ev["eps_s"],
        epsilon_complete=min(p_abort, 1.0),
        terms_bits=terms,
        justification=justification,
        reason=reason,
    )


@dataclass(frozen=True, kw_only=True)
class _Base:
    n_rounds: int
    chsh: float
    qber: float
    asymptotic_rate: float
    ec_efficiency: float
    epsilon_sound: float

    def as_kwargs(self) -> dict[str, Any]:
        return {
            "n_rounds": self.n_rounds,
            "chsh": self.chsh,
            "qber": self.qber,
            "asymptotic_rate": self.asymptotic_rate,
            "ec_efficiency": self.ec_efficiency,
            "epsilon_sound": self.epsilon_sound,
        }


def _empty(base: _Base, gamma: float | None, p: float | None, reason: str) -> FiniteSizeResult:
    """No key: the protocol is set to abort always (sound with ε = 0, complete with ε = 1)."""
    return FiniteSizeResult(
        **base.as_kwargs(),
        key_length_bits=0,
        key_rate_per_round=0.0,
        test_fraction=gamma if gamma is not None else float("nan"),
        flip_probability=p if p is not None else 0.0,
        renyi_alpha=float("nan"),
        score_scale=float("nan"),
        score_pivot=float("nan"),
        worst_case_winning_probability=float("nan"),
        chsh_threshold=float("nan"),
        winning_threshold=float("nan"),
        statistic_threshold=float("nan"),
        max_test_rounds=0,
        leak_ec_bits=float("nan"),
        epsilon_pa=0.0,
        epsilon_ec=0.0,
        epsilon_ea=0.0,
        epsilon_smooth=0.0,
        epsilon_pe=0.0,
        epsilon_complete=1.0,
        justification=f"no key: {reason}",
        reason=reason,
    )


def finite_size_certificate(
    *,
    chsh: float,
    qber: float,
    n_rounds: int,
    epsilon_sound: float = 1e-6,
    test_fraction: float | None = None,
    flip_probability: float | None = None,
    leak_ec_bits: float | None = None,
    ec_efficiency: float = 1.1,
    epsilon_complete_target: float = 1e-2,
    ec_failure_probability: float = 1e-3,
) -> Certificate:
    """:func:`finite_size_key_length` packaged as a :class:`~diqkd.security.Certificate`."""
    r = finite_size_key_length(
        chsh=chsh,
        qber=qber,
        n_rounds=n_rounds,
        epsilon_sound=epsilon_sound,
        test_fraction=test_fraction,
        flip_probability=flip_probability,
        leak_ec_bits=leak_ec_bits,
        ec_efficiency=ec_efficiency,
        epsilon_complete_target=epsilon_complete_target,
        ec_failure_probability=ec_failure_probability,
    )
    return certificate_from_result(r)


def certificate_from_result(
    r: FiniteSizeResult,
    *,
    key_length_bits: int | None = None,
    observed: dict[str, float] | None = None,
    leak_ec_bits: float | None = None,
    reason: str | None = None,
) -> Certificate:
    """Package a :class:`FiniteSizeResult` as a :class:`~diqkd.security.Certificate`.

    A protocol run passes the key length it actually certified (the design's terms with the
    actual EC leak, ``docs/finite-size.md`` Eq. (F7)), the statistics it observed (recorded in
    ``parameters`` as ``observed_*``), the actual leak, and the reason when no key results.
    """
    length = r.key_length_bits if key_length_bits is None else int(key_length_bits)
    why = r.reason if reason is None else reason
    if length == 0 and not why:
        why = "no key certified"
    eps = Epsilons(
        pa=r.epsilon_pa,
        ec=2.0 * r.epsilon_ec,
        pe=r.epsilon_pe,
        sound=r.epsilon_sound,
        complete=r.epsilon_complete,
    )
    params = {
        "asymptotic_rate": r.asymptotic_rate,
        "renyi_alpha": r.renyi_alpha,
        "score_scale": r.score_scale,
        "score_pivot": r.score_pivot,
        "leak_ec_bits": r.leak_ec_bits if leak_ec_bits is None else float(leak_ec_bits),
        "design_key_length_bits": float(r.key_length_bits),
        "ec_efficiency": r.ec_efficiency,
        "epsilon_ea": r.epsilon_ea,
        "epsilon_smooth": r.epsilon_smooth,
        **{f"term_{k}_bits": v for k, v in r.terms_bits.items()},
        **{f"observed_{k}": float(v) for k, v in (observed or {}).items()},
    }
    return Certificate(
        method="finite-size/renyi-eat",
        theorem=r.theorem,
        n_rounds=r.n_rounds,
        chsh=r.chsh,
        qber=r.qber,
        thresholds={
            "statistic": r.statistic_threshold,
            "winning_frequency": r.winning_threshold,
            "chsh": r.chsh_threshold,
            "max_test_rounds": float(r.max_test_rounds),
        },
        epsilons=eps,
        key_length_bits=length,
        test_fraction=r.test_fraction if math.isfinite(r.test_fraction) else 0.0,
        flip_probability=r.flip_probability,
        parameters=params,
        justification=r.justification,
        reason=why if length == 0 else "",
    )
