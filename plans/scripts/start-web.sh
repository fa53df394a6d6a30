#!/bin/bash
# Verifies the pushed package against the build's checksum, unpacks it next to the
# previous releases, switches /opt/app/current to it and marks the app running.
# Usage: start-web.sh VERSION SHA256
set -euo pipefail

version="${1:?usage: start-web.sh VERSION SHA256}"
want_sha="${2:?usage: start-web.sh VERSION SHA256}"
name="app-${version}"
package="/opt/app/releases/${name}.tar.gz"

if [ ! -f "${package}" ]; then
  echo "package ${package} is missing" >&2
  exit 2
fi
got_sha="$(sha256sum "${package}" | cut -d' ' -f1)"
if [ "${got_sha}" != "${want_sha}" ]; then
  echo "checksum mismatch for ${package}: got ${got_sha}, build said ${want_sha}" >&2
  exit 3
fi

mkdir -p /opt/app/versions
rm -rf "/opt/app/versions/${name}"
tar -xzf "${package}" -C /opt/app/versions
# A relative link keeps working wherever the host's root is mounted.
ln -sfn "versions/${name}" /opt/app/current
printf 'running %s\n' "${version}" > /opt/app/state
date -u +%Y-%m-%dT%H:%M:%SZ > /opt/app/started_at

echo "started ${name}"
echo "<BATON_VAR>started:${version}</BATON_VAR>"
