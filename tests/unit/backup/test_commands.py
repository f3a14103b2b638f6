"""The host scripts: quoting, credentials kept off command lines, part sizes."""

from __future__ import annotations

import shlex
from pathlib import Path

import pytest

from daemon.backup import commands
from daemon.backup.sizing import DEFAULT_PART_SIZE, MIB, TooLargeError, part_size_for
from daemon.config.schema import DatabaseAdmin
from daemon.config.secrets import SecretRef
from daemon.transport.local import LocalTransport
from daemon.transport.ssh import SSHTransport


def _admin(tmp_path: Path, password: str) -> DatabaseAdmin:
    secret = tmp_path / "pw"
    secret.write_text(password)
    return DatabaseAdmin(user="backup", password=SecretRef(file=secret))


def test_passwords_go_to_stdin_never_into_the_script(tmp_path: Path) -> None:
    admin = _admin(tmp_path, "s3cr3t-'$(reboot)'")
    script = commands.mariadb_dump_script("shop", admin, "zstd")
    assert "s3cr3t" not in script
    assert script.startswith("IFS= read -r MYSQL_PWD")
    assert commands.password_line(admin) == b"s3cr3t-'$(reboot)'\n"
    assert "s3cr3t" not in commands.postgres_dump_script("shop", admin)


def test_a_password_with_a_line_break_is_refused(tmp_path: Path) -> None:
    with pytest.raises(commands.UnsafeValueError, match="line break"):
        commands.password_line(_admin(tmp_path, "two\nlines"))


@pytest.mark.parametrize("name", ["shop; rm -rf /", "-e", "a b", "x'y", "", "db`x`"])
def test_database_names_must_be_plain(name: str) -> None:
    with pytest.raises(commands.UnsafeValueError):
        commands.mariadb_dump_script(name, DatabaseAdmin(), "gzip")


def test_paths_are_shell_quoted() -> None:
    path = "/srv/www/it's $(evil) site"
    script = commands.files_script(path, "zstd")
    assert f"cd -- {shlex.quote(path)} " in script
    assert "zstd -q -1" in script


def test_dump_runs_with_consistency_options() -> None:
    script = commands.mariadb_dump_script("shop", DatabaseAdmin(), "pigz")
    for option in ("--single-transaction", "--routines", "--triggers", "--events"):
        assert option in script
    assert script.rstrip().endswith("| pigz -c -6")
    assert "--format=custom" in commands.postgres_dump_script("blog", DatabaseAdmin())


def test_compressor_preference_comes_from_the_probe() -> None:
    tools = commands.HostTools.parse("compressor\tpigz\ntar\ttar (GNU tar) 1.34\n", "web1")
    assert tools.compressor == "pigz" and tools.versions == {"tar": "tar (GNU tar) 1.34"}
    with pytest.raises(ValueError, match="none of zstd, pigz, gzip"):
        commands.HostTools.parse("tar\ttar 1.34\n", "web1")


def test_part_size_grows_with_the_source_and_fails_early() -> None:
    assert part_size_for(0) == DEFAULT_PART_SIZE
    assert part_size_for(4 * 1024**3) == DEFAULT_PART_SIZE
    one_tib = 1024**4
    size = part_size_for(one_tib)
    assert size % MIB == 0 and size * 10_000 >= one_tib * 1.25
    with pytest.raises(TooLargeError, match="more than one S3 object can hold"):
        part_size_for(60 * 1024**4)


def test_an_ssh_channel_holds_a_default_part_so_uploads_need_no_spare_buffer() -> None:
    # S3 uploads over SSH keep one buffer per part in flight and let the channel's
    # window hold the next part; a smaller window (or larger default part) would bring
    # back the spare, and with it a part's more memory per backup.
    assert SSHTransport.read_ahead >= DEFAULT_PART_SIZE
    assert LocalTransport("local").read_ahead < DEFAULT_PART_SIZE
