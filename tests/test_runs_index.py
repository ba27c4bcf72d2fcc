"""The runs index: one SQLite row per job, claims, records, failures, stale rows of dead sweeps, filters, CLI."""

import json
import subprocess
import sys

import pytest

from vfmbench.cli import app
from vfmbench.evaluation import EvalResult
from vfmbench.experiments import RunRecord
from vfmbench.experiments.grid import GridSpec, expand
from vfmbench.experiments.index import RunsIndex, parse_filters
from vfmbench.training import TrainRecord
from vfmbench.utils.config import from_dict
from vfmbench.utils.errors import ConfigError


def _jobs(tmp_path, encoders=("state", "e2e_cnn"), seeds=(0, 1)):
    grid = from_dict(GridSpec, {"name": "g", "axes": {"tasks": ["fetch_reach"], "encoders": list(encoders),
                                                      "seeds": list(seeds)},
                                "dataset": {"paths": {"fetch_reach": str(tmp_path / "data")}}})
    return expand(grid, tmp_path / "sweep")


def _record(job, success=1.0):
    train = TrainRecord(schema="vfmbench.train/1", encoder_label=job.encoder, pretrained=False, goal_conditioned=False,
                        steps=10, batch_size=8, augment="cached", evals=[], best_k=3, best_k_mean_success=None,
                        train_seconds=1.0, prepare_seconds=0.0, device="cpu")
    ev = EvalResult(success_rate=success, success_any_rate=success, episodes=2, seeds=[0, 1], successes=[], seconds=1.0)
    return RunRecord(schema="vfmbench.run/1", task=job.task, encoder=job.encoder, encoder_label=job.encoder,
                     pretrained=False, method=job.method, goal_conditioned=False, seed=job.seed, train=train,
                     evaluation=ev, robustness=[], run_dir=job.spec.out, host="testhost", seconds=1.0)


def test_rows_follow_a_job_through_its_states(tmp_path):
    jobs = _jobs(tmp_path)
    with RunsIndex(tmp_path / "runs.sqlite") as index:
        assert index._db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert index.add(jobs) == 4 and index.add(jobs) == 0  # adding again leaves rows alone
        a, b = jobs[0], jobs[1]
        assert index.claim(a.spec_hash) and not index.claim(a.spec_hash)  # a claimed job is nobody else's
        index.finish(a.spec_hash, _record(a, 0.5))
        assert index.claim(b.spec_hash)
        index.fail(b.spec_hash, "ValueError: boom\n\ntraceback")
        rows = {r.spec_hash: r for r in index.rows()}
        done, failed = rows[a.spec_hash], rows[b.spec_hash]
        assert done.status == "done" and done.host == "testhost" and done.seconds >= 0 and done.attempts == 1
        assert done.record() == _record(a, 0.5)  # the typed record round-trips
        assert done.spec() == a.spec
        assert failed.status == "failed" and failed.error.startswith("ValueError: boom") and failed.record() is None
        assert index.counts() == {"pending": 2, "running": 0, "done": 1, "failed": 1}
        assert index.retry_failed([b.spec_hash]) == 1 and index.rows(status="pending")[0].spec_hash == b.spec_hash
        # filters, lookups by id and hash prefix
        assert [r.encoder for r in index.rows(encoder="e2e_cnn")] == ["e2e_cnn", "e2e_cnn"]
        assert len(index.rows(status=["done", "pending"], encoder="state")) == 2
        assert index.get(str(done.id)).spec_hash == a.spec_hash and index.get(a.spec_hash[:8]).id == done.id
        with pytest.raises(ConfigError, match="unknown status"):
            index.rows(status="finished")
        with pytest.raises(ConfigError, match="unknown runs filter"):
            index.rows(colour="red")
        assert index.remove([done.id]) == 1 and len(index.rows()) == 3


def test_running_rows_of_a_dead_sweep_become_pending_again(tmp_path):
    jobs = _jobs(tmp_path, encoders=("state",), seeds=(0,))
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    with RunsIndex(tmp_path / "runs.sqlite") as index:
        index.add(jobs)
        assert index.claim(jobs[0].spec_hash, pid=dead.pid)
        assert index.release_stale()[0].spec_hash == jobs[0].spec_hash
        row = index.rows()[0]
        assert row.status == "pending" and "interrupted" in row.error and row.pid is None
        assert index.claim(jobs[0].spec_hash)  # this process is alive: its rows are not stale
        assert index.release_stale() == [] and index.rows()[0].status == "running"


def test_an_index_is_not_shipped_to_workers(tmp_path):
    import pickle

    with RunsIndex(tmp_path / "runs.sqlite") as index, pytest.raises(TypeError, match="belongs to the process"):
        pickle.dumps(index)


def test_a_file_that_is_not_an_index_is_a_clear_error(tmp_path):
    bad = tmp_path / "runs.sqlite"
    bad.write_text("not a database" * 100)
    with pytest.raises(ConfigError, match="not a usable runs index"):
        RunsIndex(bad)


def test_report_filters_parse():
    assert parse_filters(["sweep=demo encoder=state,e2e_cnn", "status=done"]) == {
        "sweep": ["demo"], "encoder": ["state", "e2e_cnn"], "status": ["done"]}
    with pytest.raises(ConfigError, match="KEY=VALUE"):
        parse_filters(["demo"])


def test_runs_commands_list_show_and_remove(tmp_path, capsys):
    jobs = _jobs(tmp_path)
    db = str(tmp_path / "runs.sqlite")
    with RunsIndex(db) as index:
        index.add(jobs)
        index.claim(jobs[0].spec_hash)
        index.finish(jobs[0].spec_hash, _record(jobs[0]))
        index.claim(jobs[1].spec_hash)
        index.fail(jobs[1].spec_hash, "RuntimeError: out of luck")
    assert app(["runs", "list", "--index", db, "--status", "done,failed", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["status"] for r in rows] == ["done", "failed"] and rows[0]["sweep"] == "g"
    assert app(["runs", "list", "--index", db, "--encoder", "e2e_cnn"]) == 0
    assert capsys.readouterr().out.count("e2e_cnn") == 2
    assert app(["runs", "show", str(rows[1]["id"]), "--index", db]) == 0
    shown = capsys.readouterr().out
    assert "RuntimeError: out of luck" in shown and '"spec"' in shown
    assert app(["runs", "rm", "--index", db]) == 2  # refuses to remove everything without a filter
    assert "name the rows" in capsys.readouterr().err
    assert app(["runs", "rm", "--index", db, "--status", "failed"]) == 0
    with RunsIndex(db) as index:
        assert index.counts() == {"pending": 2, "running": 0, "done": 1, "failed": 0}


def _done_index(tmp_path, seeds=(0, 1)):
    jobs = _jobs(tmp_path, encoders=("state",), seeds=seeds)
    db = tmp_path / "runs.sqlite"
    with RunsIndex(db) as index:
        index.add(jobs)
        for job in jobs:
            index.claim(job.spec_hash)
            index.finish(job.spec_hash, _record(job))
    return db, jobs


def test_a_corrupt_record_is_named_with_its_fix_and_other_rows_stay_usable(tmp_path, capsys):
    from vfmbench.experiments.index import CorruptRowError

    db, jobs = _done_index(tmp_path)
    with RunsIndex(db) as index:
        index._db.execute("""UPDATE jobs SET record_json='{"x":' WHERE id=1""")
        bad, good = index.rows()
        with pytest.raises(CorruptRowError, match=r"^index row 1 .*unreadable.*`vfmbench runs rm 1`") as exc:
            bad.record()
        assert "\n" not in str(exc.value)  # one line, no traceback
        assert good.record() == _record(jobs[1])
        # a sweep reruns the job whose record is lost (nothing readable is dropped)
        assert [r.id for r in index.reset_unreadable([j.spec_hash for j in jobs])] == [1]
        assert [(r.id, r.status, r.record_json) for r in index.rows(status="pending")] == [(1, "pending", None)]
        assert index.rows(status="done")[0].id == 2
        index._db.execute("""UPDATE jobs SET record_json='{"schema": 1}', status='done', error=NULL WHERE id=1""")
    # runs list and runs show go on; show names the row and the fix in one line
    assert app(["runs", "list", "--index", str(db)]) == 0
    assert app(["runs", "show", "2", "--index", str(db)]) == 0
    capsys.readouterr()
    with RunsIndex(db) as index:
        index._db.execute("""UPDATE jobs SET record_json='{"x":' WHERE id=1""")
    assert app(["runs", "show", "1", "--index", str(db)]) == 0
    out, err = capsys.readouterr()
    assert json.loads(out)["record"] is None
    assert err.count("\n") == 1 and "index row 1" in err and "vfmbench runs rm 1" in err


def test_read_only_commands_refuse_a_missing_or_foreign_index_and_write_nothing(tmp_path, capsys):
    import sqlite3

    missing = tmp_path / "no" / "dir" / "x.sqlite"
    for argv in (["report", "--out", str(tmp_path / "r")], ["runs", "list"], ["runs", "show", "1"],
                 ["runs", "rm", "1"]):
        assert app([*argv, "--index", str(missing)]) == 2
        assert f"index {missing} does not exist; run a sweep first or pass --index" in capsys.readouterr().err
        assert not (tmp_path / "no").exists()
    with pytest.raises(ConfigError, match="does not exist"):
        RunsIndex(tmp_path / "new.sqlite", create=False)
    assert not (tmp_path / "new.sqlite").exists()
    # another program's database: refused by every command, sweeps included, and left byte for byte
    other = tmp_path / "other.sqlite"
    con = sqlite3.connect(other)
    con.execute("CREATE TABLE notes (x TEXT)")
    con.commit()
    con.close()
    before = other.read_bytes()
    for create in (False, True):
        with pytest.raises(ConfigError, match="is not a vfmbench runs index.*left untouched"):
            RunsIndex(other, create=create)
    assert app(["runs", "list", "--index", str(other)]) == 2
    assert "not a vfmbench runs index" in capsys.readouterr().err
    assert other.read_bytes() == before and sorted(p.name for p in tmp_path.iterdir() if "other" in p.name) == [
        "other.sqlite"]
    # an empty database file is not an index to read, but a sweep may make it one
    empty = tmp_path / "empty.sqlite"
    sqlite3.connect(empty).close()
    with pytest.raises(ConfigError, match="empty database"):
        RunsIndex(empty, create=False)
    # a real index carries the vfmbench application id; an index made before it still opens
    db, _ = _done_index(tmp_path)
    with RunsIndex(db, create=False) as index:
        assert index._db.execute("PRAGMA application_id").fetchone()[0] == 0x76666D62 and len(index.rows()) == 2
        index._db.execute("PRAGMA application_id=0")  # as an index of the first version
    with RunsIndex(db, create=False) as index:
        assert len(index.rows()) == 2


def test_runs_list_shows_rows_of_a_killed_sweep_as_stale(tmp_path, capsys):
    jobs = _jobs(tmp_path, encoders=("state",), seeds=(0, 1))
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    db = tmp_path / "runs.sqlite"
    with RunsIndex(db) as index:
        index.add(jobs)
        assert index.claim(jobs[0].spec_hash, pid=dead.pid)  # its sweep was killed (kill -9): nobody released it
        assert index.claim(jobs[1].spec_hash)  # this process: alive
    assert app(["runs", "list", "--index", str(db), "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["status"] for r in rows] == [f"running (stale: owner pid {dead.pid} gone)", "running"]
    assert app(["runs", "list", "--index", str(db), "--status", "running"]) == 0
    assert f"running (stale: owner pid {dead.pid} gone)" in capsys.readouterr().out
    with RunsIndex(db) as index:  # the index itself is unchanged: the next sweep releases the row
        assert [r.status for r in index.rows()] == ["running", "running"]
