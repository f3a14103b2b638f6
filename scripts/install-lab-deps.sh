#!/usr/bin/env bash
# Installs the Debian packages the test lab (tests/lab) needs: the lab starts its own
# sshd, nginx, MariaDB and PostgreSQL on random loopback ports, so only the binaries are
# wanted, never the packaged services. Idempotent: installs nothing when all are present.
# Run as root on Debian 12 (CI and containers), or via sudo.
set -euo pipefail

# Each entry lists alternatives separated by "|": any one installed satisfies it, and the
# first one is what gets installed. nginx-light carries every module the lab uses.
WANTED=(
    "openssh-server"
    "openssh-client"
    "nginx-light|nginx|nginx-core|nginx-full|nginx-extras"
    "mariadb-server"
    "mariadb-client"
    "postgresql"
    "postgresql-client"
    "zstd"
    "pigz"
    "rsync"
    "openssl"
    # A restore compares the host's files with the archive in BLAKE3 where the host has
    # b3sum (SHA-256 otherwise): the lab host has it, and the tests take it away.
    "b3sum"
    "cron"
    "systemd"
    "apache2"
    "time"
    # The console's browser tests (tests/lab/test_console_browser.py): Chromium, driven
    # by Selenium through the chromium-driver of the same version.
    "chromium"
    "chromium-driver"
)

installed() {
    # dpkg -s also succeeds for packages removed but not purged; require "install ok installed".
    [ "$(dpkg-query -W -f='${Status}' "$1" 2>/dev/null || true)" = "install ok installed" ]
}

missing=()
for entry in "${WANTED[@]}"; do
    IFS='|' read -r -a alternatives <<<"$entry"
    found=no
    for pkg in "${alternatives[@]}"; do
        if installed "$pkg"; then
            found=yes
            break
        fi
    done
    if [ "$found" = no ]; then
        missing+=("${alternatives[0]}")
    fi
done

if [ "${#missing[@]}" -eq 0 ]; then
    echo "install-lab-deps: all lab packages present"
    exit 0
fi

if [ "$(id -u)" -ne 0 ]; then
    echo "install-lab-deps: missing ${missing[*]}; run this script as root (sudo)" >&2
    exit 1
fi

echo "install-lab-deps: installing ${missing[*]}"

# policy-rc.d answering 101 stops postinst scripts from starting the packaged services
# (the system nginx would grab port 80, mariadb/postgres their default ports). Containers
# often ship one already: keep it then, and only remove the one written here.
POLICY=/usr/sbin/policy-rc.d
if [ ! -e "$POLICY" ]; then
    printf '#!/bin/sh\nexit 101\n' >"$POLICY"
    chmod 755 "$POLICY"
    trap 'rm -f "$POLICY"' EXIT
fi

export DEBIAN_FRONTEND=noninteractive
apt-get update
apt-get install -y --no-install-recommends "${missing[@]}"

# On a systemd host the postinst scripts still enable the units for the next boot; the lab
# never uses them, so disable the ones whose package this run installed.
if [ -d /run/systemd/system ]; then
    for pkg in "${missing[@]}"; do
        case "$pkg" in
            openssh-server) unit=ssh ;;
            nginx*) unit=nginx ;;
            mariadb-server) unit=mariadb ;;
            postgresql) unit=postgresql ;;
            *) continue ;;
        esac
        systemctl disable --now "$unit" >/dev/null 2>&1 || true
    done
fi

echo "install-lab-deps: done"
