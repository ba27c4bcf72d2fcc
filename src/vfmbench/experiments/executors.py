"""Executors and the sweep driver: jobs go out to workers, records come back into the index.

Three executors share one small interface (`submit` a `GridJob`, `wait` for finished ones,
`slots` jobs in flight): `InProcessExecutor` (the default: one job at a time in this process,
with its progress bars), `PoolExecutor` (local worker processes, `concurrent.futures` with the
spawn start method) and `RayExecutor` (Ray tasks on a local or remote cluster, each with its
CPU and GPU request; extra ``ray``). Workers only run jobs and return records or error texts;
the sweep's process alone writes the index (`run_jobs`), committing each record as it arrives.
A job that raises is recorded failed with its traceback; a worker that dies (killed, out of
memory, a crash in native code) fails its job with the executor's error, never losing it.
"""

from __future__ import annotations

import dataclasses
import multiprocessing
import os
import time
import traceback
from abc import ABC, abstractmethod
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vfmbench.experiments.grid import GridJob, GridSpec, check_available, expand, prepare_data, run_grid_job
from vfmbench.experiments.index import IndexRow, RunsIndex
from vfmbench.utils.errors import ConfigError
from vfmbench.utils.imports import require
from vfmbench.utils.io import exit_with_parent, write_json_atomic

JobFn = Callable[[GridJob], Any]
EXECUTORS = ("inprocess", "pool", "ray")


@dataclass
class JobOutcome:
    """A finished job: its record, or the error text (exception and traceback, or how the worker died)."""

    job: GridJob
    record: Any | None
    error: str | None


def call_job(fn: JobFn, job: GridJob, threads: int | None = None) -> tuple[Any | None, str | None]:
    """Run `fn(job)` in a worker: ``(record, None)``, or ``(None, error text)`` if it raised."""
    if threads is not None:
        import torch

        torch.set_num_threads(threads)
    try:
        return fn(job), None
    except Exception as exc:  # recorded in the index; the sweep goes on with the other jobs
        return None, f"{type(exc).__name__}: {exc}\n\n{traceback.format_exc()}"


class Executor(ABC):
    """Runs jobs somewhere; `slots` of them at once."""

    name: str
    slots: int

    @abstractmethod
    def submit(self, job: GridJob) -> None:
        """Start `job` (at most `slots` are in flight)."""

    @abstractmethod
    def wait(self) -> list[JobOutcome]:
        """Block until at least one job in flight finishes; return the finished ones."""

    def close(self) -> None:
        """Release workers (jobs still in flight are abandoned)."""

    def __enter__(self) -> Executor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class InProcessExecutor(Executor):
    """One job at a time in this process (progress bars of the job show)."""

    name = "inprocess"
    slots = 1

    def __init__(self, fn: JobFn = run_grid_job):
        self.fn = fn
        self._queue: deque[GridJob] = deque()

    def submit(self, job: GridJob) -> None:
        self._queue.append(job)

    def wait(self) -> list[JobOutcome]:
        job = self._queue.popleft()
        record, error = call_job(self.fn, job)
        return [JobOutcome(job, record, error)]


class PoolExecutor(Executor):
    """`workers` local processes (spawn start method), each job with ``cpu_count // workers`` torch threads.

    A worker that dies breaks the pool: every job in flight then is recorded failed (the pool
    cannot tell which one killed it; ``--retry-failed`` reruns them) and a fresh pool takes the rest."""

    name = "pool"

    def __init__(self, workers: int = 2, fn: JobFn = run_grid_job):
        if workers < 1:
            raise ConfigError(f"--workers must be at least 1, got {workers}")
        self.slots = workers
        self.fn = fn
        self.threads = max(1, (os.cpu_count() or 1) // workers)
        self._pool: ProcessPoolExecutor | None = None
        self._futures: dict[Future, GridJob] = {}

    def _get_pool(self) -> ProcessPoolExecutor:
        if self._pool is None:
            self._pool = ProcessPoolExecutor(max_workers=self.slots, mp_context=multiprocessing.get_context("spawn"),
                                             initializer=exit_with_parent, initargs=(os.getpid(),))
        return self._pool

    def submit(self, job: GridJob) -> None:
        self._futures[self._get_pool().submit(call_job, self.fn, job, self.threads)] = job

    def wait(self) -> list[JobOutcome]:
        done, _ = wait(list(self._futures), return_when=FIRST_COMPLETED)
        out, broken = [], False
        for fut in done:
            job = self._futures.pop(fut)
            try:
                record, error = fut.result()
            except BrokenProcessPool as exc:
                broken = True
                record, error = None, (f"a worker process died while this job ran (BrokenProcessPool: {exc}); "
                                       "jobs in flight with it are failed too; rerun with --retry-failed")
            out.append(JobOutcome(job, record, error))
        if broken:  # the rest of the in-flight jobs share the broken pool's fate; start afresh
            for fut, job in list(self._futures.items()):
                out.append(JobOutcome(job, None, "a worker process of the pool died while this job was in flight; "
                                                 "rerun with --retry-failed"))
            self._futures.clear()
            self.close()
        return out

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None


class RayExecutor(Executor):
    """Ray tasks: `cpus` CPUs per job, `gpus` GPUs per job that uses CUDA (device ``cuda*``, or
    ``auto`` on a cluster with GPUs), no retries (a failed job is recorded, rerun on request).

    `address`: None starts a local cluster of `workers` CPUs (default: every core); else
    ``auto`` or ``ray://HOST:10001`` joins a running one (its nodes need vfmbench installed
    and the sweep's folder on a shared file system)."""

    name = "ray"

    def __init__(self, address: str | None = None, workers: int | None = None, cpus: float = 1.0, gpus: float = 1.0,
                 fn: JobFn = run_grid_job):
        ray = require("ray", extra="ray")
        self._ray = ray
        self.fn = fn
        self.cpus, self.gpus = cpus, gpus
        env = {k: os.environ[k] for k in ("MUJOCO_GL", "VFMBENCH_HOME") if k in os.environ}
        if address is None:
            ray.init(num_cpus=workers or os.cpu_count(), include_dashboard=False, log_to_driver=False,
                     runtime_env={"env_vars": env}, configure_logging=False)
        else:
            ray.init(address=address, runtime_env={"env_vars": {k: v for k, v in env.items() if k == "MUJOCO_GL"}},
                     log_to_driver=False, configure_logging=False)
        resources = ray.cluster_resources()
        self.cluster_gpus = float(resources.get("GPU", 0))
        self.slots = max(1, int(float(resources.get("CPU", 1)) // cpus))
        self._remote = ray.remote(max_retries=0)(call_job)
        self._refs: dict[Any, GridJob] = {}

    def job_gpus(self, job: GridJob) -> float:
        """GPUs requested for `job`: `gpus` if it runs on CUDA (``auto``: if the cluster has GPUs), else 0."""
        cuda = job.uses_cuda
        return self.gpus if (cuda or (cuda is None and self.cluster_gpus > 0)) else 0.0

    def submit(self, job: GridJob) -> None:
        threads = max(1, int(self.cpus))
        ref = self._remote.options(num_cpus=self.cpus, num_gpus=self.job_gpus(job)).remote(self.fn, job, threads)
        self._refs[ref] = job

    def wait(self) -> list[JobOutcome]:
        ready, _ = self._ray.wait(list(self._refs), num_returns=1)
        out = []
        for ref in ready:
            job = self._refs.pop(ref)
            try:
                record, error = self._ray.get(ref)
            except self._ray.exceptions.RayError as exc:  # the worker died, the node went away, ...
                record, error = None, f"ray: {type(exc).__name__}: {exc}"
            out.append(JobOutcome(job, record, error))
        return out

    def close(self) -> None:
        if self._ray.is_initialized():
            self._ray.shutdown()


def default_pool_workers() -> int:
    """The pool's default size: one worker per CPU core, at most 4 (each job gets its share of the
    cores as torch threads)."""
    return max(1, min(4, os.cpu_count() or 1))


def make_executor(name: str, workers: int | None = None, address: str | None = None, gpus_per_job: float = 1.0,
                  cpus_per_job: float = 1.0) -> Executor:
    """An executor by name (`EXECUTORS`); `ConfigError` for unknown names."""
    if name == "inprocess":
        return InProcessExecutor()
    if name == "pool":
        return PoolExecutor(workers or default_pool_workers())
    if name == "ray":
        return RayExecutor(address=address, workers=workers, cpus=cpus_per_job, gpus=gpus_per_job)
    raise ConfigError(f"unknown executor {name!r}; executors: {', '.join(EXECUTORS)}")


def run_jobs(jobs: Sequence[GridJob], index: RunsIndex, executor: Executor, progress: bool = True,
             on_outcome: Callable[[JobOutcome], None] | None = None) -> None:
    """Run pending `jobs` through `executor`, `executor.slots` at a time: each is claimed in the
    index (skipped if another sweep holds it), and its record or error is committed the moment it
    comes back. On an interrupt the jobs in flight go back to pending."""
    from tqdm.auto import tqdm

    queue = deque(jobs)
    in_flight: dict[str, GridJob] = {}
    inprocess = isinstance(executor, InProcessExecutor)
    bar = tqdm(total=len(jobs), desc=f"sweep ({executor.name})", unit="job", disable=not progress)
    try:
        while queue or in_flight:
            while queue and len(in_flight) < executor.slots:
                job = queue.popleft()
                if not index.claim(job.spec_hash):
                    bar.update(1)
                    continue
                if progress and inprocess:  # a job's own bars only where they can show
                    job = dataclasses.replace(job, spec=dataclasses.replace(job.spec, progress=True))
                in_flight[job.spec_hash] = job
                executor.submit(job)
            if not in_flight:
                break
            for outcome in executor.wait():
                h = outcome.job.spec_hash
                in_flight.pop(h, None)
                if outcome.error is None:
                    index.finish(h, outcome.record)
                else:
                    index.fail(h, outcome.error)
                bar.update(1)
                if on_outcome is not None:
                    on_outcome(outcome)
    finally:
        bar.close()
        if in_flight:
            index.release(list(in_flight), "interrupted: its sweep stopped before it finished")


def _warn_replaced(jobs: Sequence[GridJob], index: RunsIndex, log: Callable[[str], None]) -> None:
    """Say when rows of another spec (e.g. the grid changed) already own some of these jobs' run
    folders: this spec's jobs use them too, and `report` counts a folder once (the newest record)."""
    import json

    mine = {str(Path(j.spec.out).resolve()): j.spec_hash for j in jobs}
    other = []
    for row in index.rows(sweep=list({j.sweep for j in jobs})):
        if row.spec_hash in mine.values():
            continue
        try:
            out = json.loads(row.spec_json).get("out")
        except (ValueError, AttributeError):
            continue
        if out is not None and str(Path(out).resolve()) in mine:
            other.append(row.id)
    if other:
        log(f"[sweep] {len(other)} run folder(s) of this grid hold a run of another spec (index rows "
            f"{', '.join(map(str, other[:10]))}{', ...' if len(other) > 10 else ''}); this spec's jobs use the "
            "same folders, and a report counts each folder once (its newest record)")


@dataclass
class SweepResult:
    """What a sweep ended with: its jobs (in grid order) and their index rows."""

    grid: GridSpec
    jobs: list[GridJob]
    rows: list[IndexRow]  # one per job, same order
    ran: int  # jobs run by this call (done or failed now)
    seconds: float

    def records(self) -> list[Any]:
        """Typed records of the done jobs, in grid order (a row whose record is unreadable is left out)."""
        return [r.record() for r in self.rows if r.status == "done" and r.record_error() is None]

    @property
    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for r in self.rows:
            out[r.status] = out.get(r.status, 0) + 1
        return out


def longest_first(jobs: Sequence[GridJob]) -> list[GridJob]:
    """`jobs` in the order a pool runs them best: those whose encoder trains jointly (several times
    longer than a job on cached features) first, since a pool that started them last would end
    with one of them running alone while its other slots idle; within each group seed by seed (in
    axis order otherwise), so that the first jobs of different encoders compute their embeddings
    side by side instead of one seed waiting for another's computation of the same embeddings."""
    from vfmbench.encoders import ENCODERS

    def trains_encoder(job: GridJob) -> bool:
        return job.kind == "offline" and job.encoder in ENCODERS and ENCODERS.get(job.encoder).trainable

    return sorted(jobs, key=lambda job: (not trains_encoder(job), job.seed))


def run_sweep(grid: GridSpec, out: str | Path, index: RunsIndex, executor: Executor, retry_failed: bool = False,
              progress: bool = True, log: Callable[[str], None] = print,
              on_outcome: Callable[[JobOutcome], None] | None = None) -> SweepResult:
    """Run `grid` into `out`: check what it needs (before any work), collect its data, expand it,
    add its jobs to `index` and run the pending ones (stale ones, whose sweep died, included;
    done ones whose stored record is unreadable too; failed ones with `retry_failed`). Done jobs are never rerun; a rerun of the same command
    finishes only what is missing. Raises `ConfigError` when the grid cannot run here."""
    t0 = time.time()
    out = Path(out)
    check_available(grid)
    out.mkdir(parents=True, exist_ok=True)
    write_json_atomic(out / "grid.json", dataclasses.asdict(grid))
    # the data is collected here with as many processes as the executor runs jobs on this machine
    frames = prepare_data(grid, out, progress=progress, log=log, workers=min(executor.slots, os.cpu_count() or 1))
    jobs = expand(grid, out, frames)
    hashes = [j.spec_hash for j in jobs]
    index.add(jobs)
    stale = index.release_stale()
    if stale:
        log(f"[sweep] {len(stale)} job(s) left running by a sweep that ended are pending again")
    _warn_replaced(jobs, index, log)
    for row in index.reset_unreadable(hashes):
        log(f"[sweep] index row {row.id} ({row.key}) was done but its record is unreadable; it runs again")
    if retry_failed:
        index.retry_failed(hashes)
    rows = {r.spec_hash: r for r in index.rows(hashes)}
    todo = longest_first([j for j in jobs if rows[j.spec_hash].status == "pending"])
    c = index.counts(hashes)
    log(f"[sweep] {grid.name}: {len(jobs)} jobs, {c['done']} done, {len(todo)} to run, {c['failed']} failed"
        + (" (--retry-failed reruns them)" if c["failed"] else "")
        + (f", {c['running']} running in another sweep" if c["running"] else "")
        + f"; executor {executor.name} ({executor.slots} at a time); index {index.path}")
    run_jobs(todo, index, executor, progress=progress, on_outcome=on_outcome)
    final = {r.spec_hash: r for r in index.rows(hashes)}
    return SweepResult(grid, jobs, [final[h] for h in hashes], len(todo), round(time.time() - t0, 1))
