#!/usr/bin/env bash
# Debian packages the test suite uses: docker-compose (to validate the compose file offline) and
# prometheus (its promtool checks deploy/prometheus.yml and the alert rules, and its server
# scrapes the running services in tests/deploy/test_prometheus.py).
# Also Debian's chromium, which the console's browser tests (tests/console/) drive through
# Playwright, with a font to render text: Playwright's own browser downloads are not used.
# Installs only what is missing, so repeated runs cost nothing.
set -euo pipefail
missing=()
command -v docker-compose >/dev/null 2>&1 || missing+=(docker-compose)
{ command -v promtool && command -v prometheus; } >/dev/null 2>&1 || missing+=(prometheus)
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
[ -e /usr/share/fonts/truetype/dejavu/DejaVuSans.ttf ] || missing+=(fonts-dejavu-core)
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" -ne 0 ]; then
  echo "missing Debian packages: ${missing[*]} (run as root, or install them)" >&2
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
# --no-install-recommends: the server and promtool, without node-exporter and friends.
# policy-rc.d refusing (101): the package must not start a system-wide Prometheus on :9090.
policy=/usr/sbin/policy-rc.d
if [ ! -e "$policy" ]; then
  printf '#!/bin/sh\nexit 101\n' >"$policy"
  chmod +x "$policy"
  trap 'rm -f "$policy"' EXIT
fi
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
