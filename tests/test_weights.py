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

import pytest
import torch

from vfmbench.registry import Registry
from vfmbench.utils.errors import WeightsError
from vfmbench.weights import (
    WeightsSpec,
    download_weights,
    load_checkpoint_into,
    locate_weights,
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
        assert leftovers(weights_path(spec).parent) == []


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

    weights_path(spec).write_bytes(b"corrupt")
    code, out = run_cli(["weights", "verify", "toy_decoder"], capsys)
    assert code == 1 and "FAILED" in out and "do not match their checksum" in out
    with pytest.raises(WeightsError, match="do not match their checksum") as exc:
        locate_weights(spec, hint="ask for something else")
    assert "ask for something else" in str(exc.value)
