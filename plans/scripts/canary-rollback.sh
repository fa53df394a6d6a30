#!/bin/bash
# Switches a host back to the release it ran before the install, and logs it.
# Usage: canary-rollback.sh VERSION
set -euo pipefail

version="${1:?usage: canary-rollback.sh VERSION}"
if [ ! -f /opt/app/previous_version ]; then
  echo "no previous release recorded; ${version} was the first install" >&2
  exit 4
fi
previous="$(cat /opt/app/previous_version)"
printf '%s\n' "${previous}" > /opt/app/current_version
rm -f /opt/app/previous_version
printf 'rolled back %s -> %s\n' "${version}" "${previous}" >> /opt/app/rollback.log
echo "rolled back from ${version} to ${previous}"
