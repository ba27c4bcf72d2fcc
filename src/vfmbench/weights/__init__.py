"""Pretrained weights: the registry of official weight sets, checksums, downloads and checkpoint files.

Every weight set is a `WeightsSpec` registered by name in `WEIGHTS` (the encoder zoo registers
one per pretrained encoder, under the encoder's name; other users, such as SAM's prompt encoder
and mask decoder, refer to an existing set and are listed in its ``used_by``). Files live under
``$VFMBENCH_HOME/weights/<name>/<filename>`` (a file, or a folder in the hub's
``save_pretrained`` layout for ``format="hf_dir"``).

Nothing is downloaded implicitly: `download_weights` (``vfmbench weights download NAME``) fetches
and verifies a set; everything else reads what is installed, and a missing or corrupt file is a
WeightsError naming the file, its source and the command that fetches it.

- `specs`: `WeightsSpec`, `WEIGHTS`, `weights_path`, `weights_error`;
- `checksums`: sha256 with a ``<file>.sha256`` sidecar cache, `verify_weights`, `resolve_weights`;
- `download`: `download_weights` (pooch for URLs, huggingface_hub or pooch for hub folders);
- `formats`: `read_state_dict` (safetensors, ``torch.load(weights_only=True)``, TorchScript) and
  the state-dict helpers `unwrap`, `strip_prefix`, `rename`, `load_exact`;
- `loading`: `locate_weights` and `load_checkpoint_into` (a weight set into a module).
"""

from vfmbench.weights.checksums import cached_sha256, checksum_target, resolve_weights, sha256_file, verify_weights
from vfmbench.weights.download import download_weights, hub_file_url
from vfmbench.weights.formats import (
    TRUST_ENV,
    CheckpointError,
    StateDict,
    load_exact,
    read_state_dict,
    rename,
    strip_prefix,
    unwrap,
)
from vfmbench.weights.loading import WeightsLocation, load_checkpoint_into, locate_weights
from vfmbench.weights.specs import (
    HF_PREFIX,
    HF_WEIGHT_FILES,
    WEIGHTS,
    WeightsSpec,
    get_weights,
    list_weights,
    register_weights,
    weights_error,
    weights_path,
)

__all__ = [
    "HF_PREFIX",
    "HF_WEIGHT_FILES",
    "TRUST_ENV",
    "WEIGHTS",
    "CheckpointError",
    "StateDict",
    "WeightsLocation",
    "WeightsSpec",
    "cached_sha256",
    "checksum_target",
    "download_weights",
    "get_weights",
    "hub_file_url",
    "list_weights",
    "load_checkpoint_into",
    "load_exact",
    "locate_weights",
    "read_state_dict",
    "register_weights",
    "rename",
    "resolve_weights",
    "sha256_file",
    "strip_prefix",
    "unwrap",
    "verify_weights",
    "weights_error",
    "weights_path",
]
