"""Statistical tests of recorded inputs against their declared law (broken random sources).

Device independence assumes the inputs are fresh private randomness (``docs/security.md``).
:func:`input_randomness_test` checks the input columns of a records file against the declared
law: a frequency test and a serial (pairs) test, Pearson's χ² (Pearson, Phil. Mag. 50, 157
(1900)), combined by Bonferroni. It catches a *broken* generator (bias, impossible inputs,
correlation between rounds); no statistical test detects a good generator whose seed leaked
(``docs/attacks.md``). ``diqkd distill`` refuses records that fail it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy.stats import chi2

from diqkd.errors import DiqkdError
from diqkd.records.container import Records

__all__ = ["InputRandomnessReport", "input_randomness_of_records", "input_randomness_test"]


@dataclass(frozen=True)
class InputRandomnessReport:
    """Outcome of :func:`input_randomness_test`.

    Attributes
    ----------
    rounds
        Rounds tested.
    impossible_inputs
        Rounds whose ``(x, y)`` has probability 0 under the declared law.
    frequency_chi2, frequency_dof, frequency_p_value
        Pearson χ² of the ``(x, y)`` counts against the declared law.
    serial_chi2, serial_dof, serial_p_value
        Pearson χ² of non-overlapping consecutive pairs against the product law
        (independence from one round to the next).
    p_value
        Bonferroni combination ``min(1, 2·min(p_freq, p_serial))`` (0 if an impossible input
        occurred).
    """

    rounds: int
    impossible_inputs: int
    frequency_chi2: float
    frequency_dof: int
    frequency_p_value: float
    serial_chi2: float
    serial_dof: int
    serial_p_value: float
    p_value: float

    def passed(self, alpha: float = 1e-3) -> bool:
        """True unless the inputs are rejected at significance ``alpha``."""
        return self.p_value >= alpha

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready fields."""
        return {
            "rounds": self.rounds,
            "impossible_inputs": self.impossible_inputs,
            "frequency_chi2": self.frequency_chi2,
            "frequency_dof": self.frequency_dof,
            "frequency_p_value": self.frequency_p_value,
            "serial_chi2": self.serial_chi2,
            "serial_dof": self.serial_dof,
            "serial_p_value": self.serial_p_value,
            "p_value": self.p_value,
        }


def _pearson(counts: NDArray[np.float64], probs: NDArray[np.float64]) -> tuple[float, int, float]:
    """Pearson's χ² over the cells of positive probability: (statistic, dof, p-value)."""
    pos = probs > 0
    n = float(counts.sum())
    expected = n * probs[pos]
    if n == 0 or pos.sum() < 2:
        return 0.0, 0, 1.0
    stat = float(np.sum((counts[pos] - expected) ** 2 / expected))
    dof = int(pos.sum()) - 1
    return stat, dof, float(chi2.sf(stat, dof))


def input_randomness_test(
    x: ArrayLike, y: ArrayLike, *, input_probs_xy: ArrayLike
) -> InputRandomnessReport:
    """Test recorded inputs against their declared distribution (frequencies and serial pairs).

    Parameters
    ----------
    x, y
        Inputs per round, ``x ∈ {0, 1}``, ``y ∈ {0, 1, 2}``, shape (n,).
    input_probs_xy
        Declared joint law ``p(x, y)``, shape (2, 3) (records metadata ``input_probs_xy``; for
        the CHSH protocol ``p(0, 2) = 1 − γ``, ``p(x, y) = γ/4`` for ``x, y ∈ {0, 1}``).

    Notes
    -----
    Frequency test: Pearson's χ² of the six counts ``N(x, y)`` against ``n p(x, y)``, with
    (cells of positive probability − 1) degrees of freedom. Serial test: the symbol
    ``s = 3x + y`` of rounds ``2i`` and ``2i + 1`` forms independent pairs under the null; their
    36 counts are tested against ``p(s) p(s')`` the same way (non-overlapping pairs keep the
    χ² law exact in the limit; Knuth, TAOCP vol. 2, 3rd ed., Sec. 3.3.2 B). Pearson's
    approximation needs expected counts of about 5 or more per cell.
    """
    xs = np.asarray(x)
    ys = np.asarray(y)
    probs = np.asarray(input_probs_xy, dtype=np.float64)
    if xs.shape != ys.shape or xs.ndim != 1:
        raise DiqkdError("x and y must be one-dimensional and equally long")
    if probs.shape != (2, 3) or np.any(probs < 0) or abs(float(probs.sum()) - 1.0) > 1e-9:
        raise DiqkdError("input_probs_xy must be a 2×3 table of probabilities summing to 1")
    if xs.size and (xs.min() < 0 or xs.max() > 1 or ys.min() < 0 or ys.max() > 2):
        raise DiqkdError("inputs must be x ∈ {0, 1} and y ∈ {0, 1, 2}")
    s = (3 * xs.astype(np.int64) + ys.astype(np.int64)).astype(np.int64)
    p = probs.reshape(6)
    counts = np.bincount(s, minlength=6).astype(np.float64)
    impossible = int(counts[p == 0].sum())
    f_stat, f_dof, f_p = _pearson(counts, p)
    half = s.size // 2
    pairs = 6 * s[0 : 2 * half : 2] + s[1 : 2 * half : 2]
    pair_counts = np.bincount(pairs, minlength=36).astype(np.float64)
    s_stat, s_dof, s_p = _pearson(pair_counts, np.outer(p, p).reshape(36))
    combined = 0.0 if impossible else min(1.0, 2.0 * min(f_p, s_p))
    return InputRandomnessReport(
        rounds=int(s.size),
        impossible_inputs=impossible,
        frequency_chi2=f_stat,
        frequency_dof=f_dof,
        frequency_p_value=f_p,
        serial_chi2=s_stat,
        serial_dof=s_dof,
        serial_p_value=s_p,
        p_value=combined,
    )


def input_randomness_of_records(records: Records) -> InputRandomnessReport:
    """:func:`input_randomness_test` on a :class:`diqkd.records.Records` (columns ``x``, ``y``).

    The declared law is the metadata's ``input_probs_xy``, or the product of
    ``input_probs_x`` and ``input_probs_y`` when the inputs were chosen independently.
    """
    meta = records.metadata
    table: NDArray[np.float64] = (
        np.outer(
            np.asarray(meta.input_probs_x, dtype=np.float64),
            np.asarray(meta.input_probs_y, dtype=np.float64),
        )
        if meta.input_probs_xy is None
        else np.asarray(meta.input_probs_xy, dtype=np.float64)
    )
    return input_randomness_test(records.x, records.y, input_probs_xy=table)
