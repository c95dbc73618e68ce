"""The sandbox's web process asking the AWS layer (another process) to act like AWS: HTTP to the
layer's control endpoints under ``/_clusterweb/`` (sandbox/aws/README.md)."""

from __future__ import annotations

import json
import re
import urllib.error
import urllib.request

from clusterweb.integrations import aws

INSTANCE_ID = re.compile(r"^i-[0-9a-f]{8,17}$")


class ControlError(Exception):
    """The AWS layer refused the request (unknown, on-demand or not running instance) or is not
    there."""


def spot_interrupt(instance_id: str) -> dict:
    """Interrupt a running spot instance as AWS does (state reason
    ``Server.SpotInstanceTermination``). Returns the layer's ``interruption`` object."""
    if not INSTANCE_ID.match(instance_id):
        raise ControlError("not an EC2 instance id")
    # Where boto3 sends EC2 calls (it honours AWS_ENDPOINT_URL): the AWS layer, never real AWS.
    endpoint = aws.client("ec2").meta.endpoint_url.rstrip("/")
    if "amazonaws.com" in endpoint:
        raise ControlError("this is real AWS, not the sandbox's AWS layer")
    request = urllib.request.Request(
        f"{endpoint}/_clusterweb/spot-interruptions",
        data=json.dumps({"instance_id": instance_id}).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return json.load(response)["interruption"]
    except urllib.error.HTTPError as exc:
        detail = exc.read().decode(errors="replace")[:300]
        raise ControlError(f"the AWS layer answered {exc.code}: {detail}") from None
    except (urllib.error.URLError, OSError) as exc:
        raise ControlError(f"the AWS layer is unreachable: {exc}") from None
