"""`vfmbench embed`: embeddings of a dataset through the cache, and the encoder benchmark's CPU mode."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest

from vfmbench.cli import build_parser
from vfmbench.data.episodes import EpisodeWriter

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture()
def dataset(tmp_path):
    writer = EpisodeWriter(tmp_path / "ds", {"task": "toy", "camera": "front"})
    rng = np.random.default_rng(0)
    for _ in range(2):
        writer.append({"pixels": rng.integers(0, 256, (3, 32, 32, 3), dtype=np.uint8),
                       "actions": rng.normal(size=(3, 2)).astype(np.float32)}, {}, {})
    writer.finalize()
    return tmp_path / "ds"


def embed(argv: list[str], capsys) -> dict:
    args = build_parser().parse_args(["embed", *argv])
    assert args.func(args) == 0
    return json.loads(capsys.readouterr().out)


def test_embed_computes_once_then_hits_the_cache(dataset, tmp_path, capsys):
    common = ["--encoder", "r3m_resnet18", "--random-weights", "--dataset", str(dataset),
              "--out", str(tmp_path / "cache"), "--device", "cpu", "--batch-size", "4"]
    first = embed(common, capsys)
    assert first["cache"] == "computed" and first["shape"] == [6, 512]
    assert first["encoder"] == "r3m_resnet18 (random)"
    again = embed(common, capsys)
    assert again["cache"] == "hit" and again["key"] == first["key"]
    spatial = embed([*common, "--spatial"], capsys)
    assert spatial["shape"] == [6, 512, 7, 7] and spatial["key"] != first["key"]


def test_embed_without_weights_is_a_clear_error(dataset, tmp_path, monkeypatch, capsys):
    from vfmbench.cli import app

    monkeypatch.setenv("VFMBENCH_HOME", str(tmp_path / "home"))
    code = app(["embed", "--encoder", "r3m_resnet18", "--dataset", str(dataset), "--device", "cpu"])
    err = capsys.readouterr().err
    assert code == 2 and "vfmbench weights download r3m_resnet18" in err


def test_encoder_benchmark_runs_on_cpu_in_tiny_mode(tmp_path, capsys):
    spec = importlib.util.spec_from_file_location("bench_encoders", ROOT / "benchmarks" / "encoders.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    out = tmp_path / "bench.json"
    bench.main(["--tiny", "--device", "cpu", "--frame-size", "32", "--encoders", "sam_vit_b,clip_vitb16",
                "--precision", "fp32,bf16", "--out", str(out)])
    report = json.loads(out.read_text())
    assert report["bf16_matmul_tflops"] > 0
    rows = {(r["encoder"], r["precision"]): r for r in report["results"]}
    assert set(rows) == {(e, p) for e in ("sam_vit_b", "clip_vitb16") for p in ("fp32", "bf16")}
    for r in rows.values():
        assert r["images_per_s"] > 0 and r["gflops_per_image"] > 0 and r["label"].endswith("(random)")


def test_embed_names_missing_arrays_and_refuses_bad_batch_sizes(dataset, tmp_path, capsys):
    from vfmbench.cli import app

    common = ["embed", "--encoder", "r3m_resnet18", "--random-weights", "--dataset", str(dataset),
              "--out", str(tmp_path / "cache"), "--device", "cpu"]
    assert app([*common, "--array", "goal_pixels"]) == 2
    err = capsys.readouterr().err
    assert "no array 'goal_pixels'" in err and "it has: actions, pixels" in err
    with pytest.raises(SystemExit) as exit_:
        app([*common, "--batch-size", "0"])
    assert exit_.value.code == 2 and "--batch-size: must be at least 1" in capsys.readouterr().err
    assert not (tmp_path / "cache").exists()


def test_interrupted_embed_resumes_on_the_next_run(dataset, tmp_path, capsys, monkeypatch):
    import vfmbench.encoders as encoders
    from vfmbench.cli import app

    real, calls = encoders.create_encoder, {"n": 0, "frames": 0}

    def interrupting(*args, **kwargs):  # the first run stops at its second batch
        enc = real(*args, **kwargs)
        orig = enc.forward

        def forward(x):
            calls["n"] += 1
            if calls["n"] == 2:
                raise KeyboardInterrupt
            calls["frames"] += len(x)
            return orig(x)

        enc.forward = forward
        return enc

    monkeypatch.setattr(encoders, "create_encoder", interrupting)
    argv = ["embed", "--encoder", "r3m_resnet18", "--random-weights", "--dataset", str(dataset),
            "--out", str(tmp_path / "cache"), "--device", "cpu", "--batch-size", "2"]
    assert app(argv) == 130
    err = capsys.readouterr().err
    assert "interrupted after 2 of 6 frames" in err and "resumes" in err
    assert app(argv) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["cache"] == "computed" and out["shape"] == [6, 512] and out["resumed_frames"] == 2
    assert calls["frames"] == 6  # 2 before the interruption, 4 after
    assert not any(p.name.startswith(".tmp") for p in (tmp_path / "cache").iterdir())
