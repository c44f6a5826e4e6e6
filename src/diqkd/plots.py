"""Plots (optional extra ``diqkd[plot]``): matplotlib is imported only when a plot is asked for."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from diqkd.errors import DiqkdError

__all__ = ["plot_link"]


def _pyplot(out: Path) -> Any:
    """matplotlib.pyplot on the Agg backend, after checking the output suffix."""
    if out.suffix.lower() not in {".png", ".pdf", ".svg"}:
        raise DiqkdError(f"plot file must end in .png, .pdf or .svg, got {out.name!r}")
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise DiqkdError(
            "plotting needs matplotlib: install the plot extra, pip install 'diqkd[plot]'"
        ) from None
    return plt


def _save(plt: Any, fig: Any, out: Path, title: str) -> Path:
    fig.suptitle(title)
    fig.tight_layout()
    try:
        fig.savefig(out, dpi=120)
    except OSError as exc:
        raise DiqkdError(f"cannot write plot {str(out)!r}: {exc.strerror or exc}") from None
    finally:
        plt.close(fig)
    return out


def plot_link(
    curve: Sequence[dict[str, float]],
    marks: Sequence[dict[str, float]],
    out: Path,
    *,
    title: str,
) -> Path:
    """Plot S, QBER, fidelity and heralded-event rate against distance into ``out`` (PNG/PDF/SVG).

    ``curve`` is a dense sweep (lines), ``marks`` the requested distances (points); both are
    lists of :meth:`diqkd.physics.LinkPoint.summary` dictionaries.
    """
    plt = _pyplot(out)
    fig, axes = plt.subplots(2, 2, figsize=(10, 7), sharex=True)
    panels = [
        ("chsh", "CHSH value S", axes[0][0]),
        ("qber", "QBER (key rounds)", axes[0][1]),
        ("fidelity", "fidelity to Ψ⁺", axes[1][0]),
        ("herald_rate_hz", "heralded events per second", axes[1][1]),
    ]
    d_curve = [p["distance_km"] for p in curve]
    d_marks = [p["distance_km"] for p in marks]
    for key, label, ax in panels:
        ax.plot(d_curve, [p[key] for p in curve], color="C0")
        ax.plot(d_marks, [p[key] for p in marks], "o", color="C1")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
    axes[0][0].axhline(2.0, color="grey", ls="--", lw=1, label="local bound 2")
    axes[0][0].axhline(2 * 2**0.5, color="grey", ls=":", lw=1, label="Tsirelson 2√2")
    axes[0][0].legend(loc="lower left", fontsize=8)
    axes[1][1].set_yscale("log")
    for ax in axes[1]:
        ax.set_xlabel("fiber length (km)")
    return _save(plt, fig, out, title)


def plot_rates(
    curve: Sequence[dict[str, float]],
    marks: Sequence[dict[str, float]],
    out: Path,
    *,
    title: str,
) -> Path:
    """Key bits per attempt against the PLOB bound (per channel use), and key bits per second.

    ``curve``/``marks`` are rows of ``diqkd rate --profile`` (keys ``distance_km``,
    ``key_bits_per_attempt``, ``plob_bits_per_attempt``, ``key_bits_per_s``).
    """
    plt = _pyplot(out)
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.5))
    d = [p["distance_km"] for p in curve]
    dm = [p["distance_km"] for p in marks]
    left.semilogy(d, [p["plob_bits_per_attempt"] for p in curve], "k--", label="PLOB bound")
    left.semilogy(d, [max(p["key_bits_per_attempt"], 1e-300) for p in curve], label="DI-QKD")
    left.semilogy(dm, [max(p["key_bits_per_attempt"], 1e-300) for p in marks], "o", color="C1")
    left.set_ylabel("secret bits per attempt (channel use)")
    left.legend()
    right.semilogy(d, [max(p["key_bits_per_s"], 1e-300) for p in curve], label="DI-QKD")
    right.semilogy(dm, [max(p["key_bits_per_s"], 1e-300) for p in marks], "o", color="C1")
    right.set_ylabel("secret bits per second")
    for ax in (left, right):
        ax.set_xlabel("fiber length (km)")
        ax.grid(alpha=0.3, which="both")
        positive = [p["key_bits_per_s"] for p in curve if p["key_bits_per_s"] > 0]
        if ax is right and positive:
            ax.set_ylim(min(positive) / 10, max(positive) * 10)
    return _save(plt, fig, out, title)
