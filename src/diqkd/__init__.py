"""diqkd — device-independent quantum key distribution, end to end.

Layers (see ``docs/architecture.md``): ``units``, ``rng``, ``errors`` at the base;
``profiles`` (hardware descriptions), ``physics`` (link models and samplers),
``records`` (round records), ``security`` (key-rate bounds), and ``cli``.
"""

__version__ = "0.1.0"

__all__ = ["__version__"]
