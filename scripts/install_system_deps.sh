#!/usr/bin/env bash
# Debian packages the reports need: Pango/HarfBuzz for WeasyPrint (PDF), a font, and
# poppler-utils (pdftoppm) for the tests that render PDF pages to PNG. Idempotent.
set -euo pipefail
PKGS=(libpango-1.0-0 libpangoft2-1.0-0 libharfbuzz-subset0 fonts-dejavu-core poppler-utils)
missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[[ ${#missing[@]} -eq 0 ]] && exit 0
SUDO=""; [[ $(id -u) -ne 0 ]] && SUDO=sudo
command -v apt-get >/dev/null || { echo "install_system_deps.sh: apt-get not found; install ${missing[*]} by hand" >&2; exit 1; }
$SUDO apt-get update -qq
$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
