"""Online visual RL: DrQ-v2 and PIE-G agents, optionally on SAM-G masked observations.

- `config`: `AgentConfig`, `RLRunSpec`, the papers' presets per task family
- `replay`: `ReplayBuffer` (frames stored once, n-step returns, exact episode boundaries, resumable)
- `networks`, `agent`: DrQ-v2's encoder and actor-critic; PIE-G's frozen-encoder front end
- `loop`: `RLTrainer` (act, step, store, update; evaluation, checkpoints, resume)
- `job`: `run_rl_job(RLJobSpec) -> RLRunRecord`, evaluation under shifts, the paper's return table
- `expert`: datasets written by a trained agent (`collect_with_agent`)
"""

from vfmbench.rl.config import AgentConfig, RLRunSpec, default_frames, preset_overrides
from vfmbench.rl.job import RLJobSpec, RLRunRecord, ShiftReturns, evaluate_run, return_table, run_rl_job
from vfmbench.rl.loop import RLTrainer, RLTrainRecord, load_rl_agent, read_rl_record
from vfmbench.rl.replay import Batch, ReplayBuffer

__all__ = ["AgentConfig", "Batch", "RLJobSpec", "RLRunRecord", "RLRunSpec", "RLTrainRecord", "RLTrainer", "ReplayBuffer",
           "ShiftReturns", "default_frames", "evaluate_run", "load_rl_agent", "preset_overrides", "read_rl_record",
           "return_table", "run_rl_job"]
