#!/usr/bin/env bash
# Installs what the test suite needs on a fresh Debian machine (run as root):
# the real servers the tests start on 127.0.0.1 (and chromium, which loads the
# status page headless). PostgreSQL is in the image;
# the tests start their own throwaway cluster.
set -euo pipefail
pkgs=(prometheus prometheus-alertmanager prometheus-blackbox-exporter restic pgbackrest nginx-light chromium)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "installing: ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
# The packages' services are not wanted: the tests start their own instances.
for svc in prometheus prometheus-alertmanager prometheus-blackbox-exporter nginx; do
  (service "$svc" stop >/dev/null 2>&1 || true)
done
if ! command -v initdb >/dev/null && ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
  echo "PostgreSQL server binaries not found; installing postgresql"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
fi
