"""Experiments: the job unit (`run_job`: one run trained and evaluated, typed spec in, typed
record out) and the demo grid built from jobs."""

from vfmbench.experiments.job import RUN_SCHEMA, EvalSpec, JobSpec, RunRecord, job_for_run, run_job
from vfmbench.experiments.demo import RESULTS_SCHEMA, DemoConfig, DemoResults, read_results, run_demo

__all__ = ["RESULTS_SCHEMA", "RUN_SCHEMA", "DemoConfig", "DemoResults", "EvalSpec", "JobSpec", "RunRecord",
           "job_for_run", "read_results", "run_demo", "run_job"]
