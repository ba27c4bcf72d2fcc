"""Sweeps: grid files and presets, expansion into jobs, executors (in-process, pool, Ray), and a
sweep killed with kill -9 that a rerun finishes without redoing what was done."""

import json
import re
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from vfmbench.cli import app
from vfmbench.evaluation import EvalResult
from vfmbench.experiments import RunRecord
from vfmbench.experiments.executors import InProcessExecutor, PoolExecutor, longest_first, run_jobs
from vfmbench.experiments.grid import GRID_PRESETS, GridSpec, expand, load_grid
from vfmbench.experiments.index import RunsIndex
from vfmbench.training import TrainRecord
from vfmbench.utils.config import from_dict
from vfmbench.utils.errors import ConfigError

ROOT = Path(__file__).resolve().parents[1]


def _grid(**over):
    data = {"name": "t", "axes": {"tasks": ["fetch_reach"], "encoders": ["state", "e2e_cnn"], "seeds": [0, 1]},
            "dataset": {"paths": {"fetch_reach": "/nonexistent/data"}}}
    data.update(over)
    return from_dict(GridSpec, data, source="test grid")


def test_example_grid_parses_and_expands(tmp_path):
    grid = load_grid(ROOT / "examples" / "grid.yaml")
    jobs = expand(grid, tmp_path)
    assert [(j.encoder, j.seed) for j in jobs] == [("state", 0), ("state", 1), ("e2e_cnn", 0), ("e2e_cnn", 1)]
    state, e2e = jobs[0].spec, jobs[2].spec
    assert state.run.train.steps == 300 and e2e.run.train.steps == 60 and e2e.run.method_config["batch_size"] == 32
    assert state.eval.robustness == ["distractor"] and state.eval.episodes == 5
    assert state.out == str(tmp_path.resolve() / "runs" / "fetch_reach" / "bc_state_s0")
    assert len({j.spec_hash for j in jobs}) == 4 and jobs[0].spec_hash == expand(grid, tmp_path)[0].spec_hash


def test_exclusions_run_names_and_errors():
    jobs = expand(_grid(exclude=[{"encoder": "e2e_cnn", "seed": 1}]), "/tmp/x")
    assert [(j.encoder, j.seed) for j in jobs] == [("state", 0), ("state", 1), ("e2e_cnn", 0)]
    with pytest.raises(ConfigError, match="two jobs the run folder"):
        expand(_grid(run_names="{task}_{encoder}"), "/tmp/x")
    with pytest.raises(ConfigError, match="unknown key 'seedz' in test grid.axes"):
        from_dict(GridSpec, {"name": "t", "axes": {"tasks": ["fetch_reach"], "seedz": [0]}}, source="test grid")
    with pytest.raises(ConfigError, match=r"exclude\[0\]"):
        _grid(exclude=[{"colour": "red"}])
    with pytest.raises(ConfigError, match="axes.seeds is empty"):
        _grid(axes={"tasks": ["fetch_reach"], "seeds": []})
    with pytest.raises(ConfigError, match="methods are agents"):
        _grid(kind="rl", axes={"tasks": ["dmc_walker_walk"], "methods": ["bc"]})


def test_jobs_that_train_their_encoder_run_first_then_seed_by_seed():
    jobs = expand(_grid(axes={"tasks": ["fetch_reach"], "encoders": ["state", "e2e_cnn", "random_resnet18"],
                              "seeds": [0, 1]}), "/tmp/x")
    assert [(j.encoder, j.seed) for j in longest_first(jobs)] == [
        ("e2e_cnn", 0), ("e2e_cnn", 1), ("state", 0), ("random_resnet18", 0), ("state", 1), ("random_resnet18", 1)]


def test_rl_grids_expand_to_rl_jobs():
    from vfmbench.rl import RLJobSpec

    grid = _grid(kind="rl", axes={"tasks": ["dmc_cartpole_swingup"], "encoders": ["default"], "methods": ["drqv2"],
                                  "masks": ["none", "oracle"], "shifts": ["color_hard"], "seeds": [0]},
                 rl={"frames": 2000, "preset": "samg"}, dataset={})
    jobs = expand(grid, "/tmp/x")
    assert [j.mask for j in jobs] == ["none", "oracle"] and all(isinstance(j.spec, RLJobSpec) for j in jobs)
    plain, masked = (j.spec for j in jobs)
    assert plain.run.frames == 2000 and plain.run.agent_config.lr == 1e-3 and plain.shifts == ["none", "color_hard"]
    assert plain.run.mask is None and masked.run.mask == "oracle" and masked.out.endswith("_mask-oracle")


def test_presets_list_and_check_what_they_need_before_any_work(tmp_path, capsys):
    assert app(["sweep", "presets", "--json"]) == 0
    rows = {r["name"]: r for r in json.loads(capsys.readouterr().out)}
    assert {"demo", "demo_quick", "paper000_table1", "paper001_table3", "samg_table1"} <= set(rows)
    assert rows["samg_table1"]["kind"] == "rl" and rows["samg_table1"]["gpu"] == "yes" and rows["demo"]["jobs"] == 12
    for name in GRID_PRESETS.names():
        GRID_PRESETS.get(name).grid()  # every preset is a valid grid
    for name in ("paper000_table1", "samg_table1"):
        out = tmp_path / name
        assert app(["sweep", "--preset", name, "--out", str(out), "--no-progress"]) == 2
        err = capsys.readouterr().err
        assert "cannot run here; missing" in err and "vfmbench weights download" in err and not out.exists()


def _record(job, success=1.0):
    # defined here, not shared with test_runs_index: Ray workers unpickle `fake_job` by value and
    # cannot import another test module
    train = TrainRecord(schema="vfmbench.train/1", encoder_label=job.encoder, pretrained=False, goal_conditioned=False,
                        steps=10, batch_size=8, augment="cached", evals=[], best_k=3, best_k_mean_success=None,
                        train_seconds=1.0, prepare_seconds=0.0, device="cpu")
    ev = EvalResult(success_rate=success, success_any_rate=success, episodes=2, seeds=[0, 1], successes=[], seconds=1.0)
    return RunRecord(schema="vfmbench.run/1", task=job.task, encoder=job.encoder, encoder_label=job.encoder,
                     pretrained=False, method=job.method, goal_conditioned=False, seed=job.seed, train=train,
                     evaluation=ev, robustness=[], run_dir=job.spec.out, host=f"pid{os.getpid()}", seconds=0.0)


def fake_job(job):
    """Seed 1 raises, seed 2 kills its worker process, the others return a record."""
    if job.seed == 1:
        raise ValueError("seed 1 is cursed")
    if job.seed == 2:
        os._exit(3)
    return _record(job)


def _fake_jobs(tmp_path, seeds):
    return expand(_grid(axes={"tasks": ["fetch_reach"], "encoders": ["state"], "seeds": seeds}), tmp_path)


def _statuses(index):
    return {r.seed: (r.status, r.error or "") for r in index.rows()}


def test_in_process_executor_records_failures_and_goes_on(tmp_path):
    jobs = _fake_jobs(tmp_path, [0, 1, 3])
    with RunsIndex(tmp_path / "runs.sqlite") as index:
        index.add(jobs)
        run_jobs(jobs, index, InProcessExecutor(fn=fake_job), progress=False)
        s = _statuses(index)
        assert s[0][0] == "done" and s[3][0] == "done"
        assert s[1][0] == "failed" and s[1][1].startswith("ValueError: seed 1 is cursed") and "Traceback" in s[1][1]


def test_pool_executor_records_a_dead_worker_and_continues(tmp_path):
    jobs = _fake_jobs(tmp_path, [0, 1, 2, 3])
    with RunsIndex(tmp_path / "runs.sqlite") as index:
        index.add(jobs)
        with PoolExecutor(workers=1, fn=fake_job) as ex:  # one at a time: the crash is the job's own
            run_jobs(jobs, index, ex, progress=False)
        s = _statuses(index)
        assert s[0][0] == "done" and s[3][0] == "done"  # a fresh pool ran the job after the crash
        assert s[1][0] == "failed" and "cursed" in s[1][1]
        assert s[2][0] == "failed" and "worker process died" in s[2][1]
        hosts = {r.seed: r.record().host for r in index.rows(status="done")}
        assert all(h != f"pid{os.getpid()}" for h in hosts.values())  # ran in worker processes


def test_ray_executor_on_a_local_two_cpu_cluster(tmp_path):
    ray = pytest.importorskip("ray", reason="Ray is not installed: pip install 'vfmbench[ray]'")
    from vfmbench.experiments.executors import RayExecutor

    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])  # workers do not import the tests folder
    jobs = _fake_jobs(tmp_path, [0, 1, 2, 3])
    with RunsIndex(tmp_path / "runs.sqlite") as index:
        index.add(jobs)
        with RayExecutor(workers=2, fn=fake_job) as ex:
            assert ex.slots == 2 and ex.job_gpus(jobs[0]) == 0  # no GPU in the cluster: auto runs on CPU
            run_jobs(jobs, index, ex, progress=False)
        s = _statuses(index)
        assert s[0][0] == "done" and s[3][0] == "done"
        assert s[1][0] == "failed" and "cursed" in s[1][1]
        assert s[2][0] == "failed" and s[2][1].startswith("ray: ")  # the crashed worker's job: failed, not lost


def _tiny_grid_file(tmp_path, dataset, seeds):
    grid = {"name": "tiny", "axes": {"tasks": ["fetch_reach"], "encoders": ["state"], "seeds": seeds},
            "dataset": {"paths": {"fetch_reach": str(dataset)}},
            "train": {"steps": 10, "eval_episodes": 2}, "eval": {"episodes": 2, "envs": 2}}
    path = tmp_path / "grid.yaml"
    path.write_text(yaml.safe_dump(grid))
    return path


@pytest.mark.sim
def test_kill_9_mid_sweep_then_a_rerun_finishes_only_what_was_missing(reach_dataset, tmp_path):
    grid, out, db = _tiny_grid_file(tmp_path, reach_dataset.root, [0, 1]), tmp_path / "sweep", tmp_path / "runs.sqlite"
    args = ["sweep", "--config", str(grid), "--out", str(out), "--index", str(db), "--no-progress"]
    proc = subprocess.Popen([sys.executable, "-m", "vfmbench", *args], stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, env={**os.environ, "MUJOCO_GL": os.environ.get("MUJOCO_GL", "egl")})
    deadline = time.time() + 240
    try:
        while True:
            assert proc.poll() is None, f"the sweep ended before it was killed: {proc.stderr.read().decode()[-2000:]}"
            assert time.time() < deadline, "no job finished in time"
            if db.exists():
                with RunsIndex(db) as index:
                    counts = index.counts()
                    if counts["done"] >= 1 and counts["running"] == 1:  # killed mid-job, after the first
                        break
            time.sleep(0.3)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    with RunsIndex(db) as index:
        before = {r.seed: r for r in index.rows()}
    done = [s for s, r in before.items() if r.status == "done"]
    assert done and any(r.status == "running" and r.pid == proc.pid for r in before.values())
    assert app(args) == 0  # the rerun: stale rows pending again, done ones kept
    with RunsIndex(db) as index:
        after = {r.seed: r for r in index.rows()}
    assert all(r.status == "done" for r in after.values())
    for seed in done:  # never rerun
        assert after[seed].attempts == 1 and after[seed].finished == before[seed].finished
    assert any(r.attempts == 2 for r in after.values())  # the job killed mid-run ran again
    assert app(args) == 0  # a third run has nothing to do
    with RunsIndex(db) as index:
        assert [r.finished for r in index.rows()] == [after[s].finished for s in sorted(after)]


def test_ray_executor_without_ray_names_the_extra(monkeypatch):
    from vfmbench.experiments.executors import make_executor
    from vfmbench.utils.errors import MissingDependencyError

    monkeypatch.setitem(sys.modules, "ray", None)  # as if it were not installed
    with pytest.raises(MissingDependencyError, match=r"vfmbench\[ray\]"):
        make_executor("ray")


@pytest.mark.slow
@pytest.mark.sim
def test_sweep_command_on_ray_runs_real_jobs(reach_dataset, tmp_path, capsys):
    pytest.importorskip("ray", reason="Ray is not installed: pip install 'vfmbench[ray]'")
    grid, db = _tiny_grid_file(tmp_path, reach_dataset.root, [0, 1]), str(tmp_path / "runs.sqlite")
    args = ["sweep", "--config", str(grid), "--out", str(tmp_path / "sweep"), "--index", db, "--executor", "ray",
            "--workers", "2", "--no-progress"]
    assert app(args) == 0
    assert "tiny: 2 done; ran 2 job(s)" in capsys.readouterr().out
    with RunsIndex(db) as index:
        rows = index.rows()
        assert [r.status for r in rows] == ["done", "done"] and all(r.record().evaluation.episodes == 2 for r in rows)
    assert app(args) == 0 and "ran 0 job(s)" in capsys.readouterr().out  # nothing left to do


@pytest.mark.parametrize("text, message", [
    ("name: k\n", r"^k\.yaml: missing key 'axes'$"),
    ("", r"^k\.yaml: missing keys 'name', 'axes'$"),
    ("name: k\naxes: {tasks: [fetch_reach], encoders: [state, e2e_cnnn]}\n",
     r"^k\.yaml: axes\.encoders\[1\]: unknown encoder 'e2e_cnnn'; valid encoders: state, e2e_cnn"),
    ("name: k\naxes: {tasks: [fetch_reach, fetch_reachh]}\n", r"^k\.yaml: axes\.tasks\[1\]: unknown task 'fetch_reachh'"),
    ("name: k\naxes: {tasks: [fetch_reach], methods: [bc, bcc]}\n", r"^k\.yaml: axes\.methods\[1\]: unknown method 'bcc'"),
    ("name: k\naxes: {tasks: [fetch_reach], shifts: [nope]}\n", r"^k\.yaml: axes\.shifts\[0\]: unknown shift 'nope'"),
    ("name: k\naxes: {tasks: [fetch_reach], masks: [none, nope]}\n",
     r"^k\.yaml: axes\.masks\[1\]: unknown segmenter 'nope'"),
    ("name: k\nkind: rl\naxes: {tasks: [dmc_walker_walk], methods: [sac]}\n",
     r"^k\.yaml: axes\.methods\[0\]: unknown agent 'sac'"),
    ("name: k\naxes: {tasks: [fetch_reach]}\nexclude: [{colour: red}]\n", r"^k\.yaml: exclude\[0\]: must map"),
    ("name: k\naxes: [a\n", r"^k\.yaml:3:1: invalid YAML: expected ','"),
    ("name: k\naxes: {tasks: [fetch_reach]}\nname: j\n", r"^k\.yaml:3:1: invalid YAML: duplicate key 'name' \(first on line 1\)$"),
])
def test_grid_file_errors_name_the_file_and_the_key_in_one_line(tmp_path, text, message):
    (tmp_path / "k.yaml").write_text(text)
    with pytest.raises((ConfigError, KeyError)) as exc:
        load_grid(tmp_path / "k.yaml")
    msg = str(exc.value).replace(str(tmp_path) + "/", "")
    assert re.search(message, msg) and "\n" not in msg, msg


def test_sweep_needs_exactly_one_grid(capsys):
    assert app(["sweep", "--config", "examples/grid.yaml", "--preset", "demo", "--out", "x"]) == 2
    assert "--config and --preset are exclusive" in capsys.readouterr().err
    assert app(["sweep", "--out", "x"]) == 2
    assert "give the grid: --config GRID.yaml or --preset NAME" in capsys.readouterr().err


def test_a_sweep_reruns_a_done_job_whose_record_is_corrupt(tmp_path, monkeypatch):
    import vfmbench.experiments.executors as ex

    monkeypatch.setattr(ex, "check_available", lambda g: None)
    monkeypatch.setattr(ex, "prepare_data", lambda *a, **k: {})
    grid = _grid(axes={"tasks": ["fetch_reach"], "encoders": ["state"], "seeds": [0, 1]})
    with RunsIndex(tmp_path / "runs.sqlite") as index, InProcessExecutor(fn=_record) as executor:
        first = ex.run_sweep(grid, tmp_path / "sw", index, executor, progress=False, log=lambda m: None)
        assert first.counts == {"done": 2} and first.ran == 2
        index._db.execute("""UPDATE jobs SET record_json='{"x":' WHERE id=1""")
        logs = []
        again = ex.run_sweep(grid, tmp_path / "sw", index, executor, progress=False, log=logs.append)
    assert again.ran == 1 and again.counts == {"done": 2} and len(again.records()) == 2
    assert any("index row 1" in m and "unreadable" in m for m in logs)
