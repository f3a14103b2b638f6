"""Smoke tests: each lab service really serves what the fixtures promise."""

from __future__ import annotations

import smtplib
import subprocess
import uuid
from email.message import EmailMessage
from pathlib import Path

import httpx
import paramiko
import pytest
import sqlalchemy as sa

from tests.lab.services.mariadb import MariaDBServer
from tests.lab.services.nginx import NginxServer
from tests.lab.services.postgres import PostgresServer
from tests.lab.services.s3 import S3Server
from tests.lab.services.smtp import SMTPServer
from tests.lab.services.sshd import SSHServer


def _unique(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:10]}"


def test_postgres_creates_a_database_that_answers_queries(postgres: PostgresServer) -> None:
    name = _unique("smoke")
    url = postgres.create_database(name)
    assert url.startswith("postgresql+psycopg://postgres@127.0.0.1:")
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            assert conn.execute(sa.text("SELECT 1")).scalar() == 1
            assert conn.execute(sa.text("SELECT current_database()")).scalar() == name
    finally:
        engine.dispose()


def test_mariadb_database_user_logs_in_with_its_password(mariadb: MariaDBServer) -> None:
    name, user = _unique("smoke"), _unique("u")
    db = mariadb.create_database(name, user, "pa ss'word")
    out = mariadb.query(
        "SELECT CURRENT_USER(), DATABASE()", user=db.user, password=db.password, database=name
    )
    current_user, database = out.strip().split("\t")
    assert current_user.startswith(f"{user}@")
    assert database == name
    # The password is really checked: a wrong one is refused.
    wrong = subprocess.run(
        [*mariadb.client_argv(user, "wrong", name), "--execute", "SELECT 1"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert wrong.returncode != 0
    assert "Access denied" in wrong.stderr


def test_sshd_accepts_the_client_key_and_verifies_the_host_key(sshd: SSHServer) -> None:
    client = paramiko.SSHClient()
    client.load_host_keys(str(sshd.known_hosts_path))
    # RejectPolicy: the connection only works if known_hosts matches the served host key.
    client.set_missing_host_key_policy(paramiko.RejectPolicy())
    try:
        client.connect(
            sshd.host,
            port=sshd.port,
            username=sshd.user,
            key_filename=str(sshd.client_key_path),
            look_for_keys=False,
            allow_agent=False,
            timeout=10,
        )
        _, stdout, _ = client.exec_command("id -un")
        assert stdout.read().decode().strip() == "lapsessh"
        assert stdout.channel.recv_exit_status() == 0
    finally:
        client.close()


def test_nginx_serves_a_vhost_dropped_into_sites_dir(nginx: NginxServer, lab_tmp: Path) -> None:
    root = lab_tmp / _unique("site")
    root.mkdir()
    (root / "hello.txt").write_text("hello from the lab\n")
    server_name = f"{root.name}.test"
    vhost = nginx.sites_dir / f"{root.name}.conf"
    vhost.write_text(
        f"server {{\n"
        f"    listen {nginx.host}:{nginx.port};\n"
        f"    server_name {server_name};\n"
        f"    root {root};\n"
        f"}}\n"
    )
    try:
        nginx.reload()
        response = httpx.get(nginx.url("/hello.txt"), headers={"Host": server_name})
        assert response.status_code == 200
        assert response.text == "hello from the lab\n"
    finally:
        vhost.unlink()
        nginx.reload()
    # Once removed, the vhost's name falls through to the lab's catch-all server.
    gone = httpx.get(nginx.url("/hello.txt"), headers={"Host": server_name})
    assert gone.status_code == 404


def test_s3_stores_and_returns_an_object(s3: S3Server) -> None:
    bucket = s3.create_bucket(_unique("smoke").replace("_", "-"))
    client = s3.client()
    client.put_object(Bucket=bucket, Key="dir/object.bin", Body=b"\x00lab bytes\xff")
    body = client.get_object(Bucket=bucket, Key="dir/object.bin")["Body"].read()
    assert body == b"\x00lab bytes\xff"


def _message(subject: str) -> EmailMessage:
    msg = EmailMessage()
    msg["From"] = "lapse@example.test"
    msg["To"] = "customer@example.test"
    msg["Subject"] = subject
    msg.set_content("Your invoice is overdue.\n")
    return msg


def test_smtp_records_a_sent_message(smtp_inbox: SMTPServer) -> None:
    with smtplib.SMTP(smtp_inbox.host, smtp_inbox.port, timeout=10) as client:
        client.send_message(_message("Reminder"))
    [received] = smtp_inbox.messages
    assert received.mail_from == "lapse@example.test"
    assert received.rcpt_tos == ["customer@example.test"]
    assert received.message["Subject"] == "Reminder"
    assert b"Your invoice is overdue." in received.raw


@pytest.mark.parametrize(
    ("stage", "error"),
    [("data", smtplib.SMTPDataError), ("rcpt", smtplib.SMTPRecipientsRefused)],
)
def test_smtp_injected_failure_then_success(
    smtp_inbox: SMTPServer, stage: str, error: type[smtplib.SMTPException]
) -> None:
    smtp_inbox.fail_next(451, "try again later", stage=stage)  # type: ignore[arg-type]
    with smtplib.SMTP(smtp_inbox.host, smtp_inbox.port, timeout=10) as client:
        with pytest.raises(error) as failed:
            client.send_message(_message("First try"))
        if isinstance(failed.value, smtplib.SMTPRecipientsRefused):
            [(code, _)] = failed.value.recipients.values()
        else:
            assert isinstance(failed.value, smtplib.SMTPDataError)
            code = failed.value.smtp_code
        assert code == 451
        client.rset()
        client.send_message(_message("Second try"))
    assert [m.message["Subject"] for m in smtp_inbox.messages] == ["Second try"]
