#!/usr/bin/env bash
# Builds lapse_<version>_<arch>.deb (make deb): Lapse and its Python dependencies in a
# virtual environment staged under /opt/lapse, packed with dpkg-deb, with the unit,
# sysusers and tmpfiles files, the shipped playbooks, pages and monitoring files, the
# man pages, and the config as a conffile. The package is architecture-specific: some dependencies (pydantic-core,
# psycopg-binary, zstandard) are compiled wheels.
#
# Environment: OUT_DIR, where the .deb goes (default: the repository root).
# Installs the Debian packages the build needs when run as root; pip's wheel cache makes
# repeated builds quick.
set -euo pipefail
umask 022

ROOT=$(cd "$(dirname "$0")/.." && pwd)
OUT_DIR=${OUT_DIR:-$ROOT}
PREFIX=/opt/lapse
# Debian's interpreter, not whichever python3 is first on PATH: the venv links to it, and
# the package depends on the python3 package that provides it.
PYTHON=/usr/bin/python3

installed() {
    [ "$(dpkg-query -W -f='${Status}' "$1" 2>/dev/null || true)" = "install ok installed" ]
}

missing=()
for pkg in python3 python3-venv; do
    installed "$pkg" || missing+=("$pkg")
done
if [ "${#missing[@]}" -gt 0 ]; then
    if [ "$(id -u)" -ne 0 ]; then
        echo "build-deb: missing ${missing[*]}; run as root or apt-get install them" >&2
        exit 1
    fi
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${missing[@]}"
fi

VERSION=$("$PYTHON" -c 'import sys, tomllib
print(tomllib.load(open(sys.argv[1], "rb"))["project"]["version"])' "$ROOT/pyproject.toml")
ARCH=$(dpkg --print-architecture)
PYVER=$("$PYTHON" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
PYNEXT=$("$PYTHON" -c 'import sys; print("%d.%d" % (sys.version_info[0], sys.version_info[1] + 1))')
DEB="$OUT_DIR/lapse_${VERSION}_${ARCH}.deb"

WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
STAGE="$WORK/root"
VENV="$STAGE$PREFIX"

# Build from a copy: an in-tree build would leave build/ and *.egg-info in the checkout.
mkdir -p "$WORK/src"
tar -C "$ROOT" --exclude=__pycache__ --exclude='*.mo' -cf - \
    pyproject.toml README.md daemon playbooks maintenance_pages monitoring | tar -C "$WORK/src" -xf -

"$PYTHON" -m venv "$VENV"
"$VENV/bin/pip" install --quiet --no-compile --disable-pip-version-check "$WORK/src"
# The translations of notices and maintenance pages, compiled from the .po files here,
# with the Babel the package ships (the checkout's own .mo files are not copied: they
# may be missing or older than their sources).
# -I: the installed package, never a checkout in the directory this runs in.
LOCALE=$("$VENV/bin/python" -I -c 'import daemon, pathlib; print(pathlib.Path(daemon.__file__).parent / "locale")')
case "$LOCALE" in "$VENV"/*) ;; *) echo "build-deb: catalogs found outside the venv: $LOCALE" >&2; exit 1;; esac
find "$LOCALE" -name '*.mo' -delete
"$VENV/bin/pybabel" compile --domain lapse --directory "$LOCALE" >/dev/null
for po in "$LOCALE"/*/LC_MESSAGES/lapse.po; do
    [ -s "${po%.po}.mo" ] || { echo "build-deb: $po was not compiled" >&2; exit 1; }
done
# The man pages, written from the commands' help by click-man, which leaves with pip.
"$VENV/bin/pip" install --quiet --no-compile --disable-pip-version-check click-man
SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-$(stat -c %Y "$ROOT/pyproject.toml")} \
    "$VENV/bin/python" "$ROOT/scripts/man_pages.py" "$WORK/man" >/dev/null
"$VENV/bin/python" -m pip uninstall --quiet --yes click-man
install -d -m 0755 "$STAGE/usr/share/man/man1"
for page in "$WORK"/man/*.1; do
    gzip -9n <"$page" >"$STAGE/usr/share/man/man1/$(basename "$page").gz"
done
# pip and setuptools are build tools; the package manager owns this tree.
"$VENV/bin/python" -m pip uninstall --quiet --yes pip setuptools

# The venv was made at the staging path: point its scripts and pyvenv.cfg at /opt/lapse.
grep -rlF "$VENV" "$VENV/bin" "$VENV/pyvenv.cfg" | xargs -r sed -i "s|$VENV|$PREFIX|g"
if grep -rqF "$VENV" "$VENV/bin" "$VENV/pyvenv.cfg"; then
    echo "build-deb: the staging path is still named in $VENV" >&2
    exit 1
fi
# Bytecode compiled now, naming the installed paths: the files dpkg installs are then
# all there is, and nothing is written under /opt/lapse at run time.
"$PYTHON" -m compileall -q -s "$STAGE" -p / "$VENV/lib"
install -m 0644 "$ROOT/README.md" "$VENV/README.md"

install -D -m 0644 "$ROOT/systemd/lapse.service" "$STAGE/usr/lib/systemd/system/lapse.service"
install -D -m 0644 "$ROOT/systemd/lapse.sysusers.conf" "$STAGE/usr/lib/sysusers.d/lapse.conf"
install -D -m 0644 "$ROOT/systemd/lapse.tmpfiles.conf" "$STAGE/usr/lib/tmpfiles.d/lapse.conf"
# root:root in the archive; postinst gives the lapse group read access (dpkg-statoverride).
install -d -m 0750 "$STAGE/etc/lapse"
install -m 0640 "$ROOT/config.example.toml" "$STAGE/etc/lapse/config.toml"
install -d -m 0755 "$STAGE/usr/bin"
ln -s "$PREFIX/bin/lapse" "$STAGE/usr/bin/lapse"
install -D -m 0644 "$ROOT/packaging/debian/copyright" "$STAGE/usr/share/doc/lapse/copyright"
chmod -R go-w "$STAGE"

install -d -m 0755 "$STAGE/DEBIAN"
sed -e "s/@VERSION@/$VERSION/" -e "s/@ARCH@/$ARCH/" \
    -e "s/@PYTHON_DEPENDS@/python3 (>= $PYVER~), python3 (<< $PYNEXT)/" \
    -e "s/@INSTALLED_SIZE@/$(du -sk "$STAGE" | cut -f1)/" \
    "$ROOT/packaging/debian/control.in" >"$STAGE/DEBIAN/control"
install -m 0644 "$ROOT/packaging/debian/conffiles" "$STAGE/DEBIAN/conffiles"
for script in postinst prerm postrm; do
    install -m 0755 "$ROOT/packaging/debian/$script" "$STAGE/DEBIAN/$script"
done

mkdir -p "$OUT_DIR"
dpkg-deb --root-owner-group -Zzstd --build "$STAGE" "$DEB" >/dev/null
echo "$DEB"
