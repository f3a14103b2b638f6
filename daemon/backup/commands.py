"""The bash scripts a backup or restore runs on the host.

Every value from billing data or config is shell-quoted here, in one place.
Scripts run under `bash -o pipefail` (see daemon.transport), so a failing
`mysqldump` in `mysqldump | zstd` fails the whole script. Passwords never
appear on a command line: the script reads one line from stdin into the tool's
environment variable (MYSQL_PWD, PGPASSWORD) before anything else.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from shlex import quote

from daemon.config.schema import DatabaseAdmin
from daemon.domain.errors import LapseError

# Preferred compressor first: zstd -1 is about ten times faster than gzip -6 here, and
# compression, not SSH, is what limits a backup's speed.
COMPRESSORS = ("zstd", "pigz", "gzip")
EXTENSIONS = {"zstd": "zst", "pigz": "gz", "gzip": "gz"}
_COMPRESS = {
    "zstd": "zstd -q -1 -T0 -c",
    "pigz": "pigz -c -6",
    "gzip": "gzip -c -6",
}
_DECOMPRESS = {
    "zstd": "zstd -q -d -c",
    "pigz": "pigz -d -c",
    "gzip": "gzip -d -c",
}
# Database names Lapse accepts: what MariaDB and PostgreSQL allow unquoted, plus '-'.
_DATABASE_NAME = re.compile(r"^[A-Za-z0-9_$][A-Za-z0-9_$-]{0,62}$")


class UnsafeValueError(LapseError, ValueError):
    """A value from billing data cannot be used safely in a host command."""


def check_database_name(name: str) -> str:
    """Return `name` if it is a plain database name; raise UnsafeValueError otherwise."""
    if not _DATABASE_NAME.match(name):
        raise UnsafeValueError(
            f"database name {name!r} is not a plain name (letters, digits, '_', '$', '-')"
        )
    return name


def password_line(admin: DatabaseAdmin) -> bytes:
    """Return what a dump or restore script expects first on stdin: the password line.

    Raises UnsafeValueError for a password containing a line break.
    """
    if admin.password is None:
        return b""
    secret = admin.password.reveal()
    if "\n" in secret or "\r" in secret:
        raise UnsafeValueError("a database password with a line break cannot be passed on")
    return secret.encode() + b"\n"


def probe_script() -> str:
    """Return a script printing 'name<TAB>version' for the tools a backup may use."""
    return r"""
for tool in zstd pigz gzip; do
  if command -v "$tool" >/dev/null 2>&1; then printf 'compressor\t%s\n' "$tool"; break; fi
done
for tool in tar zstd pigz gzip mysqldump mysql pg_dump pg_restore; do
  if command -v "$tool" >/dev/null 2>&1; then
    printf '%s\t%s\n' "$tool" "$("$tool" --version 2>&1 | head -n 1)"
  fi
done
"""


# Printed before the measurement, so it can follow other output in one command.
MEASURE_MARK = b"--lapse-measure--\n"


def measure_script(path: str) -> str:
    """Return a script printing MEASURE_MARK, the real path of the directory `path`, then
    its size in bytes, one per line; it fails when `path` is not a directory."""
    return f"""
path={quote(path)}
if [ ! -d "$path" ]; then echo "lapse: $path is not a directory" >&2; exit 2; fi
real=$(realpath -e -- "$path") || exit 2
printf '%s\\n' {MEASURE_MARK.decode().strip()} "$real"
du -sb -- "$real" | cut -f1
"""


def files_script(path: str, compressor: str) -> str:
    """Return a script streaming a compressed tar of the directory `path` to stdout.

    Members are relative ('./...'), so the archive restores into any directory.
    Permissions, numeric ownership, symlinks (as links) and any file name are kept.
    tar's exit status 1 ("file changed as we read it") becomes a warning on stderr.
    """
    return f"""
cd -- {quote(path)} || exit 2
{{
  tar --create --file=- --numeric-owner --sparse --format=posix .
  status=$?
  if [ "$status" -eq 1 ]; then
    echo "lapse-warning: files changed while tar read them; the archive holds what was read" >&2
    status=0
  fi
  exit "$status"
}} | {_COMPRESS[compressor]}
"""


def _mariadb_options(admin: DatabaseAdmin) -> str:
    options = []
    if admin.host:
        options.append(f"--host={quote(admin.host)}")
    if admin.port:
        options.append(f"--port={admin.port}")
    if admin.user:
        options.append(f"--user={quote(admin.user)}")
    return " ".join(options)


def _postgres_options(admin: DatabaseAdmin) -> str:
    options = ["--no-password"]
    if admin.host:
        options.append(f"--host={quote(admin.host)}")
    if admin.port:
        options.append(f"--port={admin.port}")
    if admin.user:
        options.append(f"--username={quote(admin.user)}")
    return " ".join(options)


def _read_password(variable: str, admin: DatabaseAdmin) -> str:
    if admin.password is None:
        return ""
    return f"IFS= read -r {variable} || true\nexport {variable}\n"


def mariadb_dump_script(database: str, admin: DatabaseAdmin, compressor: str) -> str:
    """Return a script streaming a compressed, consistent dump of a MariaDB/MySQL database.

    Raises UnsafeValueError for a database name that is not plain.
    """
    name = check_database_name(database)
    return (
        _read_password("MYSQL_PWD", admin)
        + f"mysqldump {_mariadb_options(admin)} --single-transaction --routines --triggers"
        + f" --events --hex-blob --default-character-set=utf8mb4 --no-tablespaces {quote(name)}"
        + f" | {_COMPRESS[compressor]}\n"
    )


def postgres_dump_script(database: str, admin: DatabaseAdmin) -> str:
    """Return a script streaming a pg_dump custom-format archive (compressed by pg_dump).

    Raises UnsafeValueError for a database name that is not plain.
    """
    name = check_database_name(database)
    return (
        _read_password("PGPASSWORD", admin)
        + f"pg_dump {_postgres_options(admin)} --format=custom --dbname={quote(name)}\n"
    )


def decompress_command(compressor: str) -> str:
    """Return the host command decompressing stdin to stdout for `compressor`.

    Raises UnsafeValueError for a compression Lapse does not know.
    """
    if compressor not in _DECOMPRESS:
        raise UnsafeValueError(f"unknown compression {compressor!r}")
    return _DECOMPRESS[compressor]


def mariadb_restore_script(database: str, admin: DatabaseAdmin, compressor: str) -> str:
    """Return a script re-importing a compressed MariaDB dump from stdin into `database`,
    creating the database when it does not exist. Raises UnsafeValueError."""
    name = check_database_name(database)
    options = _mariadb_options(admin)
    create = quote(f"CREATE DATABASE IF NOT EXISTS `{name}`")
    return (
        _read_password("MYSQL_PWD", admin)
        + f"mysql {options} --execute={create} || exit 2\n"
        + f"{_DECOMPRESS[compressor]} | mysql {options} --default-character-set=utf8mb4"
        + f" {quote(name)}\n"
    )


def postgres_restore_script(database: str, admin: DatabaseAdmin) -> str:
    """Return a script restoring a pg_dump custom archive from stdin into `database`,
    creating the database when it does not exist. Raises UnsafeValueError."""
    name = check_database_name(database)
    options = _postgres_options(admin)
    # `name` passed check_database_name: no quote can break out of the literal.
    exists_query = f"SELECT 1 FROM pg_database WHERE datname = '{name}'"  # noqa: S608
    return (
        _read_password("PGPASSWORD", admin)
        + f"exists=$(psql {options} --dbname=postgres -tAc {quote(exists_query)}) || exit 2\n"
        + f'if [ "$exists" != 1 ]; then createdb {options} {quote(name)} || exit 2; fi\n'
        + f"pg_restore {options} --no-owner --no-privileges --clean --if-exists"
        + f" --exit-on-error --dbname={quote(name)}\n"
    )


@dataclass(frozen=True)
class HostTools:
    """What a host offers for backups: the compressor to use and tool versions."""

    compressor: str
    versions: dict[str, str]

    @classmethod
    def parse(cls, output: str, host: str) -> HostTools:
        """Read the output of `probe_script`. Raises ValueError when no compressor exists."""
        versions: dict[str, str] = {}
        compressor = None
        for line in output.splitlines():
            name, _, value = line.partition("\t")
            if name == "compressor":
                compressor = value
            elif name:
                versions[name] = value
        if compressor not in COMPRESSORS:
            raise ValueError(f"host {host} has none of {', '.join(COMPRESSORS)} for compression")
        return cls(compressor, versions)
