"""Tables of the key store (SQLAlchemy Core); the Alembic migrations create exactly these.

Every row belongs to one site, so that one database may hold several sites' stores.

``kms_meta``
    Per-site facts: the sealed master-key check.
``kms_blocks``
    One row per stored block and site: ID, length, keyed digest, certificate summary, and this
    site's allocation window ``[alloc_start, alloc_end)`` with its cursor ``alloc_next``.
``kms_segments``
    The block's bits in :data:`~diqkd.kms._store_crypto.SEGMENT_BITS`-bit segments, each sealed
    (``sealed`` is NULL once every bit of the segment is consumed). ``erased_bits`` counts the
    zeroed bits, ``version`` the rewrites (it is part of the associated data).
``kms_keys``
    One row per key carved from a block: where it lies, who may have it, its state, and (for
    keys reserved here) whether the peer acknowledged the reservation.
"""

from __future__ import annotations

from typing import Final

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)

#: Alembic's version table for the key store (its own name: the database may be shared).
VERSION_TABLE: Final = "kms_alembic_version"
#: The newest migration revision shipped with this diqkd.
HEAD_REVISION: Final = "0001"

# Key states.
DELIVERED_TO_MASTER: Final = "delivered_to_master"
RESERVED: Final = "reserved"
DELIVERED_TO_SLAVE: Final = "delivered_to_slave"
ERASED: Final = "erased"
STATES: Final = (DELIVERED_TO_MASTER, RESERVED, DELIVERED_TO_SLAVE, ERASED)

metadata = MetaData()

meta = Table(
    "kms_meta",
    metadata,
    Column("site", String(8), primary_key=True),
    Column("name", String(64), primary_key=True),
    Column("value", LargeBinary, nullable=False),
)

blocks = Table(
    "kms_blocks",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("site", String(8), nullable=False),
    Column("block_id", String(36), nullable=False),
    Column("n_bits", BigInteger, nullable=False),
    Column("digest", LargeBinary(32), nullable=False),
    Column("certificate", Text, nullable=False),
    Column("created_utc", String(40), nullable=False),
    Column("imported_utc", String(40), nullable=False),
    Column("alloc_start", BigInteger, nullable=False),
    Column("alloc_end", BigInteger, nullable=False),
    Column("alloc_next", BigInteger, nullable=False),
    UniqueConstraint("site", "block_id", name="uq_kms_blocks_site_block"),
)
Index("ix_kms_blocks_site_id", blocks.c.site, blocks.c.id)

segments = Table(
    "kms_segments",
    metadata,
    Column(
        "block_pk",
        Integer,
        ForeignKey("kms_blocks.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    Column("idx", Integer, primary_key=True),
    Column("n_bits", Integer, nullable=False),
    Column("erased_bits", Integer, nullable=False),
    Column("version", Integer, nullable=False),
    Column("sealed", LargeBinary, nullable=True),
)

keys = Table(
    "kms_keys",
    metadata,
    Column("site", String(8), primary_key=True),
    Column("key_id", String(36), primary_key=True),
    Column("block_pk", Integer, ForeignKey("kms_blocks.id", ondelete="CASCADE"), nullable=False),
    Column("offset_bits", BigInteger, nullable=False),
    Column("size_bits", Integer, nullable=False),
    Column("master_sae", Text, nullable=False),
    Column("slave_saes", Text, nullable=False),
    Column("delivered_to", Text, nullable=False),
    Column("state", String(24), nullable=False),
    Column("local", Boolean, nullable=False),
    Column("synced", Boolean, nullable=False),
    Column("created_utc", String(40), nullable=False),
    Column("updated_utc", String(40), nullable=False),
)
Index("ix_kms_keys_block_offset", keys.c.block_pk, keys.c.offset_bits)
Index("ix_kms_keys_site_state", keys.c.site, keys.c.state)
Index("ix_kms_keys_site_synced", keys.c.site, keys.c.local, keys.c.synced)
