"""The runs index: one SQLite row per job (stdlib `sqlite3`, WAL mode, short transactions).

A row holds the job's identity (`spec_hash`: sha256 of its canonical spec JSON), its spec, its
axis values, its status (``pending`` -> ``running`` -> ``done`` | ``failed``, with the error text),
timings (unix seconds), the machine that ran it and, when done, its record as JSON. Only the
sweep's own process writes (workers return records to it), so no two processes of one sweep
write at once; several sweeps sharing an index are serialised by SQLite's lock (`BEGIN
IMMEDIATE`, a 30 s busy timeout) and a job is claimed with one conditional UPDATE, so two sweeps
never run the same job. A running row names its owner (host, pid): when that process is gone
(killed, crashed) the row is stale and `release_stale` puts it back to pending, so nothing is
marked running forever and no finished job is lost (a record is committed as soon as it arrives).
Schema: docs/sweeps.md.
"""

from __future__ import annotations

import json
import os
import platform
import sqlite3
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from vfmbench.utils.errors import ConfigError
from vfmbench.utils.io import pid_alive

SCHEMA_VERSION = 1
APPLICATION_ID = 0x76666D62  # "vfmb": PRAGMA application_id of every runs index
STATUSES = ("pending", "running", "done", "failed")
_SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    spec_hash   TEXT NOT NULL UNIQUE,
    sweep       TEXT NOT NULL,
    kind        TEXT NOT NULL,
    key         TEXT NOT NULL,
    task        TEXT NOT NULL,
    encoder     TEXT NOT NULL,
    method      TEXT NOT NULL,
    mask        TEXT NOT NULL,
    seed        INTEGER NOT NULL,
    status      TEXT NOT NULL CHECK (status IN ('pending', 'running', 'done', 'failed')),
    error       TEXT,
    spec_json   TEXT NOT NULL,
    record_json TEXT,
    created     REAL NOT NULL,
    started     REAL,
    finished    REAL,
    seconds     REAL,
    host        TEXT,
    pid         INTEGER,
    attempts    INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS jobs_sweep ON jobs (sweep);
CREATE INDEX IF NOT EXISTS jobs_status ON jobs (status);
"""
FILTERS = ("status", "sweep", "task", "encoder", "method", "mask", "kind")


def default_index_path() -> Path:
    """``$VFMBENCH_HOME/runs.sqlite``: the index every sweep, `runs` and `report` use unless told."""
    from vfmbench.utils.paths import home

    return home() / "runs.sqlite"


@dataclass
class IndexRow:
    """One job of the index (times: unix seconds; `seconds`: the job's wall time)."""

    id: int
    spec_hash: str
    sweep: str
    kind: str
    key: str
    task: str
    encoder: str
    method: str
    mask: str
    seed: int
    status: str
    error: str | None
    spec_json: str
    record_json: str | None
    created: float
    started: float | None
    finished: float | None
    seconds: float | None
    host: str | None
    pid: int | None
    attempts: int

    def _load(self, column: str, text: str, build: Any) -> Any:
        """`build(parsed JSON)`; a corrupt column raises one-line `CorruptRowError` naming the row and the fix."""
        try:
            return build(json.loads(text))
        except (ValueError, TypeError, KeyError) as exc:  # JSONDecodeError, ConfigError, a wrong shape
            msg = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise CorruptRowError(f"index row {self.id} ({self.key}): its {column} is unreadable ({msg}); "
                                  f"remove the row with `vfmbench runs rm {self.id}` (a sweep reruns the job)") from None

    def spec(self) -> Any:
        """The job's spec (`JobSpec` or `RLJobSpec`); `CorruptRowError` if the stored spec is unreadable."""
        from vfmbench.experiments.grid import spec_from_json

        return self._load("spec", self.spec_json,
                          lambda d: spec_from_json(self.kind, d, source=f"index row {self.id} spec"))

    def record(self) -> Any | None:
        """The job's typed record (`RunRecord` or `RLRunRecord`); None unless done; `CorruptRowError`
        (one line naming the row id and `vfmbench runs rm ID`) if the stored record is unreadable."""
        from vfmbench.experiments.grid import record_from_json

        if self.record_json is None:
            return None
        return self._load("record", self.record_json,
                          lambda d: record_from_json(self.kind, d, source=f"index row {self.id} record"))

    def record_error(self) -> str | None:
        """None if the record is absent or readable, else the `CorruptRowError` line."""
        try:
            self.record()
        except CorruptRowError as exc:
            return str(exc)
        return None

    @property
    def stale(self) -> bool:
        """A running row of this host whose owner process is gone (its sweep was killed or crashed)."""
        return (self.status == "running" and self.host == platform.node()
                and (self.pid is None or not pid_alive(self.pid)))

    def display_status(self) -> str:
        """`status`, or ``running (stale: owner pid N gone)`` for a stale row (the next sweep reruns it)."""
        return f"running (stale: owner pid {self.pid} gone)" if self.stale else self.status

    def summary(self) -> dict[str, Any]:
        """The row without its JSON columns, times as ISO strings (what `vfmbench runs list` shows)."""
        d = {k: v for k, v in asdict(self).items() if k not in ("spec_json", "record_json")}
        for k in ("created", "started", "finished"):
            d[k] = None if d[k] is None else time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(d[k]))
        d["seconds"] = None if d["seconds"] is None else round(d["seconds"], 1)
        d["hash"] = self.spec_hash[:12]
        d["status"] = self.display_status()
        return d


class CorruptRowError(ConfigError):
    """A row's stored spec or record JSON cannot be read back."""


class RunsIndex:
    """The index file at `path`. One object per process: it holds a connection and is not picklable.

    `create=True` (sweeps) makes the file with its schema if absent; `create=False` (``runs``,
    ``report``) refuses a missing file and writes nothing to open it. Either way an existing file
    must be a vfmbench index (`APPLICATION_ID`, or a version-1 index with its ``jobs`` table) or an
    empty database (create only): any other SQLite file is refused untouched."""

    def __init__(self, path: str | Path | None = None, create: bool = True):
        self.path = Path(path) if path is not None else default_index_path()
        if not create and not self.path.is_file():
            raise ConfigError(f"index {self.path} does not exist; run a sweep first or pass --index")
        if create:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            uri = f"{self.path.resolve().as_uri()}?mode={'rwc' if create else 'rw'}"
            self._db = sqlite3.connect(uri, uri=True, timeout=30.0, isolation_level=None)
            self._db.row_factory = sqlite3.Row
            kind = self._identify()  # reads only: nothing is written to a file that is not ours
            if kind == "empty" and not create:
                raise ConfigError(f"{self.path} is an empty database, not a vfmbench runs index; "
                                  "run a sweep first or pass --index")
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")  # WAL: a commit survives a process crash
            if kind != "current":
                self._db.executescript("BEGIN IMMEDIATE;" + _SCHEMA + f"PRAGMA user_version={SCHEMA_VERSION}; "
                                       f"PRAGMA application_id={APPLICATION_ID}; COMMIT;")
        except sqlite3.DatabaseError as exc:
            raise ConfigError(f"{self.path} is not a usable runs index ({exc}); pass another --index") from exc

    def _identify(self) -> str:
        """``current`` (a vfmbench index), ``legacy`` (a version-1 index made before `APPLICATION_ID`),
        ``empty`` (no tables: ours to initialise); `ConfigError` for anything else."""
        app = self._db.execute("PRAGMA application_id").fetchone()[0]
        version = self._db.execute("PRAGMA user_version").fetchone()[0]
        tables = {r[0] for r in self._db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        if app == APPLICATION_ID:
            if version != SCHEMA_VERSION:
                raise ConfigError(f"{self.path}: runs index schema {version}, this vfmbench reads "
                                  f"{SCHEMA_VERSION}; use another --index")
            return "current"
        if app == 0 and version == 0 and not tables:
            return "empty"
        if app == 0 and version == SCHEMA_VERSION and "jobs" in tables:
            cols = {r[1] for r in self._db.execute("PRAGMA table_info(jobs)")}
            if {"spec_hash", "sweep", "status", "spec_json", "record_json"} <= cols:
                return "legacy"
        raise ConfigError(f"{self.path} is not a vfmbench runs index (another program's SQLite database: "
                          f"application_id {app}, tables {', '.join(sorted(tables)) or 'none'}); it was left "
                          "untouched; pass another --index")

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> RunsIndex:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __getstate__(self) -> None:
        raise TypeError("a RunsIndex belongs to the process that opened it; workers return records instead")

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """One short write transaction (taken at once, so concurrent sweeps queue instead of deadlocking)."""
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield self._db
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    # -- writing -------------------------------------------------------------------------------------
    def add(self, jobs: Iterable[Any]) -> int:
        """Insert `jobs` (`GridJob`s) as pending rows, leaving rows already there untouched; returns how many are new."""
        now = time.time()
        rows = [(j.spec_hash, j.sweep, j.kind, j.key, j.task, j.encoder, j.method, j.mask, j.seed,
                 json.dumps(asdict(j.spec), default=str), now) for j in jobs]
        with self._write() as db:
            before = db.total_changes
            db.executemany("INSERT OR IGNORE INTO jobs (spec_hash, sweep, kind, key, task, encoder, method, mask, "
                           "seed, status, spec_json, created) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 'pending', ?, ?)",
                           rows)
            return db.total_changes - before

    def claim(self, spec_hash: str, pid: int | None = None, host: str | None = None) -> bool:
        """Mark a pending job running, owned by (`host`, `pid`; default this process); False if it
        was not pending (done, failed, or claimed by another sweep)."""
        with self._write() as db:
            cur = db.execute("UPDATE jobs SET status='running', started=?, finished=NULL, seconds=NULL, host=?, "
                             "pid=?, attempts=attempts+1 WHERE spec_hash=? AND status='pending'",
                             (time.time(), host or platform.node(), pid or os.getpid(), spec_hash))
            return cur.rowcount == 1

    def finish(self, spec_hash: str, record: Any) -> None:
        """Store a running job's record (a dataclass with `host`) and mark it done."""
        now = time.time()
        with self._write() as db:
            db.execute("UPDATE jobs SET status='done', error=NULL, record_json=?, finished=?, seconds=?-started, "
                       "host=?, pid=NULL WHERE spec_hash=?",
                       (json.dumps(asdict(record), default=str), now, now, getattr(record, "host", None), spec_hash))

    def fail(self, spec_hash: str, error: str) -> None:
        """Mark a job failed with `error` (the text `runs show` prints)."""
        now = time.time()
        with self._write() as db:
            db.execute("UPDATE jobs SET status='failed', error=?, finished=?, seconds=?-started, pid=NULL "
                       "WHERE spec_hash=?", (error, now, now, spec_hash))

    def release(self, spec_hashes: Iterable[str], note: str) -> None:
        """Put running jobs back to pending (their sweep stopped before they finished), noting why."""
        with self._write() as db:
            db.executemany("UPDATE jobs SET status='pending', error=?, pid=NULL WHERE spec_hash=? AND status='running'",
                           [(note, h) for h in spec_hashes])

    def release_stale(self) -> list[IndexRow]:
        """Running rows of this host whose owner process is gone go back to pending; returns them.
        (Rows owned on other hosts cannot be checked from here: `vfmbench runs rm` clears them.)"""
        host = platform.node()
        stale = [r for r in self.rows(status="running") if r.host == host and (r.pid is None or not pid_alive(r.pid))]
        for r in stale:
            with self._write() as db:
                db.execute("UPDATE jobs SET status='pending', pid=NULL, error=? WHERE id=? AND status='running' "
                           "AND pid IS ?", (f"interrupted: its sweep (pid {r.pid} on {host}) ended while it ran",
                                            r.id, r.pid))
        return stale

    def retry_failed(self, spec_hashes: Iterable[str]) -> int:
        """Failed jobs among `spec_hashes` back to pending (their error is kept until they run); returns how many."""
        with self._write() as db:
            before = db.total_changes
            db.executemany("UPDATE jobs SET status='pending' WHERE spec_hash=? AND status='failed'",
                           [(h,) for h in spec_hashes])
            return db.total_changes - before

    def remove(self, ids: Iterable[int]) -> int:
        """Delete rows by id (run folders stay on disk); returns how many."""
        with self._write() as db:
            before = db.total_changes
            db.executemany("DELETE FROM jobs WHERE id=?", [(i,) for i in ids])
            return db.total_changes - before

    # -- reading -------------------------------------------------------------------------------------
    def rows(self, spec_hashes: Iterable[str] | None = None, **filters: str | list[str] | None) -> list[IndexRow]:
        """Rows in insertion order, filtered by `FILTERS` (a value or a list of values each;
        None: any) and optionally by spec hash. Unknown filters raise `ConfigError`."""
        unknown = sorted(set(filters) - set(FILTERS))
        if unknown:
            raise ConfigError(f"unknown runs filter {unknown[0]!r}; filters: {', '.join(FILTERS)}")
        where, args = [], []
        for key, value in filters.items():
            if value is None:
                continue
            values = [value] if isinstance(value, str) else list(value)
            if key == "status":
                bad = [v for v in values if v not in STATUSES]
                if bad:
                    raise ConfigError(f"unknown status {bad[0]!r}; statuses: {', '.join(STATUSES)}")
            where.append(f"{key} IN ({', '.join('?' * len(values))})")
            args += values
        sql = "SELECT * FROM jobs" + (" WHERE " + " AND ".join(where) if where else "") + " ORDER BY id"
        rows = [IndexRow(**dict(r)) for r in self._db.execute(sql, args)]
        if spec_hashes is not None:
            wanted = set(spec_hashes)
            rows = [r for r in rows if r.spec_hash in wanted]
        return rows

    def get(self, ref: str) -> IndexRow:
        """One row by id or by a spec-hash prefix (at least 6 characters); `ConfigError` if none or ambiguous."""
        if ref.isdigit():
            rows = [IndexRow(**dict(r)) for r in self._db.execute("SELECT * FROM jobs WHERE id=?", (int(ref),))]
        elif len(ref) >= 6:
            rows = [IndexRow(**dict(r)) for r in self._db.execute("SELECT * FROM jobs WHERE spec_hash LIKE ?",
                                                                  (ref.lower() + "%",))]
        else:
            raise ConfigError(f"{ref!r}: give a row id or at least 6 characters of a spec hash")
        if len(rows) != 1:
            raise ConfigError(f"{ref!r} matches {len(rows)} rows of {self.path}; `vfmbench runs list` shows ids")
        return rows[0]

    def reset_unreadable(self, spec_hashes: Iterable[str]) -> list[IndexRow]:
        """Done rows among `spec_hashes` whose record cannot be read back go back to pending (the job
        reruns; nothing readable is lost); returns them, as they were."""
        bad = [r for r in self.rows(spec_hashes, status="done") if r.record_error() is not None]
        with self._write() as db:
            db.executemany("UPDATE jobs SET status='pending', record_json=NULL, error=? WHERE id=? AND status='done'",
                           [(f"its record was unreadable and is run again: {r.record_error()}", r.id) for r in bad])
        return bad

    def counts(self, spec_hashes: Iterable[str] | None = None) -> dict[str, int]:
        """Jobs per status (every status present, 0 when none)."""
        out = dict.fromkeys(STATUSES, 0)
        for r in self.rows(spec_hashes):
            out[r.status] += 1
        return out


def parse_filters(items: Iterable[str]) -> dict[str, list[str]]:
    """``KEY=VALUE[,VALUE...]`` strings (as ``--runs`` takes them) -> filters for `RunsIndex.rows`."""
    out: dict[str, list[str]] = {}
    for item in items:
        for part in item.split():
            if "=" not in part:
                raise ConfigError(f"runs filter {part!r}: write KEY=VALUE, KEY one of {', '.join(FILTERS)} "
                                  "(e.g. sweep=demo,status=done is two filters: sweep=demo status=done)")
            key, value = part.split("=", 1)
            if key not in FILTERS:
                raise ConfigError(f"unknown runs filter {key!r}; filters: {', '.join(FILTERS)}")
            out.setdefault(key, []).extend(v for v in value.split(",") if v)
    return out
