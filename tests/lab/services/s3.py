"""An in-process S3 (moto server) on a random loopback port."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from tests.lab.services.common import DEPS_HINT, LabDependencyError

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

REGION = "us-east-1"
ACCESS_KEY = "testing"
SECRET_KEY = "testing"


@dataclass
class S3Server:
    """Handle on the lab S3 endpoint; any key pair works, `access_key`/`secret_key` by default."""

    host: str
    port: int
    server: Any  # moto.server.ThreadedMotoServer; Any keeps moto out of import time
    region: str = REGION
    access_key: str = ACCESS_KEY
    secret_key: str = SECRET_KEY

    @property
    def endpoint_url(self) -> str:
        """The http URL to pass as boto3's endpoint_url."""
        return f"http://{self.host}:{self.port}"

    def client(self) -> S3Client:
        """Return a new boto3 S3 client for the lab endpoint.

        Credentials and region are passed explicitly, so nothing leaks into (or is read
        from) the process environment or ~/.aws.
        """
        import boto3

        client: S3Client = boto3.session.Session().client(
            "s3",
            endpoint_url=self.endpoint_url,
            region_name=self.region,
            aws_access_key_id=self.access_key,
            aws_secret_access_key=self.secret_key,
        )
        return client

    def create_bucket(self, name: str) -> str:
        """Create bucket `name` (in us-east-1, which takes no location constraint).

        Returns the name. Raises botocore's ClientError when it exists already.
        """
        self.client().create_bucket(Bucket=name)
        return name

    def stop(self) -> None:
        """Shut the server down and join its thread."""
        self.server.stop()


def start_s3(host: str = "127.0.0.1") -> S3Server:
    """Start moto's threaded server on a free port of `host` and return it.

    Raises LabDependencyError when moto[server] is not installed.
    """
    try:
        from moto.server import ThreadedMotoServer
    except ImportError as exc:
        raise LabDependencyError(
            f"lab: moto[server] is missing ({exc}); install the test extras: "
            f"pip install -e '.[test]' (and {DEPS_HINT})"
        ) from exc
    # Port 0: the OS picks the port at bind time, so there is no free-port race here.
    server = ThreadedMotoServer(ip_address=host, port=0, verbose=False)
    server.start()
    bound_host, port = server.get_host_and_port()
    return S3Server(host=bound_host, port=port, server=server)
