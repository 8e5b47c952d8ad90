#!/usr/bin/env bash
# Install everything (training, export, tests, headless Chromium) and run the tests.
# Extra arguments go to pytest, e.g. ./test.sh -m "not slow" -x
# Real speech comes from SER_DATA_DIR (default ../shared/data); tests that need it skip
# cleanly when it is absent.
set -euo pipefail
cd "$(dirname "$0")"
. scripts/setup_env.sh requirements/dev.txt
if ! command -v chromium >/dev/null && [ ! -x /usr/bin/chromium ]; then
  if command -v apt-get >/dev/null && [ "$(id -u)" = 0 ]; then
    echo "installing Debian's chromium for the page tests"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
  else
    echo "warning: chromium not found and cannot be installed; page tests will skip" >&2
  fi
fi
export SER_DATA_DIR="${SER_DATA_DIR:-$(cd .. && pwd)/shared/data}"
exec python -m pytest "$@"
