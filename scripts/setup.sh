#!/usr/bin/env bash
# Install what standby and its tests need on Debian 12, then the virtualenv in .venv.
# Idempotent: packages already present are not reinstalled. Run as root (or with sudo).
set -euo pipefail
cd "$(dirname "$0")/.."

packages=(python3-venv python3-dev mariadb-server mariadb-client zfs-fuse btrfs-progs zstd util-linux
          cron systemd openssh-client openssh-server)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q
  # The packaged services must not be started by the install: standby runs its own instances.
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d
    chmod +x /usr/sbin/policy-rc.d
    trap 'rm -f /usr/sbin/policy-rc.d' EXIT
  fi
  apt-get install -y -q "${missing[@]}"
fi

if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
fi
.venv/bin/pip install -q --upgrade pip
.venv/bin/pip install -q -e '.[test]'
