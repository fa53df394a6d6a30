#!/bin/bash
# Checks, without the network, that the host serves the expected release: the
# current link, the VERSION file, the state file, the page and the release's own
# health check must all agree.
# Usage: smoke-test.sh VERSION
set -uo pipefail

version="${1:?usage: smoke-test.sh VERSION}"
failures=0
check() {
  if eval "$2"; then
    echo "ok   $1"
  else
    echo "FAIL $1"
    failures=$((failures + 1))
  fi
}

check "current release link exists" '[ -L /opt/app/current ]'
check "VERSION is ${version}" '[ "$(cat /opt/app/current/VERSION 2>/dev/null)" = "${version}" ]'
check "state says running ${version}" 'grep -qx "running ${version}" /opt/app/state'
check "index page names ${version}" 'grep -q "release ${version}" /opt/app/current/public/index.html'
check "release health check passes" '/opt/app/current/bin/healthcheck.sh'

if [ "${failures}" -ne 0 ]; then
  echo "<BATON_VAR>smoke:failed</BATON_VAR>"
  exit 1
fi
echo "<BATON_VAR>smoke:ok</BATON_VAR>"
