import json

import numpy as np
import pytest
from toy_tasks import scored

from vfmbench.data.episodes import EpisodeWriter
from vfmbench.training import RunSpec, TrainConfig, Trainer, load_agent
from vfmbench.training.checkpoint import list_checkpoints


def test_interrupted_training_resumes_from_checkpoint(synthetic, tmp_path):
    spec = RunSpec(task="synthetic", encoder="state", train=TrainConfig(steps=40, checkpoint_every=10, log_every=10))
    calls = {"n": 0}

    def crash_at_30(agent, step):
        calls["n"] += 1
        raise KeyboardInterrupt

    spec.train.eval_every = 30
    with pytest.raises(KeyboardInterrupt):
        Trainer(spec, synthetic, tmp_path / "run", progress=False).run(crash_at_30)
    steps = [int(c.name.split("_")[1]) for c in list_checkpoints(tmp_path / "run")]
    assert steps[-1] == 30  # saved before its evaluation was interrupted; resuming redoes the evaluation
    seen = []
    result = Trainer(spec, synthetic, tmp_path / "run", progress=False).run(lambda a, s: seen.append(s) or scored(0.5))
    assert seen == [30, 40] and result.final_success == 0.5
    logged = [json.loads(l)["step"] for l in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert logged[-1] == 40
    # a finished run is read back, not retrained
    again = Trainer(spec, synthetic, tmp_path / "run", progress=False).run(lambda a, s: scored(1.0))
    assert again.final_success == 0.5 and again == result
    agent, record = load_agent(tmp_path / "run")
    assert record["spec"]["encoder"] == "state" and agent.proprio_norm.mean.shape == (2,)


def test_run_folder_refuses_other_config(synthetic, tmp_path):
    from vfmbench.utils.errors import VfmbenchError

    Trainer(RunSpec(task="synthetic", encoder="state", train=TrainConfig(steps=5)), synthetic, tmp_path / "r",
            progress=False).run()
    with pytest.raises(VfmbenchError, match="another configuration"):
        Trainer(RunSpec(task="synthetic", encoder="state", seed=1, train=TrainConfig(steps=5)), synthetic,
                tmp_path / "r", progress=False).run()


@pytest.mark.parametrize("encoder", ["sam_vit_b", "dinov2_vitb14_reg", "clip_vitb16", "r3m_resnet50"])
def test_foundation_encoders_train_through_the_cache(encoder, tmp_path):
    """Zoo entries (random weights, toy sizes) work in the trainer: embedded once, then reused."""
    pytest.importorskip("transformers")
    from vfmbench.cache import EmbeddingCache

    rng = np.random.default_rng(0)
    w = EpisodeWriter(tmp_path / "px", {"task": {"task": "synthetic", "state_dim": 2, "proprio_dim": 0,
                                                 "action_dim": 2, "goal_conditioned": False}})
    for ep in range(2):
        w.append({"pixels": rng.integers(0, 255, (6, 32, 32, 3), dtype=np.uint8),
                  "actions": rng.uniform(-1, 1, (6, 2)).astype(np.float32),
                  "proprio": np.zeros((6, 0), np.float32)}, {}, {"seed": ep})
    ds = w.finalize()
    cache = EmbeddingCache(tmp_path / "cache")
    spec = RunSpec(task="synthetic", encoder=encoder, pretrained=False, encoder_options={"tiny": True},
                   train=TrainConfig(steps=5, log_every=5))
    result = Trainer(spec, ds, tmp_path / "run", cache=cache, progress=False).run()
    # the options a run was given are part of its label, so runs of other options never share a row
    assert result.encoder_label == f"{encoder} (random, tiny=True)" and not result.pretrained
    assert cache.stats.misses == 1
    Trainer(RunSpec(**{**spec.__dict__, "seed": 1}), ds, tmp_path / "run2", cache=cache, progress=False).run()
    assert cache.stats.hits == 1
    agent, _ = load_agent(tmp_path / "run2")  # rebuilt from the registry with the same options
    assert agent.encoder.name == encoder and not agent.encoder.pretrained
