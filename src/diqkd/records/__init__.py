"""Round records of a DI-QKD experiment: the versioned schema, readers, writers, validation.

One row per heralded event: ``round`` (uint64 attempt counter), ``t_s`` (float64 herald time,
s), ``x``/``y`` (uint8 inputs; ``y = 2`` is Bob's key setting, aligned with ``x = 0``) and
``a``/``b`` (uint8 outcomes). Parquet is the main format, CSV the import/export format; both
carry :class:`RecordsMetadata`. See ``docs/records.md``.
"""

from diqkd.records.container import Records
from diqkd.records.csv_io import read_csv_records, write_csv_records
from diqkd.records.files import (
    convert_records,
    iter_records,
    read_metadata,
    read_records,
    records_format,
)
from diqkd.records.parquet_io import RecordsWriter, write_records
from diqkd.records.schema import COLUMNS, METADATA_KEY, SCHEMA_VERSION, RecordsMetadata
from diqkd.records.stats import RecordsSummary, summary

__all__ = [
    "COLUMNS",
    "METADATA_KEY",
    "SCHEMA_VERSION",
    "Records",
    "RecordsMetadata",
    "RecordsSummary",
    "RecordsWriter",
    "convert_records",
    "iter_records",
    "read_csv_records",
    "read_metadata",
    "read_records",
    "records_format",
    "summary",
    "write_csv_records",
    "write_records",
]
