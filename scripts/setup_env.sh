# Sourced by serve.sh and test.sh: make .venv and install one requirements file into it.
# Usage: . scripts/setup_env.sh requirements/serve.txt
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PY="${PYTHON:-python3}"
if [ ! -x "$ROOT/.venv/bin/python" ]; then
  if ! "$PY" -m venv "$ROOT/.venv" 2>/dev/null; then
    # Debian ships venv separately; install it when we may.
    if command -v apt-get >/dev/null && [ "$(id -u)" = 0 ]; then
      apt-get update -qq && apt-get install -y -qq python3-venv >/dev/null
      rm -rf "$ROOT/.venv"; "$PY" -m venv "$ROOT/.venv"
    else
      echo "error: '$PY -m venv' failed; install python3-venv (Debian) and retry" >&2; exit 1
    fi
  fi
fi
stamp="$ROOT/.venv/.installed-$(basename "$1" .txt)"
if [ ! -f "$stamp" ] || [ "$1" -nt "$stamp" ] || [ "$ROOT/requirements/constraints.txt" -nt "$stamp" ]; then
  "$ROOT/.venv/bin/python" -m pip install -q --disable-pip-version-check --upgrade pip
  "$ROOT/.venv/bin/python" -m pip install -q --disable-pip-version-check \
    -r "$ROOT/$1" -c "$ROOT/requirements/constraints.txt"
  touch "$stamp"
fi
export PATH="$ROOT/.venv/bin:$PATH"
