"""Security analysis: key-rate bounds. Never imports :mod:`diqkd.physics`."""

from diqkd.security.asymptotic import (
    TSIRELSON_BOUND,
    binary_entropy,
    noisy_preprocessing_entropy,
    noisy_preprocessing_rate,
    optimal_noisy_preprocessing_rate,
    pironio_rate,
)
from diqkd.security.certificate import Certificate, Epsilons
from diqkd.security.finite import (
    FiniteSizeResult,
    certificate_from_result,
    finite_size_certificate,
    finite_size_key_length,
)
from diqkd.security.numerical import NumericalBound, numerical_entropy_bound, numerical_key_rate
from diqkd.security.plob import plob_bound

__all__ = [
    "TSIRELSON_BOUND",
    "Certificate",
    "Epsilons",
    "FiniteSizeResult",
    "NumericalBound",
    "binary_entropy",
    "certificate_from_result",
    "finite_size_certificate",
    "finite_size_key_length",
    "noisy_preprocessing_entropy",
    "noisy_preprocessing_rate",
    "numerical_entropy_bound",
    "numerical_key_rate",
    "optimal_noisy_preprocessing_rate",
    "pironio_rate",
    "plob_bound",
]
