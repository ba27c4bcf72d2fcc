"""Analysis records on disk: every analysis writes `<out>/<name>.json` whose `schema` is
`vfmbench.analysis.<name>/<version>`, plus the figures the record lists (paths relative to `<out>`).
Reports read any of them back through `read_record` and render `markdown()` and `figures`."""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any, Protocol

from vfmbench.utils.errors import DatasetError
from vfmbench.utils.io import read_json

SCHEMA_PREFIX = "vfmbench.analysis."

# analysis name -> "module:RecordClass"; each class has `from_dict`, `to_dict`, `markdown` and `figures`.
RECORD_TYPES = {
    "reconstruct": "vfmbench.analysis.reconstruct:ReconstructionRecord",
    "phid": "vfmbench.analysis.phid:PhidRecord",
    "vat": "vfmbench.analysis.vat:VatRecord",
    "saliency": "vfmbench.analysis.saliency:SaliencyRecord",
}


class AnalysisRecord(Protocol):
    """What every analysis record offers to reports."""

    schema: str
    figures: list[str]  # figure files, relative to the record's folder

    def to_dict(self) -> dict[str, Any]: ...

    def markdown(self) -> str: ...


def read_record(path: str | Path) -> AnalysisRecord:
    """Read an analysis record (`<out>/<name>.json`) back as its typed record.

    Raises DatasetError naming the file when it is not JSON, has no analysis schema, or names an
    unknown analysis."""
    path = Path(path)
    try:
        data = read_json(path)
    except (OSError, ValueError) as exc:
        raise DatasetError(f"{path}: not a readable analysis record ({exc})") from exc
    schema = data.get("schema", "") if isinstance(data, dict) else ""
    if not isinstance(schema, str) or not schema.startswith(SCHEMA_PREFIX):
        raise DatasetError(f"{path}: not an analysis record (schema {schema!r}, expected {SCHEMA_PREFIX}NAME/N)")
    name = schema[len(SCHEMA_PREFIX):].split("/")[0]
    if name not in RECORD_TYPES:
        raise DatasetError(f"{path}: unknown analysis {name!r}; known: {', '.join(RECORD_TYPES)}")
    module, cls = RECORD_TYPES[name].split(":")
    return getattr(importlib.import_module(module), cls).from_dict(data)


def find_records(folder: str | Path) -> list[Path]:
    """Analysis record files under `folder` (recursively), sorted."""
    return sorted(p for p in Path(folder).rglob("*.json")
                  if p.stem in RECORD_TYPES and p.is_file())
