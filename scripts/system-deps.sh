#!/usr/bin/env bash
# Installs what the tests need from Debian's packages: redis-server for the Redis tests, curl for
# the README's examples, Chromium's headless shell (+ a Latin and a CJK font) for the web page
# tests, nginx and docker-compose for the deploy/ checks. Does nothing when all are present;
# needs root otherwise (CI runs as root).
# On a machine without them and without root the tests that need them skip with a reason,
# except under CI=true, where they fail.
set -euo pipefail
missing=()
command -v redis-server >/dev/null || missing+=(redis-server)
# The README's curl examples are run as written (tests/test_readme.py).
command -v curl >/dev/null || missing+=(curl)
command -v chromium-headless-shell >/dev/null || missing+=(chromium-headless-shell)
[ -e /usr/share/fonts/truetype/dejavu/DejaVuSans.ttf ] || missing+=(fonts-dejavu-core)
# Chinese text in the web page's screenshots (and its Chinese browser tests) needs a CJK font.
[ -e /usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc ] || missing+=(fonts-noto-cjk)
# deploy/ checks: `nginx -t` and Compose's own `config` validation (no Docker engine needed).
command -v nginx >/dev/null || [ -x /usr/sbin/nginx ] || missing+=(nginx-light)
command -v docker-compose >/dev/null || missing+=(docker-compose)
if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi
if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null; then
  echo "system-deps: missing ${missing[*]} (install them as root; their tests will skip)" >&2
  exit 0
fi
echo "system-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
