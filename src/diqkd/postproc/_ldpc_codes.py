"""Rate-adaptive LDPC mother codes for the binary symmetric channel, built by the package.

Nothing is downloaded: a code is a pure function of ``(n_key, rung, seed)`` and both
parties rebuild it, bit for bit, from its public name (:func:`parse_code_id`).

Degree distributions
--------------------
:data:`FAMILY` (cache family ``pegforest-bsc26``, format 7; the distributions are those of
``peg-bsc26``, format 6, whose codes were PEG graphs at every length): per design rate
0.50 … 0.95, the distribution with the better threshold efficiency ``f* = (1 − R)/h(p*)`` of
two candidates, Table I below and our designs
(:data:`diqkd.postproc._ldpc_design.DESIGNED`: discretized density evolution, at most
``M`` degree-2 nodes, degrees ≤ 40, concentrated checks). The
designs win at 0.55 (a tie: Table I as is, built with the degree-2 cap), 0.75 (``f*`` 1.028
against 1.051), 0.80 (1.037 / 1.038), 0.85 (1.061 / 1.073), 0.90 (1.119 / 1.154) and are the
only candidates at 0.925 and 0.95; Table I stays at 0.50, 0.60, 0.65, 0.70. At 0.70 the design
is Table I squeezed under the constraints; at 0.50–0.65 the designs are optimised and beat Table
I's ``λ`` with the concentrated checks PEG builds, but not its published thresholds (those are
for Table I's spread ``ρ``), and built at ``n = 10⁶`` they decoded no better (measurements in
:mod:`~diqkd.postproc._ldpc_design`), so the comparison by published threshold stands. The
previous family ``peg-ellab09r`` (format 5) used Table I alone; its codes are never loaded.

:data:`ELKOUSS_2009`: the nine edge-perspective distributions ``λ(x), ρ(x)`` optimised for the
BSC by differential evolution and discretised density evolution in Elkouss, Leverrier,
Alléaume, Boutros, "Efficient reconciliation protocol for discrete-variable quantum key
distribution", Proc. IEEE ISIT 2009, 1879 (arXiv:0901.2140), **Table I** (rates 0.50 … 0.90,
thresholds ``p*`` 0.1071 … 0.0109; Eqs. (4)–(5) define ``λ``, ``ρ`` and the rate). One
coefficient is corrected: the table prints ``λ₅ = 0.094274`` for rate 0.85, which makes
``Σλᵢ = 1.0515``; with ``0.04274`` the sum is 1 and Eq. (5) gives rate 0.849, so we read it as
a typesetting slip. Node fractions follow from ``Lᵢ = (λᵢ/i)/Σⱼ(λⱼ/j)`` (Richardson, Urbanke,
*Modern Coding Theory*, CUP 2008, Eq. (3.19)); counts are rounded by largest remainder, with no
cap on the degree-2 count except for rate 0.9 (:func:`variable_degrees`,
:data:`CAP_DEGREE_TWO`; the family ``peg-ellab09`` of cache format 1 capped it at ``M − 1`` for
every rate, which density evolution shows cost ≈ 2.5 % of efficiency at rate 0.8; it also
processed the PEG variables by ascending degree, see below). The
check side is the concentrated distribution PEG produces (degrees ``⌊E/m⌋``, ``⌈E/m⌉``,
:mod:`~diqkd.postproc._ldpc_peg`): at a table's design rate it equals Table I's ``ρ`` for
the rates whose ``ρ`` has two adjacent degrees (0.55, 0.70–0.90) and is a concentrated variant
of the same mean for 0.50, 0.60, 0.65; a rung between design rates keeps the nearest table's
``λ`` and its check degrees follow from ``E/M``.

Construction and rate adaptation
--------------------------------
Codes form a ladder indexed by ``k``: for a key of ``n_key`` bits, rung ``k`` has ``M_k = ⌈n_key·``
:data:`LADDER_BASE` ``·`` :data:`LADDER_RATIO` ``ᵏ⌉`` checks, ``d_k = ⌈`` :data:`SPECIAL_FRACTION`
``·M_k⌉`` extra *special* symbols that are not key bits, length ``N_k = n_key + d_k``, and the
variable-degree distribution of the :data:`FAMILY` rate nearest to ``1 − M_k/N_k`` (clipped to
[0.5, 0.95]). From :data:`FOREST_MIN_KEY_BITS` (10⁶) key bits ``H`` is a random graph whose
degree-2 part is a forest (:mod:`~diqkd.postproc._ldpc_forest`): measured on the mother codes, it
decodes 1–3 % closer to the ensemble's threshold than PEG at 10⁵ and 10⁶ (at 10⁶, rung 60 decodes
at ``f = 1.02`` against PEG's 1.05; measurements in that module), and it builds in seconds instead
of minutes. Because it takes any check degrees, each rung of the forest construction has its own
ensemble (:data:`FOREST_RUNGS`): the ``λ`` of one of the three family rates nearest to the rung's
rate, with concentrated checks or, for Table I's entries whose ``ρ`` is spread (rates 0.50, 0.60,
0.65), with that ``ρ`` scaled to the rung's mean check degree (:func:`check_degrees`), whichever
has the best density-evolution threshold efficiency ``f*`` of the ensemble as built
(:func:`diqkd.postproc._ldpc_design.rung_threshold_efficiency`); the nearest rate with concentrated
checks is kept unless another wins by more than 0.003. Why: a table's ``λ`` is optimised with its
``ρ``, and concentrating the checks costs threshold (Table I's rate 0.6 at the 8 % rung, ``R =
0.579``: ``f*`` 1.053 concentrated, 1.029 spread); and a rung between design rates may do better
with a neighbour's ``λ`` (the 5 % rung, ``R = 0.698``: rate 0.7's ``λ`` 1.047, rate 0.65's 1.042).
Measured at ``n = 10⁶``: ``f`` 1.063 → 1.042 at QBER 8 % (316 frames, no failure) and 1.058 → 1.044
at 5 % (16 frames) (benchmarks/README.md). At the high rates (QBER ≤ 3 %) the candidates also
include the ensembles of a global search (:data:`FOREST_FAMILY`, from
:mod:`~diqkd.postproc._ldpc_search`: differential evolution over ``λ`` with the stability
bound on ``λ₂`` (at rate 0.905 also ``n₂ ≤ 1.5·M``), so ``n₂`` exceeds ``M``), whose degree-2
variables beyond the forest are placed on long cycles (:data:`GIRTH_TWO`); they take 12 rungs
between QBER ≈ 1.7 % and 3.4 % (f* 1.027–1.051 where the family gave 1.040–1.075) and 14
between 0.8 % and 1.4 % (f* 1.037–1.098 where it gave 1.094–1.128). Every cycle of degree-2
variables is a codeword of its length, so with n₂ > M near the stability bound they have
low-weight codewords (an error floor of ≈ 2·10⁻³ at 2 % for the 0.84 design, ≈ 10⁻³ at 3 % for
the 0.79 one, benchmarks/README.md); Alice's decoding check
(:data:`~diqkd.postproc.ldpc.CHECK_MAX_SHARE`) lets Bob refuse such a word and search on, so
they cost a rescue, not a frame (the 0.79 entry was an ``n₂ ≤ M`` design from 0ca4864 until
the check came: f 1.049 against 1.045 at 3 %). Shorter keys
get a PEG graph (:mod:`~diqkd.postproc._ldpc_peg`), whose girth matters there; the rest of this
section is about PEG. It places the degree-2 variables first and the others in a public
pseudo-random order. Hu et
al. process all of them by ascending degree; with the lowest-degree check rule that spreads each
degree class evenly over the checks (every check gets the same number of edges from degree-2 nodes,
and so on), a structured ensemble unlike the one Table I was optimised for: measured at ``n =
2·10⁵``, rate 0.7 (threshold ``p* = 0.0504``), ascending order decodes at ``Q = 0.046`` but not at
0.048 (1000 iterations), random order decodes at 0.049; at ``n = 10⁶`` the rate-adapted codes of
the ascending order (family ``peg-ellab09``) needed ``f ≈ 1.09–1.13`` at QBER 5–8 % where density
evolution of their measured ensemble gives ``f* ≈ 1.05``. The degree-2 nodes still go first: placed
at random among the others they form short cycles (low-weight codewords; a frame at ``n = 10⁵``,
QBER 8 % needed ``f = 1.9``), placed first they form a forest as far as ``n₂ < M`` allows. The
specials serve the rate adaptation of Elkouss, Martinez-Mateo, Martin, "Information reconciliation
for QKD", QIC 11, 226 (2011), Sec. 3.1 (puncturing and shortening a mother code, ``d = p + s``
fixed): ``p`` of them are *punctured* (unknown to Bob), the other ``s = d − p`` *shortened* (value
0, known to both). Punctured symbols are chosen *untainted* (Elkouss, Martinez-Mateo, Martin,
"Untainted puncturing for irregular low-density parity-check codes", arXiv:1103.6149): no check
touches two specials, so each punctured symbol ``j`` has an *anchor* check ``a_j`` where it is the
only special. Alice sets the punctured value to the parity of the key bits of ``a_j``, so syndrome
bit ``a_j`` is always 0 and is not sent: the syndrome discloses ``M − p`` bits, the leakage ``m −
p`` of the rate-adaptive and blind protocols (Martinez-Mateo, Elkouss, Martin, "Blind
reconciliation", QIC 12, 791 (2012)); revealing a punctured value later (blind step) discloses one
more bit. Specials are picked greedily in ascending-degree order (then a public seeded order); if
fewer than ``d`` untainted symbols exist, the rest may only be shortened. The ladder ratio (4 %) is
finer than the punctured fraction (up to 15 % of ``M``), so every leak between rungs is reachable
by puncturing, with room left for blind steps."""

from __future__ import annotations

import functools
import hashlib
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, NamedTuple

import numpy as np
from numba import njit
from numpy.typing import NDArray

from diqkd.errors import ReconciliationError
from diqkd.postproc._entropy import binary_entropy
from diqkd.postproc._ldpc_forest import forest_graph
from diqkd.postproc._ldpc_peg import peg_graph
from diqkd.postproc._ldpc_qc import QC_MIN_KEY_BITS, lift_size, qc_graph, qc_structure

__all__ = [
    "CACHE_ENV",
    "CAP_DEGREE_TWO",
    "CODE_FAMILIES",
    "ELKOUSS_2009",
    "FAMILY",
    "FOREST_FAMILY",
    "FOREST_MIN_KEY_BITS",
    "FOREST_RUNGS",
    "GIRTH_TWO",
    "LADDER_BASE",
    "LADDER_RATIO",
    "LADDER_TOP",
    "MOTHER_RATES",
    "QC_GIRTH_TWO",
    "SPECIAL_FRACTION",
    "CodeFamily",
    "CodeName",
    "DegreeDistribution",
    "MotherCode",
    "build_code",
    "check_degrees",
    "distribution",
    "family_format",
    "is_forest",
    "ladder",
    "parse_code_id",
    "rung_degrees",
    "variable_degrees",
]


@dataclass(frozen=True)
class DegreeDistribution:
    """An edge-perspective LDPC ensemble ``λ(x) = Σλᵢxⁱ⁻¹``, ``ρ(x) = Σρᵢxⁱ⁻¹``.

    Attributes
    ----------
    lam, rho
        ``{degree: fraction of edges}`` for variable and check nodes.
    threshold
        BSC crossover probability below which density evolution converges (as published).
    """

    lam: dict[int, float]
    rho: dict[int, float]
    threshold: float
    source: str = "Elkouss et al., ISIT 2009, Table I"
    cap_two: bool = False

    @property
    def rate(self) -> float:
        """Design rate ``1 − ∫ρ/∫λ`` (Richardson, Urbanke 2008, Eq. (3.18))."""
        inv_l = sum(v / i for i, v in self.lam.items())
        inv_r = sum(v / i for i, v in self.rho.items())
        return 1.0 - inv_r / inv_l

    def threshold_efficiency(self) -> float:
        """``f* = (1 − R)/h(p*)``: the efficiency at the ensemble's BP threshold."""
        return (1.0 - self.rate) / binary_entropy(self.threshold)


#: Elkouss, Leverrier, Alléaume, Boutros, ISIT 2009 (arXiv:0901.2140), Table I, by design rate.
ELKOUSS_2009: dict[float, DegreeDistribution] = {
    0.90: DegreeDistribution(
        {2: 0.07689, 3: 0.28096, 5: 0.08933, 9: 0.19620, 12: 0.30631, 21: 0.05031},
        {50: 0.95025, 51: 0.04975},
        0.0109,
    ),
    0.85: DegreeDistribution(
        {2: 0.04528, 3: 0.20537, 4: 0.05878, 5: 0.04274, 6: 0.08454, 7: 0.01176, 9: 0.05137}
        | {21: 0.50015},
        {41: 0.54204, 42: 0.45795},
        0.0199,
    ),
    0.80: DegreeDistribution(
        {2: 0.09420, 3: 0.18088, 6: 0.11972, 7: 0.08550, 8: 0.09816, 17: 0.07194, 26: 0.34960},
        {29: 0.58807, 30: 0.41193},
        0.0298,
    ),
    0.75: DegreeDistribution(
        {2: 0.10805, 3: 0.09511, 4: 0.01449, 5: 0.13764, 6: 0.10667, 7: 0.05288, 28: 0.01107}
        | {31: 0.47408},
        {25: 0.74161, 26: 0.25839},
        0.0392,
    ),
    0.70: DegreeDistribution(
        {2: 0.05343, 3: 0.29406, 6: 0.00896, 9: 0.15571, 12: 0.12189, 25: 0.19872, 46: 0.09572}
        | {62: 0.02741, 65: 0.04056, 73: 0.00354},
        {20: 0.76922, 21: 0.23077},
        0.0504,
    ),
    0.65: DegreeDistribution(
        {2: 0.10451, 3: 0.15652, 4: 0.08057, 5: 0.00056, 9: 0.12151, 13: 0.10485, 15: 0.10719}
        | {21: 0.00771, 51: 0.31656},
        {2: 0.000578, 15: 0.06089, 16: 0.47001, 21: 0.46852},
        0.0633,
    ),
    0.60: DegreeDistribution(
        {2: 0.11040, 3: 0.20804, 8: 0.14163, 9: 0.14858, 26: 0.14438, 27: 0.08909, 46: 0.00748}
        | {71: 0.15038},
        {2: 0.00036, 10: 0.13063, 13: 0.31068, 18: 0.49341, 19: 0.064915},
        0.0766,
    ),
    0.55: DegreeDistribution(
        {2: 0.16880, 3: 0.20994, 6: 0.18095, 15: 0.03846, 16: 0.02635, 18: 0.23454, 19: 0.05815}
        | {31: 0.08280},
        {10: 0.27631, 11: 0.72369},
        0.0904,
    ),
    0.50: DegreeDistribution(
        {2: 0.14438, 3: 0.19026, 4: 0.01836, 5: 0.00233, 6: 0.04697, 8: 0.053943, 9: 0.05590}
        | {10: 0.01290, 11: 0.00162, 14: 0.06159, 15: 0.13115, 17: 0.01481, 47: 0.00879}
        | {49: 0.00650, 55: 0.00210, 56: 0.00099, 57: 0.11178, 58: 0.06238, 59: 0.05094}
        | {66: 0.02230},
        {10: 0.47575, 12: 0.46847, 13: 0.02952, 14: 0.02626},
        0.1071,
    ),
}

#: Table rates whose degree-2 count stays capped at ``M − 1``: rate 0.9 asks for
#: ``n₂ ≈ 1.6–3.9·M``, a degree-2 subgraph full of cycles; measured (benchmarks/README.md):
#: QBER 1 %, f = 1.198 capped vs 1.215 uncapped at ``n = 10⁵`` (10 frames), 1.163 vs 1.183 at
#: ``10⁶`` (4 frames). Rate 0.8 (``n₂ ≈ 1.25–1.56·M``) is better uncapped (DE and measured).
CAP_DEGREE_TWO: frozenset[float] = frozenset({0.90})


def _family() -> dict[float, DegreeDistribution]:
    """Per design rate, the distribution with the better threshold efficiency ``f*``.

    Candidates: Table I (:data:`ELKOUSS_2009`; its published ``p*``) and our designs
    (:data:`diqkd.postproc._ldpc_design.DESIGNED`; ``p*`` by discretized density evolution,
    designed for ``n₂ ≤ M`` degree-2 nodes, so built with the degree-2 cap). The rate-0.9
    table keeps the cap it had (:data:`CAP_DEGREE_TWO`).
    """
    from diqkd.postproc._ldpc_design import DESIGNED

    family = {
        r: DegreeDistribution(d.lam, d.rho, d.threshold, d.source, r in CAP_DEGREE_TWO)
        for r, d in ELKOUSS_2009.items()
    }
    for rate, (lam, rho, p_star) in DESIGNED.items():
        ours = DegreeDistribution(
            lam, rho, p_star, "designed here (diqkd.postproc._ldpc_design)", cap_two=True
        )
        if rate not in family or ours.threshold_efficiency() < family[rate].threshold_efficiency():
            family[rate] = ours
    return dict(sorted(family.items()))


#: The distributions the construction uses, by design rate (:func:`_family`).
FAMILY: dict[float, DegreeDistribution] = _family()


def _forest_family() -> dict[float, DegreeDistribution]:
    """The ensembles of the global search (:data:`diqkd.postproc._ldpc_search.
    GLOBAL_DESIGNED`), for the forest construction only: their ``n₂`` exceeds ``M`` and the
    degree-2 variables beyond the forest are placed on long cycles (:data:`GIRTH_TWO`), which
    PEG at shorter keys does not do the same way, so :data:`FAMILY` (and the codes below
    :data:`FOREST_MIN_KEY_BITS`) stay as they were."""
    from diqkd.postproc._ldpc_search import GLOBAL_DESIGNED

    out = {}
    for rate, (lam, rho, p_star) in GLOBAL_DESIGNED.items():
        if rate in FAMILY:  # pragma: no cover - a table invariant
            raise ReconciliationError(f"global design rate {rate} collides with the family")
        out[rate] = DegreeDistribution(
            lam, rho, p_star, "global search here (diqkd.postproc._ldpc_search)", False
        )
    return out


#: Forest-only ensembles by design rate (:func:`_forest_family`); :data:`FOREST_RUNGS` may name
#: them as it names :data:`FAMILY` rates.
FOREST_FAMILY: dict[float, DegreeDistribution] = _forest_family()
#: The forest construction places the degree-2 variables of a :data:`FOREST_FAMILY` ensemble
#: that its forest cannot take so that every cycle of degree-2 variables they close (a codeword
#: of that weight) has at least this many
#: (:func:`~diqkd.postproc._ldpc_forest.forest_graph`); ≈ 12 is what a breadth-first search of
#: radius 10 per variable allows in seconds at ``n = 10⁶`` (16 took minutes).
GIRTH_TWO = 12
#: The QC family's bound on cycles of degree-2 variables (format 2,
#: :mod:`~diqkd.postproc._ldpc_lift`): a repair pass redraws the shifts of degree-2 columns
#: until every such cycle has at least this many variables, where a shift can do it. Measured at
#: ``n = 10⁶`` (seeds 201, 202, 205/206): shortest cycles 16–23 at the 8–10 % rungs (56, 60),
#: 12–16 at 5 % (47), 8–14 at the dense rungs (15, 29, 37; ``n₂ ≈ 1.6–1.8·Mb``), where
#: commutators of short base cycles no shift opens set the length
#: (:mod:`~diqkd.postproc._ldpc_qc`); construction
#: takes 6–19 s there, under 1 s at 8–10 %.
QC_GIRTH_TWO = 16


def distribution(rate: float) -> DegreeDistribution:
    """The ensemble a rung names by its rate: :data:`FAMILY` or :data:`FOREST_FAMILY`."""
    return FAMILY[rate] if rate in FAMILY else FOREST_FAMILY[rate]


#: Design rates of the family, ascending.
MOTHER_RATES: tuple[float, ...] = tuple(sorted(FAMILY))
#: Smallest rung: ``M₀ = ⌈0.05·n_key⌉`` checks (QBER ≈ 0.5 %).
LADDER_BASE = 0.05
#: Ratio of successive rungs' check counts.
LADDER_RATIO = 1.04
#: Highest rung: ``M_64 ≈ 0.62·n_key`` (QBER ≈ 10.5 % at f = 1.03).
LADDER_TOP = 64
#: Special symbols per check: ``d = ⌈0.15·M⌉``.
SPECIAL_FRACTION = 0.15
#: Keys of at least this many bits get the degree-2-first, shuffled PEG order (measured
#: better at 2·10⁵ and 10⁶, module docstring); shorter ones keep the ascending order, which
#: measured better there: a 3000-bit frame at QBER 2 % (81 errors, seed 8744214 of the
#: property test) converges with it and not with the shuffled order.
SHUFFLE_MIN_KEY_BITS = 100_000
#: Keys of at least this many bits get the forest construction
#: (:mod:`~diqkd.postproc._ldpc_forest`: a random graph whose degree-2 part is a forest)
#: instead of PEG: at 10⁵ and 10⁶ its codes decode 1–3 % closer to the ensemble's threshold,
#: but they have 4-cycles, and at 10⁵ one frame in 3000 (QBER 2 %) converged to a wrong word;
#: below 10⁶ PEG stays until that is fixed (measurements in that module).
FOREST_MIN_KEY_BITS = 1_000_000
#: Per rung ``k`` of the forest construction: the :data:`FAMILY` rate whose ``λ`` it uses,
#: whether its checks follow that rate's Table I ``ρ`` (:func:`check_degrees`) instead of being
#: concentrated, and the ensemble's density-evolution threshold efficiency ``f*``
#: (:func:`diqkd.postproc._ldpc_design.forest_rung_table`, which regenerates it).
FOREST_RUNGS: tuple[tuple[float, bool, float], ...] = (
    (0.925, False, 1.1740),  # 0: R 0.950; nearest 0.95 f* 1.2234
    (0.925, False, 1.1672),  # 1: R 0.948; nearest 0.95 f* 1.2165
    (0.925, False, 1.1604),  # 2: R 0.946; nearest 0.95 f* 1.2090
    (0.925, False, 1.1530),  # 3: R 0.944; nearest 0.95 f* 1.2017
    (0.925, False, 1.1465),  # 4: R 0.942; nearest 0.95 f* 1.1944
    (0.925, False, 1.1393),  # 5: R 0.940; nearest 0.95 f* 1.1880
    (0.925, False, 1.1329),  # 6: R 0.937
    (0.925, False, 1.1267),  # 7: R 0.935
    (0.925, False, 1.1218),  # 8: R 0.932
    (0.905, False, 1.0976),  # 9: R 0.930; nearest 0.925 f* 1.1217
    (0.905, False, 1.0886),  # 10: R 0.927; nearest 0.925 f* 1.1222
    (0.905, False, 1.0803),  # 11: R 0.924; nearest 0.925 f* 1.1227
    (0.905, False, 1.0721),  # 12: R 0.921; nearest 0.925 f* 1.1232
    (0.905, False, 1.0641),  # 13: R 0.918; nearest 0.925 f* 1.1244
    (0.905, False, 1.0563),  # 14: R 0.914; nearest 0.925 f* 1.1262
    (0.905, False, 1.0486),  # 15: R 0.911; nearest 0.9 f* 1.1368
    (0.905, False, 1.0415),  # 16: R 0.908; nearest 0.9 f* 1.1312
    (0.905, False, 1.0369),  # 17: R 0.904; nearest 0.9 f* 1.1257
    (0.905, False, 1.0387),  # 18: R 0.900; nearest 0.9 f* 1.1209
    (0.905, False, 1.0406),  # 19: R 0.896; nearest 0.9 f* 1.1162
    (0.905, False, 1.0480),  # 20: R 0.892; nearest 0.9 f* 1.1123
    (0.905, False, 1.0489),  # 21: R 0.888; nearest 0.9 f* 1.1121
    (0.905, False, 1.0527),  # 22: R 0.884; nearest 0.9 f* 1.1144
    (0.85, False, 1.0893),  # 23: R 0.879; nearest 0.9 f* 1.1142
    (0.85, False, 1.0842),  # 24: R 0.874
    (0.85, False, 1.0806),  # 25: R 0.869
    (0.84, False, 1.0401),  # 26: R 0.864; nearest 0.85 f* 1.0746
    (0.84, False, 1.0397),  # 27: R 0.859; nearest 0.85 f* 1.0701
    (0.84, False, 1.0347),  # 28: R 0.853; nearest 0.85 f* 1.0652
    (0.84, False, 1.0312),  # 29: R 0.848; nearest 0.85 f* 1.0661
    (0.84, False, 1.0357),  # 30: R 0.842; nearest 0.85 f* 1.0689
    (0.84, False, 1.0392),  # 31: R 0.836; nearest 0.85 f* 1.0726
    (0.84, False, 1.0437),  # 32: R 0.829; nearest 0.85 f* 1.0769
    (0.84, False, 1.0505),  # 33: R 0.822; nearest 0.8 f* 1.0542
    (0.8, False, 1.0486),  # 34: R 0.816
    (0.8, False, 1.0437),  # 35: R 0.808
    (0.79, False, 1.0327),  # 36: R 0.801; nearest 0.8 f* 1.0401
    (0.79, False, 1.0280),  # 37: R 0.793; nearest 0.8 f* 1.0401
    (0.79, False, 1.0272),  # 38: R 0.785; nearest 0.8 f* 1.0445
    (0.79, False, 1.0311),  # 39: R 0.777; nearest 0.8 f* 1.0480
    (0.75, False, 1.0388),  # 40: R 0.768
    (0.75, False, 1.0333),  # 41: R 0.759
    (0.75, False, 1.0299),  # 42: R 0.750
    (0.75, False, 1.0337),  # 43: R 0.741
    (0.75, False, 1.0405),  # 44: R 0.731
    (0.7, False, 1.0461),  # 45: R 0.720
    (0.7, False, 1.0435),  # 46: R 0.710
    (0.65, False, 1.0418),  # 47: R 0.698; nearest 0.7 f* 1.0473
    (0.65, False, 1.0351),  # 48: R 0.687; nearest 0.7 f* 1.0533
    (0.65, False, 1.0274),  # 49: R 0.675
    (0.6, False, 1.0211),  # 50: R 0.663; nearest 0.65 f* 1.0331
    (0.6, False, 1.0256),  # 51: R 0.650; nearest 0.65 f* 1.0381
    (0.6, False, 1.0292),  # 52: R 0.637; nearest 0.65 f* 1.0463
    (0.6, False, 1.0329),  # 53: R 0.623
    (0.6, True, 1.0262),  # 54: R 0.609; nearest 0.6 f* 1.0381
    (0.6, True, 1.0275),  # 55: R 0.594; nearest 0.6 f* 1.0458
    (0.6, True, 1.0291),  # 56: R 0.579; nearest 0.6 f* 1.0527
    (0.55, False, 1.0331),  # 57: R 0.563
    (0.55, False, 1.0316),  # 58: R 0.547
    (0.5, False, 1.0204),  # 59: R 0.530; nearest 0.55 f* 1.0386
    (0.5, False, 1.0181),  # 60: R 0.512
    (0.5, True, 1.0205),  # 61: R 0.494; nearest 0.5 f* 1.0274
    (0.5, True, 1.0282),  # 62: R 0.476; nearest 0.5 f* 1.0356
    (0.5, True, 1.0364),  # 63: R 0.457; nearest 0.5 f* 1.0442
    (0.5, True, 1.0449),  # 64: R 0.437; nearest 0.5 f* 1.0517
)
#: Environment variable naming a directory for the on-disk code cache (unset or empty: none).
CACHE_ENV = "DIQKD_LDPC_CACHE_DIR"
#: Smallest and largest key lengths accepted.
MIN_KEY_BITS, MAX_KEY_BITS = 8, 4_000_000
#: Code families: ``"random"`` (PEG below :data:`FOREST_MIN_KEY_BITS`, the forest construction
#: from there; the most efficient) and ``"qc"`` (quasi-cyclic lifts of the same ensembles,
#: :mod:`~diqkd.postproc._ldpc_qc`; from its ``QC_MIN_KEY_BITS`` = 65 536 key bits, decoded
#: 4–7× faster per iteration).
CodeFamily = Literal["random", "qc"]
CODE_FAMILIES: tuple[CodeFamily, ...] = ("random", "qc")
_FAMILY = "pegforest-bsc26j"
_FORMAT = 12
_QC_FAMILY = "qc-bsc26j"
_QC_FORMAT = 2
_NAMES: dict[CodeFamily, str] = {"random": _FAMILY, "qc": _QC_FAMILY}
_FORMATS: dict[CodeFamily, int] = {"random": _FORMAT, "qc": _QC_FORMAT}
#: A public code name carries its construction format (``qc-bsc26j-v2:…``): the same
#: ``(n, k, seed)`` builds a different matrix in another format, so a peer on another release is
#: told so instead of decoding against a code it does not hold. The version is optional in the
#: pattern only so that the error can name what the peer sent (a name without one is from a
#: release before the format was named, and is refused).
_ID = re.compile(rf"^({_FAMILY}|{_QC_FAMILY})(?:-v(\d+))?:n=(\d+):k=(\d+):seed=(\d+):p=(\d+)$")


def family_format(family: CodeFamily) -> str:
    """The family and construction format this release builds, as code names and the cache
    carry them: ``"qc-bsc26j-v2"``, ``"pegforest-bsc26j-v12"``."""
    return f"{_NAMES[family]}-v{_FORMATS[family]}"


class CodeName(NamedTuple):
    """The fields of a public code name (:meth:`MotherCode.code_id`)."""

    n_key: int
    rung: int
    seed: int
    punctured: int
    family: CodeFamily


def _apportion(total: int, weights: NDArray[np.float64]) -> NDArray[np.int64]:
    """``total`` items split in proportion to ``weights`` by largest remainder (Hamilton)."""
    exact = total * weights / weights.sum()
    counts: NDArray[np.int64] = np.floor(exact).astype(np.int64)
    order = np.argsort(-(exact - counts), kind="stable")
    counts[order[: total - int(counts.sum())]] += 1
    return counts


def variable_degrees(
    n: int, m: int, dist: DegreeDistribution, cap_two: bool = False
) -> NDArray[np.int64]:
    """Degree of each of ``n`` variable nodes, sorted ascending (the construction permutes them).

    Node fractions ``Lᵢ = (λᵢ/i)/Σⱼ(λⱼ/j)`` (Richardson, Urbanke 2008, Eq. (3.19)), counts by
    largest remainder; degrees capped at ``m``. The degree-2 count is *not* capped at ``m − 1``:
    Table I's ``λ₂`` needs ``n₂ ≈ λ₂·d̄_c/2 ≈ 1.1–1.9·m`` degree-2 nodes, and moving the excess
    to degree 3 (format 1 of the code cache) costs about 2.5 % of efficiency in the ensemble's
    threshold (density evolution, :mod:`~diqkd.postproc._ldpc_de`: rate 0.8, ``f* = 1.040`` →
    ``1.065``). A code with ``n₂ ≥ m`` has cycles of degree-2 nodes (low-weight codewords); PEG
    makes them long, and Alice's decoding check (:data:`~diqkd.postproc.ldpc.CHECK_MAX_SHARE`)
    lets Bob refuse the rare wrong word and search on. With ``cap_two`` the
    degree-2 count is capped at ``m − 1`` (the excess moved to degree 3), as the construction
    does for the rate-0.9 table (:data:`CAP_DEGREE_TWO`).
    """
    lam_sum = sum(dist.lam.values())
    degrees = np.array(sorted(dist.lam), dtype=np.int64)
    weights = np.array([dist.lam[int(d)] / lam_sum / d for d in degrees])
    counts = _apportion(n, weights)
    if cap_two and degrees[0] == 2 and counts[0] > m - 1 and degrees.size > 1:
        counts[1] += counts[0] - max(m - 1, 0)
        counts[0] = max(m - 1, 0)
    return np.sort(np.repeat(np.minimum(degrees, m), counts), kind="stable")


@njit(cache=True)
def _untainted(  # pragma: no cover - numba
    var_ptr: NDArray[np.int64],
    var_chk: NDArray[np.int64],
    candidates: NDArray[np.int64],
    m: int,
    want: int,
) -> tuple[NDArray[np.int64], NDArray[np.int64], int]:
    taken = np.zeros(m, dtype=np.bool_)
    chosen = np.empty(want, dtype=np.int64)
    anchor = np.empty(want, dtype=np.int64)
    k = 0
    for v in candidates:
        if k == want:
            break
        ok = True
        for e in range(var_ptr[v], var_ptr[v + 1]):
            if taken[var_chk[e]]:
                ok = False
                break
        if not ok:
            continue
        for e in range(var_ptr[v], var_ptr[v + 1]):
            taken[var_chk[e]] = True
        chosen[k] = v
        anchor[k] = var_chk[var_ptr[v]]
        k += 1
    return chosen[:k], anchor[:k], k


def is_forest(n_key: int) -> bool:
    """Whether keys of ``n_key`` bits get the forest construction (:data:`FOREST_RUNGS`)."""
    return n_key >= FOREST_MIN_KEY_BITS


def ladder(n_key: int, k: int) -> tuple[int, int, float]:
    """``(M_k, d_k, R₀)`` of rung ``k`` for ``n_key`` key bits (module docstring).

    ``R₀`` is the :data:`FAMILY` rate whose ``λ`` the rung uses: the one nearest to
    ``1 − M_k/(n_key + d_k)`` (0.5 … 0.95), or from :data:`FOREST_MIN_KEY_BITS` key bits the
    one :data:`FOREST_RUNGS` picked by density evolution.
    """
    m = int(np.ceil(n_key * LADDER_BASE * LADDER_RATIO**k))
    d = int(np.ceil(SPECIAL_FRACTION * m))
    if is_forest(n_key):
        return m, d, FOREST_RUNGS[k][0]
    rate = 1.0 - m / (n_key + d)
    nearest = min(MOTHER_RATES, key=lambda r: (abs(r - rate), r))
    return m, d, nearest


def check_degrees(m: int, edges: int, rho: dict[int, float]) -> NDArray[np.int64]:
    """Degrees of ``m`` checks with ``edges`` sockets in all, shaped like the edge-perspective
    ``ρ`` of a table but with mean ``edges/m``, ascending.

    Node fractions ``Pᵈ = (ρᵈ/d)/Σⱼ(ρⱼ/j)`` (Richardson, Urbanke 2008, Eq. (3.19), check side)
    after dropping components below ``10⁻³`` of the edges (Table I's degree-2 checks at rates
    0.60 and 0.65, 0.04–0.06 % of their edges); each degree ``d`` is scaled to
    ``x = d·d̄c/d̄c_table`` (at least 2) and split between ``⌊x⌋`` and ``⌈x⌉`` so the mean is
    kept; counts by largest remainder; the rounding residue (a few sockets) is put on, or
    taken from, checks of the most common degree (then the others, one socket per check).
    """
    kept = {int(d): w for d, w in rho.items() if w >= 1e-3}
    nodes = {d: w / d for d, w in kept.items()}
    total = sum(nodes.values())
    mean = sum(d * w for d, w in nodes.items()) / total
    scale = edges / m / mean
    frac: dict[int, float] = {}
    for d, w in nodes.items():
        x = max(d * scale, 2.0)
        lo, t = int(np.floor(x)), x - np.floor(x)
        frac[lo] = frac.get(lo, 0.0) + w / total * (1.0 - t)
        if t > 0:
            frac[lo + 1] = frac.get(lo + 1, 0.0) + w / total * t
    degs = np.array(sorted(frac), dtype=np.int64)
    counts = _apportion(m, np.array([frac[int(d)] for d in degs]))
    out = np.repeat(degs, counts)
    residue = edges - int(out.sum())
    # a few checks with widely spread degrees can leave more residue than checks (m = 10,
    # mean 55, Table I 0.85's ρ: 8 more than m); every check then takes ⌊|r|/m⌋ sockets
    # (real rungs have thousands of checks and never do)
    whole, residue = divmod(abs(residue), m)
    sign = 1 if edges >= int(out.sum()) else -1
    out += sign * whole
    # on checks of the most common degree first, then on the others (a small m can leave more
    # residue than checks of that degree: m = 10, mean 40, Table I 0.5's ρ left 8 for 4 checks)
    common = out == degs[np.argmax(counts)] + sign * whole
    order = np.concatenate([np.flatnonzero(common), np.flatnonzero(~common)])
    out[order[:residue]] += sign
    if out.min(initial=2) < 1:  # pragma: no cover - defensive
        raise ReconciliationError(f"cannot spread {edges} sockets over {m} checks")
    return np.sort(out)


def rung_degrees(
    n_key: int, k: int, rate: float, spread: bool
) -> tuple[NDArray[np.int64], NDArray[np.int64] | None]:
    """Variable degrees (ascending) and check degrees (``None``: concentrated) of rung ``k``
    built with the :data:`FAMILY` ``λ`` of ``rate``; with ``spread``, the checks follow that
    rate's Table I ``ρ`` (:func:`check_degrees`), which must be one of :data:`ELKOUSS_2009`.
    """
    m, d, _ = ladder(n_key, k)
    dist = distribution(rate)
    degs = variable_degrees(n_key + d, m, dist, dist.cap_two)
    if not spread:
        return degs, None
    return degs, check_degrees(m, int(degs.sum()), ELKOUSS_2009[rate].rho)


@dataclass(frozen=True, eq=False)
class MotherCode:
    """A mother code ``H`` (``M × N`` over GF(2), CSR) with its special symbols.

    Attributes
    ----------
    n_key
        Key bits per frame.
    rung
        Ladder index ``k`` (:func:`ladder`).
    seed
        Public construction seed.
    rate
        Table I rate whose variable degrees the code uses.
    n, m
        Code length ``N = n_key + d`` and number of checks ``M``.
    check_ptr, check_var
        Row ``c`` of ``H`` is ``check_var[check_ptr[c]:check_ptr[c+1]]`` (ascending).
    specials
        The ``d`` special symbols, puncturable ones first, in puncturing order.
    anchors
        Anchor check of each puncturable special, shape (``n_puncturable``,).
    key_positions
        Where key bit ``i`` sits in the codeword, shape (n_key,), ascending.
    lift
        ``Z`` of a quasi-cyclic code (family ``"qc"``: check ``cb·Z + l``, variable
        ``vb·Z + j``); 0 for the random-graph family.
    """

    n_key: int
    rung: int
    seed: int
    rate: float
    n: int
    m: int
    check_ptr: NDArray[np.int64]
    check_var: NDArray[np.int32]
    specials: NDArray[np.int64]
    anchors: NDArray[np.int64]
    key_positions: NDArray[np.int64]
    lift: int = 0

    @property
    def family(self) -> CodeFamily:
        """``"qc"`` for a quasi-cyclic lift, else ``"random"``."""
        return "qc" if self.lift else "random"

    @property
    def digest(self) -> str:
        """SHA-256 of the code's content (``H``, specials, anchors and sizes), not of its family
        name or format: two constructions that give the same code give the same digest (the
        cache checks it on load; ``benchmarks/code_digests.py`` pools FER results by it)."""
        return _digest(self)

    @property
    def n_puncturable(self) -> int:
        """How many specials may be punctured (untainted ones)."""
        return int(self.anchors.size)

    @property
    def n_special(self) -> int:
        """``d = N − n_key``."""
        return int(self.specials.size)

    @property
    def n_edges(self) -> int:
        """Number of ones in ``H``."""
        return int(self.check_var.size)

    def code_id(self, punctured: int) -> str:
        """Public name of this code used with ``punctured`` punctured specials."""
        name = family_format(self.family)
        return f"{name}:n={self.n_key}:k={self.rung}:seed={self.seed}:p={punctured}"

    def dense(self) -> NDArray[np.uint8]:
        """``H`` as a dense 0/1 array (tests and peers; O(M·N) memory)."""
        h = np.zeros((self.m, self.n), dtype=np.uint8)
        rows = np.repeat(np.arange(self.m), np.diff(self.check_ptr))
        h[rows, self.check_var] = 1
        return h

    def syndrome(self, word: NDArray[np.uint8]) -> NDArray[np.uint8]:
        """``H·w mod 2``, shape (M,), for a codeword-length word ``w`` (shape (N,))."""
        if word.shape != (self.n,):
            raise ReconciliationError(f"need {self.n} bits for this code, got {word.shape}")
        # XOR over each check's run of H's CSR rows (3–4× the float bincount at 10⁶); a zero
        # appended so that every row start, an empty last row's too, indexes the gathered bits
        starts = self.check_ptr[:-1]
        gathered = np.append(word[self.check_var].astype(np.uint8, copy=False), np.uint8(0))
        out = np.bitwise_xor.reduceat(gathered, starts) & 1
        out[starts == self.check_ptr[1:]] = 0  # reduceat gives an empty row its next bit
        return out.astype(np.uint8, copy=False)


def _check_args(n_key: int, rung: int, seed: int, family: CodeFamily = "random") -> None:
    for name, value in (("n_key", n_key), ("rung", rung), ("seed", seed)):
        if isinstance(value, bool) or not isinstance(value, int | np.integer):
            raise ReconciliationError(f"{name} must be an int, got {value!r}")
    if family not in CODE_FAMILIES:
        raise ReconciliationError(f"unknown code family {family!r}: use 'random' or 'qc'")
    low = QC_MIN_KEY_BITS if family == "qc" else MIN_KEY_BITS
    if not low <= n_key <= MAX_KEY_BITS:
        raise ReconciliationError(
            f"LDPC frames of the {family!r} codes must hold {low} to {MAX_KEY_BITS} key bits, "
            f"got {n_key}"
        )
    if not 0 <= rung <= LADDER_TOP:
        raise ReconciliationError(f"code rung must lie in [0, {LADDER_TOP}], got {rung}")
    if not 0 <= seed < 2**63:
        raise ReconciliationError(f"seed must lie in [0, 2⁶³), got {seed}")


def _cache_file(n_key: int, rung: int, seed: int, family: CodeFamily) -> Path | None:
    root = os.environ.get(CACHE_ENV, "")
    if not root:
        return None
    return Path(root) / f"{family_format(family)}-n{n_key}-k{rung}-s{seed}.npz"


def qc_dimensions(n_key: int, rung: int) -> tuple[int, int, int]:
    """``(Z, Mb, Nb)`` of the QC code of a rung: ``Mb = ⌈M_k/Z⌉`` base rows (so the code has at
    least the rung's checks) and ``Nb = ⌈(n_key + d_k)/Z⌉`` base columns (the surplus symbols
    are specials: at most ``Z − 1`` more, shortened unless punctured)."""
    z = lift_size(n_key)
    m, d, _ = ladder(n_key, rung)
    return z, -(-m // z), -(-(n_key + d) // z)


def _construct_qc(n_key: int, rung: int, seed: int) -> MotherCode:
    """The rung's ensemble as a ``Z``-lift (:func:`~diqkd.postproc._ldpc_qc.qc_graph`): base
    variable degrees from the rung's ``λ`` (:func:`variable_degrees` with ``Nb`` nodes), base
    check degrees concentrated, or Table I's spread ``ρ`` where the rung uses it."""
    rate = ladder(n_key, rung)[2]
    z, mb, nb = qc_dimensions(n_key, rung)
    dist = distribution(rate)
    base = variable_degrees(nb, mb, dist, dist.cap_two)
    edges = int(base.sum())
    if is_forest(n_key) and FOREST_RUNGS[rung][1]:
        checks = check_degrees(mb, edges, ELKOUSS_2009[rate].rho)
    else:
        checks = np.full(mb, edges // mb, dtype=np.int64)
        checks[: edges - int(checks.sum())] += 1
    rng = np.random.default_rng(np.random.SeedSequence([seed, n_key, rung, 0x9C11F7]))
    base = rng.permutation(base)
    check_ptr, check_var, _ = qc_graph(base, checks, z, rng, QC_GIRTH_TWO)
    degs = np.repeat(base, z)
    specials, anchors = _choose_specials(
        n_key, rung, seed, mb * z, check_ptr, check_var, degs, nb * z - n_key
    )
    return _freeze(n_key, rung, seed, rate, mb * z, check_ptr, check_var, specials, anchors, z)


def _choose_specials(
    n_key: int,
    rung: int,
    seed: int,
    m: int,
    check_ptr: NDArray[np.int64],
    check_var: NDArray[np.integer],
    degs: NDArray[np.int64],
    d: int,
) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
    """``d`` specials, untainted ones first (module docstring), and their anchors."""
    n = degs.size
    # variable → check adjacency (CSC) for the special-symbol selection
    order = np.argsort(check_var, kind="stable")
    var_chk = np.repeat(np.arange(m, dtype=np.int64), np.diff(check_ptr))[order]
    var_ptr = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(np.bincount(check_var, minlength=n), out=var_ptr[1:])
    public = np.random.default_rng(np.random.SeedSequence([seed, n_key, rung, 0x5EC1A1]))
    candidates = np.lexsort((public.permutation(n), degs)).astype(np.int64)
    chosen, anchors, k = _untainted(var_ptr, var_chk, candidates, m, d)
    specials = chosen
    if k < d:  # fill with shortening-only symbols
        rest = np.setdiff1d(candidates, chosen, assume_unique=True)
        specials = np.concatenate([chosen, rest[np.argsort(degs[rest], kind="stable")][: d - k]])
    return specials, anchors


def _construct(n_key: int, rung: int, seed: int) -> MotherCode:
    m, d, rate = ladder(n_key, rung)
    n = n_key + d
    forest = is_forest(n_key)
    degs, checks = rung_degrees(n_key, rung, rate, forest and FOREST_RUNGS[rung][1])
    # PEG places the degree-2 variables first, then the others in a public pseudo-random
    # order, not by ascending degree (module docstring: that order lost 4–8 % of efficiency)
    if n_key >= SHUFFLE_MIN_KEY_BITS:
        shuffle = np.random.default_rng(np.random.SeedSequence([seed, n_key, rung, 0x0DE6]))
        two = int(np.count_nonzero(degs == 2))
        degs = np.concatenate([degs[:two], shuffle.permutation(degs[two:])])
    girth = GIRTH_TWO if rate in FOREST_FAMILY else 0
    graph = forest_graph(degs, m, seed, checks, girth) if forest else peg_graph(degs, m, seed)
    if graph is None:  # pragma: no cover - defensive
        raise ReconciliationError(
            f"graph construction failed for n={n}, m={m}, seed={seed}: try another seed"
        )
    check_ptr, check_var = graph
    specials, anchors = _choose_specials(n_key, rung, seed, m, check_ptr, check_var, degs, d)
    return _freeze(n_key, rung, seed, rate, m, check_ptr, check_var, specials, anchors)


def _freeze(
    n_key: int,
    rung: int,
    seed: int,
    rate: float,
    m: int,
    check_ptr: NDArray[np.int64],
    check_var: NDArray[np.integer],
    specials: NDArray[np.int64],
    anchors: NDArray[np.int64],
    lift: int = 0,
) -> MotherCode:
    n = n_key + int(specials.size)
    key_mask = np.ones(n, dtype=bool)
    key_mask[specials] = False
    arrays = (
        np.ascontiguousarray(check_ptr, dtype=np.int64),
        np.ascontiguousarray(check_var, dtype=np.int32),
        np.ascontiguousarray(specials, dtype=np.int64),
        np.ascontiguousarray(anchors, dtype=np.int64),
        np.flatnonzero(key_mask).astype(np.int64),
    )
    for a in arrays:
        a.flags.writeable = False
    return MotherCode(n_key, rung, seed, rate, n, m, *arrays, lift=lift)


def _digest(code: MotherCode) -> str:
    h = hashlib.sha256(
        f"{code.n_key}:{code.rung}:{code.seed}:{code.n}:{code.m}:{code.lift}".encode()
    )
    for a in (code.check_ptr, code.check_var, code.specials, code.anchors):
        h.update(a.tobytes())
    return h.hexdigest()


def _well_formed(code: MotherCode) -> bool:
    """Index ranges the decoder relies on (it does not bounds-check): a file is never trusted."""
    ptr, var = code.check_ptr, code.check_var
    return bool(
        ptr.size == code.m + 1
        and ptr[0] == 0
        and ptr[-1] == var.size
        and np.all(np.diff(ptr) >= 0)
        and (var.size == 0 or (var.min() >= 0 and var.max() < code.n))
        and np.unique(code.specials).size == code.specials.size
        and (code.specials.size == 0 or (code.specials.min() >= 0 and code.specials.max() < code.n))
        and code.anchors.size <= code.specials.size
        and (code.anchors.size == 0 or (code.anchors.min() >= 0 and code.anchors.max() < code.m))
        and (not code.lift or _is_lift(code))
    )


def _is_lift(code: MotherCode) -> bool:
    try:
        qc_structure(code.check_ptr, code.check_var, code.lift, code.n)
    except ReconciliationError:
        return False
    return True


def _load(path: Path, n_key: int, rung: int, seed: int, family: CodeFamily) -> MotherCode | None:
    m, d, rate = ladder(n_key, rung)
    lift = 0
    if family == "qc":
        lift, mb, nb = qc_dimensions(n_key, rung)
        m, d = mb * lift, nb * lift - n_key
    try:
        with np.load(path) as z:
            if z["specials"].size != d:
                return None
            code = _freeze(
                n_key, rung, seed, rate, m, z["check_ptr"], z["check_var"], z["specials"],
                z["anchors"], lift,
            )  # fmt: skip
            if str(z["digest"]) != _digest(code) or not _well_formed(code):
                return None
            return code
    except (OSError, KeyError, ValueError, IndexError, ReconciliationError):
        return None


def _save(path: Path, code: MotherCode) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f"{path.stem}.{os.getpid()}.tmp.npz")
        np.savez(
            tmp, check_ptr=code.check_ptr, check_var=code.check_var, specials=code.specials,
            anchors=code.anchors, digest=_digest(code),
        )  # fmt: skip
        os.replace(tmp, path)
    except OSError:  # pragma: no cover - a read-only cache directory only costs time
        return


@functools.lru_cache(maxsize=12)
def build_code(n_key: int, rung: int, seed: int = 0, family: CodeFamily = "random") -> MotherCode:
    """Build (or fetch from the in-memory LRU, then the disk cache) the code of one rung.

    Parameters
    ----------
    n_key
        Key bits per frame, :data:`MIN_KEY_BITS` to :data:`MAX_KEY_BITS`.
    rung
        Ladder index ``0 ≤ k ≤`` :data:`LADDER_TOP` (:func:`ladder`).
    seed
        Public seed ``[0, 2⁶³)``; the same triple always gives the same code.
    family
        ``"random"`` (default) or ``"qc"`` (:data:`CodeFamily`; from ``QC_MIN_KEY_BITS`` key
        bits).

    Returns
    -------
    MotherCode
        Read-only arrays. The forest construction (from 10⁶ key bits) takes ≈ 4 s, PEG takes
        seconds at ``n_key = 10⁵`` and minutes just below ``10⁶``; set the environment variable
        :data:`CACHE_ENV` to a directory to keep built codes on disk (checked by a SHA-256
        digest on load; a bad file is rebuilt).

    Raises
    ------
    ReconciliationError
        For arguments out of range.
    """
    _check_args(n_key, rung, seed, family)
    n_key, rung, seed = int(n_key), int(rung), int(seed)
    path = _cache_file(n_key, rung, seed, family)
    if path is not None and path.exists():
        cached = _load(path, n_key, rung, seed, family)
        if cached is not None:
            return cached
    code = _construct_qc(n_key, rung, seed) if family == "qc" else _construct(n_key, rung, seed)
    if path is not None:
        _save(path, code)
    return code


def parse_code_id(code_id: str) -> CodeName:
    """``(n_key, rung, seed, punctured, family)`` of a name made by :meth:`MotherCode.code_id`.

    Raises
    ------
    ReconciliationError
        If the name is not of these families, is of another construction format than this
        release builds (the peer runs another release: the same fields would name another
        matrix), or its fields are out of range.
    """
    match = _ID.fullmatch(code_id)
    if match is None:
        raise ReconciliationError(
            f"unknown LDPC code name {code_id!r}: expected "
            f"'{family_format('random')}:n=…:k=…:seed=…:p=…' or '{family_format('qc')}:…'"
        )
    family: CodeFamily = "qc" if match.group(1) == _QC_FAMILY else "random"
    version = match.group(2)
    if version is None or int(version) != _FORMATS[family]:
        sent = "no format" if version is None else f"format v{int(version)}"
        raise ReconciliationError(
            f"LDPC code name {code_id!r} has {sent}; this release builds "
            f"{family_format(family)}: both parties must run releases with the "
            "same code format"
        )
    n_key, rung, seed, punctured = (int(g) for g in match.groups()[2:])
    _check_args(n_key, rung, seed, family)
    return CodeName(n_key, rung, seed, punctured, family)
