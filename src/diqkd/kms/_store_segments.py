"""Opened segments of one block inside one transaction: read bits, erase bits, re-seal.

A :class:`SegmentView` decrypts the segments a transaction touches once, serves bit ranges from
them, zeroes consumed ranges, and writes back only the changed segments: re-sealed under a new
version number, or without any ciphertext once every bit of the segment is consumed.
"""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import bindparam, select, update
from sqlalchemy.engine import Connection

from diqkd.errors import KeyStoreError
from diqkd.kms import _store_schema as sch
from diqkd.kms._store_crypto import SEGMENT_BITS, Sealer, read_bits, segment_span, zero_bits

_t = sch.segments
# Built once: SQLAlchemy caches the compiled form, but building the statement costs more.
_SELECT = select(_t.c.idx, _t.c.n_bits, _t.c.erased_bits, _t.c.version, _t.c.sealed).where(
    _t.c.block_pk == bindparam("pk"), _t.c.idx.in_(bindparam("idx", expanding=True))
)
_UPDATE = (
    update(_t)
    .where(_t.c.block_pk == bindparam("b_pk"), _t.c.idx == bindparam("b_idx"))
    .values(
        erased_bits=bindparam("b_erased"),
        version=bindparam("b_version"),
        sealed=bindparam("b_sealed"),
    )
)
_SEGMENT_BYTES = SEGMENT_BITS // 8


class SegmentView:
    """The opened segments of one block inside one transaction (the block row is locked)."""

    def __init__(
        self, conn: Connection, sealer: Sealer, block_pk: int, block_id: str, idx: Iterable[int]
    ) -> None:
        self._block_pk = block_pk
        self._block_id = block_id
        self._sealer = sealer
        self._plain: dict[int, bytes | bytearray | None] = {}
        self._info: dict[int, tuple[int, int, int]] = {}  # idx -> (n_bits, erased, version)
        self._dirty: set[int] = set()
        rows = conn.execute(_SELECT, {"pk": block_pk, "idx": sorted(set(idx))}).all()
        for r in rows:
            self._info[r.idx] = (r.n_bits, r.erased_bits, r.version)
            self._plain[r.idx] = (
                None
                if r.sealed is None
                else sealer.open(
                    r.sealed, block_id=block_id, index=r.idx, n_bits=r.n_bits, version=r.version
                )
            )

    def _require(self, start: int, size: int) -> dict[int, bytes | bytearray]:
        out = {}
        for i in segment_span(start, size):
            plain = self._plain.get(i)
            if plain is None:
                raise KeyStoreError(
                    f"block {self._block_id} has no bits left in segment {i}, yet a live key "
                    "lies there: the store is inconsistent; restore it from a backup"
                )
            out[i] = plain
        return out

    def read(self, start: int, size: int) -> bytes:
        """Bits ``[start, start + size)`` of the block, packed MSB first."""
        plains = self._require(start, size)
        if start % 8 == 0 and size % 8 == 0:  # whole bytes (ETSI sizes): slice them
            first, last = start // 8, (start + size) // 8
            return b"".join(
                bytes(
                    plain[
                        max(first - i * _SEGMENT_BYTES, 0) : min(
                            last - i * _SEGMENT_BYTES, _SEGMENT_BYTES
                        )
                    ]
                )
                for i, plain in plains.items()
            )
        return read_bits(plains, start, size)

    def erase(self, start: int, size: int) -> None:
        """Zero bits ``[start, start + size)`` (written back by :meth:`flush`)."""
        plains = self._require(start, size)
        if start % 8 == 0 and size % 8 == 0:  # whole bytes (ETSI sizes): zero them
            first, last = start // 8, (start + size) // 8
            for i, plain in plains.items():
                lo = max(first - i * _SEGMENT_BYTES, 0)
                hi = min(last - i * _SEGMENT_BYTES, len(plain))
                buf = plain if isinstance(plain, bytearray) else bytearray(plain)
                buf[lo:hi] = bytes(hi - lo)
                n_bits, erased, version = self._info[i]
                self._plain[i] = buf
                self._info[i] = (n_bits, erased + 8 * (hi - lo), version)
                self._dirty.add(i)
            return
        for i, plain in plains.items():
            new, n = zero_bits(plain, i, start, size)
            n_bits, erased, version = self._info[i]
            self._plain[i] = new
            self._info[i] = (n_bits, erased + n, version)
            self._dirty.add(i)

    def flush(self, conn: Connection) -> None:
        """Re-seal every changed segment (or drop its ciphertext once it is fully consumed)."""
        if not self._dirty:
            return
        params = []
        for i in sorted(self._dirty):
            n_bits, erased, version = self._info[i]
            plain = self._plain[i]
            sealed = (
                None
                if erased >= n_bits or plain is None
                else self._sealer.seal(
                    bytes(plain),
                    block_id=self._block_id,
                    index=i,
                    n_bits=n_bits,
                    version=version + 1,
                )
            )
            params.append(
                {
                    "b_pk": self._block_pk,
                    "b_idx": i,
                    "b_erased": erased,
                    "b_version": version + 1,
                    "b_sealed": sealed,
                }
            )
            self._info[i] = (n_bits, erased, version + 1)
        conn.execute(_UPDATE, params)
        self._dirty.clear()
