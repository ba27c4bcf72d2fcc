"""Pretrained weights: the registry of official weight sets, checksums, downloads and checkpoint files.

Every weight set is a `WeightsSpec` registered by name in `WEIGHTS` (the encoder zoo registers
one per pretrained encoder, under the encoder's name; other users, such as SAM's prompt encoder
and mask decoder, refer to an existing set and are listed in its ``used_by``). Files live under
``$VFMBENCH_HOME/weights/<name>/<filename>`` (a file, or a folder in the hub's
``save_pretrained`` layout for ``format="hf_dir"``).

Nothing is downloaded implicitly: `download_weights` (``vfmbench weights download NAME``) fetches
and verifies a set; everything else reads what is installed, and a missing or corrupt file is a
WeightsError naming the file, its source and the command that fetches it.

- `specs`: `WeightsSpec`, `WEIGHTS`, `weights_path`, `installed_path` (the spec's file or one of
  its ``also_named`` files), `weights_error`;
- `checksums`: sha256 with a ``<file>.sha256`` sidecar cache, `verify_weights`, `weights_status`,
  `resolve_weights`;
- `download`: `download_weights` (pooch for URLs, huggingface_hub or pooch for hub folders);
- `formats`: `read_state_dict` (safetensors, ``torch.load(weights_only=True)``, TorchScript read
  without running its code), `describe_checkpoint` (what a file looks like) and the state-dict
  helpers `unwrap`, `strip_prefix`, `rename`, `file_keys`, `load_exact`;
- `loading`: `locate_weights` and `load_checkpoint_into` (a weight set into a module).
"""

from vfmbench.weights.checksums import (
    cached_sha256,
    checksum_target,
    resolve_weights,
    sha256_file,
    verify_weights,
    weights_status,
)
from vfmbench.weights.download import download_weights, hub_file_url
from vfmbench.weights.formats import (
    TRUST_ENV,
    CheckpointError,
    ScriptArchive,
    StateDict,
    describe_checkpoint,
    file_keys,
    load_exact,
    not_the_format,
    read_state_dict,
    rename,
    strip_prefix,
    trusted,
    unwrap,
)
from vfmbench.weights.loading import WeightsLocation, load_checkpoint_into, locate_weights
from vfmbench.weights.specs import (
    HF_PREFIX,
    HF_WEIGHT_FILES,
    OWN_FILE_HINT,
    WEIGHTS,
    WeightsSpec,
    get_weights,
    installed_path,
    list_weights,
    register_weights,
    weights_error,
    weights_path,
)

__all__ = [
    "HF_PREFIX",
    "HF_WEIGHT_FILES",
    "OWN_FILE_HINT",
    "TRUST_ENV",
    "WEIGHTS",
    "CheckpointError",
    "ScriptArchive",
    "StateDict",
    "WeightsLocation",
    "WeightsSpec",
    "cached_sha256",
    "checksum_target",
    "describe_checkpoint",
    "download_weights",
    "file_keys",
    "get_weights",
    "hub_file_url",
    "installed_path",
    "list_weights",
    "load_checkpoint_into",
    "load_exact",
    "locate_weights",
    "not_the_format",
    "read_state_dict",
    "register_weights",
    "rename",
    "resolve_weights",
    "sha256_file",
    "strip_prefix",
    "trusted",
    "unwrap",
    "verify_weights",
    "weights_error",
    "weights_path",
    "weights_status",
]
