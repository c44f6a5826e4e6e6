"""Link physics: optical budget, heralded atom–atom states, Bell statistics, samplers."""

from diqkd.physics.channel import LinkBudget, link_budget
from diqkd.physics.correlations import (
    BellStatistics,
    bell_statistics,
    chsh_from_correlations,
    qber_from_correlations,
)
from diqkd.physics.heralding import HeraldedState, spi_state, two_photon_state
from diqkd.physics.link import LinkPoint, heralded_state, link_point, link_sweep
from diqkd.physics.sampler import (
    RoundChunk,
    counts_from_rounds,
    protocol_input_probs,
    sample_counts,
    sample_rounds,
    sample_rounds_array,
)

__all__ = [
    "BellStatistics",
    "HeraldedState",
    "LinkBudget",
    "LinkPoint",
    "RoundChunk",
    "bell_statistics",
    "chsh_from_correlations",
    "counts_from_rounds",
    "heralded_state",
    "link_budget",
    "link_point",
    "link_sweep",
    "protocol_input_probs",
    "qber_from_correlations",
    "sample_counts",
    "sample_rounds",
    "sample_rounds_array",
    "spi_state",
    "two_photon_state",
]
