"""A moto server over real HTTP, so boto3 talks to AWS's APIs exactly as it would to AWS."""

from __future__ import annotations

import json
import urllib.request

from sandbox.services.base import free_port, wait_for_port


class MotoServer:
    def __init__(self, port: int | None = None) -> None:
        self.port = port or free_port()
        self._server = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def env(self) -> dict[str, str]:
        return {
            "AWS_ENDPOINT_URL": self.url,
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": "eu-west-1",
            "AWS_REGION": "eu-west-1",
        }

    def start(self) -> MotoServer:
        from moto.server import ThreadedMotoServer

        self._server = ThreadedMotoServer(ip_address="127.0.0.1", port=self.port, verbose=False)
        self._server.start()
        wait_for_port(self.port, name="moto")
        return self

    def reset(self) -> None:
        request = urllib.request.Request(f"{self.url}/moto-api/reset", method="POST", data=b"")
        urllib.request.urlopen(request, timeout=10).close()

    def data(self) -> dict:
        with urllib.request.urlopen(f"{self.url}/moto-api/data.json", timeout=10) as resp:
            return json.load(resp)

    def stop(self) -> None:
        if self._server is not None:
            self._server.stop()
            self._server = None
