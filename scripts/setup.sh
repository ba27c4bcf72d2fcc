#!/usr/bin/env bash
# Idempotent set-up: apt packages for headless OpenGL, a virtual environment in .venv,
# and vfmbench installed into it. Sourced by scripts/demo.sh and scripts/test.sh.
#
# torch: the version pyproject.toml pins, from the index pip is configured with. On PyPI that is
# the standard Linux x86_64 wheel, which is built with CUDA and pulls NVIDIA's CUDA runtime wheels
# (several GB); it runs on CPU-only machines as well. For the smaller CPU-only build, point
# VFMBENCH_TORCH_INDEX at PyTorch's CPU index (https://download.pytorch.org/whl/cpu) where it is
# reachable; the same pinned version is installed from there.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${VFMBENCH_VENV:-$ROOT/.venv}"
EXTRAS="${VFMBENCH_EXTRAS:-sim,video,minari,viz,vfm,effnet,report,ray,dev}"
TORCH_INDEX="${VFMBENCH_TORCH_INDEX:-}"
# The official SAM 2 code, the reference of the SAM 2 parity tests (dev extra; see pyproject.toml).
SAM2_REF="sam2==1.1.0"

log() { printf '[setup] %s\n' "$*" >&2; }

apt_install() {
    local missing=()
    for pkg in "$@"; do
        dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    if ! command -v apt-get >/dev/null 2>&1; then
        log "cannot install ${missing[*]}: no apt-get here; install the equivalent packages by hand"
        return 0
    fi
    local sudo=""
    if [ "$(id -u)" -ne 0 ]; then
        if command -v sudo >/dev/null 2>&1; then sudo="sudo"; else
            log "not root and no sudo: run 'apt-get install ${missing[*]}' as root"; return 0; fi
    fi
    log "installing ${missing[*]}"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

# Headless rendering through EGL (Mesa on CPU), OSMesa as a fallback.
if command -v dpkg >/dev/null 2>&1; then
    apt_install libegl1 libgl1-mesa-dri libosmesa6
fi

PY="${PYTHON:-}"
if [ -z "$PY" ]; then
    for cand in python3.11 python3.12 python3; do
        if command -v "$cand" >/dev/null 2>&1; then PY="$cand"; break; fi
    done
fi
[ -n "$PY" ] || { log "no python3 found; install Python 3.11"; exit 1; }

if [ ! -x "$VENV/bin/python" ]; then
    log "creating virtual environment $VENV"
    if ! "$PY" -m venv "$VENV" 2>/dev/null; then
        rm -rf "$VENV"
        command -v dpkg >/dev/null 2>&1 && apt_install python3-venv
        "$PY" -m venv "$VENV"
    fi
fi

# Reinstall only when the dependency declaration (or the choice of torch index) changed.
STAMP="$VENV/.vfmbench-install"
WANT="$(cat "$ROOT/pyproject.toml" | sha256sum | cut -d' ' -f1)-$EXTRAS-$TORCH_INDEX-$SAM2_REF"
if [ ! -f "$STAMP" ] || [ "$(cat "$STAMP")" != "$WANT" ]; then
    log "installing vfmbench[$EXTRAS] into $VENV (first run takes a few minutes)"
    "$VENV/bin/python" -m pip install -q --upgrade pip >/dev/null
    # torch first, at pyproject.toml's pin (see the top of this file for which build that is).
    TORCH="$("$VENV/bin/python" -c 'import re, sys, tomllib
deps = tomllib.load(open(sys.argv[1], "rb"))["project"]["dependencies"]
print(next(d for d in deps if re.match(r"torch\s*==", d)).replace(" ", ""))' "$ROOT/pyproject.toml")"
    if [ -n "$TORCH_INDEX" ]; then
        log "installing $TORCH from $TORCH_INDEX"
        "$VENV/bin/python" -m pip install -q --index-url "$TORCH_INDEX" "$TORCH"
    else
        "$VENV/bin/python" -m pip install -q "$TORCH"
    fi
    "$VENV/bin/python" -m pip install -q -e "$ROOT[$EXTRAS]"
    case ",$EXTRAS," in *,dev,*)
        # built against the venv's torch (no isolated build env, so no second torch), without the CUDA
        # extension (hole filling, unused here) and without its declared torchvision
        "$VENV/bin/python" -m pip install -q "setuptools==84.2.1"
        SAM2_BUILD_CUDA=0 "$VENV/bin/python" -m pip install -q --no-build-isolation --no-deps "$SAM2_REF" ;;
    esac
    echo "$WANT" > "$STAMP"
fi

export PATH="$VENV/bin:$PATH"
export VFMBENCH_PYTHON="$VENV/bin/python"
