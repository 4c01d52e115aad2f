#!/usr/bin/env bash
# Pingora's build needs cmake. Installs it with apt when missing and we are root; otherwise
# says what to run. Sourced by the other scripts.
if ! command -v cmake >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "installing cmake (needed to build Pingora)..." >&2
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq cmake >/dev/null
  else
    echo "error: cmake is needed to build Pingora: sudo apt-get install -y cmake" >&2
    exit 2
  fi
fi
