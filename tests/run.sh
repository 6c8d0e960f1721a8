#!/usr/bin/env bash
# Install fmri-explorer with its test extra, Debian's Chromium if it is missing,
# then run the whole test suite: the headless tests, then the browser tests, each in its
# own process. Extra arguments go to one pytest run instead.
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

if [ "$#" -gt 0 ]; then
  exec "$PYTHON" -m pytest "$@"
fi
# The browser tests serve the app inside their pytest process, and a served session's
# Bokeh state reaches code that asks for "the current document" in any thread; the
# headless tests run in a process of their own so that none can see a page's session.
status=0
"$PYTHON" -m pytest tests --ignore=tests/browser || status=$?
"$PYTHON" -m pytest tests/browser || status=$?
exit "$status"
