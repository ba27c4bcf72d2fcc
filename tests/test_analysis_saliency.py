"""FullGrad saliency (paper 001 Fig. 5): the decomposition on models where the answer is known
(completeness of a ReLU network, a linear model, a network that sees one region), the effective
biases of normalisation layers, a policy's acting state left alone, refusals, and a trained
Fetch run end to end through the CLI."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from vfmbench.agents import Agent, make_agent
from vfmbench.analysis.saliency import (
    SaliencyError,
    SaliencyRecord,
    Target,
    PixelPath,
    effective_bias,
    full_gradient,
    policy_decomposition,
    postprocess,
)
from vfmbench.encoders.base import Encoder
from vfmbench.encoders.state import StateEncoder
from vfmbench.policies import PolicyDims, make_policy
from vfmbench.tasks import TaskSpaces
from vfmbench.utils.errors import ConfigError, DatasetError


def _randomise_norms(net: nn.Module) -> None:
    for m in net.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.normal_()
            m.running_var.uniform_(0.5, 2.0)
            m.weight.data.normal_()
            m.bias.data.normal_()


def test_completeness_of_a_relu_network_with_every_exact_bias_kind():
    """ReLU network with conv biases, BatchNorm (eval) implicit biases, ReLU6 saturation and
    linear biases: input-gradient . input + sum of bias-gradient . bias is the output exactly."""
    torch.manual_seed(0)
    net = nn.Sequential(
        nn.Conv2d(3, 8, 3, 2, 1), nn.BatchNorm2d(8), nn.ReLU(inplace=True),
        nn.Conv2d(8, 8, 3, 1, 1, bias=False), nn.BatchNorm2d(8), nn.ReLU6(inplace=True),
        nn.MaxPool2d(2), nn.Flatten(), nn.Linear(8 * 8 * 8, 16), nn.ReLU(), nn.Linear(16, 3),
    )
    _randomise_norms(net)
    net[4].bias.data += 5.0  # some units of the ReLU6 saturate
    net.eval()
    x = torch.randn(4, 3, 32, 32) * 3
    for j in range(3):
        dec = full_gradient(lambda x: net(x)[:, j], x, net)
        torch.testing.assert_close(dec.output, net(x)[:, j].detach())
        torch.testing.assert_close(dec.total(), dec.output, rtol=1e-4, atol=1e-5)
    kinds = [t.kind for t in dec.bias_terms]
    assert kinds == ["conv", "batchnorm", "batchnorm", "clamp", "linear", "linear"]
    assert any((t.value != 0).any() for t in dec.bias_terms if t.kind == "clamp")
    assert [t.spatial for t in dec.bias_terms] == [True] * 4 + [False] * 2
    # without the implicit biases completeness fails: they carry part of the output
    partial = dec.input_term.reshape(4, -1).sum(1) + sum(t.value.reshape(4, -1).sum(1) for t in dec.bias_terms
                                                          if t.kind in ("conv", "linear"))
    assert not torch.allclose(partial, dec.output, rtol=1e-3)


def test_completeness_holds_for_the_norm_of_an_action_and_for_extra_inputs():
    """The L2 norm of a ReLU network's output is positively homogeneous, so completeness holds;
    a second input held fixed enters the sum through its own gradient term."""
    torch.manual_seed(1)
    conv = nn.Sequential(nn.Conv2d(3, 4, 3, 2), nn.ReLU(), nn.Flatten())
    head = nn.Linear(4 * 7 * 7 + 2, 3)
    root = nn.ModuleList([conv, head])
    x, p = torch.randn(2, 3, 16, 16), torch.randn(2, 2)
    dec = full_gradient(lambda x, p: Target()(head(torch.cat([conv(x), p], 1))[:, None]), x, root, [p])
    assert (dec.other_term != 0).all()
    torch.testing.assert_close(dec.total(), dec.output, rtol=1e-4, atol=1e-5)


def test_a_linear_model_gives_the_pattern_of_w_times_x():
    torch.manual_seed(2)
    h = w = 12
    lin = nn.Linear(h * w, 1)
    x = torch.rand(3, 1, h, w)
    dec = full_gradient(lambda x: lin(x.flatten(1))[:, 0], x, lin)
    wx = lin.weight.detach().reshape(1, 1, h, w) * x
    torch.testing.assert_close(dec.input_term, wx)
    torch.testing.assert_close(dec.total(), dec.output)
    # the bias is not spatial: the map is psi(|w * x|) alone, rescaled to [0, 1]
    a = wx.abs().reshape(3, -1)
    expected = ((a - a.min(1, keepdim=True).values) / (a.max(1, keepdim=True).values
                                                      - a.min(1, keepdim=True).values + 1e-6)).reshape(3, h, w)
    torch.testing.assert_close(dec.saliency(), expected)
    assert postprocess(wx).amax() <= 1.0 and postprocess(wx).amin() == 0.0


def test_saliency_concentrates_where_the_output_looks():
    """A conv net whose output reads only the top-left 4x4 cells of its 16x16 feature map (a
    region of about 9x9 pixels of the 32x32 image): > 90% of the map's mass lies in that corner."""
    torch.manual_seed(3)
    convs = nn.Sequential(nn.Conv2d(3, 8, 3, 2, 1), nn.BatchNorm2d(8), nn.ReLU(), nn.Conv2d(8, 8, 3, 1, 1), nn.ReLU())
    _randomise_norms(convs)
    head = nn.Linear(8 * 4 * 4, 1)
    root = nn.ModuleList([convs, head]).eval()  # (GroupNorm would not do: its statistics see every pixel)
    x = torch.rand(2, 3, 32, 32)
    dec = full_gradient(lambda x: head(convs(x)[:, :, :4, :4].flatten(1))[:, 0], x, root)
    s = dec.saliency()
    share = s[:, :12, :12].sum((1, 2)) / s.sum((1, 2))
    assert (share > 0.9).all(), share


def test_effective_biases_of_normalisation_layers_are_their_local_affine_shift():
    """y = (d y / d x) x + b for BatchNorm (eval), GroupNorm and LayerNorm, with the statistics held."""
    torch.manual_seed(4)
    x = torch.randn(2, 8, 5, 5) * 2 + 1
    bn, gn, ln = nn.BatchNorm2d(8), nn.GroupNorm(2, 8), nn.LayerNorm(5)
    _randomise_norms(bn)
    for m in (gn, ln):
        m.weight.data.normal_()
        m.bias.data.normal_()
    bn.eval()
    y = bn(x)
    scale = (bn.weight / torch.sqrt(bn.running_var + bn.eps)).reshape(1, -1, 1, 1)
    torch.testing.assert_close(y, scale * x + effective_bias(bn, "batchnorm", x, y), rtol=1e-5, atol=1e-5)
    y = gn(x)
    g = x.reshape(2, 2, -1)
    sigma = torch.sqrt(g.var(-1, unbiased=False) + gn.eps).repeat_interleave(4, 1).reshape(2, 8, 1, 1)
    torch.testing.assert_close(y, gn.weight.reshape(1, -1, 1, 1) / sigma * x + effective_bias(gn, "groupnorm", x, y),
                               rtol=1e-5, atol=1e-5)
    y = ln(x)
    sigma = torch.sqrt(x.var(-1, unbiased=False, keepdim=True) + ln.eps)
    torch.testing.assert_close(y, ln.weight / sigma * x + effective_bias(ln, "layernorm", x, y), rtol=1e-5, atol=1e-5)


def _obs(shape: tuple[int, ...], b: int = 2, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {"pixels": rng.integers(0, 256, (b, *shape), dtype=np.uint8),
            "proprio": rng.normal(size=(b, 3)).astype(np.float32)}


@pytest.mark.parametrize("method", ["bc", "bc_rnn"])
@pytest.mark.parametrize("shape,augment", [((32, 32, 3), "crop"), ((32, 32, 6), "shift")])
def test_a_policy_decomposition_leaves_the_agent_acting_as_before(method, shape, augment):
    """The FullGrad pass reads the agent's history and policy state but changes neither: an agent
    that computed saliency at every step acts exactly like one that did not. The pixel path
    reproduces the encoder; a centre crop leaves zeros outside it on the frame; stacked frames
    give one map per sample."""
    spaces = TaskSpaces(4, 10, 3, shape, False)
    torch.manual_seed(5)
    agent = make_agent("e2e_cnn", method, spaces, augment=augment, crop_size=28).eval()
    twin = make_agent("e2e_cnn", method, spaces, augment=augment, crop_size=28).eval()
    twin.load_state_dict(agent.state_dict())
    agent.reset(2)
    twin.reset(2)
    for t in range(3):
        obs = _obs(shape, seed=t)
        dec, path = policy_decomposition(agent, obs, Target())
        np.testing.assert_allclose(agent.act(obs), twin.act(obs), rtol=1e-6, atol=1e-6)
    images = torch.from_numpy(obs["pixels"])
    with torch.no_grad():
        torch.testing.assert_close(path.embed(path.network_input(images)), agent.encoder(images))
    assert dec.input_term.shape == (2, shape[2], 28 if augment == "crop" else 32, 28 if augment == "crop" else 32)
    frame_map = path.to_frame(dec.saliency(), shape[:2])
    assert frame_map.shape == (2, 32, 32) and (frame_map >= 0).all()
    torch.testing.assert_close(frame_map.sum(), dec.saliency().sum(), rtol=1e-4, atol=0)
    if augment == "crop":
        assert (frame_map[:, :2] == 0).all() and (frame_map[:, 2:30, 2:30] > 0).any()


def test_target_parsing_and_action_dimension_out_of_range():
    assert str(Target.parse("norm")) == "norm" and str(Target.parse("2")) == "action[2]"
    for bad in ("max", "-1"):
        with pytest.raises(ConfigError, match="saliency target"):
            Target.parse(bad)
    agent = make_agent("e2e_cnn", "bc", TaskSpaces(4, 10, 3, (32, 32, 3), False)).eval()
    agent.reset(2)
    with pytest.raises(ConfigError, match="4 action dimensions"):
        policy_decomposition(agent, _obs((32, 32, 3)), Target(7))


class _TokenEncoder(Encoder):
    """A ViT-like toy: patch embedding, then LayerNorm and a linear layer on tokens."""

    family = "toy"

    def __init__(self) -> None:
        super().__init__()
        self.name, self.embed_dim = "toy_tokens", 16
        self.patch = nn.Conv2d(3, 16, 8, 8)
        self.norm, self.mix = nn.LayerNorm(16), nn.Linear(16, 16)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.mix(self.norm(self.patch(x).flatten(2).transpose(1, 2)))  # [B, N, C]

    def pool(self, features: torch.Tensor) -> torch.Tensor:
        return features.mean(1)


def test_refusals_token_encoders_state_encoders_and_outputs_without_gradients():
    dims = PolicyDims(16, 3, 4, False)
    agent = Agent(_TokenEncoder(), make_policy("bc", None, dims), 3).eval()
    agent.reset(2)
    with pytest.raises(SaliencyError, match="token features"):
        policy_decomposition(agent, _obs((32, 32, 3)), Target())
    with pytest.raises(SaliencyError, match="reads 'state', not images"):
        PixelPath.of(StateEncoder(4))
    conv = nn.Conv2d(3, 2, 3)
    with pytest.raises(SaliencyError, match="without gradients"):
        full_gradient(lambda x: conv(x).sum((1, 2, 3)).detach(), torch.rand(1, 3, 8, 8), conv)


def test_record_round_trip_and_bad_records():
    data = dict(schema="vfmbench.analysis.saliency/1", run="r", checkpoint_step=2, task="fetch_reach", encoder="e2e_cnn",
                trainable=True, method="bc", target="norm", episodes=1, seeds=[1], every=5, frames=2,
                frame_size=[32, 32], input_size=[32, 32], successes=[False], terms={"conv": 5}, spatial_terms=5,
                completeness_gap=0.1, output_mean=0.3, mask_mass=0.4, mask_area=0.1, seconds=1.0,
                figures=["saliency.png"])
    record = SaliencyRecord.from_dict(data)
    assert SaliencyRecord.from_dict(record.to_dict()) == record
    assert "0.40 of the saliency on 0.10 of the frame" in record.markdown()
    with pytest.raises(DatasetError, match="not a saliency record"):
        SaliencyRecord.from_dict({**data, "schema": "vfmbench.analysis.vat/1"})
    with pytest.raises(DatasetError, match="lacks frames"):
        SaliencyRecord.from_dict({k: v for k, v in data.items() if k != "frames"})


def test_cli_errors_for_a_missing_folder_and_a_folder_that_is_no_run(tmp_path, capsys):
    from vfmbench.cli import app

    assert app(["analyze", "saliency", "--run", str(tmp_path / "nope"), "--out", str(tmp_path / "o")]) == 2
    assert "no such run folder" in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    assert app(["analyze", "saliency", "--run", str(tmp_path / "empty"), "--out", str(tmp_path / "o")]) == 2
    assert "is not a training run" in capsys.readouterr().err
    assert app(["analyze", "saliency", "--run", str(tmp_path / "empty"), "--out", str(tmp_path / "o"),
                "--target", "max"]) == 2
    assert "saliency target" in capsys.readouterr().err


@pytest.fixture(scope="module")
def fetch_runs(tmp_path_factory):
    """A tiny real fetch_reach dataset (3 expert episodes of 12 steps at 32x32, with masks
    available from the task) and two short runs on it: e2e_cnn (trained) and state."""
    from vfmbench.data.collection import CollectConfig, collect
    from vfmbench.experiments import EvalSpec, JobSpec, run_job
    from vfmbench.training import RunSpec, TrainConfig

    root = tmp_path_factory.mktemp("saliency")
    ds = collect(CollectConfig(task="fetch_reach", episodes=3, keep_failures=True,
                               task_config={"resolution": 32, "max_episode_steps": 12}), root / "data", progress=False)
    runs = {}
    for encoder in ("e2e_cnn", "state"):
        run = RunSpec(task="fetch_reach", encoder=encoder, method_config={"batch_size": 8},
                      train=TrainConfig(steps=20, eval_episodes=0, log_every=10, device="cpu"))
        run_job(JobSpec(run=run, out=str(root / encoder), dataset=str(ds.root), eval=EvalSpec(episodes=0)))
        runs[encoder] = root / encoder
    return runs


@pytest.mark.sim
def test_a_trained_fetch_run_end_to_end_through_the_cli(fetch_runs, tmp_path, capsys):
    from vfmbench.analysis.records import read_record
    from vfmbench.cli import app

    out = tmp_path / "sal"
    assert app(["analyze", "saliency", "--run", str(fetch_runs["e2e_cnn"]), "--episodes", "2", "--every", "4",
                "--out", str(out), "--no-progress"]) == 0
    assert "FullGrad maps of norm" in capsys.readouterr().out
    record = read_record(out / "saliency.json")
    assert isinstance(record, SaliencyRecord)
    assert record.task == "fetch_reach" and record.trainable and record.checkpoint_step == 20
    assert record.frames == 2 * 3 and record.frame_size == [32, 32] and record.spatial_terms >= 5
    assert record.terms["normalizer"] == 2 and record.mask_area is not None and 0 < record.mask_area < 1
    arrays = np.load(out / "saliency.npz")
    assert arrays["saliency"].shape == (6, 32, 32) and arrays["frames"].shape == (6, 32, 32, 3)
    assert arrays["mask"].shape == (6, 32, 32) and list(arrays["step"][:3]) == [0, 0, 4]
    assert np.isfinite(arrays["saliency"]).all() and (arrays["saliency"].reshape(6, -1).max(1) > 0).all()
    assert (out / record.figures[0]).stat().st_size > 1000
    # the same run, another target: one action dimension
    assert app(["analyze", "saliency", "--run", str(fetch_runs["e2e_cnn"]), "--episodes", "1", "--every", "6",
                "--target", "0", "--out", str(tmp_path / "dim"), "--no-progress", "--json"]) == 0
    assert '"target": "action[0]"' in capsys.readouterr().out


@pytest.mark.sim
def test_a_state_run_is_refused_before_any_rollout(fetch_runs, tmp_path, capsys):
    from vfmbench.cli import app

    assert app(["analyze", "saliency", "--run", str(fetch_runs["state"]), "--out", str(tmp_path / "o")]) == 2
    assert "reads 'state', not images" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def test_record_markdown_keeps_one_cell_per_column():
    """Defect: the completeness-gap cell held unescaped '|' and broke the table."""
    data = dict(schema="vfmbench.analysis.saliency/1", run="r", checkpoint_step=2, task="fetch_reach",
                encoder="odd|name", trainable=True, method="bc", target="norm", episodes=1, seeds=[1], every=5,
                frames=2, frame_size=[32, 32], input_size=[32, 32], successes=[False], terms={"conv": 5},
                spatial_terms=5, completeness_gap=0.164, output_mean=0.3, mask_mass=None, mask_area=None, seconds=1.0,
                figures=["saliency.png"])
    table = SaliencyRecord.from_dict(data).markdown()
    for line in table.splitlines():
        assert len(line.replace("\\|", "").split("|")) == 4, line  # "| key | value |": two cells
    assert "| completeness gap | 0.164 (median over maps of abs(f - sum of the parts) / abs(f)) |" in table
    assert "odd\\|name" in table


def test_heat_map_has_a_labelled_colour_bar_from_0_to_1(tmp_path, monkeypatch):
    """Defect: the heat map had no colour bar."""
    import matplotlib.figure

    from vfmbench.analysis.saliency import plot_saliency

    saved = []
    real = matplotlib.figure.Figure.savefig
    monkeypatch.setattr(matplotlib.figure.Figure, "savefig", lambda self, *a, **k: (saved.append(self), real(self, *a, **k))[1])
    rng = np.random.default_rng(0)
    arrays = {"frames": rng.integers(0, 255, (3, 16, 16, 3), dtype=np.uint8), "saliency": rng.random((3, 16, 16)) * 7,
              "episode": np.zeros(3, int), "step": np.arange(3)}
    assert plot_saliency(arrays, tmp_path / "s.png", steps=2).stat().st_size > 0
    bar = saved[0].axes[-1]
    assert "FullGrad saliency" in bar.get_ylabel() and "0-1" in bar.get_ylabel()
    assert bar.get_ylim() == (0.0, 1.0)


@pytest.mark.sim
def test_a_missing_checkpoint_step_lists_the_steps_that_exist(fetch_runs, tmp_path, capsys):
    """Defect: --step 999 did not say which checkpoint steps exist."""
    from vfmbench.cli import app
    from vfmbench.training.frozen_run import checkpoint_steps

    steps = checkpoint_steps(fetch_runs["e2e_cnn"])
    assert steps and steps[-1] == 20
    assert app(["analyze", "saliency", "--run", str(fetch_runs["e2e_cnn"]), "--step", "999",
                "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert f"no checkpoint for --step 999; its checkpoints are at steps {', '.join(map(str, steps))}" in err
    assert "leave --step out for the latest, 20" in err and not (tmp_path / "o").exists()
