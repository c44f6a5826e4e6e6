"""The security certificate: what a key length rests on, stated completely."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from diqkd.errors import DiqkdError

__all__ = ["Certificate", "Epsilons"]


@dataclass(frozen=True, kw_only=True)
class Epsilons:
    """Every ε of a composable security statement.

    Attributes
    ----------
    pa
        Privacy amplification (leftover hash lemma) failure.
    ec
        Error-correction verification: probability that unequal keys pass the hash check.
    pe
        Parameter estimation / entropy accumulation (smoothing) failure, as it enters the
        soundness sum (e.g. ``2ε_s`` where a theorem counts the smoothing twice).
    sound
        Total soundness ε, as the theorem composes the terms (the secrecy + correctness
        distance from an ideal key).
    complete
        Completeness: probability that honest devices behaving as expected abort.
    """

    pa: float
    ec: float
    pe: float
    sound: float
    complete: float

    def __post_init__(self) -> None:
        for name in ("pa", "ec", "pe", "sound", "complete"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise DiqkdError(f"epsilon {name} must lie in [0, 1], got {value}")
        if self.pa + self.ec + self.pe > self.sound * (1 + 1e-12):
            raise DiqkdError(
                f"epsilon terms pa+ec+pe = {self.pa + self.ec + self.pe:g} exceed "
                f"the stated soundness {self.sound:g}"
            )


@dataclass(frozen=True, kw_only=True)
class Certificate:
    """A frozen security certificate for a key of ``key_length_bits`` bits.

    The protocol refuses to output any key unless :attr:`secure` is true.

    Attributes
    ----------
    method
        Short name of the bound (e.g. ``"finite-size/eat"``).
    theorem
        The theorem and paper the key length rests on, with equation numbers.
    n_rounds
        Heralded events (rounds) the key was distilled from.
    chsh, qber
        The statistics the certificate was evaluated at (observed, or expected for a design).
    thresholds
        Abort thresholds of the protocol (e.g. the minimum CHSH winning frequency).
    epsilons
        Every ε term.
    key_length_bits
        The certified key length ℓ (0 if nothing is certified).
    test_fraction, flip_probability
        Protocol parameters the bound was optimised for.
    parameters
        Every other free parameter of the bound (Rényi α, tangent point, leak_EC, …).
    justification
        Human-readable derivation: which bound, which parameters, why ℓ is what it is.
    reason
        Why no key is certified, when ``key_length_bits == 0``.
    """

    method: str
    theorem: str
    n_rounds: int
    chsh: float
    qber: float
    thresholds: dict[str, float]
    epsilons: Epsilons
    key_length_bits: int
    test_fraction: float
    flip_probability: float
    parameters: dict[str, float] = field(default_factory=dict)
    justification: str = ""
    reason: str = ""

    def __post_init__(self) -> None:
        if self.n_rounds < 1:
            raise DiqkdError(f"a certificate needs n_rounds >= 1, got {self.n_rounds}")
        if self.key_length_bits < 0:
            raise DiqkdError(f"key length cannot be negative, got {self.key_length_bits}")
        if self.key_length_bits == 0 and not self.reason:
            raise DiqkdError("a certificate with no key must say why (reason)")

    @property
    def secure(self) -> bool:
        """True when a positive key length is certified."""
        return self.key_length_bits > 0

    @property
    def key_rate_per_round(self) -> float:
        """``ℓ / n``: key bits per round, a round being one heralded event."""
        return self.key_length_bits / self.n_rounds

    @property
    def key_rate_per_key_round(self) -> float:
        """``ℓ / (n (1 − γ))``: key bits per key-generation round."""
        return self.key_length_bits / (self.n_rounds * (1.0 - self.test_fraction))

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready data, including the derived rates and the ε's under their JSON names."""
        data = asdict(self)
        data.update(
            key_rate_per_round=self.key_rate_per_round,
            key_rate_per_event=self.key_rate_per_round,
            key_rate_per_key_round=self.key_rate_per_key_round,
            epsilon_sound=self.epsilons.sound,
            epsilon_complete=self.epsilons.complete,
            secure=self.secure,
        )
        return data
