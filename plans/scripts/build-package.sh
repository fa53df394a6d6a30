#!/bin/bash
# Builds the release package on the build host and prints its checksum.
# Usage: build-package.sh VERSION
# Output: <BATON_VAR>sha256:…</BATON_VAR> and <BATON_VAR>package:…</BATON_VAR>, which
# the plan declares as this step's outputs for later steps to use.
# (baton renders script files as templates, so no double braces appear here.)
set -euo pipefail

version="${1:?usage: build-package.sh VERSION}"
name="app-${version}"
work="/data/build/${name}"
package="/data/release/${name}.tar.gz"

rm -rf "${work}"
mkdir -p "${work}/bin" "${work}/public" /data/release

printf '%s\n' "${version}" > "${work}/VERSION"
cat > "${work}/public/index.html" <<HTML
<!doctype html>
<title>web ${version}</title>
<p>web release ${version}</p>
HTML
cat > "${work}/bin/healthcheck.sh" <<'SH'
#!/bin/sh
# Exits 0 when the release next to this script is the one the state file names.
here="$(cd "$(dirname "$0")/.." && pwd)"
want="$(cat "$here/VERSION")"
grep -qx "running ${want}" /opt/app/state
SH
chmod +x "${work}/bin/healthcheck.sh"

tar -czf "${package}" -C /data/build "${name}"
sha="$(sha256sum "${package}" | cut -d' ' -f1)"

echo "built ${package} ($(wc -c < "${package}") bytes)"
echo "<BATON_VAR>sha256:${sha}</BATON_VAR>"
echo "<BATON_VAR>package:${package}</BATON_VAR>"
