"""The weights package: a registry of weight sets independent of the encoders, checksums, and
downloads through pooch from a local HTTP server (127.0.0.1; nothing leaves the machine)."""

from __future__ import annotations

import argparse
import hashlib
import http.server
import json
import sys
import threading
from pathlib import Path

import pickle
import warnings
import zipfile
from typing import Tuple

import pytest
import torch
from torch import nn

from vfmbench.registry import Registry
from vfmbench.utils.errors import WeightsError
from vfmbench.weights import (
    CheckpointError,
    WeightsSpec,
    download_weights,
    load_checkpoint_into,
    locate_weights,
    read_state_dict,
    strip_prefix,
    verify_weights,
    weights_path,
)

SERVER_LIFETIME_S = 120  # the server shuts itself down after this, even if a test never stops it


@pytest.fixture()
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("VFMBENCH_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


class _Handler(http.server.SimpleHTTPRequestHandler):
    """Serves the fixture's folder; ``/truncated`` promises 1 MiB and sends 10 bytes, then hangs up."""

    def do_GET(self) -> None:
        if self.path == "/truncated":
            self.send_response(200)
            self.send_header("Content-Length", str(1 << 20))
            self.end_headers()
            self.wfile.write(b"0123456789")
            self.wfile.flush()
            self.close_connection = True
            return
        super().do_GET()

    def log_message(self, *args: object) -> None:  # keep test output clean
        pass


@pytest.fixture()
def server(tmp_path, monkeypatch):
    """(root folder, base URL) of an HTTP server on 127.0.0.1 serving that folder."""
    for var in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    root = tmp_path / "served"
    root.mkdir()

    def handler(*args, **kwargs):
        return _Handler(*args, directory=str(root), **kwargs)

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
    thread.start()
    stopper = threading.Timer(SERVER_LIFETIME_S, httpd.shutdown)
    stopper.daemon = True
    stopper.start()
    try:
        yield root, f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        stopper.cancel()
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=5)


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


def test_pooch_download_fetches_and_verifies_the_sha256(server, home):
    root, url = server
    (root / "w.pth").write_bytes(b"weights")
    spec = WeightsSpec("toy_set", f"{url}/w.pth", "w.pth", hashlib.sha256(b"weights").hexdigest(), "MIT",
                       "torchvision")
    path = download_weights(spec, progress=True)
    assert path == weights_path(spec) == home / "weights" / "toy_set" / "w.pth"
    assert path.read_bytes() == b"weights"
    assert leftovers(path.parent) == ["w.pth", "w.pth.sha256"]  # checksum remembered, no staging left
    assert verify_weights(spec) == spec.sha256
    (root / "w.pth").unlink()
    assert download_weights(spec) == path  # installed: verified, not fetched again
    with pytest.raises(WeightsError, match="could not download"):
        download_weights(spec, force=True)
    assert path.read_bytes() == b"weights"  # a failed forced download keeps the good file


def test_wrong_sha256_fails_clearly_and_leaves_no_file(server, home):
    root, url = server
    (root / "w.pth").write_bytes(b"weights")
    spec = WeightsSpec("toy_bad", f"{url}/w.pth", "w.pth", "0" * 64, "MIT", "torchvision")
    with pytest.raises(WeightsError, match="do not match their checksum") as exc:
        download_weights(spec)
    msg = str(exc.value)
    assert str(weights_path(spec)) in msg and spec.source in msg and "vfmbench weights download toy_bad" in msg
    assert "nothing was saved" in msg
    assert not weights_path(spec).exists() and leftovers(weights_path(spec).parent) == []


def test_missing_and_interrupted_downloads_leave_no_file(server, home):
    _, url = server
    for name, source in (("toy_404", f"{url}/nope.pth"), ("toy_cut", f"{url}/truncated")):
        spec = WeightsSpec(name, source, "w.pth", None, "MIT", "torchvision")
        with pytest.raises(WeightsError, match="could not download") as exc:
            download_weights(spec)
        assert source in str(exc.value) and f"vfmbench weights download {name}" in str(exc.value)
        assert str(weights_path(spec)) in str(exc.value)
        assert not weights_path(spec).parent.exists()  # not even an empty folder


def test_hub_folder_without_huggingface_hub_comes_file_by_file_from_hf_endpoint(server, home, monkeypatch):
    root, url = server
    repo = root / "mirror" / "org" / "model" / "resolve" / "main"
    repo.mkdir(parents=True)
    (repo / "config.json").write_text("{}")
    (repo / "model.safetensors").write_bytes(b"tensors")
    monkeypatch.setenv("HF_ENDPOINT", f"{url}/mirror")
    monkeypatch.setitem(sys.modules, "huggingface_hub", None)
    files = ("config.json", "model.safetensors")
    spec = WeightsSpec("toy_hub", "hf://org/model", "model", hashlib.sha256(b"tensors").hexdigest(), "MIT",
                       "hf_dir", files=files)
    path = download_weights(spec)
    assert (path / "config.json").exists() and (path / "model.safetensors").read_bytes() == b"tensors"
    assert verify_weights(spec) == spec.sha256
    bad = WeightsSpec("toy_hub_bad", "hf://org/model", "model", "0" * 64, "MIT", "hf_dir", files=files)
    with pytest.raises(WeightsError, match="do not match their checksum"):
        download_weights(bad)
    assert leftovers(weights_path(bad).parent) == []


# ------------------------------------------------------------------ a weight set that is no encoder

def run_cli(argv: list[str], capsys) -> tuple[int, str]:
    from vfmbench.cli import weights

    parser = argparse.ArgumentParser()
    weights.register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(argv)
    code = args.func(args)
    return code, capsys.readouterr().out


def test_a_non_encoder_weight_set_flows_through_list_path_verify_and_loading(home, monkeypatch, capsys):
    from vfmbench.cli import weights as cli

    decoder = torch.nn.Linear(3, 2)
    payload_file = home.parent / "decoder.pth"
    torch.save({f"mask_decoder.{k}": v for k, v in decoder.state_dict().items()}, payload_file)
    digest = hashlib.sha256(payload_file.read_bytes()).hexdigest()
    spec = WeightsSpec("toy_decoder", "https://example.invalid/decoder.pth", "decoder.pth", digest, "MIT",
                       "segment_anything", used_by=("segmenter toy: mask decoder",))
    registry: Registry[WeightsSpec] = Registry("weight set", plural="weight sets")
    registry.register(spec)
    monkeypatch.setattr(cli, "_registry", lambda: registry)

    code, out = run_cli(["weights", "list", "--json"], capsys)
    (row,) = json.loads(out)
    assert code == 0 and row["name"] == "toy_decoder" and row["used_by"] == ["segmenter toy: mask decoder"]
    assert row["status"] == "missing"
    code, out = run_cli(["weights", "path", "toy_decoder"], capsys)
    assert out.strip() == str(home / "weights" / "toy_decoder" / "decoder.pth")
    code, out = run_cli(["weights", "verify"], capsys)
    assert code == 0 and "no installed weights" in out
    code, out = run_cli(["weights", "verify", "toy_decoder"], capsys)
    assert code == 1 and "MISSING" in out and "vfmbench weights download toy_decoder" in out

    weights_path(spec).parent.mkdir(parents=True)
    weights_path(spec).write_bytes(payload_file.read_bytes())
    code, out = run_cli(["weights", "verify"], capsys)
    assert code == 0 and f"toy_decoder: ok sha256 {digest}" in out

    target = torch.nn.Linear(3, 2)
    location = locate_weights(spec)
    load_checkpoint_into(target, location, lambda state: strip_prefix(state, "mask_decoder."))
    assert location.sha256 == digest
    torch.testing.assert_close(target.state_dict(), decoder.state_dict())

    code, out = run_cli(["weights", "list", "--json"], capsys)
    assert json.loads(out)[0]["status"] == "installed"

    weights_path(spec).write_bytes(b"corrupt")
    code, out = run_cli(["weights", "verify", "toy_decoder"], capsys)
    assert code == 1 and "FAILED" in out and "do not match their checksum" in out
    code, out = run_cli(["weights", "list", "--json"], capsys)
    assert json.loads(out)[0]["status"] == "corrupt"  # fails verification: never "installed"
    assert spec.status() == "corrupt"
    with pytest.raises(WeightsError, match="do not match their checksum") as exc:
        locate_weights(spec, hint="ask for something else")
    msg = str(exc.value)
    assert "ask for something else" in msg
    assert "weights=PATH" in msg and "--weights PATH" in msg  # the route for a file of one's own


def test_a_file_under_one_of_its_other_names_is_found_listed_verified_and_not_fetched_again(home, capsys, monkeypatch):
    """A weight set's ``also_named`` files (the upstream release name, an upstream loader's cache name)
    are read from its folder as they are: no renaming."""
    from vfmbench.cli import weights as cli

    spec = WeightsSpec("toy_aliased", "https://example.invalid/r3m_50.pt", "model.pt", None, "MIT", "r3m",
                       also_named=("r3m_50.pt",))
    registry: Registry[WeightsSpec] = Registry("weight set", plural="weight sets")
    registry.register(spec)
    monkeypatch.setattr(cli, "_registry", lambda: registry)
    assert spec.status() == "missing" and spec.installed is None
    with pytest.raises(WeightsError, match="not found") as exc:
        locate_weights(spec)
    assert "r3m_50.pt" in str(exc.value)  # the error names the other accepted names
    alias = weights_path(spec).parent / "r3m_50.pt"
    alias.parent.mkdir(parents=True)
    torch.save({"convnet.weight": torch.ones(2)}, alias)
    assert spec.installed == alias and spec.status() == "installed"
    assert locate_weights(spec).path == alias
    assert download_weights(spec) == alias  # there: verified, not fetched (the source is unreachable)
    code, out = run_cli(["weights", "list", "--json"], capsys)
    (row,) = json.loads(out)
    assert row["status"] == "installed" and row["path"] == str(alias) and row["also_named"] == ["r3m_50.pt"]
    code, out = run_cli(["weights", "verify"], capsys)
    assert code == 0 and "toy_aliased: readable, no published checksum" in out
    # without a published checksum, verify still reads the file: a damaged or foreign one fails
    for content in (b"", b"<!DOCTYPE html><html>Access Denied</html>", bytes(64), None):
        if content is None:
            torch.save(torch.ones(3), alias)  # a bare tensor, not a mapping of tensors
        else:
            alias.write_bytes(content)
        code, out = run_cli(["weights", "verify", "toy_aliased"], capsys)
        assert code == 1 and "toy_aliased: FAILED" in out, out
        assert "TRUST" not in out  # a damaged file is never an occasion to turn safe loading off
        if content:
            assert "neither a PyTorch checkpoint (a zip archive or a pickle) nor a safetensors file" in out
    assert "the file holds a pickled Tensor, not a mapping of tensors" in out


# ------------------------------------------------------------------------- TorchScript archives

ARCHIVE_SIDE_EFFECT = "ARCHIVE CODE RAN"


class _ArchiveCode(nn.Module):
    """A module whose TorchScript __setstate__ (run by torch.jit.load while loading) prints."""

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("marker", torch.zeros(1))

    @torch.jit.export
    def __getstate__(self) -> Tuple[torch.Tensor, bool]:
        return (self.marker, self.training)

    @torch.jit.export
    def __setstate__(self, state: Tuple[torch.Tensor, bool]) -> None:
        print("ARCHIVE CODE RAN")
        self.marker = state[0]
        self.training = state[1]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x


class _Holder(nn.Module):
    """Tensors under arbitrary dotted names (buffers of nested modules), like OpenAI's archives, plus
    a module with code that runs at load."""

    def __init__(self, state: dict[str, torch.Tensor], quantized: bool = False):
        super().__init__()
        for key, value in state.items():
            mod = self
            *path, leaf = key.split(".")
            for part in path:
                if not hasattr(mod, part):
                    mod.add_module(part, nn.Module())
                mod = getattr(mod, part)
            mod.register_buffer(leaf, value.clone())
        self.add_module("archive_code", _ArchiveCode())
        if quantized:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                self.register_buffer("quantized", torch.quantize_per_tensor(torch.ones(3), 0.1, 0, torch.quint8))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x


def script_archive(path: Path, state: dict[str, torch.Tensor], quantized: bool = False) -> Path:
    """Write `state` as a TorchScript archive (torch.jit.save) whose loading with torch.jit.load prints
    ARCHIVE_SIDE_EFFECT."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.jit.save(torch.jit.script(_Holder(state, quantized)), str(path))
    return path


def test_torchscript_archive_tensors_are_read_without_running_its_code(tmp_path, capfd):
    state = {"visual.conv1.weight": torch.randn(4, 3, 2, 2), "visual.proj": torch.randn(4, 2).half(),
             "logit_scale": torch.tensor(4.6)}
    path = script_archive(tmp_path / "ViT-B-16.pt", state)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.jit.load(str(path))  # the archive is armed: torch.jit.load runs its code
    assert ARCHIVE_SIDE_EFFECT in capfd.readouterr().out

    read = read_state_dict(path)
    assert ARCHIVE_SIDE_EFFECT not in capfd.readouterr().out
    assert set(read) == set(state)  # the module that restores itself with its own code is not rebuilt
    for key, value in state.items():
        assert read[key].dtype == value.dtype
        torch.testing.assert_close(read[key], value)


def test_torchscript_archive_the_reader_cannot_rebuild_is_refused_unless_trusted(tmp_path, capfd, monkeypatch):
    path = script_archive(tmp_path / "model.pt", {"w": torch.ones(2)}, quantized=True)
    with pytest.raises(CheckpointError, match="VFMBENCH_TRUST_CHECKPOINTS=1") as exc:
        read_state_dict(path)
    assert "TorchScript" in str(exc.value) and "_rebuild_qtensor" in str(exc.value)
    assert ARCHIVE_SIDE_EFFECT not in capfd.readouterr().out
    monkeypatch.setenv("VFMBENCH_TRUST_CHECKPOINTS", "1")  # the user's explicit opt-in: torch.jit.load
    read = read_state_dict(path)
    assert ARCHIVE_SIDE_EFFECT in capfd.readouterr().out and "w" in read


# {"w": builtins.print("PICKLE CODE RAN")} as protocol-2 opcodes: a call, what a malicious pickle does
# with os.system. Written out rather than pickled from `print`, which Ray's tqdm_ray replaces
# process-wide once a Ray sweep ran in the same test worker.
_CALL_PICKLE = (b"\x80\x02}X\x01\x00\x00\x00wcbuiltins\nprint\nX\x0f\x00\x00\x00PICKLE CODE RAN"
                b"\x85Rs.")


def test_a_torchscript_archive_that_pickles_a_call_is_refused_without_calling_it(tmp_path, capfd):
    path = tmp_path / "evil.pt"
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("evil/data.pkl", _CALL_PICKLE)
        z.writestr("evil/constants.pkl", pickle.dumps((), protocol=2))
        z.writestr("evil/version", "3\n")
    with pytest.raises(CheckpointError, match=r"pickles (__builtin__|builtins)\.print"):
        read_state_dict(path)
    assert "PICKLE CODE RAN" not in capfd.readouterr().out
