"""Visual Alignment Testing (VAT, paper 001 §III-C, Fig. 2-3, Table IV).

Two tasks ``T0`` and ``T1`` share one visual distribution but differ in their motor signals
(here ``fetch_reach_red`` and ``fetch_reach_blue``: the same frames, a different block to reach).
Policies ``pi0`` and ``pi1`` are trained for each, each with its encoder ``f0`` / ``f1``.
If encoders played no part in decision-making they would be interchangeable, so
``pi0->1 := pi1 | f = f0*`` (``f0`` from ``pi0``, frozen, with a policy head trained anew on
``T1``'s data) would do as well as ``pi1`` on ``T1``. With ``X_i`` and ``Y_i`` the success rates
of ``pi0->1`` and ``pi1`` in testing environment ``i = 1..N`` and ``D_i = |Y_i - X_i|``, VAT
tests

    H0: mu_D <= delta   against   H1: mu_D > delta                                   (eq. 4)
    t = (mean(D) - delta) / (s_D / sqrt(N)),  s_D the unbiased standard deviation    (eq. 5-6)

and rejects H0 when ``t > t_{alpha, N-1}`` (eq. 7), one-sided (`scipy.stats.ttest_1samp` with
``popmean = delta``, ``alternative = "greater"``; the critical value from `scipy.stats.t`).
Rejection is evidence that the end-to-end encoder takes part in deciding what to do. For a
frozen out-of-domain encoder ``f0 = f1 = f*`` by construction, so ``pi0->1`` is ``pi1`` up to
training randomness (its head trains from another seed) and the test should not reject.

A testing environment is a block of ``K`` consecutive held-out evaluation seeds; both policies
run the same seeds. Every training run is a job (`vfmbench.experiments.job.run_job`), so a rerun
resumes interrupted runs and reads finished ones back.

``pi0->1`` trains through the job unit with the encoder entry ``frozen_run``
(`vfmbench.training.frozen_run`): the encoder of a finished run's checkpoint, frozen, its weights
checked against the digest recorded in the run's spec.
"""

from __future__ import annotations

import dataclasses
import json
import math
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from vfmbench.training.frozen_run import FROZEN_RUN, frozen_run_options
from vfmbench.analysis.records import json_number, json_safe, md_cell
from vfmbench.utils.errors import ConfigError, DatasetError

SCHEMA = "vfmbench.analysis.vat/1"
FIGURE = "vat.png"
EVAL_FILE = "vat_eval.json"  # a finished run's evaluation on the VAT's testing environments


# -- the test -------------------------------------------------------------------------------------
@dataclass
class VatTest:
    """The one-sided paired t-test of eq. 4-7 on ``D_i = |Y_i - X_i|`` over ``n`` environments.

    ``t`` is +inf (-inf) when every ``D_i`` is equal and above (below) ``delta``, nan when equal
    to it; ``p_value`` is P(T >= t) under H0 for Student's t with ``n - 1`` degrees of freedom."""

    n: int
    delta: float
    alpha: float
    mean_d: float
    std_d: float  # unbiased (eq. 5)
    t: float
    critical: float  # t_{alpha, n-1}
    p_value: float
    reject: bool  # t > critical: the encoders are not interchangeable


def vat_ttest(y: Any, x: Any, delta: float = 0.05, alpha: float = 0.05) -> VatTest:
    """VAT's test of paper 001 eq. 4-7 on success rates ``y`` (pi1) and ``x`` (pi0->1), one per
    testing environment (``[N]`` each, in [0, 1], paired by environment).

    Raises ConfigError for fewer than 2 environments, unequal lengths, values outside [0, 1],
    ``delta`` outside [0, 1) or ``alpha`` outside (0, 1)."""
    from scipy import stats

    y, x = np.asarray(y, dtype=np.float64), np.asarray(x, dtype=np.float64)
    if y.ndim != 1 or y.shape != x.shape:
        raise ConfigError(f"VAT pairs one success rate of each policy per environment: got shapes "
                          f"{list(y.shape)} and {list(x.shape)}")
    if len(y) < 2:
        raise ConfigError(f"the t-test needs at least 2 testing environments, got {len(y)}; raise --environments")
    if not (np.all((y >= 0) & (y <= 1)) and np.all((x >= 0) & (x <= 1))):
        raise ConfigError("success rates must lie in [0, 1]")
    if not 0 <= delta < 1:
        raise ConfigError(f"delta is a threshold on a difference of success rates, in [0, 1); got {delta}")
    if not 0 < alpha < 1:
        raise ConfigError(f"alpha is a significance level in (0, 1); got {alpha}")
    d = np.abs(y - x)
    n = len(d)
    mean, std = float(d.mean()), float(d.std(ddof=1))
    critical = float(stats.t.ppf(1.0 - alpha, n - 1))
    if np.all(d == d[0]):  # no spread: scipy would return nan; the sign of mean - delta decides
        gap = mean - delta
        t = math.inf if gap > 0 else -math.inf if gap < 0 else math.nan
        p = 0.0 if gap > 0 else 1.0
    else:
        res = stats.ttest_1samp(d, popmean=delta, alternative="greater")
        t, p = float(res.statistic), float(res.pvalue)
    return VatTest(n=n, delta=float(delta), alpha=float(alpha), mean_d=mean, std_d=std, t=t, critical=critical,
                   p_value=p, reject=bool(t > critical))


def environment_rates(successes: list[bool], environments: int, per_environment: int) -> list[float]:
    """Per-environment success rates ``[environments]`` from per-episode successes, episode ``j``
    in environment ``j // per_environment``. Raises ConfigError when the counts do not match."""
    if len(successes) != environments * per_environment:
        raise ConfigError(f"{len(successes)} episodes are not {environments} environments x {per_environment}")
    return np.asarray(successes, float).reshape(environments, per_environment).mean(1).tolist()


# -- the record -----------------------------------------------------------------------------------
@dataclass
class VatPolicy:
    """One evaluated policy: its role (``pi0`` on T0, ``pi1`` and ``pi0->1`` on T1), run folder,
    overall success and the success rate in each testing environment."""

    role: str
    task: str
    run: str
    seed: int
    success_rate: float
    environment_success: list[float]
    train_seconds: float


@dataclass
class VatRow:
    """One encoder's VAT: its three policies and the test on T1 (Y = pi1, X = pi0->1)."""

    encoder: str  # label, "(random)" for pretrained-model entries with random weights
    trainable: bool  # trained end to end (the hypothesis' case) or frozen (the control)
    pi0: VatPolicy
    pi1: VatPolicy
    pi01: VatPolicy
    test: VatTest


@dataclass
class VatRecord:
    """`vfmbench analyze vat`'s record (``<out>/vat.json``, schema `SCHEMA`): the task pair, the
    testing environments (``environments`` blocks of ``episodes_per_environment`` held-out seeds
    from ``eval_seed``), the training budget and one `VatRow` per encoder."""

    task0: str
    task1: str
    method: str
    environments: int
    episodes_per_environment: int
    eval_seed: int
    delta: float
    alpha: float
    datasets: dict[str, str]  # task -> dataset folder
    budget: dict[str, Any]  # training episodes, steps and batch sizes
    rows: list[VatRow]
    seconds: float
    figures: list[str] = field(default_factory=list)
    # pi0 with a success on T0 below this did not learn T0, so its encoder is no evidence either way
    min_pi0_success: float = 0.5
    pair_checked: bool = True  # whether T0 and T1 were checked to render the same first frames
    schema: str = SCHEMA

    def pi0_learned(self, row: "VatRow") -> bool:
        """Whether `row`'s pi0 reached `min_pi0_success` on T0 (otherwise the test is not meaningful)."""
        return row.pi0.success_rate >= self.min_pi0_success

    def warnings(self) -> list[str]:
        """One sentence per thing that makes a row (or the record) not meaningful."""
        out = [f"{row.encoder}: pi0 did not learn T0 (success {row.pi0.success_rate:.2f} on {self.task0}, below "
               f"{self.min_pi0_success}): the test is not meaningful" for row in self.rows if not self.pi0_learned(row)]
        if not self.pair_checked:
            out.append(f"{self.task0} and {self.task1} were not checked to share their frames (pair check skipped)")
        return out

    def to_dict(self) -> dict[str, Any]:
        return json_safe(asdict(self))

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "VatRecord":
        """The record from its JSON mapping; DatasetError names a wrong schema or a malformed record."""
        if not isinstance(data, dict) or data.get("schema") != SCHEMA:
            schema = data.get("schema") if isinstance(data, dict) else None
            raise DatasetError(f"not a VAT record: schema {schema!r}, expected {SCHEMA!r}")
        try:
            kw = dict(data)
            kw["rows"] = [VatRow(encoder=r["encoder"], trainable=r["trainable"],
                                 pi0=VatPolicy(**r["pi0"]), pi1=VatPolicy(**r["pi1"]), pi01=VatPolicy(**r["pi01"]),
                                 test=VatTest(**{k: json_number(v) for k, v in r["test"].items()}))
                          for r in kw["rows"]]
            return cls(**kw)
        except (KeyError, TypeError) as exc:
            raise DatasetError(f"VAT record is malformed ({exc}); write it again with vfmbench analyze vat") from exc

    def markdown(self) -> str:
        """A table like paper 001's Table IV: per encoder, the success of pi0->1 (X) and pi1 (Y)
        on T1 (mean ± std over the testing environments), t against the critical value and the
        decision; pi0's success on T0 shows that it converged."""
        n = self.environments
        lines = [f"Visual Alignment Testing: T0 = {self.task0}, T1 = {self.task1}, {self.method}; "
                 f"{n} testing environments x {self.episodes_per_environment} episodes; "
                 f"delta = {self.delta}, alpha = {self.alpha}", "",
                 "| encoder | pi0 on T0 | pi0->1 on T1 (X) | pi1 on T1 (Y) | mean D | t | t crit | p | reject H0 |",
                 "|---|---|---|---|---|---|---|---|---|"]
        for r in self.rows:
            kind = "end to end" if r.trainable else "frozen"
            pi0 = f"{r.pi0.success_rate:.2f}" + ("" if self.pi0_learned(r) else " (did not learn T0)")
            lines.append(
                f"| {md_cell(r.encoder)} ({kind}) | {pi0} | {_mean_std(r.pi01.environment_success)} | "
                f"{_mean_std(r.pi1.environment_success)} | {r.test.mean_d:.3f} | {_fmt(r.test.t)} | "
                f"{r.test.critical:.2f} | {r.test.p_value:.2g} | "
                f"{('yes' if r.test.reject else 'no') if self.pi0_learned(r) else 'not meaningful'} |")
        notes = self.warnings()
        if notes:
            lines += ["", *(f"Warning: {n}." for n in notes)]
        return "\n".join(lines) + "\n"


def _mean_std(values: list[float]) -> str:
    return f"{np.mean(values):.2f} ± {np.std(values, ddof=1) if len(values) > 1 else 0.0:.2f}"


def _fmt(value: float) -> str:
    return f"{value:.2f}" if math.isfinite(value) else str(value)


# -- the analysis ---------------------------------------------------------------------------------
@dataclass
class VatConfig:
    """What `run_vat` trains and tests. Defaults: the Fetch block pair, an end-to-end CNN against
    frozen ImageNet EfficientNet-Lite0 (at the frames' 84x84), BC, 100 DART-noised expert episodes
    per task, 20 testing environments of 5 episodes."""

    task0: str = "fetch_reach_red"
    task1: str = "fetch_reach_blue"
    encoders: list[str] = field(default_factory=lambda: ["e2e_cnn", "imagenet_efficientnet_lite0"])
    encoder_options: dict[str, dict[str, Any]] = field(
        default_factory=lambda: {"imagenet_efficientnet_lite0": {"input_size": 84}})
    random_weights: bool = False  # frozen encoders with pretrained weights use random ones, labelled
    method: str = "bc"
    seed: int = 0  # pi0 and pi1
    swap_seed: int | None = None  # pi0->1's head (None: seed + 1, so it never repeats pi1's training)
    episodes: int = 100  # expert episodes collected per task (when no dataset is given)
    action_noise: float = 0.3  # DART noise while collecting, as the demo
    datasets: dict[str, str] = field(default_factory=dict)  # task -> an existing dataset folder
    environments: int = 20
    episodes_per_environment: int = 5
    eval_seed: int = 1_000_000  # held out: far from the collection seeds 0, 1, ...
    eval_envs: int = 10
    delta: float = 0.05  # paper 001 Table IV
    alpha: float = 0.05
    steps: int = 2000  # steps for frozen encoders (policy head only, on cached embeddings)
    trainable_steps: int = 3000  # steps for encoders trained end to end
    method_config: dict[str, Any] = field(default_factory=dict)
    trainable_method_config: dict[str, Any] = field(default_factory=lambda: {"batch_size": 64})
    device: str = "auto"
    cache_dir: str | None = None
    min_pi0_success: float = 0.5  # pi0 below this on T0 did not learn it: the row is marked not meaningful
    check_pair: bool = True  # refuse tasks whose first frames differ for the same seeds (not a VAT pair)
    pair_seeds: int = 3  # seeds the pair check resets both tasks with

    def validate(self) -> None:
        """ConfigError (or UnknownNameError) naming the setting and how to fix it."""
        from vfmbench.encoders import get_encoder_spec
        from vfmbench.tasks import get_task_spec

        for task in (self.task0, self.task1):
            spec = get_task_spec(task)
            if not spec.success:
                raise ConfigError(f"task {task!r} defines no success, which VAT compares; pick tasks that do")
        if self.task0 == self.task1:
            raise ConfigError(f"task0 and task1 are both {self.task0!r}; VAT needs two tasks (e.g. fetch_reach_red "
                              "and fetch_reach_blue)")
        if not self.encoders:
            raise ConfigError("name at least one encoder (vfmbench encoders list)")
        for name in self.encoders:
            spec = get_encoder_spec(name)
            if name == FROZEN_RUN:
                raise ConfigError(f"{FROZEN_RUN!r} is what VAT builds pi0->1 from; name the encoders to test")
            if spec.input_key != "pixels":
                raise ConfigError(f"encoder {name!r} reads {spec.input_key!r}, not frames; VAT swaps visual encoders")
            if spec.weights is not None and not self.random_weights and spec.weights_status() != "installed":
                raise ConfigError(f"encoder {name!r} needs its pretrained weights ({spec.weights_status()}): "
                                  f"{spec.weights.fetch_command}, or use random weights (--random-weights; "
                                  "random_weights=True in Python)")
        for name in self.encoder_options:
            if name not in self.encoders:
                raise ConfigError(f"encoder_options names {name!r}, which is not one of the encoders")
        for task in self.datasets:
            if task not in (self.task0, self.task1):
                raise ConfigError(f"datasets names task {task!r}; give datasets for {self.task0} or {self.task1}")
        for name in ("episodes", "environments", "episodes_per_environment", "eval_envs", "steps", "trainable_steps"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.environments < 2:
            raise ConfigError(f"the t-test needs at least 2 testing environments, got {self.environments}")
        if self.action_noise < 0:
            raise ConfigError(f"action_noise must be 0 or more, got {self.action_noise}")
        if not 0 <= self.min_pi0_success <= 1:
            raise ConfigError(f"min_pi0_success is a success rate in [0, 1], got {self.min_pi0_success}")
        if not 0 <= self.delta < 1 or not 0 < self.alpha < 1:
            raise ConfigError(f"delta must lie in [0, 1) and alpha in (0, 1); got {self.delta} and {self.alpha}")
        from vfmbench.policies import method_config

        method_config(self.method, self.method_config, source="VAT method_config")

    @property
    def head_seed(self) -> int:
        return self.seed + 1 if self.swap_seed is None else self.swap_seed


def run_vat(config: VatConfig, out: str | Path, progress: bool = True) -> VatRecord:
    """Paper 001 §III-C for each encoder of `config`: collect (or open) the two tasks' datasets,
    train pi0 on T0 and pi1 on T1, train pi0->1 (pi0's encoder frozen, a new head on T1's data),
    evaluate pi0 on T0 and pi1, pi0->1 on T1 over the same testing environments and run the test.

    Writes ``out/data/<task>`` (unless datasets are given), ``out/runs/<encoder>/{pi0,pi1,pi01}``,
    ``out/vat.json`` and ``out/vat.png``. Every run is a job: a rerun resumes interrupted runs
    and reads finished ones (and their evaluations) back. Raises ConfigError / UnknownNameError
    for bad settings before any work, DatasetError for a dataset of another task."""
    from vfmbench.data.collection import CollectConfig, collect, open_dataset
    from vfmbench.training import resolve_device
    from vfmbench.utils.io import write_json_atomic

    config.validate()
    resolve_device(config.device)  # a device this machine lacks fails before any work
    if config.check_pair:
        check_task_pair(config.task0, config.task1, seeds=config.pair_seeds)
    t0 = time.time()
    out = Path(out)
    datasets: dict[str, str] = {}
    for task in (config.task0, config.task1):
        if task in config.datasets:
            ds = open_dataset(config.datasets[task])
            if ds.task.get("task") != task:
                raise DatasetError(f"{ds.root} holds {ds.task.get('task')!r} episodes, not {task!r}; give a dataset "
                                   f"collected with vfmbench collect --task {task}")
        else:
            ds = collect(CollectConfig(task=task, episodes=config.episodes, seed=0, action_noise=config.action_noise),
                         out / "data" / task, progress=progress)
        datasets[task] = str(ds.root)
    rows = [_encoder_row(config, name, datasets, out, progress) for name in config.encoders]
    budget = {"episodes": {t: open_dataset(p).num_episodes for t, p in datasets.items()},
              "steps": config.steps, "trainable_steps": config.trainable_steps,
              "batch_size": _method_config(config, False).get("batch_size"),
              "trainable_batch_size": _method_config(config, True).get("batch_size"),
              "device": str(resolve_device(config.device))}
    record = VatRecord(task0=config.task0, task1=config.task1, method=config.method,
                       environments=config.environments, episodes_per_environment=config.episodes_per_environment,
                       eval_seed=config.eval_seed, delta=config.delta, alpha=config.alpha, datasets=datasets,
                       budget=budget, rows=rows, seconds=round(time.time() - t0, 1),
                       min_pi0_success=config.min_pi0_success, pair_checked=config.check_pair)
    for note in record.warnings():
        print(f"vfmbench: warning: VAT {note}", file=sys.stderr)
    out.mkdir(parents=True, exist_ok=True)
    record.figures = [plot_vat(record, out / FIGURE).name]
    write_json_atomic(out / "vat.json", record.to_dict())
    return record


def check_task_pair(task0: str, task1: str, seeds: int = 3) -> None:
    """Refuse (ConfigError) two tasks that are not a VAT pair: VAT needs one visual distribution
    with different motor signals, so T0 and T1 reset with the same seed must render the same
    first frame. Checked for seeds ``0 .. seeds - 1`` (as tests/test_fetch_pair.py does)."""
    from vfmbench.tasks import make_task

    tasks = []
    try:
        tasks = [make_task(task0), make_task(task1)]
        for seed in range(seeds):
            a, b = (t.reset(seed) for t in tasks)
            if "pixels" not in a or "pixels" not in b:
                raise ConfigError(f"{task0} or {task1} renders no frames; VAT compares visual encoders")
            if a["pixels"].shape != b["pixels"].shape or not np.array_equal(a["pixels"], b["pixels"]):
                raise ConfigError(
                    f"{task0} and {task1} are not a VAT pair: reset with seed {seed} they render different first "
                    "frames, and VAT needs two tasks with the same frames and different actions (e.g. "
                    "fetch_reach_red and fetch_reach_blue). To run it anyway, pass --no-pair-check; the result "
                    "then does not test visual alignment")
    finally:
        for t in tasks:
            t.close()


def _method_config(config: VatConfig, trainable: bool) -> dict[str, Any]:
    from vfmbench.policies import method_config

    data = {**config.method_config, **(config.trainable_method_config if trainable else {})}
    return asdict(method_config(config.method, data, source="VAT method_config"))


def _encoder_row(config: VatConfig, name: str, datasets: dict[str, str], out: Path, progress: bool) -> VatRow:
    """Train and evaluate pi0, pi1 and pi0->1 for encoder `name`; the test on T1."""
    from vfmbench.encoders import get_encoder_spec
    from vfmbench.training import RunSpec, TrainConfig

    trainable = get_encoder_spec(name).trainable
    episodes = config.environments * config.episodes_per_environment
    train = TrainConfig(steps=config.trainable_steps if trainable else config.steps, eval_episodes=episodes,
                        eval_envs=config.eval_envs, device=config.device)
    mcfg = {**config.method_config, **(config.trainable_method_config if trainable else {})}
    pretrained = False if config.random_weights and get_encoder_spec(name).weights is not None else None
    base = RunSpec(task=config.task0, encoder=name, method=config.method, seed=config.seed, pretrained=pretrained,
                   encoder_options=dict(config.encoder_options.get(name, {})), method_config=mcfg, train=train)
    folder = out / "runs" / name.replace("/", "_")
    pi0_spec = base
    pi1_spec = dataclasses.replace(base, task=config.task1)
    pi0, label = _policy(config, "pi0", pi0_spec, datasets[config.task0], folder / "pi0", progress)
    pi1, _ = _policy(config, "pi1", pi1_spec, datasets[config.task1], folder / "pi1", progress)
    # pi0->1 := pi1 | f = f0*: pi0's encoder, frozen, under a head trained anew on T1 (paper 001 §III-C)
    head_train = dataclasses.replace(train, steps=config.steps)
    pi01_spec = RunSpec(task=config.task1, encoder=FROZEN_RUN, method=config.method, seed=config.head_seed,
                        encoder_options=frozen_run_options(pi0.run), method_config=dict(config.method_config),
                        train=head_train)
    pi01, _ = _policy(config, "pi0->1", pi01_spec, datasets[config.task1], folder / "pi01", progress)
    test = vat_ttest(pi1.environment_success, pi01.environment_success, config.delta, config.alpha)
    return VatRow(encoder=label, trainable=trainable, pi0=pi0, pi1=pi1, pi01=pi01, test=test)


def _policy(config: VatConfig, role: str, spec: Any, dataset: str, run_dir: Path,
            progress: bool) -> tuple[VatPolicy, str]:
    """Train `spec` on `dataset` into `run_dir` through the job unit and evaluate it on the testing
    environments (read back from ``run_dir/vat_eval.json`` when it covers the same seeds)."""
    from vfmbench.experiments.job import EvalSpec, JobSpec, run_job
    from vfmbench.training import read_train_record
    from vfmbench.utils.io import read_json, write_json_atomic

    episodes = config.environments * config.episodes_per_environment
    seeds = list(range(config.eval_seed, config.eval_seed + episodes))
    saved = run_dir / EVAL_FILE
    record_path = run_dir / "result.json"
    if saved.exists() and record_path.exists():
        data = read_json(saved)
        if data.get("seeds") == seeds and data.get("spec") == _jsonable(asdict(spec)):
            train = read_train_record(run_dir)
            return _vat_policy(role, spec, run_dir, data["successes"], config, train.train_seconds), data["label"]
    job = JobSpec(run=spec, out=str(run_dir), dataset=dataset, cache_dir=config.cache_dir, progress=progress,
                  eval=EvalSpec(episodes=episodes, envs=config.eval_envs, seed=config.eval_seed))
    result = run_job(job)
    assert result.evaluation is not None
    label = result.encoder_label
    write_json_atomic(saved, {"spec": asdict(spec), "seeds": result.evaluation.seeds, "label": label,
                              "successes": result.evaluation.successes})
    return _vat_policy(role, spec, run_dir, result.evaluation.successes, config, result.train.train_seconds), label


def _jsonable(value: Any) -> Any:
    return json.loads(json.dumps(value))


def _vat_policy(role: str, spec: Any, run_dir: Path, successes: list[bool], config: VatConfig,
                seconds: float) -> VatPolicy:
    rates = environment_rates(successes, config.environments, config.episodes_per_environment)
    return VatPolicy(role=role, task=spec.task, run=str(run_dir), seed=spec.seed,
                     success_rate=float(np.mean(successes)), environment_success=rates, train_seconds=seconds)


def plot_vat(record: VatRecord, path: Path) -> Path:
    """The figure: per encoder, the success on T1 of pi1 (Y) and pi0->1 (X), mean over the testing
    environments with their standard deviation, the test's t and decision above. Needs ``viz``."""
    try:
        import matplotlib
    except ImportError as exc:
        from vfmbench.utils.errors import MissingDependencyError

        raise MissingDependencyError("the VAT figure needs matplotlib: pip install 'vfmbench[viz]'") from exc
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = len(record.rows)
    fig, ax = plt.subplots(figsize=(1.6 + 2.2 * n, 3.2))
    xs = np.arange(n)
    for offset, key, name, colour in ((-0.18, "pi1", "pi1 (Y)", "#4c72b0"), (0.18, "pi01", "pi0->1 (X)", "#dd8452")):
        rates = [getattr(r, key).environment_success for r in record.rows]
        ax.bar(xs + offset, [np.mean(v) for v in rates], 0.36, yerr=[np.std(v, ddof=1) for v in rates],
               capsize=3, color=colour, label=name)
    for x, r in zip(xs, record.rows):
        if record.pi0_learned(r):
            verdict, colour = ("reject H0" if r.test.reject else "keep H0"), "black"
        else:
            verdict, colour = f"pi0 did not learn T0\n({r.pi0.success_rate:.2f}): not meaningful", "#c00000"
        ax.text(x, 1.04, f"t = {_fmt(r.test.t)}\n{verdict}", ha="center", va="bottom", fontsize=7, color=colour)
    ax.set_xticks(xs, [f"{r.encoder}\n({'end to end' if r.trainable else 'frozen'})" for r in record.rows], fontsize=7)
    ax.set_ylim(0, 1.25)
    ax.set_ylabel(f"success on {record.task1}", fontsize=8)
    ax.set_title(f"VAT: {record.task0} -> {record.task1}, t crit {record.rows[0].test.critical:.2f} "
                 f"(alpha {record.alpha}, delta {record.delta})", fontsize=8)
    ax.legend(fontsize=7, loc="upper right", bbox_to_anchor=(1.0, 0.9))
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
