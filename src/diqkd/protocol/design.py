"""Protocol parameters fixed before the run, and the key length from the actual leak.

The CHSH protocol of ``docs/finite-size.md`` fixes its test fraction γ, flip probability p,
score pivot ω₀, abort threshold t and maximal number of test rounds ``m_max`` *before* any
round is measured, from the expected honest statistics (S, Q) and the number of rounds n
(:func:`design_protocol`, which optimises them with
:func:`diqkd.security.finite_size_key_length`). After the run, the only term of the key length
that depends on what actually happened is the error-correction leak: :func:`final_key_length`
replaces the design's estimate ``leak_EC`` and tag length with the bits actually disclosed
(Eq. (F7) of ``docs/finite-size.md``; everything else is fixed by the design).
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass
from typing import Any

from diqkd.errors import DiqkdError
from diqkd.postproc.verify import DEFAULT_TAG_BITS, epsilon_ec
from diqkd.protocol.checks import TSIRELSON_FALSE_ALARM
from diqkd.security import FiniteSizeResult, finite_size_key_length

__all__ = ["RECONCILIATION_METHODS", "ProtocolParameters", "design_protocol", "final_key_length"]

#: The error-correction methods a protocol may fix (``ProtocolParameters.reconciliation``).
RECONCILIATION_METHODS: tuple[str, ...] = ("auto", "cascade", "ldpc", "ldpc-qc", "ldpc-fast")


@dataclass(frozen=True, kw_only=True)
class ProtocolParameters:
    """Everything Alice and Bob agree on before the first round (public).

    Attributes
    ----------
    n_rounds
        Number of rounds (heralded events) of the block.
    test_fraction, flip_probability
        γ and p.
    expected_chsh, expected_qber
        The honest statistics the thresholds were set for.
    score_pivot, statistic_threshold, max_test_rounds
        The abort rule: abort unless ``Σ z ≥ statistic_threshold`` and
        ``m ≤ max_test_rounds`` (``z = 1 − ω₀`` per test won, ``−ω₀`` per test lost).
    epsilon_sound
        Soundness ε of the certificate.
    reconciliation
        ``"cascade"``, ``"ldpc"``, ``"ldpc-qc"`` (LDPC with the quasi-cyclic codes: the same
        leak, decoded 2–4 times faster; a frame below their 65 536 bits uses the random ones),
        ``"ldpc-fast"`` (the QC codes at the throughput point ``f₀ ≥ 1.15``) or ``"auto"``.
    tag_bits
        Verification tag length, bits.
    design
        The :class:`~diqkd.security.FiniteSizeResult` the parameters come from.
    """

    n_rounds: int
    test_fraction: float
    flip_probability: float
    expected_chsh: float
    expected_qber: float
    score_pivot: float
    statistic_threshold: float
    max_test_rounds: int
    epsilon_sound: float
    reconciliation: str
    tag_bits: int
    design: FiniteSizeResult

    @property
    def expected_key_qber(self) -> float:
        """``Q_eff = p + Q − 2pQ``: expected disagreement of Bob's bit with Alice's flipped bit."""
        p, q = self.flip_probability, self.expected_qber
        return p + q - 2.0 * p * q

    @property
    def expected_test_error(self) -> float:
        """``1 − ω`` with ``ω = (4 + S)/8``: expected error of Bob's guess on test rounds."""
        return 1.0 - (4.0 + min(self.expected_chsh, 2.0 * math.sqrt(2.0))) / 8.0

    def public_dict(self) -> dict[str, Any]:
        """The agreed values (what both parties must hold identically)."""
        return {
            "n_rounds": self.n_rounds,
            "test_fraction": self.test_fraction,
            "flip_probability": self.flip_probability,
            "expected_chsh": self.expected_chsh,
            "expected_qber": self.expected_qber,
            "score_pivot": self.score_pivot,
            "statistic_threshold": self.statistic_threshold,
            "max_test_rounds": self.max_test_rounds,
            "epsilon_sound": self.epsilon_sound,
            "reconciliation": self.reconciliation,
            "tag_bits": self.tag_bits,
            "design_key_length_bits": self.design.key_length_bits,
        }

    def digest(self) -> str:
        """Hex SHA-256 of :meth:`public_dict` (canonical JSON)."""
        text = json.dumps(self.public_dict(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()


def design_protocol(
    *,
    expected_chsh: float,
    expected_qber: float,
    n_rounds: int,
    epsilon_sound: float = 1e-6,
    test_fraction: float | None = None,
    ec_efficiency: float = 1.1,
    epsilon_complete_target: float = 1e-2,
    reconciliation: str = "auto",
    tag_bits: int = DEFAULT_TAG_BITS,
) -> ProtocolParameters:
    """Fix the protocol parameters for ``n_rounds`` rounds from the expected honest statistics.

    Raises
    ------
    DiqkdError
        If the expected statistics certify nothing (S ≤ 2, beyond the noise threshold, or too
        few rounds): the run would only ever abort, so it is refused before it starts.
    """
    if reconciliation not in RECONCILIATION_METHODS:
        raise DiqkdError(
            f"reconciliation must be one of {', '.join(RECONCILIATION_METHODS)}, "
            f"not {reconciliation!r}"
        )
    common = {
        "chsh": expected_chsh,
        "qber": expected_qber,
        "n_rounds": n_rounds,
        "epsilon_sound": epsilon_sound,
        "ec_efficiency": ec_efficiency,
        # The Tsirelson sanity check (protocol.checks) may abort honest runs with
        # probability TSIRELSON_FALSE_ALARM: it comes out of the completeness budget.
        "epsilon_complete_target": epsilon_complete_target - TSIRELSON_FALSE_ALARM,
    }
    if test_fraction is None:
        # Choose γ, then design at that γ exactly as a run from records taken with it would
        # (so live runs and their records distil identically).
        test_fraction = finite_size_key_length(**common).test_fraction  # type: ignore[arg-type]
        if not math.isfinite(test_fraction):
            test_fraction = None
    result = finite_size_key_length(test_fraction=test_fraction, **common)  # type: ignore[arg-type]
    if result.key_length_bits <= 0:
        raise DiqkdError(
            f"no key can be certified at the expected S={expected_chsh:.4f}, "
            f"Q={expected_qber:.4f} with n={n_rounds} rounds: {result.reason}"
        )
    if epsilon_ec(n_rounds, tag_bits) > result.epsilon_ec:
        raise DiqkdError(
            f"a {tag_bits}-bit verification tag is too short for ε_EC={result.epsilon_ec:.3g} "
            f"at n={n_rounds}"
        )
    return ProtocolParameters(
        n_rounds=int(n_rounds),
        test_fraction=result.test_fraction,
        flip_probability=result.flip_probability,
        expected_chsh=float(expected_chsh),
        expected_qber=float(expected_qber),
        score_pivot=result.score_pivot,
        statistic_threshold=result.statistic_threshold,
        max_test_rounds=result.max_test_rounds,
        epsilon_sound=float(epsilon_sound),
        reconciliation=reconciliation,
        tag_bits=int(tag_bits),
        design=result,
    )


def final_key_length(params: ProtocolParameters, *, leak_ec_bits: int, tag_bits: int) -> int:
    """ℓ of Eq. (F7) with the design's parameters and the actual EC leak and tag length.

    ``ℓ = ⌊Σ terms − leak_actual − tag_actual⌋`` where Σ terms excludes the design's
    ``leak_ec`` and ``verification_tag`` estimates; never negative.
    """
    if leak_ec_bits < 0 or tag_bits < 0:
        raise DiqkdError("leaked and tag bits must be non-negative")
    terms = dict(params.design.terms_bits)
    fixed = math.fsum(v for k, v in terms.items() if k not in ("leak_ec", "verification_tag"))
    return max(0, math.floor(fixed - leak_ec_bits - tag_bits))
