#!/bin/bash
# Installs a pushed release beside the running one and switches to it, remembering the
# release it replaces in /opt/app/previous_version for a rollback.
# Usage: canary-install.sh VERSION SHA256
set -euo pipefail

version="${1:?usage: canary-install.sh VERSION SHA256}"
want_sha="${2:?usage: canary-install.sh VERSION SHA256}"
package="/opt/app/releases/app-${version}.tar.gz"

got_sha="$(sha256sum "${package}" | cut -d' ' -f1)"
if [ "${got_sha}" != "${want_sha}" ]; then
  echo "checksum mismatch for ${package}: got ${got_sha}, build said ${want_sha}" >&2
  exit 3
fi

current="$(cat /opt/app/current_version 2>/dev/null || echo none)"
if [ "${current}" != "${version}" ]; then
  printf '%s\n' "${current}" > /opt/app/previous_version
fi
mkdir -p /opt/app/versions
rm -rf "/opt/app/versions/${version}" "/opt/app/versions/app-${version}"
tar -xzf "${package}" -C /opt/app/versions
mv "/opt/app/versions/app-${version}" "/opt/app/versions/${version}"
printf '%s\n' "${version}" > /opt/app/current_version
echo "installed ${version} (was ${current})"
