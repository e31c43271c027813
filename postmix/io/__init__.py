"""Reading and writing postmix data: raw public formats in, postmix records out."""

from postmix.io.dataset import load_records, save_records
from postmix.io.formats import FORMATS, convert, detect_format
from postmix.io.ingest import IngestResult, ingest
from postmix.io.read import RawRow, file_type, iter_raw_rows
from postmix.io.write import RowWriter, rejects_path, report_path

__all__ = [
    "FORMATS",
    "IngestResult",
    "RawRow",
    "RowWriter",
    "convert",
    "detect_format",
    "file_type",
    "ingest",
    "iter_raw_rows",
    "load_records",
    "rejects_path",
    "report_path",
    "save_records",
]
