#!/usr/bin/env bash
# The browser test (tests/integration/browser.rs) drives Debian's Chromium headless. Installs
# it with apt when missing and we are root; otherwise says what to run. Sourced by test.sh.
# GATEHOUSE_SKIP_BROWSER=1 skips the browser test instead (it says so when it runs).
if [ -z "${GATEHOUSE_SKIP_BROWSER:-}" ] && [ ! -x "${GATEHOUSE_CHROMIUM:-/usr/bin/chromium}" ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "installing chromium (for the browser test)..." >&2
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
  else
    echo "error: the browser test needs Chromium: sudo apt-get install -y chromium" >&2
    echo "       (or GATEHOUSE_SKIP_BROWSER=1 to skip that one test)" >&2
    exit 2
  fi
fi
