#!/usr/bin/env bash
# Makes the project's virtualenv and installs the project into it, as `make venv` (and every
# target that needs the venv) runs it:
#
#     scripts/venv.sh PYTHON VENV GOAL ORIGIN
#
# PYTHON is the interpreter to make the venv with (`make demo PYTHON=python3.12`), GOAL the make
# goal to name in messages, ORIGIN where make got PYTHON from (`command line` when chosen with
# `make ... PYTHON=...`; then a venv of another Python version is made again).
#
# - The interpreter's version is checked before anything is made: an older Python would sit for
#   minutes while pip backtracked through every release of a dependency, in silence.
# - A venv made by an unsuitable interpreter (too old, gone, or not the one chosen with PYTHON=)
#   is made again.
# - pip runs when the venv is new or pyproject.toml changed, and shows what it is doing (every
#   package it collects) instead of nothing; the whole log is kept in VENV/pip.log.
set -euo pipefail

python=${1:-python3}
venv=${2:-.venv}
goal=${3:-venv}
origin=${4:-file}
readonly MIN_MAJOR=3 MIN_MINOR=11
stamp=$venv/.installed

say() { echo "venv: $*"; }
fail() {
    echo "make $goal: $*" >&2
    exit 1
}

# "3.11.7", or nothing when the interpreter does not run.
version_of() {
    "$1" -c 'import sys; print("%d.%d.%d" % sys.version_info[:3])' 2>/dev/null || true
}

# Whether a version string is 3.11 or newer.
suitable() {
    local major minor
    IFS=. read -r major minor _ <<<"$1"
    [[ $major =~ ^[0-9]+$ && $minor =~ ^[0-9]+$ ]] || return 1
    ((major > MIN_MAJOR || (major == MIN_MAJOR && minor >= MIN_MINOR)))
}

# The suitable pythonX.Y programs on PATH, newest first, for the messages.
alternatives() {
    local candidate found=()
    for candidate in python3.14 python3.13 python3.12 python3.11; do
        if command -v "$candidate" >/dev/null 2>&1 && suitable "$(version_of "$candidate")"; then
            found+=("$candidate")
        fi
    done
    echo "${found[*]}"
}

how_to_choose() {
    local others example
    others=$(alternatives)
    example=${others%% *}
    if [[ -n $others ]]; then
        echo "Choose one of those on your PATH ($others): make $goal PYTHON=$example"
    else
        echo "Install Python $MIN_MAJOR.$MIN_MINOR or newer, then choose it:" \
            "make $goal PYTHON=python3.12 (or a full path)"
    fi
}

# Fails unless PYTHON can make the venv; prints its version.
check_python() {
    local found
    if ! command -v "$python" >/dev/null 2>&1; then
        fail "'$python' was not found. pytheus needs Python $MIN_MAJOR.$MIN_MINOR or newer. $(how_to_choose)"
    fi
    found=$(version_of "$python")
    if [[ -z $found ]]; then
        fail "'$python' does not run as a Python interpreter. $(how_to_choose)"
    fi
    if ! suitable "$found"; then
        fail "'$python' is Python $found; pytheus needs $MIN_MAJOR.$MIN_MINOR or newer. $(how_to_choose)"
    fi
    echo "$found"
}

major_minor() { echo "${1%.*}"; }

# 1. An existing venv: keep it if its interpreter suits, else make it again.
if [[ -e $venv/bin/python || -d $venv ]]; then
    have=$(version_of "$venv/bin/python")
    reason=""
    if [[ -z $have ]]; then
        reason="its python does not run (its base interpreter moved or was removed)"
    elif ! suitable "$have"; then
        reason="it was made by Python $have; pytheus needs $MIN_MAJOR.$MIN_MINOR or newer"
    elif [[ $origin == "command line" ]]; then
        wanted=$(check_python)
        if [[ $(major_minor "$wanted") != $(major_minor "$have") ]]; then
            reason="it was made by Python $have, and PYTHON=$python is Python $wanted"
        fi
    fi
    if [[ -n $reason ]]; then
        made_with=$(check_python)
        say "making $venv again with $python (Python $made_with): $reason"
        rm -rf "$venv"
    fi
fi

# 2. A new venv.
if [[ ! -e $venv/bin/python ]]; then
    made_with=$(check_python)
    say "creating $venv with $python (Python $made_with)"
    if ! "$python" -m venv "$venv"; then
        rm -rf "$venv"
        fail "'$python -m venv' failed (above). On Debian or Ubuntu, install the venv module:" \
            "apt-get install python$(major_minor "$made_with")-venv"
    fi
fi

# 3. The project and its dev extras, when the venv is new or pyproject.toml changed.
if [[ -e $stamp && $stamp -nt pyproject.toml ]]; then
    exit 0
fi
say "pip install -e '.[dev]': about 50 packages (400 MB), a few minutes on a first install (log: $venv/pip.log)"
# pip prints a line per package it collects; those, and anything that goes wrong, are shown.
# "pip is looking at multiple versions" is pip backtracking: slow, and worth seeing.
shown='^(Collecting|Installing collected|Successfully installed|INFO: pip is)'
if ! PIP_DISABLE_PIP_VERSION_CHECK=1 "$venv/bin/python" -m pip install --progress-bar off \
    -e '.[dev]' 2>&1 | tee "$venv/pip.log" | { grep --line-buffered -E "$shown" || true; } |
    sed -u -E 's/^(.{0,150}).*/venv:   \1/'; then
    tail -n 25 "$venv/pip.log" >&2
    fail "pip install failed (the end of its log above; all of it in $venv/pip.log)."
fi
touch "$stamp"
say "ready"
