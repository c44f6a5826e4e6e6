"""Initial key store schema: meta, blocks, sealed segments, keys.

Revision ID: 0001
Revises:
Create Date: 2026-11-27
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision: str | None = None
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    """Create the four tables of the key store and their indexes."""
    op.create_table(
        "kms_meta",
        sa.Column("site", sa.String(8), primary_key=True),
        sa.Column("name", sa.String(64), primary_key=True),
        sa.Column("value", sa.LargeBinary, nullable=False),
    )
    op.create_table(
        "kms_blocks",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("site", sa.String(8), nullable=False),
        sa.Column("block_id", sa.String(36), nullable=False),
        sa.Column("n_bits", sa.BigInteger, nullable=False),
        sa.Column("digest", sa.LargeBinary(32), nullable=False),
        sa.Column("certificate", sa.Text, nullable=False),
        sa.Column("created_utc", sa.String(40), nullable=False),
        sa.Column("imported_utc", sa.String(40), nullable=False),
        sa.Column("alloc_start", sa.BigInteger, nullable=False),
        sa.Column("alloc_end", sa.BigInteger, nullable=False),
        sa.Column("alloc_next", sa.BigInteger, nullable=False),
        sa.UniqueConstraint("site", "block_id", name="uq_kms_blocks_site_block"),
    )
    op.create_index("ix_kms_blocks_site_id", "kms_blocks", ["site", "id"])
    op.create_table(
        "kms_segments",
        sa.Column(
            "block_pk",
            sa.Integer,
            sa.ForeignKey("kms_blocks.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("idx", sa.Integer, primary_key=True),
        sa.Column("n_bits", sa.Integer, nullable=False),
        sa.Column("erased_bits", sa.Integer, nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("sealed", sa.LargeBinary, nullable=True),
    )
    op.create_table(
        "kms_keys",
        sa.Column("site", sa.String(8), primary_key=True),
        sa.Column("key_id", sa.String(36), primary_key=True),
        sa.Column(
            "block_pk",
            sa.Integer,
            sa.ForeignKey("kms_blocks.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("offset_bits", sa.BigInteger, nullable=False),
        sa.Column("size_bits", sa.Integer, nullable=False),
        sa.Column("master_sae", sa.Text, nullable=False),
        sa.Column("slave_saes", sa.Text, nullable=False),
        sa.Column("delivered_to", sa.Text, nullable=False),
        sa.Column("state", sa.String(24), nullable=False),
        sa.Column("local", sa.Boolean, nullable=False),
        sa.Column("synced", sa.Boolean, nullable=False),
        sa.Column("created_utc", sa.String(40), nullable=False),
        sa.Column("updated_utc", sa.String(40), nullable=False),
    )
    op.create_index("ix_kms_keys_block_offset", "kms_keys", ["block_pk", "offset_bits"])
    op.create_index("ix_kms_keys_site_state", "kms_keys", ["site", "state"])
    op.create_index("ix_kms_keys_site_synced", "kms_keys", ["site", "local", "synced"])


def downgrade() -> None:
    """Drop the key store's tables (destroys every stored key)."""
    op.drop_table("kms_keys")
    op.drop_table("kms_segments")
    op.drop_table("kms_blocks")
    op.drop_table("kms_meta")
