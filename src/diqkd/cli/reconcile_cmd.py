"""``diqkd reconcile``: reconcile two bit strings, verify, and report the leak."""

from __future__ import annotations

import time
from enum import StrEnum
from pathlib import Path
from typing import Any

import numpy as np
import typer
from numpy.typing import NDArray
from rich.table import Table

from diqkd.cli._common import console, emit_json, fail, fmt
from diqkd.errors import VerificationFailed
from diqkd.postproc import LeakLedger, efficiency, reconcile, verification_tag, verify_keys
from diqkd.postproc.verify import DEFAULT_TAG_BITS, epsilon_ec, new_verification_key

__all__ = ["read_bits", "reconcile_cmd"]


class BitFormat(StrEnum):
    """On-disk format of a bit string."""

    auto = "auto"
    packed = "packed"
    npy = "npy"
    text = "text"


class ReconcileMethod(StrEnum):
    """Reconciliation method."""

    auto = "auto"
    cascade = "cascade"
    ldpc = "ldpc"


class LdpcCodes(StrEnum):
    """LDPC code family."""

    random = "random"
    qc = "qc"


class LdpcStartOption(StrEnum):
    """LDPC operating point of the first syndrome."""

    efficient = "efficient"
    fast = "fast"


def read_bits(path: Path, fmt_: BitFormat) -> NDArray[np.uint8]:
    """Read a bit string: packed bytes (MSB first, numpy ``packbits`` order), ``.npy`` or text."""
    if fmt_ is BitFormat.auto:
        suffix = path.suffix.lower()
        fmt_ = {".npy": BitFormat.npy, ".txt": BitFormat.text}.get(suffix, BitFormat.packed)
    try:
        if fmt_ is BitFormat.npy:
            try:
                arr = np.load(path, allow_pickle=False)
            except ValueError as exc:
                raise fail(f"{path}: not a .npy array of bits ({exc})") from None
            if arr.ndim != 1 or arr.dtype.kind not in "biu":
                raise fail(
                    f"{path}: expected a 1-D integer or bool array, got {arr.dtype}{arr.shape}"
                )
            if arr.size and (arr.min() < 0 or arr.max() > 1):
                raise fail(f"{path}: values must be 0 or 1")
            bits = arr.astype(np.uint8)
        elif fmt_ is BitFormat.text:
            text = "".join(path.read_text(encoding="ascii").split())
            bad = set(text) - {"0", "1"}
            if bad:
                raise fail(f"{path}: text format takes only '0' and '1', found {sorted(bad)[:3]}")
            bits = np.frombuffer(text.encode(), dtype=np.uint8) - ord("0")
        else:
            bits = np.unpackbits(np.frombuffer(path.read_bytes(), dtype=np.uint8))
    except FileNotFoundError:
        raise fail(f"{path}: no such file") from None
    except UnicodeDecodeError:
        raise fail(f"{path}: text format takes only '0' and '1' (file is not ASCII)") from None
    except OSError as exc:
        raise fail(f"{path}: cannot read ({exc.strerror or exc})") from None
    if bits.size == 0:
        raise fail(f"{path}: the bit string is empty")
    return np.ascontiguousarray(bits, dtype=np.uint8)


def reconcile_cmd(
    alice: Path = typer.Option(..., "--alice", help="Alice's bit string."),
    bob: Path = typer.Option(..., "--bob", help="Bob's bit string."),
    fmt_: BitFormat = typer.Option(
        BitFormat.auto, "--format", help="packed | npy | text (auto: by suffix, else packed)."
    ),
    method: ReconcileMethod = typer.Option(ReconcileMethod.auto, "--method"),
    qber: float | None = typer.Option(
        None, "--qber", help="Known QBER; without it a sample is disclosed and discarded."
    ),
    seed: int | None = typer.Option(None, "--seed", min=0, help="Seed of the public shuffles."),
    ldpc_codes: LdpcCodes = typer.Option(
        LdpcCodes.random,
        "--ldpc-codes",
        help="LDPC codes: random or qc (quasi-cyclic, ≥ 65536 bits: about the same leak, faster).",
    ),
    ldpc_start: LdpcStartOption = typer.Option(
        LdpcStartOption.efficient,
        "--ldpc-start",
        help="LDPC operating point: efficient (least leak) or fast (f₀ ≥ 1.15, ~25 iterations).",
    ),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON document."),
) -> None:
    """Reconcile Bob's key to Alice's, verify with a universal hash, report leak and efficiency.

    Exit 0 if reconciled and verified, 1 if verification failed, 2 on bad input.
    """
    a, b = read_bits(alice, fmt_), read_bits(bob, fmt_)
    if a.size != b.size:
        raise fail(f"Alice has {a.size} bits and Bob {b.size}: the strings must be equally long")
    if qber is not None and not 0.0 <= qber < 0.5:
        raise fail(f"--qber must lie in [0, 0.5), got {qber}")
    started = time.perf_counter()
    ledger = LeakLedger()
    result = reconcile(
        a, b, method=method.value, qber=qber, rng_seed_for_public_shuffles=seed, ledger=ledger,
        ldpc_codes=ldpc_codes.value, ldpc_start=ldpc_start.value,
    )  # fmt: skip
    kept = result.kept_indices
    alice_kept = a[kept]
    # Verification (fresh universal-hash key from the OS CSPRNG, drawn after reconciliation).
    key = new_verification_key()
    tag = verification_tag(alice_kept, key)
    ledger.add_tag(DEFAULT_TAG_BITS)
    success = True
    try:
        verify_keys(tag, result.bob_corrected, key)
    except VerificationFailed:
        success = False
    elapsed = time.perf_counter() - started
    errors = int(np.count_nonzero(result.bob_corrected != b[kept]))
    qber_actual = errors / max(kept.size, 1)
    doc: dict[str, Any] = {
        "success": success,
        "n_bits": int(a.size),
        "kept_bits": int(kept.size),
        "qber": qber_actual,
        "qber_estimate": result.qber_estimate,
        "leaked_bits": ledger.leaked_bits,
        "correction_bits": result.correction_bits,
        "sample_bits": result.sample_bits,
        "tag_bits": DEFAULT_TAG_BITS,
        "efficiency": efficiency(ledger.leaked_bits, int(a.size), qber_actual),
        "efficiency_correction": efficiency(result.correction_bits, int(kept.size), qber_actual),
        "rounds": result.rounds,
        "method": result.method,
        "ldpc_codes": ldpc_codes.value if result.method == "ldpc" else None,
        "ldpc_start": ldpc_start.value if result.method == "ldpc" else None,
        "epsilon_ec": epsilon_ec(int(kept.size)),
        "seconds": elapsed,
    }
    if as_json:
        emit_json(doc)
    else:
        table = Table(title=f"reconciliation — {result.method}")
        table.add_column("quantity")
        table.add_column("value", justify="right")
        for k, v in doc.items():
            table.add_row(k, fmt(v) if isinstance(v, float) else str(v))
        console.print(table)
        if not success:
            console.print("[red]verification failed: the keys differ; discard them[/red]")
    if not success:
        raise typer.Exit(1)
