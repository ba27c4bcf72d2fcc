"""Reading checkpoint files into state dicts without running their code, and the helpers that map
them onto a module.

`read_state_dict` opens

- safetensors files (recognised by their header, whatever the suffix);
- ``torch.save`` archives, with ``torch.load(weights_only=True)`` (``argparse.Namespace`` entries,
  which some training scripts store next to the weights, are allowed);
- TorchScript archives (OpenAI's CLIP ``.pt``). TorchScript is code: ``torch.jit.load`` compiles
  the archive's classes and runs their ``__setstate__`` while loading. vfmbench never calls it
  unless asked: the archive's ``data.pkl`` is read with a restricted unpickler that only rebuilds
  tensors from the ``data/`` records and stands in inert objects for the archive's classes, and
  the state dict is assembled from their attributes (parameters and buffers as the archive's
  ``code/`` declares them; the code itself is only read as text).

Anything else a file pickles is refused with a `CheckpointError` naming ``VFMBENCH_TRUST_CHECKPOINTS=1``,
which allows full unpickling (``torch.load(weights_only=False)``, or ``torch.jit.load`` for
TorchScript) of files you trust.

`describe_checkpoint` says what a file's content looks like (which official layout, which
sizes), for errors about a file that is not what a loader expects. `unwrap`, `strip_prefix` and
`rename` take an official layout apart (nesting, key prefixes, key names); `load_exact` loads the
result strictly, listing what does not fit as a `CheckpointError` in the file's own key names.
"""

from __future__ import annotations

import argparse
import os
import pickle
import re
import struct
import warnings
import zipfile
from collections import OrderedDict
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping

import torch

StateDict = dict[str, torch.Tensor]
TRUST_ENV = "VFMBENCH_TRUST_CHECKPOINTS"


class CheckpointError(Exception):
    """A checkpoint's content does not fit the architecture or format (missing keys, wrong shapes),
    or cannot be read without running code."""


class ScriptArchive(dict):
    """The tensors of a TorchScript archive, by state-dict key (a dict that remembers its container)."""


def trusted() -> bool:
    """Whether the user allowed full unpickling (``VFMBENCH_TRUST_CHECKPOINTS=1``)."""
    return os.environ.get(TRUST_ENV) == "1"


def _trust_hint(what: str) -> str:
    return f"if you trust the file, set {TRUST_ENV}=1 to {what}"


# ------------------------------------------------------------------------------------- containers

def _is_safetensors(path: Path) -> bool:
    """A safetensors file starts with the little-endian length of a JSON header that opens with '{'."""
    try:
        with open(path, "rb") as f:
            head = f.read(9)
        size = path.stat().st_size
    except OSError:
        return False
    if len(head) < 9:
        return False
    (n,) = struct.unpack("<Q", head[:8])
    return head[8:9] == b"{" and 8 + n <= size


def _script_prefix(archive: zipfile.ZipFile) -> str | None:
    """The record prefix (``"<name>/"``) of a TorchScript archive, None for other zip files
    (a ``torch.save`` archive has ``data.pkl`` but no ``constants.pkl``)."""
    names = set(archive.namelist())
    for name in names:
        if name.endswith("/data.pkl") and name.count("/") == 1:
            prefix = name[: -len("data.pkl")]
            if prefix + "constants.pkl" in names:
                return prefix
    return None


def read_state_dict(path: Path) -> dict[str, Any]:
    """The top-level mapping stored in checkpoint file `path` (tensors, maybe nested dicts), read
    without running code from the file (see the module docstring). A file holding anything but a
    mapping (a bare tensor, a list) raises `CheckpointError` saying what it holds."""
    state = _read(Path(path))
    if not isinstance(state, Mapping):
        raise CheckpointError(f"the file holds {describe_checkpoint(state)}")
    return state


def _is_pickle(path: Path) -> bool:
    """Whether `path` starts as a pickle of protocol 2 or later does (PyTorch's legacy format)."""
    with open(path, "rb") as f:
        head = f.read(2)
    return len(head) == 2 and head[0] == 0x80 and 2 <= head[1] <= 5


def _read(path: Path) -> Any:
    if _is_safetensors(path):
        from safetensors.torch import load_file

        return dict(load_file(str(path)))
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as archive:
            prefix = _script_prefix(archive)
            if prefix is not None:
                try:
                    return read_torchscript_tensors(archive, prefix)
                except _Refused as exc:
                    if not trusted():
                        raise CheckpointError(
                            f"it is a TorchScript archive that {exc}, which the reader that never runs an archive's "
                            f"code does not rebuild (it rebuilds tensors and inert modules only); "
                            f"{_trust_hint('load it with torch.jit.load, which runs the archive code')}"
                        ) from None
        if prefix is not None:
            with warnings.catch_warnings():  # torch.jit.load is deprecated but still reads them
                warnings.simplefilter("ignore", DeprecationWarning)
                return ScriptArchive(torch.jit.load(str(path), map_location="cpu").state_dict())
    elif path.stat().st_size == 0:
        raise CheckpointError("the file is empty")
    elif not _is_pickle(path):
        raise CheckpointError("it is neither a PyTorch checkpoint (a zip archive or a pickle) nor a safetensors "
                              "file: the file is damaged, or something else (an HTML error page, a text file, ...)")
    if trusted():
        return torch.load(path, map_location="cpu", weights_only=False)
    try:
        with torch.serialization.safe_globals([argparse.Namespace]):
            return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        if "global" not in str(exc).lower():  # not a refused class: the pickle itself is broken
            raise CheckpointError("its pickle cannot be read: the file is damaged or truncated") from None
        raise CheckpointError(
            f"it pickles objects other than tensors ({str(exc).splitlines()[0]}); "
            f"{_trust_hint('load it anyway')}"
        ) from None


# ----------------------------------------------------------------- TorchScript, without its code

class _Refused(Exception):
    """The archive pickles something the restricted unpickler does not rebuild."""


class _ScriptObject:
    """An inert stand-in for an instance of one of the archive's TorchScript classes: it keeps the
    attributes the pickle gives it and never runs the class's code."""

    qualname = ""

    def __setstate__(self, state: Any) -> None:  # the pickle's BUILD; a custom __getstate__ gives a non-dict
        self.attrs = dict(state) if isinstance(state, dict) else {}


# torch's legacy storage classes, as pickled: the dtype of their elements
_STORAGE_DTYPES = {
    "DoubleStorage": torch.float64, "FloatStorage": torch.float32, "HalfStorage": torch.float16,
    "BFloat16Storage": torch.bfloat16, "LongStorage": torch.int64, "IntStorage": torch.int32,
    "ShortStorage": torch.int16, "CharStorage": torch.int8, "ByteStorage": torch.uint8, "BoolStorage": torch.bool,
}


class _StorageType:
    def __init__(self, dtype: torch.dtype):
        self.dtype = dtype


class _Storage:
    def __init__(self, dtype: torch.dtype, untyped: torch.UntypedStorage):
        self.dtype, self.untyped = dtype, untyped


def _rebuild_tensor(storage: _Storage, offset: int, size: tuple[int, ...], stride: tuple[int, ...],
                    *_: Any) -> torch.Tensor:  # requires_grad, backward hooks, metadata: not needed for weights
    if not isinstance(storage, _Storage):
        raise _Refused("rebuilds a tensor from something other than a data record")
    return torch.empty((0,), dtype=storage.dtype).set_(storage.untyped, offset, tuple(size), tuple(stride))


def _rebuild_parameter(data: torch.Tensor, *_: Any) -> torch.Tensor:
    return data


def _type_tag(value: Any, type_str: str) -> Any:
    return value


def _as_list(data: Any) -> list[Any]:
    return list(data)


_ALLOWED: dict[tuple[str, str], Any] = {
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor,
    ("torch._utils", "_rebuild_tensor"): _rebuild_tensor,
    ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
    ("collections", "OrderedDict"): OrderedDict,
    ("torch.jit._pickle", "restore_type_tag"): _type_tag,
    ("torch.jit._pickle", "build_intlist"): _as_list,
    ("torch.jit._pickle", "build_doublelist"): _as_list,
    ("torch.jit._pickle", "build_boollist"): _as_list,
    ("torch.jit._pickle", "build_tensorlist"): _as_list,
}


class _RestrictedUnpickler(pickle.Unpickler):
    """Rebuilds tensors (from the archive's ``data/`` records), plain containers and inert stand-ins
    for ``__torch__.*`` classes; any other global is refused before anything is called."""

    def __init__(self, file: Any, read_record: Callable[[str], bytes]):
        super().__init__(file)
        self._read_record = read_record
        self._storages: dict[str, _Storage] = {}
        self._classes: dict[str, type] = {}

    def find_class(self, module: str, name: str) -> Any:
        if module == "__torch__" or module.startswith("__torch__."):
            qualname = f"{module}.{name}"
            if qualname not in self._classes:  # a new class object with that name; nothing of the archive runs
                self._classes[qualname] = type(name, (_ScriptObject,), {"qualname": qualname})
            return self._classes[qualname]
        if module == "torch" and name in _STORAGE_DTYPES:
            return _StorageType(_STORAGE_DTYPES[name])
        if (module, name) in _ALLOWED:
            return _ALLOWED[(module, name)]
        raise _Refused(f"pickles {module}.{name}")

    def persistent_load(self, pid: Any) -> _Storage:
        if not (isinstance(pid, tuple) and len(pid) == 5 and pid[0] == "storage" and isinstance(pid[1], _StorageType)):
            raise _Refused(f"refers to a record the way weights never do ({pid!r:.80})")
        _, storage_type, key, _location, numel = pid
        key = str(key)
        if key not in self._storages:
            raw = self._read_record(f"data/{key}")
            dtype = storage_type.dtype
            if len(raw) < int(numel) * torch.empty((), dtype=dtype).element_size():
                raise _Refused(f"has a data record {key!r} shorter than the tensor it holds")
            buffer = torch.frombuffer(bytearray(raw), dtype=torch.uint8) if raw else torch.empty(0, dtype=torch.uint8)
            self._storages[key] = _Storage(dtype, buffer.untyped_storage())
        return self._storages[key]


_DECLARATION = re.compile(
    r"^class (\w+)\(Module\):\n  __parameters__ = \[([^\]]*)\]\n  __buffers__ = \[([^\]]*)\]", re.MULTILINE)


def _declared_tensors(archive: zipfile.ZipFile, prefix: str) -> dict[str, set[str]]:
    """Parameter and buffer names of each module class, as the archive's ``code/`` declares them
    (read as text, never run): ``{"__torch__.torch.nn.modules.linear.Linear": {"weight", "bias"}}``."""
    declared: dict[str, set[str]] = {}
    root = prefix + "code/"
    for name in archive.namelist():
        if not (name.startswith(root) and name.endswith(".py")):
            continue
        module = name[len(root):-3].replace("/", ".")
        text = archive.read(name).decode("utf-8", errors="replace")
        for cls, params, buffers in _DECLARATION.findall(text):
            declared[f"{module}.{cls}"] = set(re.findall(r'"([^"]+)"', params + buffers))
    return declared


def read_torchscript_tensors(archive: zipfile.ZipFile, prefix: str) -> ScriptArchive:
    """The parameters and buffers of TorchScript archive `archive` by state-dict key, read without
    running any of its code. Raises `_Refused` when the archive pickles anything else than modules,
    tensors and plain values."""
    byteorder = prefix + "byteorder"
    if byteorder in archive.namelist() and archive.read(byteorder).strip() not in (b"little", b""):
        raise _Refused("stores big-endian tensors")

    def read_record(name: str) -> bytes:
        try:
            return archive.read(prefix + name)
        except KeyError:
            raise _Refused(f"refers to a missing record {name!r}") from None

    import io

    try:
        root = _RestrictedUnpickler(io.BytesIO(read_record("data.pkl")), read_record).load()
    except _Refused:
        raise
    except Exception as exc:  # a malformed pickle
        raise CheckpointError(f"its TorchScript data.pkl cannot be read ({type(exc).__name__}: {exc})") from None
    if not isinstance(root, _ScriptObject):
        raise _Refused(f"holds a {type(root).__name__} instead of a module")
    declared = _declared_tensors(archive, prefix)
    out = ScriptArchive()
    seen: set[int] = set()

    def collect(obj: _ScriptObject, key: str) -> None:
        if id(obj) in seen:
            return
        seen.add(id(obj))
        names = declared.get(obj.qualname)
        for attr, value in getattr(obj, "attrs", {}).items():
            if isinstance(value, torch.Tensor) and (names is None or attr in names):
                out[key + attr] = value
            elif isinstance(value, _ScriptObject):
                collect(value, f"{key}{attr}.")

    collect(root, "")
    return out


# ---------------------------------------------------------------------- what a checkpoint holds

_RESNETS = {((2, 2, 2, 2), False): 18, ((3, 4, 6, 3), False): 34, ((3, 4, 6, 3), True): 50,
            ((3, 4, 23, 3), True): 101, ((3, 8, 36, 3), True): 152}


def _tensors(state: Mapping[str, Any]) -> dict[str, torch.Tensor]:
    return {k: v for k, v in state.items() if isinstance(k, str) and isinstance(v, torch.Tensor)}


def _common_prefix(keys: list[str]) -> str:
    for prefix in ("module.", "backbone.", "convnet.", "model."):
        if keys and all(k.startswith(prefix) for k in keys):
            return prefix
    return ""


def _vit_sizes(t: Mapping[str, torch.Tensor], prefix: str = "") -> str:
    pattern = re.compile(re.escape(prefix) + r"(?:blocks|transformer\.resblocks)\.(\d+)\.")
    blocks = {m.group(1) for k in t if (m := pattern.match(k))}
    parts = []
    for key in (f"{prefix}cls_token", f"{prefix}class_embedding", f"{prefix}pos_embed"):
        if key in t:
            parts.append(f"width {t[key].shape[-1]}")
            break
    if blocks:
        parts.append(f"{len(blocks)} blocks")
    for key in (f"{prefix}patch_embed.proj.weight", f"{prefix}conv1.weight"):
        if key in t and t[key].ndim == 4:
            parts.append(f"patch {t[key].shape[-1]}")
            break
    return f" ({', '.join(parts)})" if parts else ""


def _resnet_sizes(t: Mapping[str, torch.Tensor], prefix: str = "") -> str:
    counts, bottleneck = [], f"{prefix}layer1.0.conv3.weight" in t
    for layer in range(1, 5):
        pattern = re.compile(re.escape(f"{prefix}layer{layer}.") + r"(\d+)\.")
        counts.append(len({m.group(1) for k in t if (m := pattern.match(k))}))
    depth = _RESNETS.get((tuple(counts), bottleneck))
    parts = [f"ResNet-{depth}" if depth else f"ResNet with blocks {counts}"]
    fc = t.get(f"{prefix}fc.weight")
    parts.append(f"fc {fc.shape[1]}->{fc.shape[0]}" if fc is not None and fc.ndim == 2 else "no fc")
    return f" ({', '.join(parts)})"


def _parts(keys: list[str], parts: tuple[str, ...]) -> str:
    """Which of a model's top-level `parts` the keys hold: "(image_encoder.*, ...; no mask_decoder.*)"."""
    held = [p for p in parts if any(k.startswith(p + ".") for k in keys)]
    missing = [p for p in parts if p not in held]
    return "(" + ", ".join(f"{p}.*" for p in held) + ("; no " + ", ".join(f"{p}.*" for p in missing) if missing else "") + ")"


def _describe_flat(state: Mapping[str, Any]) -> str:
    t = _tensors(state)
    if not t:
        names = ", ".join(repr(k) for k in list(state)[:6])
        return f"a mapping without tensors (keys {names})" if names else "an empty mapping"
    prefix = ""
    while step := _common_prefix([k[len(prefix):] for k in t]):
        prefix += step
    t = {k[len(prefix):]: v for k, v in t.items()}
    keys = list(t)
    where = f", every key prefixed {prefix!r}" if prefix else ""
    has = t.__contains__
    if any(k.startswith("image_encoder.trunk.") for k in keys):
        what = "a SAM 2 checkpoint " + _parts(keys, ("image_encoder", "sam_prompt_encoder", "sam_mask_decoder",
                                                      "memory_attention", "memory_encoder"))
    elif any(k.startswith("image_encoder.") for k in keys):
        what = "a segment-anything checkpoint " + _parts(keys, ("image_encoder", "prompt_encoder", "mask_decoder")) + \
            _vit_sizes(t, "image_encoder.")
    elif any(k.startswith("visual.") for k in keys):
        if has("visual.attnpool.c_proj.weight"):
            what = "a CLIP checkpoint with a ResNet image tower (visual.attnpool.*)"
        else:
            what = "a CLIP checkpoint (visual.* image tower)" + _vit_sizes(t, "visual.")
    elif has("neck.0.weight") and any(".rel_pos_h" in k for k in keys):
        what = "a segment-anything image encoder alone" + _vit_sizes(t)
    elif has("cls_token") and any(re.match(r"blocks\.\d+\.ls1\.gamma$", k) for k in keys):
        registers = t.get("register_tokens")
        kind = f"with {registers.shape[1]} registers" if registers is not None else "without registers"
        what = f"a DINOv2 ViT {kind} (official layout)" + _vit_sizes(t)
    elif has("cls_token") and any(k.startswith("blocks.") for k in keys):
        if any(k.startswith("decoder") for k in keys):
            what = "an MAE pre-training checkpoint (encoder and decoder)" + _vit_sizes(t)
        elif has("head.weight") or has("fc_norm.weight"):
            what = "a timm ViT with a classification head (head.*/fc_norm.*: supervised or fine-tuned)" + _vit_sizes(t)
        else:
            what = "a timm/MAE ViT encoder" + _vit_sizes(t)
    elif has("conv1.weight") and any(k.startswith("layer1.") for k in keys):
        what = "a torchvision ResNet state dict" + _resnet_sizes(t)
    elif has("convnet.conv1.weight"):
        others = sorted({prefix + k.split(".")[0] + ".*" for k in keys if not k.startswith("convnet.")})
        what = f"a torchvision ResNet under {prefix + 'convnet.'!r}" + _resnet_sizes(t, "convnet.") + \
            (f" beside {', '.join(others)}" if others else "")
        where = ""
    elif any(k.startswith(("vision_model.", "vision_encoder.", "embeddings.", "encoder.layer.", "layers.")) for k in keys):
        what = "a transformers (hub) state dict"
    else:
        what = f"{len(keys)} tensors with keys like {', '.join(keys[:4])}"
    return what + where


_WRAPPERS = {
    "r3m": "an R3M checkpoint (the ResNet under 'r3m')",
    "vip": "a VIP checkpoint (the ResNet under 'vip')",
    "teacher": "a DINOv2 training checkpoint (under 'teacher')",
    "model": "weights under 'model' (as MAE, MVP and SAM 2 files store them)",
    "state_dict": "weights under 'state_dict'",
    "module": "weights under 'module'",
}


def describe_checkpoint(checkpoint: Any) -> str:
    """What `checkpoint` (the content of a file, as `read_state_dict` returns it) looks like: which
    official layout it resembles, with its sizes, e.g. "a VIP checkpoint (the ResNet under 'vip'):
    a torchvision ResNet state dict (ResNet-50, fc 2048->1024), every key prefixed 'module.convnet.'"."""
    container = "a TorchScript archive holding " if isinstance(checkpoint, ScriptArchive) else ""
    if not isinstance(checkpoint, Mapping):
        return f"a pickled {type(checkpoint).__name__}, not a mapping of tensors"
    for key, label in _WRAPPERS.items():
        inner = checkpoint.get(key)
        if isinstance(inner, Mapping) and not _tensors(checkpoint):
            return f"{container}{label}: {_describe_flat(inner)}"
    return container + _describe_flat(checkpoint)


def not_the_format(expected: str, checkpoint: Any, missing: Iterable[str] = ()) -> CheckpointError:
    """The error for a file that is not in the layout a loader reads; `missing`: keys the loader
    needs that the file lacks (the first few are named)."""
    missing = list(missing)
    lacks = f"; it lacks {', '.join(missing[:4])}" + (f" and {len(missing) - 4} more" if len(missing) > 4 else "") \
        if missing else ""
    return CheckpointError(f"this is not {expected}; the file looks like {describe_checkpoint(checkpoint)}{lacks}")


# -------------------------------------------------------------------------- state-dict helpers

def unwrap(checkpoint: Mapping[str, Any], keys: Iterable[str]) -> dict[str, Any]:
    """The state dict nested under the first of `keys` present (e.g. ``"model"``), else the mapping itself."""
    for key in keys:
        if key in checkpoint and isinstance(checkpoint[key], Mapping):
            return dict(checkpoint[key])
    return dict(checkpoint)


def strip_prefix(state: Mapping[str, Any], prefix: str) -> StateDict:
    """Entries whose key starts with `prefix`, with the prefix removed (others are dropped)."""
    return {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix) and isinstance(v, torch.Tensor)}


def rename(state: Mapping[str, torch.Tensor], rules: list[tuple[str, str]]) -> StateDict:
    """Apply regex `rules` (pattern, replacement) to every key; the first matching rule wins."""
    compiled = [(re.compile(p), r) for p, r in rules]
    out: StateDict = {}
    for key, value in state.items():
        for pattern, repl in compiled:
            if pattern.match(key):
                key = pattern.sub(repl, key, count=1)
                break
        out[key] = value
    return out


def file_keys(checkpoint: Any) -> dict[int, tuple[str, tuple[int, ...]]]:
    """Every tensor stored in `checkpoint` by ``id()``: its key as stored (nested keys joined with
    ``/``, e.g. ``r3m/module.convnet.conv1.weight``) and its shape. Converters keep the file's
    tensor objects (or views of them), so a converted key can be traced back to the file's."""
    out: dict[int, tuple[str, tuple[int, ...]]] = {}

    def walk(obj: Any, path: str) -> None:
        if isinstance(obj, torch.Tensor):
            out.setdefault(id(obj), (path, tuple(obj.shape)))
        elif isinstance(obj, Mapping):
            for key, value in obj.items():
                walk(value, f"{path}/{key}" if path else str(key))

    walk(checkpoint, "")
    return out


def _listing(label: str, items: list[str]) -> str:
    return f"{label} ({len(items)}): {', '.join(items[:6])}{' ...' if len(items) > 6 else ''}"


def load_exact(module: torch.nn.Module, state: Mapping[str, torch.Tensor],
               stored: Mapping[int, tuple[str, tuple[int, ...]]] | None = None) -> None:
    """``load_state_dict(strict=True)`` with a CheckpointError listing missing, unexpected and
    misshaped keys. With `stored` (`file_keys` of the file the state came from), unexpected and
    misshaped entries are named as the file stores them, with the file's shapes."""
    stored = stored or {}

    def as_stored(key: str) -> tuple[str, tuple[int, ...]]:
        tensor = state[key]
        for candidate in (tensor, tensor._base):
            if candidate is not None and id(candidate) in stored:
                return stored[id(candidate)]
        return key, tuple(tensor.shape)

    own = module.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = list(dict.fromkeys(as_stored(k)[0] for k in sorted(set(state) - set(own))))
    shapes = list(dict.fromkeys(
        f"{as_stored(k)[0]} {as_stored(k)[1]} where the model needs {tuple(own[k].shape)}"
        for k in own if k in state and tuple(state[k].shape) != tuple(own[k].shape)))
    if missing or unexpected or shapes:
        parts = []
        for label, items in (("missing keys (the model's names; no entry in the file)", missing),
                             ("unexpected keys (as stored in the file)", unexpected),
                             ("shape mismatches (as stored in the file)", shapes)):
            if items:
                parts.append(_listing(label, items))
        raise CheckpointError("; ".join(parts))
    module.load_state_dict(dict(state), strict=True)
