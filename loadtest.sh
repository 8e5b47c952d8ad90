#!/usr/bin/env bash
# Load-test a running server with locust, headless; installs locust into .venv first.
#   ./loadtest.sh                    16 users for 60 s against http://localhost:3000
#   ./loadtest.sh -u 64 -t 5m --host http://my-server:3000   (locust's own arguments win)
# Clips: real speech from SER_DATA_DIR (default ../shared/data) or, without it, a
# generated voice in the same formats and lengths. Exit status 1 if any request failed.
set -euo pipefail
cd "$(dirname "$0")"
. scripts/setup_env.sh requirements/load.txt
exec locust -f loadtests/locustfile.py --headless -u 16 -r 4 -t 60s --host http://localhost:3000 "$@"
