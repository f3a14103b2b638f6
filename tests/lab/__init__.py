"""The test lab: real services (sshd, nginx, MariaDB, PostgreSQL, S3, SMTP) on loopback."""
