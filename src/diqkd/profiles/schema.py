"""The hardware-profile schema: validated, frozen, units in every key name.

A profile describes one DI-QKD link's hardware: two single-atom (or ion) nodes, optional
quantum frequency conversion, fiber arms to a middle heralding station, detectors, the
interferometer, timing and the measurement devices. Every numeric key names its unit
(``_s``, ``_hz``, ``_nm``, ``_db_per_km``, ``_rad``); keys without a unit suffix are
dimensionless numbers (efficiencies, probabilities, fractions). The meaning, unit and allowed
range of each key is documented in ``docs/profiles.md`` (generated from the field descriptions
below by ``diqkd profiles show --schema``).
"""

from __future__ import annotations

import hashlib
import json
from typing import Any, Literal, get_args, get_origin

from pydantic import BaseModel, ConfigDict, Field, model_validator

__all__ = [
    "AtomSection",
    "ConversionSection",
    "DetectionSection",
    "FiberSection",
    "HeraldingSection",
    "InterferometerSection",
    "MeasurementSection",
    "Profile",
    "TimingSection",
]

SCHEMA_VERSION = 1


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False, strict=False)


class HeraldingSection(_Section):
    """How the middle station heralds atom–atom entanglement."""

    scheme: Literal["spi", "two-photon"] = Field(
        description=(
            "Heralding scheme. 'spi': single-photon interference, one detector click heralds "
            "(Cabrillo et al. 1999; Humphreys et al. 2018); success ∝ √η of the whole link. "
            "'two-photon': two-click Bell-state measurement on two photons (Barrett–Kok 2005; "
            "Hofmann et al. 2012; Nadlinger et al. 2022); success ∝ η of the whole link."
        )
    )
    station_position: float = Field(
        0.5,
        gt=0.0,
        lt=1.0,
        description="Position of the middle station as a fraction of the total fiber length, "
        "measured from Alice (0.5 = midpoint).",
    )


class AtomSection(_Section):
    """The matter qubits (one per node, identical hardware)."""

    bright_state_population: float | None = Field(
        None,
        gt=0.0,
        le=0.5,
        description="SPI only: population α of the bright (emitting) state in the initial "
        "state √α|↑⟩ + √(1−α)|↓⟩. Sets the herald rate (≈ 2αη_arm) and the double-excitation "
        "error (fidelity ≲ 1 − α). Must be absent for two-photon heralding.",
    )
    photon_collection_efficiency: float = Field(
        gt=0.0,
        le=1.0,
        description="Probability that an emitted photon is collected into the single-mode "
        "fiber at the node (objective or cavity, coupling, local optics).",
    )
    emission_wavelength_nm: float = Field(
        gt=100.0, lt=3000.0, description="Wavelength of the emitted photon, nm (780 for Rb D2)."
    )
    readout_fidelity: float = Field(
        ge=0.5,
        le=1.0,
        description="Probability that the state-selective readout reports the correct outcome "
        "(symmetric error model: each outcome flips with probability 1 − fidelity).",
    )
    memory_coherence_time_s: float = Field(
        gt=0.0,
        le=1e6,
        description="Memory coherence time T₂ of each atom, s. Coherence decays as "
        "exp(−(t/T₂)²) while the atom waits for the herald (Gaussian decay from magnetic-field "
        "noise, Körber et al., Nat. Photon. 12, 18 (2018)).",
    )


class ConversionSection(_Section):
    """Quantum frequency conversion (QFC) to the telecom band, per node."""

    enabled: bool = Field(description="Whether photons are frequency-converted before the fiber.")
    output_wavelength_nm: float = Field(
        gt=100.0,
        lt=3000.0,
        description="Wavelength after conversion, nm (1315 for the O band). Ignored if disabled.",
    )
    efficiency: float = Field(
        gt=0.0,
        le=1.0,
        description="End-to-end conversion efficiency, fiber to fiber, including filtering. "
        "Ignored if disabled.",
    )
    noise_rate_hz: float = Field(
        ge=0.0,
        le=1e9,
        description="Rate of noise photons (e.g. pump-induced Raman) emitted by the converter "
        "into the photon's spectral and polarisation mode after filtering, counts/s. They "
        "travel the fiber like the signal. Ignored if disabled.",
    )


class FiberSection(_Section):
    """The two fiber arms from the nodes to the middle station."""

    loss_db_per_km: float = Field(
        ge=0.0,
        le=100.0,
        description="Fiber attenuation at the operating wavelength (after conversion, if any), "
        "dB/km (≈ 0.33 in the O band at 1315 nm, ≈ 0.2 at 1550 nm, ≈ 3–4 at 780 nm).",
    )
    group_index: float = Field(
        ge=1.0,
        le=2.0,
        description="Group index of the fiber (≈ 1.468 for SMF-28); sets propagation delays.",
    )


class DetectionSection(_Section):
    """Single-photon detectors at the middle station."""

    efficiency: float = Field(
        gt=0.0, le=1.0, description="Detector efficiency at the operating wavelength."
    )
    dark_count_rate_hz: float = Field(
        ge=0.0, le=1e8, description="Dark-count rate of each detector, counts/s."
    )
    window_s: float = Field(
        gt=0.0,
        le=1e-3,
        description="Width of the detection window in which a click counts as a herald, s.",
    )


class InterferometerSection(_Section):
    """The optical interference at the middle station."""

    phase_noise_rad: float = Field(
        ge=0.0,
        le=10.0,
        description="RMS residual optical phase error between the two arms after "
        "stabilisation, rad (Gaussian). SPI coherence scales as exp(−σ²/2); two-photon "
        "heralding is insensitive to it.",
    )
    photon_indistinguishability: float = Field(
        ge=0.0,
        le=1.0,
        description="Two-photon interference visibility V = |⟨ψ_A|ψ_B⟩|² of the two nodes' "
        "photons (spectral, temporal, polarisation overlap; includes recoil-induced "
        "which-path information). SPI coherence scales as √V, two-photon as V.",
    )


class TimingSection(_Section):
    """The attempt loop and the fraction of time the link runs."""

    local_attempt_time_s: float = Field(
        gt=0.0,
        le=1.0,
        description="Local time per entanglement attempt (state preparation, excitation, "
        "emission), s. Each attempt additionally waits for the herald signal to return from "
        "the station, so the attempt period is this plus the round-trip delay of the longer arm.",
    )
    measurement_time_s: float = Field(
        ge=0.0,
        le=10.0,
        description="Time spent after a herald on the Bell-test measurement (basis rotation, "
        "readout, re-initialisation) before attempts resume, s.",
    )
    duty_cycle: float = Field(
        gt=0.0,
        le=1.0,
        description="Fraction of wall-clock time the link runs attempts (the rest: atom "
        "loading, calibration, phase stabilisation, cooling).",
    )


class MeasurementSection(_Section):
    """The Bell-test measurement devices."""

    angle_error_rad: float = Field(
        ge=0.0,
        le=3.2,
        description="RMS error of each measurement-basis angle, rad (Gaussian jitter, "
        "independent per party); shrinks every correlator by exp(−σ²/2) per party.",
    )
    key_basis: Literal["optimal", "readout"] = Field(
        "optimal",
        description="Alice's key setting (x = 0). 'optimal': the direction of strongest "
        "correlation of the heralded state (lowest QBER). 'readout': the atoms' natural "
        "readout basis Z (|↑⟩/|↓⟩), measured without a basis rotation. Bob's key setting is "
        "aligned with Alice's, and the CHSH settings are optimal given Alice's key setting.",
    )


class Profile(_Section):
    """A validated, frozen hardware profile. Load with :func:`diqkd.profiles.load_profile`."""

    schema_version: Literal[1] = Field(description="Version of this profile schema (1).")
    name: str = Field(min_length=1, max_length=100, description="Short name of the profile.")
    description: str = Field("", max_length=4000, description="What this profile describes.")
    sources: str = Field(
        "", max_length=8000, description="Which values are published, which assumed, and why."
    )
    heralding: HeraldingSection
    atom: AtomSection
    conversion: ConversionSection
    fiber: FiberSection
    detection: DetectionSection
    interferometer: InterferometerSection
    timing: TimingSection
    measurement: MeasurementSection

    @model_validator(mode="after")
    def _check_scheme_parameters(self) -> Profile:
        alpha = self.atom.bright_state_population
        if self.heralding.scheme == "spi" and alpha is None:
            raise ValueError(
                "atom.bright_state_population is required for SPI heralding "
                "(allowed: 0 < value <= 0.5)"
            )
        if self.heralding.scheme == "two-photon" and alpha is not None:
            raise ValueError(
                "atom.bright_state_population applies to SPI heralding only; remove it for "
                "heralding.scheme = 'two-photon'"
            )
        return self

    @property
    def operating_wavelength_nm(self) -> float:
        """Wavelength in the fiber: the converted one if conversion is enabled."""
        if self.conversion.enabled:
            return self.conversion.output_wavelength_nm
        return self.atom.emission_wavelength_nm

    def to_dict(self) -> dict[str, Any]:
        """The profile as plain data (what its TOML file holds)."""
        return self.model_dump(mode="json")

    def content_hash(self) -> str:
        """SHA-256 (hex) of the canonical JSON of the profile's content, for provenance."""
        canonical = json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()


def schema_reference() -> list[tuple[str, str, str, str]]:
    """Every profile key as ``(dotted key, type, allowed range, meaning)``, in file order."""
    from diqkd.profiles.loader import describe_range

    rows: list[tuple[str, str, str, str]] = []

    def walk(model: type[BaseModel], prefix: str) -> None:
        for name, info in model.model_fields.items():
            ann = info.annotation
            if isinstance(ann, type) and issubclass(ann, BaseModel):
                walk(ann, f"{prefix}{name}.")
                continue
            rows.append(
                (
                    f"{prefix}{name}",
                    _type_name(ann),
                    describe_range(info),
                    " ".join((info.description or "").split()),
                )
            )

    walk(Profile, "")
    return rows


def _type_name(ann: Any) -> str:
    args = get_args(ann)
    if get_origin(ann) is Literal:
        return "one of " + ", ".join(f"`{a!r}`" for a in args)
    if type(None) in args:
        inner = [a for a in args if a is not type(None)]
        return f"{_type_name(inner[0])} (optional)"
    return str(getattr(ann, "__name__", ann))


def schema_markdown() -> str:
    """The key reference as a Markdown table (embedded in ``docs/profiles.md``)."""
    lines = ["| key | type | allowed | meaning |", "|---|---|---|---|"]
    for row in schema_reference():
        key, type_name, allowed, meaning = (cell.replace("|", "\\|") for cell in row)
        lines.append(f"| `{key}` | {type_name} | {allowed} | {meaning} |")
    return "\n".join(lines) + "\n"
