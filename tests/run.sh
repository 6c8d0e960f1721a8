#!/usr/bin/env bash
# Install fmri-explorer with its test extra, Debian's Chromium if it is missing,
# then run the whole test suite (browser tests included). Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
"$PYTHON" -m pip install --quiet --disable-pip-version-check -e ".[test]"

if [ ! -x "${CHROMIUM:-/usr/bin/chromium}" ]; then
  echo "tests/run.sh: installing Debian's chromium for the browser tests" >&2
  SUDO=""
  if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq chromium >/dev/null
fi

exec "$PYTHON" -m pytest "$@"
