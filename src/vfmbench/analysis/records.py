"""Analysis records on disk: every analysis writes `<out>/<name>.json` whose `schema` is
`vfmbench.analysis.<name>/<version>`, plus the figures the record lists (paths relative to `<out>`).
Reports read any of them back through `read_record` and render `markdown()` and `figures`."""

from __future__ import annotations

import importlib
import math
from pathlib import Path
from typing import Any, Protocol

from vfmbench.utils.errors import DatasetError, VfmbenchError
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

    Raises DatasetError naming the file when it is not JSON, has no analysis schema, names an
    unknown analysis, is saved under another analysis' file name (a PHID0 record as
    ``reconstruct.json``) or is malformed for its analysis (every error of the record class is
    given again with the file's path). Figures the record lists but the folder lacks are not an
    error here: `missing_figures` names them."""
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
    if path.stem in RECORD_TYPES and path.stem != name:
        raise DatasetError(f"{path}: the file is named for the {path.stem!r} analysis but holds a {name!r} record "
                           f"(schema {schema!r}); rename it {name}.json or write it again with vfmbench analyze {name}")
    module, cls = RECORD_TYPES[name].split(":")
    try:
        return getattr(importlib.import_module(module), cls).from_dict(data)
    except VfmbenchError as exc:
        raise DatasetError(f"{path}: {exc}") from exc
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise DatasetError(f"{path}: {name} record is malformed ({type(exc).__name__}: {exc}); write it again "
                           f"with vfmbench analyze {name}") from exc


def missing_figures(record: AnalysisRecord, folder: str | Path) -> list[str]:
    """The figure files `record` lists (relative to `folder`, the record's folder) that `folder`
    lacks, in the record's order; empty when every one is there. Reports call it to say which
    figure is gone instead of showing a broken image."""
    folder = Path(folder)
    return [f for f in (getattr(record, "figures", None) or []) if not (folder / f).is_file()]


def missing_note(record: AnalysisRecord, folder: str | Path) -> str:
    """The line a report shows for `missing_figures` ("" when none is missing)."""
    missing = missing_figures(record, folder)
    return f"*Figures listed by the record but missing next to it: {', '.join(missing)}.*" if missing else ""


# analysis name (the NAME of its schema vfmbench.analysis.NAME/N) -> the title a report shows
ANALYSIS_TITLES = {
    "reconstruct": "Reconstruction",
    "phid": "PHID0",
    "vat": "Visual Alignment Testing",
    "saliency": "FullGrad saliency",
}


def analysis_title(record: Any) -> str:
    """A human title for an analysis record: its own `title` if it has one, else `ANALYSIS_TITLES`
    by the analysis name in its schema, else that name."""
    own = getattr(record, "title", None)
    if isinstance(own, str) and own.strip():
        return own.strip()
    schema = str(getattr(record, "schema", ""))
    name = schema.removeprefix("vfmbench.analysis.").split("/")[0]
    return ANALYSIS_TITLES.get(name, name or schema)


def find_records(folder: str | Path) -> list[Path]:
    """Analysis record files under `folder` (recursively), sorted."""
    return sorted(p for p in Path(folder).rglob("*.json")
                  if p.stem in RECORD_TYPES and p.is_file())


def md_cell(value: Any) -> str:
    """`value` as text for one markdown table cell: a ``|`` (which would end the cell) escaped as
    ``\\|`` and line breaks made spaces. Every record's `markdown` writes its cells through it."""
    return str(value).replace("\\", "\\\\").replace("|", "\\|").replace("\r", " ").replace("\n", " ")


def json_safe(value: Any) -> Any:
    """`value` with non-finite floats written as the strings "inf", "-inf", "nan" (JSON has no
    inf/nan), through dicts and lists; `json_number` reads them back."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, list):
        return [json_safe(v) for v in value]
    return value


def json_number(value: Any) -> Any:
    """The inverse of `json_safe` for a value or a list of values."""
    if isinstance(value, str) and value in ("inf", "-inf", "nan"):
        return float(value)
    if isinstance(value, list):
        return [json_number(v) for v in value]
    return value
