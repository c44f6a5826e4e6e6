"""Discretized density evolution on the BSC and LDPC degree-distribution design.

Method
------
Density evolution (DE; Richardson, Urbanke, "The capacity of low-density parity-check codes
under message-passing decoding", IEEE TIT 47, 599 (2001); *Modern Coding Theory* (MCT), CUP
2008, Sec. 4.5) tracks the density of the sum-product messages of a tree-like ensemble
``(λ, ρ)``; by channel symmetry the all-zero word is sent (MCT, Lemma 4.90). This module is
the *discretized* DE of Chung, Forney, Richardson, Urbanke, "On the design of low-density
parity-check codes within 0.0045 dB of the Shannon limit", IEEE Commun. Lett. 5, 58 (2001),
Sec. II (MCT, Sec. 4.5 and Appendix B), on the BSC with crossover ``p``:

* Grid: LLRs ``kΔ``, ``k ∈ ℤ``; ``Δ ≈`` :data:`LLR_STEP` is adjusted so that the channel LLR
  ``a = log((1 − p)/p)`` is exactly ``m·Δ`` (the channel density is then exact:
  ``(1 − p)·δ_a + p·δ_{−a}``).
* Variable node: ``v = a·s + u₁ + … + u_{i−1}``; the density is the convolution
  ``P₀ ⊛ R^{⊛(i−1)}``, mixed over the edge-perspective ``λ``: ``Σᵢ λᵢ P₀ ⊛ R^{⊛(i−1)}``,
  computed exactly (no aliasing: the FFT length covers the full support) as one inverse FFT of
  ``F(P₀)·Σᵢ λᵢ F(R)^{i−1}`` (Horner's rule).
* Check node: the quantised pairwise rule of Chung et al. (Sec. II there),
  ``a ⊞ b = Q(2·atanh(tanh(a/2)·tanh(b/2)))``, ``Q`` rounding to the grid, applied to densities
  by the table ``T[|a|, |b|] = Q(φ(φ(|a|) + φ(|b|)))``, ``φ(x) = −log tanh(x/2)`` (Gallager's
  form of the same rule), with the sign handled by the sum/difference densities
  ``S = P₊ + P₋``, ``D = P₊ − P₋`` per magnitude (``S`` and ``D`` each combine through the
  same bilinear map, because the output sign is the product of the input signs). The
  ``(d − 1)``-fold combination uses binary powers (``⌈log₂ d⌉`` to ``2⌈log₂ d⌉`` pairwise
  steps); messages entering a check are saturated at :data:`LLR_MAX`. Why not the G-domain
  (Fourier transform of the density of ``(sign, φ(|L|))``): on a uniform ``φ`` grid of step
  ``δ``, every ``|L| ≳ log(4/δ)`` (≈ 8 nats for ``δ = 10⁻³``) falls in the first bin, because
  ``φ(L) ≈ 2e^{−L}``; tried here, treating that bin as ``|L| ≈ 10`` gave a spurious error
  floor near ``10⁻⁵`` (Table I's rate-0.8 ensemble failed 5 % below its threshold), treating it
  as ``|L| = ∞`` made confident wrong messages infinitely wrong and DE unstable. The pairwise
  rule has resolution ``Δ`` at every magnitude and is the exact DE of a quantised decoder
  (Chung et al.); its cost, ``O(K²)`` per pairwise step with ``K = LLR_MAX/Δ + 1 = 301``, is a
  few milliseconds per iteration.
* Convergence: error probability ``P(L < 0) + P(L = 0)/2`` of the variable-to-check messages
  below :data:`CONVERGED` (``10⁻⁷``; with the stability condition met, DE below that level
  converges to 0: Richardson, Shokrollahi, Urbanke, IEEE TIT 47, 619 (2001), stability
  condition; the quantised DE has a floor near ``10⁻¹⁰`` from saturation); failure: 3000
  iterations, or
  :data:`_PATIENCE` iterations without a new minimum (a fixed point above 0).
* Threshold: bisection on ``p`` (:func:`threshold`).

Validation (default grid ``Δ ≈ 0.1``, saturation 30; ``Δ ≈ 0.05`` in brackets): (3,6)-regular
``p* = 0.08402`` (0.08406) against 0.084 (Richardson, Urbanke 2001, BSC thresholds of regular
ensembles); Table I of
Elkouss et al. (ISIT 2009): rate 0.8 ``0.02981`` (published 0.0298), 0.9 ``0.01088``
(0.0109), 0.85 ``0.01999`` (0.0199; with ``λ₅ = 0.04274``, see
:mod:`~diqkd.postproc._ldpc_codes`). One threshold takes 5–60 s on the default grid (≈ 5 ms
per iteration at ``d̄c ≈ 30``, up to 3000 iterations next to the threshold), the optimiser
uses the coarser ``Δ ≈ 0.2``, saturation 25 (4× faster, thresholds within ≈ 0.3 %).

Design
------
:func:`optimise`: iterated linear programme at fixed design rate ``R`` and concentrated check
side (:func:`concentrated_rho`: degrees ``⌊d̄c⌋``, ``⌈d̄c⌉``, what PEG produces), maximum
variable degree :data:`MAX_VAR_DEGREE`; :func:`design` runs it from several starts and keeps
the best. Formulas: node fractions ``Lᵢ = (λᵢ/i)/Σⱼ λⱼ/j`` (MCT, Eq. (3.19)); design rate
``R = 1 − (Σⱼ ρⱼ/j)/(Σᵢ λᵢ/i)`` (MCT, Ch. 3, design rate; Elkouss et al. 2009, Eq. (5)), so
``d̄c = 1/((1 − R)·Σᵢ λᵢ/i)`` (:func:`check_rate`); variant (a) ``n₂ ≤ M``:
``n₂ = L₂·n = λ₂·E/2`` and ``M = E/d̄c`` (``E`` edges) give ``λ₂ ≤ 2/d̄c``; variant (b) only
stability ``λ₂·ρ'(1) < 1/B``, ``B = 2√(p(1 − p))`` (RSU 2001, stability condition), both with the
stability bound scaled by :data:`STABILITY_MARGIN`. Efficiency ``f* = (1 − R)/h(p*)``.

Results (variant (a); ``p*`` by discretized DE on the default grid, bisection to
``5·10⁻⁴·p*``; ``f* = (1 − R)/h(p*)``; Table I ``f*`` from its published ``p*``, its
ensembles violate (a) at 0.9 and 0.8 and use degrees up to 73)::

    rate    p*        f*      Table I f*   winning start
    0.95    0.004424  1.2205      —        Table I 0.90 projected
    0.925   0.007783  1.1414      —        3-degree (earlier revision)
    0.90    0.011317  1.1185    1.153      Table I 0.90 projected
    0.85    0.019997  1.0606    1.065      Table I 0.85 (satisfies (a)), barely moved
    0.80    0.029698  1.0369    1.034      Table I 0.80 projected
    0.75    0.040215  1.0276    1.048      3-degree (earlier revision)
    0.70    0.049299  1.0585    1.041      Table I projected, not optimised
    0.65    0.062034  1.0433    1.028*     BEC, d̄v = 4.5, 28 programmes
    0.60    0.075679  1.0342    1.025*     BEC, d̄v = 4.5, 28 programmes
    0.55    0.090497  1.0271    1.028      Table I as is (satisfies all), not optimised
    0.50    0.106603  1.0213    1.018*     BEC, d̄v = 4.5, 30 programmes

"Projected" (:func:`project_start`): degrees above 40 merged into 40, ``λ₂`` above ``2/d̄c``
moved to degree 3, check side made concentrated at the implied ``d̄c``. At 0.70 this is not
optimised (the BEC start at ``d̄v = 4.5`` reached only ``f* = 1.0645``). (*) Table I's ``ρ`` at
0.65, 0.60 and 0.50 is not concentrated, so its published ``p*`` is not that of the ensemble
PEG builds from its ``λ``: projected onto concentrated checks (and degrees ≤ 40) those three
have ``f*`` 1.063, 1.068 and 1.055, and the iterated LP from the projection makes no step. The
optimised entries at 0.65–0.50 (from the BEC start) beat that, but **not in the codes**: built
at ``n = 10⁶`` for the 8 % and 10 % rungs (56: ``R = 0.579``, 60: ``R = 0.5125``), with the
protocol's defaults and 4 frames each, the design at 0.6 gave ``f = 1.070`` (Table I's ``λ``:
1.075) and at 0.5 ``1.060`` (Table I's: 1.053); the mother codes alone (no specials, 2 frames
per point, 400 iterations) decode at the same ``f`` as Table I's (rung 60: at 1.05, not 1.03;
at 1.04 Table I's 1/2, ours 0/2; rung 56: at 1.06, not 1.05), in more iterations (81–130
against 53–58). ``λ₂`` close to its cap (``n₂ ≈ 0.8–0.9·M``) makes slow codes. So the family
keeps Table I at these rates (:func:`diqkd.postproc._ldpc_codes._family` compares published
thresholds). Using a design's ``λ`` at a rung's rate rather than its own costs 0.6–0.7 % of
``f*`` (0.6 at ``R = 0.579``: 1.0342 → 1.040; 0.5 at 0.5125: 1.0213 → 1.0286; 0.8 at 0.79:
1.0369 → 1.0429).

Cross-check with the sampled DE of :mod:`~diqkd.postproc._ldpc_de` (``threshold`` on
``table_ensemble(λ, ρ)``, population 10⁵, bisection on ``[0.96, 1.04]·p*`` to ``0.004·p*``,
resolution ≈ ±0.5 %): rate 0.9: 0.011317 (ratio to ``p*`` 1.000), 0.8: 0.029550 (0.995),
0.95: 0.004435 (1.0025).

The target ``f* ≲ 1.02–1.03`` is *not* reached above rate 0.75. The iterated LP is a local
method: from Table I it moves little (rate 0.85 ends on Table I itself), from the BEC or
three-degree starts it stalls lower (e.g. rate 0.85: ``f*`` 1.13–1.14). How much (a) costs is
seen on the BEC, where the LP is global (:func:`_bec_start`; ``f_BEC = (1 − R)/ε*``, best mean
variable degree ``d̄v`` of 3–6, ``d̄v`` in brackets): rate 0.9: 1.065 (5.0) with (a), 1.010 (5.0)
without; 0.95: 1.074 (5.5) vs 1.011 (5.0); 0.8: 1.048 (5.0) vs 1.011 (5.0); 0.7: 1.035 (4.5) vs
1.009 (4.5); 0.5: 1.012 (4.5) vs 1.008 (4.0). On the BSC the gaps are larger still, so with
(a) and degrees ≤ 40, ``f* ≈ 1.02–1.03`` at rates ≥ 0.8 is probably out of reach of *any*
optimiser; without (a) a global search (differential evolution, as Elkouss et al.) is needed.

Regenerate (hours of CPU; one rate takes 1–5 min)::

    from diqkd.postproc._ldpc_codes import ELKOUSS_2009
    from diqkd.postproc._ldpc_design import design, project_start
    near = min(ELKOUSS_2009, key=lambda r: abs(r - R))
    lam, rho, p_star = design(
        R, mean_var_degrees=(5.0,), starts=(project_start(ELKOUSS_2009[near].lam, R),)
    )

(BEC start at ``d̄v = 5`` and the projected Table I start; for 0.65–0.50 instead
``optimise(R, 4.5/(1 − R), max_lp=28)`` (30 at 0.5), then rounding and the threshold as in
:func:`design`). Some entries (marked "3-degree"
in the table) came instead from ``design(R, mean_var_degrees=(5.0, 5.5, 6.0))`` of an earlier
revision of :func:`optimise` that started from :func:`_initial` (``λ₂`` at its cap, the rest on
degree 3 and one high degree) and did not keep non-raising steps.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from diqkd.errors import ReconciliationError
from diqkd.postproc._entropy import binary_entropy, inverse_binary_entropy

__all__ = [
    "DESIGNED",
    "FOREST_FAMILY_REACH",
    "DEResult",
    "check_rate",
    "concentrated_rho",
    "converges",
    "design_rate",
    "edge_fractions",
    "evolve",
    "forest_rung_table",
    "optimise",
    "project_start",
    "rung_threshold_efficiency",
    "threshold",
]

#: Default LLR grid step Δ (nats) of the variable-node side.
LLR_STEP = 0.1
#: Default saturation (nats) of the messages entering a check node.
LLR_MAX = 30.0
#: Largest variable degree the designs (and the variable-node FFT length) allow.
MAX_VAR_DEGREE = 40
#: Largest variable degree :func:`evolve` takes without ``record`` (Table I uses up to 73).
MAX_EVOLVE_DEGREE = 100
#: Fraction of the stability bound on ``λ₂`` the optimiser allows: at the bound itself the
#: error decays arbitrarily slowly near 0 and DE within an iteration limit cannot converge.
STABILITY_MARGIN = 0.9
#: :func:`forest_rung_table` tries a forest-only ensemble on rungs whose rate is this close.
FOREST_FAMILY_REACH = 0.025
#: DE has converged once the error probability of the variable-to-check messages is below this.
CONVERGED = 1e-7
#: Iterations without a new minimum of the error probability before DE is declared stuck.
_PATIENCE = 10


def _phi(x: NDArray[np.float64]) -> NDArray[np.float64]:
    """``φ(x) = −log tanh(x/2) = log1p(2/expm1(x))`` for ``x > 0``; ``φ`` is its own inverse."""
    with np.errstate(over="ignore", divide="ignore"):
        out: NDArray[np.float64] = np.log1p(2.0 / np.expm1(x))
    return out


@dataclass
class _Grids:
    """Quantisation of one DE run at crossover ``p`` (module docstring, "Method")."""

    p: float
    step: float  # LLR step Δ: the channel LLR log((1 − p)/p) is exactly m_ch·Δ
    m_ch: int
    k_max: int  # magnitudes entering a check are clipped to k_max·Δ
    half: int  # variable-to-check messages live on indices −half … half
    n_var: int  # variable-node FFT length (≥ 2·half + 1: no aliasing)
    table: NDArray[np.int64]  # flattened (k_max+1)² table of quantised |a ⊞ b| indices
    chan_fft: NDArray[np.complex128]
    err_fft: NDArray[np.complex128]  # weights of the error functional in the rfft domain


def _grids(p: float, llr_step: float, l_max: float, max_dv: int) -> _Grids:
    a = math.log((1.0 - p) / p)
    m_ch = max(1, round(a / llr_step))
    step = a / m_ch
    k_max = math.ceil(l_max / step)
    half = m_ch + (max_dv - 1) * k_max
    n_var = 1 << math.ceil(math.log2(2 * half + 1))
    mag = np.arange(k_max + 1, dtype=float) * step
    ph = np.full(k_max + 1, np.inf)
    ph[1:] = _phi(mag[1:])
    with np.errstate(invalid="ignore"):
        exact = _phi(ph[:, None] + ph[None, :])  # |a ⊞ b| = φ(φ(|a|) + φ(|b|))
    exact = np.nan_to_num(exact, nan=0.0, posinf=0.0)
    table = np.minimum(np.rint(exact / step), k_max).astype(np.int64).ravel()
    chan = np.zeros(n_var)
    chan[m_ch] = 1.0 - p
    chan[n_var - m_ch] = p
    g = np.zeros(n_var)  # P(L < 0) + P(L = 0)/2 as Σ x·g
    g[n_var - half :] = 1.0
    g[0] = 0.5
    wts = np.full(n_var // 2 + 1, 2.0)
    wts[0] = wts[-1] = 1.0
    err_fft = np.conj(np.fft.rfft(g)) * wts / n_var
    return _Grids(p, step, m_ch, k_max, half, n_var, table, np.fft.rfft(chan), err_fft)


def _boxplus(
    g: _Grids,
    x: tuple[NDArray[np.float64], NDArray[np.float64]],
    y: tuple[NDArray[np.float64], NDArray[np.float64]],
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Quantised check rule on ``(S, D)`` pairs: ``S = P₊ + P₋``, ``D = P₊ − P₋`` per magnitude."""
    n = g.k_max + 1
    s = np.bincount(g.table, weights=np.outer(x[0], y[0]).ravel(), minlength=n)
    d = np.bincount(g.table, weights=np.outer(x[1], y[1]).ravel(), minlength=n)
    return s.astype(np.float64, copy=False), d.astype(np.float64, copy=False)


def _check_step(g: _Grids, v2c: NDArray[np.float64], rho: dict[int, float]) -> NDArray[np.float64]:
    """Density of check-to-variable messages (indices −k_max … k_max) from ``v2c``."""
    h, km = g.half, g.k_max
    pos = np.zeros(km + 1)
    neg = np.zeros(km + 1)
    pos[1:] = v2c[h + 1 : h + km + 1]
    neg[1:] = v2c[h - 1 : h - km - 1 : -1]
    pos[km] += v2c[h + km + 1 :].sum()  # saturate at k_max·Δ
    neg[km] += v2c[: h - km].sum()
    pos[0] = neg[0] = 0.5 * v2c[h]
    base = (pos + neg, pos - neg)
    # powers base^{⊞(d−1)} for the degrees of ρ, by binary exponentiation on the sorted exponents
    out_s = np.zeros(km + 1)
    out_d = np.zeros(km + 1)
    cache: dict[int, tuple[NDArray[np.float64], NDArray[np.float64]]] = {1: base}

    def power(e: int) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        if e in cache:
            return cache[e]
        if e - 1 in cache:
            r = _boxplus(g, cache[e - 1], base)
        else:
            half_ = power(e // 2)
            r = _boxplus(g, half_, half_)
            if e % 2:
                r = _boxplus(g, r, base)
        cache[e] = r
        return r

    for deg in sorted(rho):
        ps, pd = power(deg - 1)
        out_s += rho[deg] * ps
        out_d += rho[deg] * pd
    plus = np.maximum(0.5 * (out_s + out_d), 0.0)
    minus = np.maximum(0.5 * (out_s - out_d), 0.0)
    c2v = np.empty(2 * km + 1)
    c2v[km:] = plus
    c2v[:km] = minus[:0:-1]
    c2v[km] += minus[0]
    c2v /= c2v.sum()  # mass drifts by rounding errors, amplified ×(d−1) per iteration
    return c2v


def _c2v_fft(g: _Grids, c2v: NDArray[np.float64]) -> NDArray[np.complex128]:
    kc = g.k_max
    x = np.zeros(g.n_var)
    x[: kc + 1] = c2v[kc:]
    x[g.n_var - kc :] = c2v[:kc]
    out: NDArray[np.complex128] = np.fft.rfft(x)
    return out


def _variable_step(
    g: _Grids, fr: NDArray[np.complex128], lam: dict[int, float]
) -> NDArray[np.float64]:
    """Density of variable-to-check messages (indices −half … half) from the c2v spectrum."""
    top = max(lam)
    poly = np.full_like(fr, lam.get(top, 0.0))
    for i in range(top - 1, 1, -1):
        poly = poly * fr + lam.get(i, 0.0)
    poly = poly * fr * g.chan_fft
    x = np.fft.irfft(poly, g.n_var)
    h = g.half
    out: NDArray[np.float64] = np.maximum(np.concatenate([x[g.n_var - h :], x[: h + 1]]), 0.0)
    out /= out.sum()
    return out


def _error(g: _Grids, v2c: NDArray[np.float64]) -> float:
    h = g.half
    return float(v2c[:h].sum() + 0.5 * v2c[h])


@dataclass(frozen=True)
class DEResult:
    """Outcome of :func:`evolve`.

    Attributes
    ----------
    converged
        Whether the error probability fell below :data:`CONVERGED`.
    iterations
        Iterations run.
    errors
        Error probability ``P(L < 0) + P(L = 0)/2`` of the variable-to-check messages after
        each iteration, ``errors[0]`` the channel's ``p``.
    per_degree
        With ``record=True``: shape ``(iterations, MAX_VAR_DEGREE + 1)``, entry ``[ℓ, i]`` the
        error probability a degree-``i`` variable's outgoing message would have at iteration
        ``ℓ + 1`` given the check-to-variable density of that iteration (linear in ``λ``:
        ``errors[ℓ + 1] = Σᵢ λᵢ·per_degree[ℓ, i]``); else empty.
    """

    converged: bool
    iterations: int
    errors: NDArray[np.float64]
    per_degree: NDArray[np.float64]


def _validate(lam: dict[int, float], rho: dict[int, float], p: float, max_dv: int) -> None:
    if not 0.0 < p < 0.5:
        raise ReconciliationError(f"crossover probability must lie in (0, 0.5), got {p}")
    if not lam or min(lam) < 2 or max(lam) > max_dv:
        raise ReconciliationError(f"variable degrees must lie in [2, {max_dv}]")
    if not rho or min(rho) < 2:
        raise ReconciliationError("check degrees must be at least 2")


def evolve(
    lam: dict[int, float],
    rho: dict[int, float],
    p: float,
    *,
    max_iter: int = 3000,
    record: bool = False,
    llr_step: float = LLR_STEP,
    l_max: float = LLR_MAX,
) -> DEResult:
    """Run discretized density evolution of sum-product decoding at BSC crossover ``p``.

    Parameters
    ----------
    lam, rho
        Edge-perspective degree distributions ``{degree: fraction}`` (normalised here).
    p
        Crossover probability of the BSC.
    max_iter
        Iteration limit.
    record
        Keep the per-degree error probabilities (for the linear programme of :func:`optimise`).
    llr_step, l_max
        LLR grid step and saturation of the check inputs (module docstring, "Method").

    Returns
    -------
    DEResult
        Converged when the error probability falls below :data:`CONVERGED`; failed when
        ``max_iter`` is reached or :data:`_PATIENCE` iterations bring no new minimum (relative
        decrease below ``10⁻⁷``: a fixed point above 0, RU 2008 Sec. 4.5).
    """
    _validate(lam, rho, p, MAX_VAR_DEGREE if record else MAX_EVOLVE_DEGREE)
    ls, rs = sum(lam.values()), sum(rho.values())
    lam = {int(i): w / ls for i, w in lam.items() if w > 0}
    rho = {int(d): w / rs for d, w in rho.items() if w > 0}
    g = _grids(p, llr_step, l_max, MAX_VAR_DEGREE if record else max(lam))
    v2c = np.zeros(2 * g.half + 1)
    v2c[g.half + g.m_ch] = 1.0 - p
    v2c[g.half - g.m_ch] = p
    errors = [p]
    rows: list[NDArray[np.float64]] = []
    converged = False
    n_it, best, stalled = 0, p, 0
    degs = np.arange(MAX_VAR_DEGREE + 1)
    for it in range(1, max_iter + 1):
        n_it = it
        c2v = _check_step(g, v2c, rho)
        fr = _c2v_fft(g, c2v)
        if record:
            powers = np.empty((MAX_VAR_DEGREE + 1, fr.size), dtype=complex)
            powers[0] = powers[1] = 0.0
            powers[2] = fr * g.chan_fft
            for i in range(3, MAX_VAR_DEGREE + 1):
                powers[i] = powers[i - 1] * fr
            row = (powers @ g.err_fft).real
            row[degs < 2] = 0.0
            rows.append(row)
        v2c = _variable_step(g, fr, lam)
        err = _error(g, v2c)
        errors.append(err)
        if err < CONVERGED:
            converged = True
            break
        if err < best * (1.0 - 1e-7):
            best, stalled = err, 0
        else:
            stalled += 1
            if stalled >= _PATIENCE:
                break
    per = np.array(rows) if record else np.empty((0, MAX_VAR_DEGREE + 1))
    return DEResult(converged, n_it, np.array(errors), per)


def converges(lam: dict[int, float], rho: dict[int, float], p: float, **kw: float) -> bool:
    """Whether discretized DE at crossover ``p`` converges (:func:`evolve`)."""
    return evolve(lam, rho, p, **kw).converged  # type: ignore[arg-type]


def threshold(
    lam: dict[int, float],
    rho: dict[int, float],
    lo: float,
    hi: float,
    *,
    tol: float = 1e-5,
    max_iter: int = 3000,
    llr_step: float = LLR_STEP,
    l_max: float = LLR_MAX,
) -> float:
    """Largest crossover in ``[lo, hi]`` at which discretized DE converges (bisection to ``tol``).

    Returns ``lo`` if DE fails at ``lo`` and ``hi`` if it converges at ``hi``.
    """

    def ok(p: float) -> bool:
        return evolve(lam, rho, p, max_iter=max_iter, llr_step=llr_step, l_max=l_max).converged

    if ok(hi):
        return hi
    if not ok(lo):
        return lo
    while hi - lo > tol:
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if ok(mid) else (lo, mid)
    return lo


def concentrated_rho(dc_mean: float) -> dict[int, float]:
    """Edge-perspective ``ρ`` of checks of degrees ``⌊d̄c⌋`` and ``⌈d̄c⌉`` with mean ``d̄c``.

    A fraction ``t = d̄c − ⌊d̄c⌋`` of the *nodes* has the larger degree; edge fractions are
    ``ρ_d = (1 − t)·d/d̄c``, ``ρ_{d+1} = t·(d + 1)/d̄c`` (RU 2008, Eq. (3.19) inverted).
    """
    if dc_mean < 2.0:
        raise ReconciliationError(f"mean check degree must be at least 2, got {dc_mean}")
    d = math.floor(dc_mean)
    t = dc_mean - d
    rho = {d: (1.0 - t) * d / dc_mean}
    if t > 0:
        rho[d + 1] = t * (d + 1) / dc_mean
    return rho


def design_rate(lam: dict[int, float], rho: dict[int, float]) -> float:
    """``R = 1 − (Σⱼ ρⱼ/j)/(Σᵢ λᵢ/i)`` (Elkouss et al. 2009, Eq. (5); MCT, Ch. 3)."""
    ls, rs = sum(lam.values()), sum(rho.values())
    return 1.0 - sum(w / d for d, w in rho.items()) / rs / (sum(w / i for i, w in lam.items()) / ls)


def check_rate(lam: dict[int, float], rate: float) -> float:
    """Mean check degree ``d̄c = 1/((1 − R)·Σᵢ λᵢ/i)`` implied by ``λ`` at design rate ``R``."""
    return 1.0 / ((1.0 - rate) * sum(w / i for i, w in lam.items()))


def _stability_cap(rho: dict[int, float], p: float) -> float:
    """Largest ``λ₂`` allowed by ``λ₂·ρ'(1) < 1/B``, ``B = 2√(p(1 − p))`` on the BSC.

    Richardson, Shokrollahi, Urbanke, IEEE TIT 47, 619 (2001), stability condition;
    ``B`` is the Bhattacharyya constant of the BSC.
    """
    rho_prime = sum(w * (d - 1) for d, w in rho.items())
    return 1.0 / (rho_prime * 2.0 * math.sqrt(p * (1.0 - p)))


def _initial(c: float, cap2: float, max_dv: int) -> NDArray[np.float64]:
    """A feasible start: ``λ₂`` near its cap, the rest on degrees 3 and ``D`` (``Σλᵢ/i = c``)."""
    lam = np.zeros(max_dv + 1)
    for lam2 in (0.9 * cap2, 0.5 * cap2, 0.0):
        for top in range(max_dv, 3, -1):
            # λ₃ + λ_D = 1 − λ₂,  λ₃/3 + λ_D/top = c − λ₂/2
            rest, target = 1.0 - lam2, c - lam2 / 2.0
            lam_d = (rest / 3.0 - target) / (1.0 / 3.0 - 1.0 / top)
            lam3 = rest - lam_d
            if lam_d >= 0 and lam3 >= 0:
                lam[2], lam[3], lam[top] = lam2, lam3, lam_d
                return lam
    raise ReconciliationError(f"no λ with Σλᵢ/i = {c} and degrees ≤ {max_dv}")


def _bec_start(rate: float, dc_mean: float, cap2: float, max_dv: int) -> NDArray[np.float64]:
    """``λ`` of the best binary-erasure-channel threshold at this rate, check side and caps.

    On the BEC, DE is the scalar recursion ``x ↦ ε·λ(1 − ρ(1 − x))`` and ``ε`` is below the
    threshold iff ``ε·λ(1 − ρ(1 − x)) < x`` on ``(0, ε]``, linear in
    ``λ``: the largest ``ε`` with a feasible ``λ`` (``Σλᵢ = 1``, ``Σλᵢ/i = 1/((1 − R)·d̄c)``,
    ``λ₂ ≤ cap2``) is found by bisection over linear programmes (the condition is that of Luby,
    Mitzenmacher, Shokrollahi, Spielman, "Efficient erasure correcting codes", IEEE TIT 47, 569
    (2001)). The BSC optimisation starts from it.
    """
    from scipy.optimize import linprog  # design only: the decoder's import stays light

    rho = concentrated_rho(dc_mean)
    c = 1.0 / ((1.0 - rate) * dc_mean)
    degs = np.arange(2, max_dv + 1)
    a_eq = np.vstack([np.ones(degs.size), 1.0 / degs])
    bounds = [(0.0, cap2 if i == 2 else 1.0) for i in degs]
    best: NDArray[np.float64] | None = None
    lo, hi = 0.3 * (1.0 - rate), 1.0 - rate
    for _ in range(25):
        eps = 0.5 * (lo + hi)
        x = np.linspace(eps * 1e-4, eps, 600)
        y = np.ones_like(x)
        for d, w in rho.items():
            y -= w * (1.0 - x) ** (d - 1)
        a_ub = eps * y[:, None] ** (degs - 1)[None, :]
        sol = linprog(
            np.zeros(degs.size), A_ub=a_ub, b_ub=x * (1 - 1e-6), A_eq=a_eq, b_eq=[1.0, c],
            bounds=bounds, method="highs",
        )  # fmt: skip
        if sol.status == 0:
            lo, best = eps, np.maximum(sol.x, 0.0)
        else:
            hi = eps
    if best is None:
        return _initial(c, cap2, max_dv)
    lam = np.zeros(max_dv + 1)
    lam[2:] = best / best.sum()
    return lam


def _as_dict(lam: NDArray[np.float64]) -> dict[int, float]:
    return {int(i): float(w) for i, w in enumerate(lam) if w > 1e-12}


@dataclass(frozen=True)
class Design:
    """Result of :func:`optimise`: ``λ``, ``ρ``, the crossover it converges at, its rate."""

    lam: dict[int, float]
    rho: dict[int, float]
    p: float
    rate: float


def _lp_step(
    res: DEResult,
    lam: NDArray[np.float64],
    c: float,
    cap2: float,
    tau: float,
) -> NDArray[np.float64] | None:
    """One linear programme at fixed rate (see :func:`optimise`); ``None`` if infeasible.

    Variables ``λ'₂ … λ'_D``, ``u₂ … u_D ≥ |λ' − λ|`` and ``η``: maximise ``η`` subject to
    ``Σᵢ λ'ᵢ e_{i,ℓ+1} ≤ (1 − η)·e_ℓ`` on the tunnel rows, ``≤ e_ℓ`` on the others,
    ``Σλ'ᵢ = 1``, ``Σλ'ᵢ/i = c``, ``0 ≤ λ'₂ ≤ cap2``, and the L¹ trust region ``Σuᵢ ≤ tau``.
    """
    from scipy.optimize import linprog  # design only: the decoder's import stays light

    max_dv = lam.size - 1
    degs = np.arange(2, max_dv + 1)
    nd = degs.size
    n_rows = res.per_degree.shape[0]
    e_prev = res.errors[:n_rows]
    keep = e_prev > 10 * CONVERGED
    n_keep = int(keep.sum())
    # η enters only the rows of the "tunnel": not the first iteration (its progress is that of
    # the channel alone) nor the tail below 10⁻⁴·p (its rate is fixed by λ₂ρ'(1)·B, stability)
    tunnel = (np.arange(n_rows) >= 1) & (e_prev > 1e-4 * res.errors[0])
    eye = np.eye(nd)
    a_ub = np.vstack(
        [
            np.hstack(
                [
                    res.per_degree[keep][:, 2:] / e_prev[keep, None],
                    np.zeros((n_keep, nd)),
                    tunnel[keep, None].astype(float),
                ]
            ),
            np.hstack([eye, -eye, np.zeros((nd, 1))]),
            np.hstack([-eye, -eye, np.zeros((nd, 1))]),
            np.r_[np.zeros(nd), np.ones(nd), 0.0][None, :],
        ]
    )
    old = lam[2:]
    b_ub = np.r_[np.ones(n_keep), old, -old, tau]
    a_eq = np.vstack([np.r_[np.ones(nd), np.zeros(nd), 0.0], np.r_[1.0 / degs, np.zeros(nd), 0.0]])
    bounds: list[tuple[float, float | None]] = [(0.0, cap2 if i == 2 else 1.0) for i in degs]
    bounds += [(0.0, None)] * nd + [(-1.0, 1.0)]
    cost = np.zeros(2 * nd + 1)
    cost[-1] = -1.0
    sol = linprog(
        cost, A_ub=a_ub, b_ub=b_ub, A_eq=a_eq, b_eq=[1.0, c], bounds=bounds, method="highs"
    )
    if sol.status != 0:
        return None
    new = np.zeros(max_dv + 1)
    new[2:] = np.maximum(sol.x[:nd], 0.0)
    out: NDArray[np.float64] = new / new.sum()
    return out


def optimise(
    rate: float,
    dc_mean: float,
    *,
    variant: str = "a",
    max_dv: int = MAX_VAR_DEGREE,
    trust: float = 0.1,
    max_lp: int = 80,
    llr_step: float = 0.2,
    l_max: float = 25.0,
    max_iter: int = 1500,
    start: dict[int, float] | None = None,
    log: bool = False,
) -> Design:
    """Iterated linear programme for ``λ`` at design rate ``rate`` and check mean ``dc_mean``.

    The check side is :func:`concentrated_rho` of ``dc_mean``; the rate fixes
    ``Σλᵢ/i = 1/((1 − R)·d̄c)`` (design rate, module docstring). At a crossover ``p`` where
    the current ``λ`` converges, density evolution gives, per iteration ``ℓ``, the error
    probability ``e_ℓ`` of the variable-to-check messages and, per degree ``i``, the error
    ``e_{i,ℓ+1}`` a
    degree-``i`` node would produce from that iteration's check output
    (:attr:`DEResult.per_degree`); the mixture's next error ``Σᵢ λᵢ e_{i,ℓ+1}`` is linear in
    ``λ``. The linear programme (the iterated LP of Richardson, Shokrollahi, Urbanke, IEEE TIT
    47, 619 (2001), and Chung, Forney, Richardson, Urbanke, IEEE Commun. Lett. 5, 58
    (2001), with fixed rate and a max–min objective) maximises the smallest relative decrease
    ``η`` of the error along the trajectory, within the L¹ trust region
    ``Σᵢ|λ'ᵢ − λᵢ| ≤ τ`` (the check densities are those of the old ``λ``); this widens the
    narrowest "tunnel" of DE, which is what limits the threshold. ``λ'`` is kept if DE
    converges at ``p·(1 + ε)`` (then ``p`` is raised and ``ε`` doubled) or, failing that, at
    ``p`` (``ε`` halved); otherwise ``τ`` and ``ε`` are halved. Stops after ``max_lp``
    programmes or when ``τ < 2·10⁻³``.

    Variants: ``"a"``: ``λ₂ ≤ 2/d̄c`` (at most ``M`` degree-2 nodes) and stability; ``"b"``:
    stability only. Stability: ``λ₂·ρ'(1) < 1/(2√(p(1 − p)))`` (RSU 2001, stability condition; the
    Bhattacharyya constant of the BSC), scaled by :data:`STABILITY_MARGIN`.

    Returns
    -------
    Design
        The final ``λ`` and the largest ``p`` it was seen to converge at (a lower bound of its
        threshold on the design grid; see :func:`threshold`).
    """
    rho = concentrated_rho(dc_mean)
    c = 1.0 / ((1.0 - rate) * dc_mean)
    kw = {"llr_step": llr_step, "l_max": l_max, "max_iter": max_iter}

    def cap2(p_: float) -> float:
        stab = STABILITY_MARGIN * _stability_cap(rho, p_)
        return min(stab, 2.0 / dc_mean) if variant == "a" else stab

    if start is None:
        lam = _bec_start(rate, dc_mean, cap2(0.5 * (1.0 - rate) / 8.0), max_dv)
    else:
        lam = np.zeros(max_dv + 1)
        for i, w in start.items():
            lam[i] = w
    p = threshold(_as_dict(lam), rho, 1e-4, 0.2, tol=1e-5, **kw)  # type: ignore[arg-type]
    res = evolve(_as_dict(lam), rho, p, record=True, **kw)  # type: ignore[arg-type]
    tau, eps = trust, 0.01
    for step in range(max_lp):
        new = _lp_step(res, lam, c, cap2(p), tau)
        ok = False
        if new is not None:
            p_try = p * (1.0 + eps)
            trial = evolve(_as_dict(new), rho, p_try, record=True, **kw)  # type: ignore[arg-type]
            ok = trial.converged
            if not ok:  # no raise: keep λ' if it still converges at p (a wider tunnel)
                p_try = p
                trial = evolve(_as_dict(new), rho, p_try, record=True, **kw)  # type: ignore[arg-type]
                ok = trial.converged
        if log:
            print(f"  lp {step}: p={p:.6f} tau={tau:.4f} eps={eps:.4g} ok={ok}", flush=True)
        if ok:
            assert new is not None
            raised = p_try > p
            lam, p, res = new, p_try, trial
            eps = min(0.02, eps * 2) if raised else max(1e-4, eps / 2)
            tau = min(trust, tau * 1.5) if raised else tau
        else:
            tau /= 2
            eps = max(1e-4, eps / 2)
            if tau < 2e-3:
                break
    return Design(_as_dict(lam), rho, p, design_rate(_as_dict(lam), rho))


def project_start(lam: dict[int, float], rate: float, variant: str = "a") -> dict[int, float]:
    """A starting ``λ`` for :func:`design` from a published one: normalised, degrees above
    :data:`MAX_VAR_DEGREE` merged into it, and for variant ``"a"`` the part of ``λ₂`` above
    ``2/d̄c`` (``d̄c`` implied at ``rate``, :func:`check_rate`) moved to degree 3."""
    total = sum(lam.values())
    out: dict[int, float] = {}
    for i, w in lam.items():
        j = min(int(i), MAX_VAR_DEGREE)
        out[j] = out.get(j, 0.0) + w / total
    for _ in range(20):
        if variant != "a":
            break
        cap = 2.0 / check_rate(out, rate) * (1.0 - 1e-6)
        if out.get(2, 0.0) <= cap:
            break
        out[3] = out.get(3, 0.0) + out[2] - cap
        out[2] = cap
    return out


def _rounded(lam: dict[int, float], digits: int = 6) -> dict[int, float]:
    """``λ`` rounded to ``digits`` decimals, coefficients below ``10⁻⁵`` dropped, summing to 1
    (the rounding residue goes to the largest coefficient)."""
    kept = {i: w for i, w in lam.items() if w >= 1e-5}
    total = sum(kept.values())
    out = {i: round(w / total, digits) for i, w in sorted(kept.items())}
    top = max(out, key=lambda i: out[i])
    out[top] = round(out[top] + 1.0 - sum(out.values()), digits)
    return out


def design(
    rate: float,
    *,
    variant: str = "a",
    mean_var_degrees: tuple[float, ...] = (5.0, 5.5, 6.0),
    starts: tuple[dict[int, float], ...] = (),
    log: bool = False,
) -> tuple[dict[int, float], dict[int, float], float]:
    """Best :func:`optimise` result over mean variable degrees ``d̄v = (1 − R)·d̄c`` (from the
    BEC start, :func:`_bec_start`) and over the given starting ``λ`` (each with its implied
    ``d̄c``, :func:`check_rate`).

    Each candidate is optimised on the coarse grid (``Δ = 0.2``, saturation 25); the best one
    (largest ``p`` reached) is rounded (:func:`_rounded`), its check side recomputed from the
    rounded ``λ`` (:func:`check_rate`, :func:`concentrated_rho`, rounded to 6 digits) and its
    threshold found on the default grid by :func:`threshold` (relative tolerance ``5·10⁻⁴``).

    Returns
    -------
    tuple
        ``(λ, ρ, p*)`` as in :data:`DESIGNED`.
    """
    best: Design | None = None
    runs: list[tuple[float, dict[int, float] | None]] = [
        (dv / (1.0 - rate), None) for dv in mean_var_degrees
    ]
    for lam_start in starts:
        runs.append((check_rate(lam_start, rate), lam_start))
    for dc, start in runs:
        cand = optimise(rate, dc, variant=variant, start=start)
        if log:
            print(f"rate {rate} variant {variant} d̄c {dc:.3f}: p = {cand.p:.6f}", flush=True)
        if best is None or cand.p > best.p:
            best = cand
    assert best is not None
    lam = _rounded(best.lam)
    rho = _rounded(concentrated_rho(check_rate(lam, rate)))
    p_star = threshold(lam, rho, 0.98 * best.p, 1.04 * best.p, tol=5e-4 * best.p)
    return lam, rho, p_star


#: Ensembles of variant (a) (``λ₂ ≤ 2/d̄c``, degrees ≤ 40, concentrated checks): rate →
#: ``(λ, ρ, p*)``, edge fractions; ``p*`` is the threshold of discretized DE on the default grid.
#: Rate 0.70 is Table I projected onto the constraints, not optimised (module docstring).
DESIGNED: dict[float, tuple[dict[int, float], dict[int, float], float]] = {
    0.95: (
        {2: 0.019004, 3: 0.338846, 5: 0.08933, 9: 0.1962, 12: 0.30631, 21: 0.05031},
        {105: 0.756266, 106: 0.243734},
        0.004424,
    ),
    0.925: (
        {
            2: 0.027273,
            3: 0.317496,
            7: 0.007943,
            9: 0.313077,
            10: 0.131147,
            11: 0.089619,
            12: 0.022712,
            13: 0.012694,
            26: 0.00024,
            29: 0.029698,
            35: 0.015129,
            39: 0.012312,
            40: 0.02066,
        },
        {73: 0.663687, 74: 0.336313},
        0.007783,
    ),
    0.9: (
        {2: 0.038663, 3: 0.319187, 5: 0.08933, 9: 0.1962, 12: 0.30631, 21: 0.05031},
        {51: 0.267062, 52: 0.732938},
        0.011317,
    ),
    0.85: (
        {
            2: 0.047891,
            3: 0.232717,
            4: 0.000615,
            5: 0.04274,
            6: 0.084541,
            7: 0.01176,
            8: 0.043623,
            9: 0.051371,
            21: 0.45832,
            40: 0.026422,
        },
        {41: 0.233934, 42: 0.766066},
        0.019997,
    ),
    0.8: (
        {2: 0.065918, 3: 0.250811, 9: 0.250289, 10: 0.099439, 31: 0.055083, 32: 0.27846},
        {30: 0.651907, 31: 0.348093},
        0.029698,
    ),
    0.75: (
        {
            2: 0.083333,
            3: 0.234296,
            8: 0.004481,
            9: 0.315193,
            10: 0.000694,
            20: 0.028185,
            21: 0.016191,
            27: 0.041564,
            28: 0.023067,
            29: 0.035314,
            30: 0.005666,
            40: 0.212016,
        },
        {24: 1.0},
        0.040215,
    ),
    0.7: (
        {2: 0.05343, 3: 0.29406, 6: 0.00896, 9: 0.15571, 12: 0.12189, 25: 0.19872, 40: 0.16723},
        {20: 0.892878, 21: 0.107122},
        0.049299,
    ),
    0.65: (
        {2: 0.155556, 3: 0.26695, 7: 0.125334, 8: 0.166894, 17: 0.259016, 18: 0.02625},
        {12: 0.133349, 13: 0.866651},
        0.062034,
    ),
    0.6: (
        {2: 0.165878, 3: 0.25911, 7: 0.07383, 8: 0.227615, 19: 0.08962, 20: 0.183947},
        {11: 0.733333, 12: 0.266667},
        0.075679,
    ),
    0.55: (
        {
            2: 0.168802,
            3: 0.209942,
            6: 0.180952,
            15: 0.03846,
            16: 0.02635,
            18: 0.234542,
            19: 0.058151,
            31: 0.082801,
        },
        {10: 0.271888, 11: 0.728112},
        0.090497,
    ),
    0.5: (
        {2: 0.182433, 3: 0.251794, 8: 0.24684, 9: 0.05184, 25: 0.121292, 26: 0.145801},
        {9: 1.0},
        0.106603,
    ),
}


def edge_fractions(degrees: NDArray[np.int64]) -> dict[int, float]:
    """Edge-perspective distribution ``{d: d·n_d/E}`` of a list of node degrees (RU 2008,
    Eq. (3.19))."""
    values, counts = np.unique(np.asarray(degrees, dtype=np.int64), return_counts=True)
    edges = values * counts
    return {int(d): float(e) / float(edges.sum()) for d, e in zip(values, edges, strict=True)}


def rung_threshold_efficiency(
    k: int,
    rate: float,
    spread: bool,
    *,
    n_key: int = 1_000_000,
    llr_step: float = 0.2,
    l_max: float = 25.0,
) -> float:
    """Threshold efficiency ``f* = (1 − R)/h(p*)`` of the ensemble that rung ``k`` of the
    forest construction builds with the :data:`~diqkd.postproc._ldpc_codes.FAMILY` ``λ`` of
    ``rate`` and concentrated (or, with ``spread``, Table I's) check degrees.

    The degree lists are the construction's own (:func:`~diqkd.postproc._ldpc_codes.
    rung_degrees` at ``n_key``, rounding and the degree-2 cap included), ``R`` their design
    rate (:func:`design_rate`), ``p*`` by :func:`threshold` on the coarse grid (``Δ ≈ 0.2``,
    saturation 25, the optimiser's; within ≈ 0.3 % of the default grid) to a relative
    tolerance of ``10⁻³``, the bracket widened until ``p*`` lies inside it.
    """
    from diqkd.postproc._ldpc_codes import ladder, rung_degrees

    var_deg, checks = rung_degrees(n_key, k, rate, spread)
    lam = edge_fractions(var_deg)
    if checks is None:
        rho = concentrated_rho(float(var_deg.sum()) / ladder(n_key, k)[0])
    else:
        rho = edge_fractions(checks)
    r = design_rate(lam, rho)
    guess = inverse_binary_entropy((1 - r) / 1.04)  # p of f* = 1.04
    lo, hi = 0.92 * guess, 1.06 * guess
    for _ in range(6):
        p = threshold(lam, rho, lo, hi, tol=1e-3 * guess, llr_step=llr_step, l_max=l_max)
        if p >= hi:
            lo, hi = hi, min(1.1 * hi, 0.499)
        elif p <= lo:
            lo, hi = lo / 1.1, lo
        else:
            return (1 - r) / binary_entropy(p)
    raise ReconciliationError(f"no threshold found for rung {k} with rate {rate}")


def _spread_table(rate: float) -> bool:
    """Whether the family's entry at ``rate`` is Table I's, with a ``ρ`` that is not
    concentrated (degrees more than one apart)."""
    from diqkd.postproc._ldpc_codes import ELKOUSS_2009, FAMILY

    table = ELKOUSS_2009.get(rate)
    return (
        table is not None and FAMILY[rate].rho == table.rho and max(table.rho) - min(table.rho) > 1
    )


def forest_rung_table(
    rungs: range = range(65), *, margin: float = 0.003, log: bool = False
) -> list[tuple[float, bool, float]]:
    """Regenerate :data:`~diqkd.postproc._ldpc_codes.FOREST_RUNGS`: for each rung, the best of
    the three :data:`~diqkd.postproc._ldpc_codes.FAMILY` rates nearest to its rate, each with
    concentrated checks and, where Table I gives it a spread ``ρ``, with those
    (:func:`rung_threshold_efficiency`), and the forest-only ensembles
    (:data:`~diqkd.postproc._ldpc_codes.FOREST_FAMILY`) within :data:`FOREST_FAMILY_REACH` of
    its rate; the nearest family rate with concentrated checks (the
    construction before the table) is kept unless another beats it by more than ``margin``
    (the coarse grid's accuracy). 10 s to 2 min of CPU per rung, ≈ 45 min for all 65.
    """
    from diqkd.postproc._ldpc_codes import (
        FAMILY,
        FOREST_FAMILY,
        LADDER_BASE,
        LADDER_RATIO,
        SPECIAL_FRACTION,
    )

    out = []
    for k in rungs:
        m = LADDER_BASE * LADDER_RATIO**k
        rate_k = 1.0 - m / (1.0 + SPECIAL_FRACTION * m)
        near = sorted(FAMILY, key=lambda r: (abs(r - rate_k), r))[:3]
        cands = [(r, False) for r in near]
        cands += [(r, True) for r in near if _spread_table(r)]
        cands += [(r, False) for r in FOREST_FAMILY if abs(r - rate_k) <= FOREST_FAMILY_REACH]
        scores = {c: rung_threshold_efficiency(k, *c) for c in cands}
        if log:
            print(k, {f"{r}{'s' if s else ''}": round(f, 4) for (r, s), f in scores.items()})
        best = min(scores, key=lambda c: scores[c])
        if scores[best] > scores[(near[0], False)] - margin:
            best = (near[0], False)
        out.append((best[0], best[1], round(scores[best], 4)))
    return out
