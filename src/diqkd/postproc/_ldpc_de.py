"""Density evolution of sum-product decoding on the BSC, by sampling (a diagnostic tool).

Density evolution (Richardson, Urbanke, "The capacity of low-density parity-check codes under
message-passing decoding", IEEE TIT 47, 599 (2001); *Modern Coding Theory*, CUP 2008,
Sec. 4.5) tracks the distribution of the belief-propagation messages of a tree-like ensemble;
the BP threshold is the largest crossover probability at which the error probability tends to
0. Here the densities are represented by large samples ("population dynamics", Mézard,
Montanari, *Information, Physics, and Computation*, OUP 2009, Sec. 14.6.4; "Monte-Carlo density
evolution", Richardson, Urbanke 2008, Sec. 4.5 remarks): by channel symmetry (RU 2008,
Lemma 4.90) the all-zero word is sent and, per iteration,

* check → variable: ``u = 2·atanh(∏ tanh(vⱼ/2))`` over ``d − 1`` variable messages, ``d``
  drawn from the edge-perspective ``ρ``; computed in the ``φ`` form
  ``u = ∏ sign(vⱼ) · φ(Σ φ(|vⱼ|))``, ``φ(x) = −log tanh(x/2)`` (Gallager 1963; Ryan, Lin,
  *Channel Codes*, CUP 2009, Eq. (5.19));
* variable → check: ``v = ℓ + Σ uⱼ`` over ``i − 1`` check messages, ``i`` drawn from the
  edge-perspective ``λ`` and ``ℓ`` the prior LLR of the node's kind: ``±log((1 − Q)/Q)``
  (probability ``1 − Q``, ``Q``) for a channel (key) bit, ``0`` for a punctured symbol,
  ``+``:data:`CAP` for a known (shortened) symbol.

Punctured and shortened symbols are modelled as node kinds placed at random on nodes of a
degree (the *multi-kind* ensemble a rate-adapted code is a sample of: Ha, Kim, McLaughlin,
"Rate-compatible puncturing of LDPC codes", IEEE TIT 50, 2824 (2004), Sec. III, density
evolution with a puncturing fraction per degree). :func:`ensemble_of_code` measures that
ensemble from a built ``H``: which degree each edge's variable has, and its kind.

What it showed (population 6·10⁴–10⁵; thresholds to ±0.5 %, efficiencies
``f* = (M − p)/(n·h(p*))``):

* Table I of Elkouss et al. (ISIT 2009) as read: all nine published thresholds reproduced
  (DE converges at ``0.98·p*``, fails at ``1.02·p*``); ``f*`` = 1.153, 1.065, 1.034, 1.048,
  1.041, 1.028, 1.025, 1.028, 1.018 for rates 0.9 … 0.5 (from the published ``p*``; DE of rate
  0.8 as read: ``p* = 0.02972``, ``f* = 1.040``).
* The codes built with the degree-2 count capped at ``M − 1`` (format 1): rate 0.8 needs
  ``n₂ ≈ 1.39·M``; the cap moved ``λ₂`` 0.094 → 0.072 into degree 3 and the threshold to
  ``f* = 1.065`` (same ``ρ``) — the main loss. With the ladder's check degrees (27/28 instead
  of 29/30): ``f* = 1.043`` uncapped. The rate-adapted ensemble of the rung used at
  ``n = 10⁶``, QBER 3 % (punctured and shortened degree-2 specials): ``f* = 1.064`` capped,
  ``1.049`` uncapped.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import numpy as np
from numpy.typing import NDArray

from diqkd.errors import ReconciliationError

__all__ = [
    "CAP",
    "EdgeEnsemble",
    "converges",
    "ensemble_of_code",
    "table_ensemble",
    "threshold",
]

Kind = Literal["channel", "punctured", "known"]
_KINDS: tuple[Kind, ...] = ("channel", "punctured", "known")
#: Messages are clipped to ``[−CAP, CAP]`` (``φ(CAP) ≈ 2e^{−CAP}`` is negligible).
CAP = 40.0


@dataclass(frozen=True)
class EdgeEnsemble:
    """An edge-perspective ensemble with node kinds.

    Attributes
    ----------
    lam
        ``{(degree, kind): fraction of edges}``, kinds ``"channel"``, ``"punctured"``,
        ``"known"``; sums to 1.
    rho
        ``{degree: fraction of edges}`` for the checks; sums to 1.
    """

    lam: dict[tuple[int, Kind], float]
    rho: dict[int, float]

    def design_leak(self) -> float:
        """Syndrome bits per channel (key) bit, ``(M − p)/n``, of the ensemble.

        Node counts are ``∝ λ/i`` and ``∝ ρ/d`` (RU 2008, Eq. (3.19)); each punctured symbol's
        anchor check is not sent (untainted puncturing, module docstring of
        :mod:`~diqkd.postproc._ldpc_codes`), so it counts once against the checks.
        """
        nodes = {k: 0.0 for k in _KINDS}
        for (i, kind), w in self.lam.items():
            nodes[kind] += w / i
        checks = sum(w / d for d, w in self.rho.items())
        return (checks - nodes["punctured"]) / nodes["channel"]


def table_ensemble(lam: dict[int, float], rho: dict[int, float]) -> EdgeEnsemble:
    """Every variable a channel bit: the plain ensemble ``(λ, ρ)`` (normalised)."""
    ls, rs = sum(lam.values()), sum(rho.values())
    return EdgeEnsemble(
        {(int(i), "channel"): w / ls for i, w in lam.items()},
        {int(d): w / rs for d, w in rho.items()},
    )


def ensemble_of_code(
    check_ptr: NDArray[np.int64],
    check_var: NDArray[np.int32],
    n: int,
    punctured: NDArray[np.int64],
    known: NDArray[np.int64],
) -> EdgeEnsemble:
    """The empirical edge-perspective ensemble of ``H`` (CSR) with punctured/known symbols."""
    var_deg = np.bincount(check_var, minlength=n)
    kind = np.zeros(n, dtype=np.int64)
    kind[punctured] = 1
    kind[known] = 2
    edges = float(check_var.size)
    lam: dict[tuple[int, Kind], float] = {}
    key = var_deg[check_var] * 3 + kind[check_var]
    vals, cnt = np.unique(key, return_counts=True)
    for v, c in zip(vals.tolist(), cnt.tolist(), strict=True):
        lam[(v // 3, _KINDS[v % 3])] = c / edges
    cdeg = np.diff(check_ptr)
    dv, dc = np.unique(cdeg[cdeg > 0], return_counts=True)
    rho = {int(d): float(d * c) / edges for d, c in zip(dv, dc, strict=True)}
    return EdgeEnsemble(lam, rho)


def _phi(x: NDArray[np.float64]) -> NDArray[np.float64]:
    """``φ(x) = −log tanh(x/2) = log1p(2/expm1(x))`` for ``x > 0`` (Ryan, Lin 2009, (5.19))."""
    out: NDArray[np.float64] = np.log1p(2.0 / np.expm1(np.clip(x, 1e-15, CAP)))
    return out


def _slots(weights: list[float], size: int) -> NDArray[np.int64]:
    """Split ``size`` samples among classes by largest remainder (stratified sampling)."""
    w = np.asarray(weights, dtype=float)
    exact = size * w / w.sum()
    counts: NDArray[np.int64] = np.floor(exact).astype(np.int64)
    order = np.argsort(-(exact - counts), kind="stable")
    counts[order[: size - int(counts.sum())]] += 1
    return counts


def converges(
    ens: EdgeEnsemble,
    qber: float,
    *,
    population: int = 200_000,
    iterations: int = 400,
    seed: int = 0,
) -> tuple[bool, int]:
    """Whether sampled density evolution at crossover ``qber`` converges; ``(ok, iterations)``.

    Converged: fewer than ``10/population`` of the variable-to-check messages are below 10
    (error probability at the resolution of the sample is 0 and the beliefs are growing).
    Failed: ``iterations`` reached, or no new minimum of the error fraction for 60 iterations
    (a fixed point above 0: RU 2008, Sec. 4.5).
    """
    if not 0.0 < qber < 0.5:
        raise ReconciliationError(f"crossover probability must lie in (0, 0.5), got {qber}")
    rng = np.random.default_rng(seed)
    llr = math.log((1.0 - qber) / qber)
    vtypes = list(ens.lam)
    vcount = _slots([ens.lam[t] for t in vtypes], population)
    cdegs = sorted(ens.rho)
    ccount = _slots([ens.rho[d] for d in cdegs], population)
    prior_fixed = np.concatenate(
        [
            np.full(c, {"channel": 0.0, "punctured": 0.0, "known": CAP}[k])
            for (_, k), c in zip(vtypes, vcount, strict=True)
        ]
    )
    channel = np.concatenate(
        [np.full(c, k == "channel") for (_, k), c in zip(vtypes, vcount, strict=True)]
    )
    n_ch = int(channel.sum())

    def prior() -> NDArray[np.float64]:
        p = prior_fixed.copy()
        p[channel] = np.where(rng.random(n_ch) < qber, -llr, llr)
        return p

    v = prior()
    best, since = math.inf, 0
    chunk = 1 << 22
    for it in range(1, iterations + 1):
        mag = _phi(np.abs(v))
        neg = (v < 0).astype(np.int64)
        u = np.empty(population)
        pos = 0
        for d, c in zip(cdegs, ccount.tolist(), strict=True):
            step = max(1, chunk // max(d - 1, 1))
            for lo in range(0, c, step):
                hi = min(c, lo + step)
                idx = rng.integers(0, population, size=(hi - lo, d - 1))
                s = mag[idx].sum(axis=1)
                sign = 1.0 - 2.0 * (neg[idx].sum(axis=1) & 1)
                u[pos + lo : pos + hi] = sign * _phi(s)
            pos += c
        v = prior()
        pos = 0
        for (i, _), c in zip(vtypes, vcount.tolist(), strict=True):
            step = max(1, chunk // max(i - 1, 1))
            for lo in range(0, c, step):
                hi = min(c, lo + step)
                idx = rng.integers(0, population, size=(hi - lo, i - 1))
                v[pos + lo : pos + hi] += u[idx].sum(axis=1)
            pos += c
        np.clip(v, -CAP, CAP, out=v)
        err = float(np.count_nonzero(v < 10.0)) / population
        if err * population < 10:
            return True, it
        if err < best * 0.999:
            best, since = err, 0
        else:
            since += 1
            if since >= 60:
                return False, it
    return False, iterations


def threshold(
    ens: EdgeEnsemble,
    lo: float,
    hi: float,
    *,
    tol: float = 1e-4,
    population: int = 200_000,
    iterations: int = 400,
    seed: int = 0,
) -> float:
    """Largest crossover in ``[lo, hi]`` at which :func:`converges` holds (bisection).

    Returns ``lo`` if DE fails at ``lo`` already and ``hi`` if it converges at ``hi``.
    """
    if converges(ens, hi, population=population, iterations=iterations, seed=seed)[0]:
        return hi
    if not converges(ens, lo, population=population, iterations=iterations, seed=seed)[0]:
        return lo
    while hi - lo > tol:
        mid = 0.5 * (lo + hi)
        ok, _ = converges(ens, mid, population=population, iterations=iterations, seed=seed)
        lo, hi = (mid, hi) if ok else (lo, mid)
    return lo
