#!/bin/bash
# Checks, without the network, that the host runs the expected release. A host whose
# new release does not come up is rehearsed by an /opt/app/UNHEALTHY file in its
# sandbox: the health check fails there.
# Usage: canary-smoke.sh VERSION
set -uo pipefail

version="${1:?usage: canary-smoke.sh VERSION}"
failures=0
check() {
  if eval "$2"; then
    echo "ok   $1"
  else
    echo "FAIL $1"
    failures=$((failures + 1))
  fi
}

check "current release is ${version}" '[ "$(cat /opt/app/current_version)" = "${version}" ]'
check "release ${version} is unpacked" '[ "$(cat /opt/app/versions/${version}/VERSION)" = "${version}" ]'
check "health check passes" '[ ! -e /opt/app/UNHEALTHY ]'
[ "${failures}" -eq 0 ]
