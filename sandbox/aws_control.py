"""The sandbox's web process asking the AWS layer (another process) to act like AWS, through the
layer's own HTTP controls (:class:`sandbox.aws.AwsControl`; sandbox/aws/README.md)."""

from __future__ import annotations

import re
import urllib.error

from django.conf import settings

from clusterweb.integrations import aws
from sandbox.aws import AwsControl, LayerControlError

INSTANCE_ID = re.compile(r"^i-[0-9a-f]{8,17}$")


class ControlError(Exception):
    """The AWS layer refused the request (unknown, on-demand or not running instance) or is not
    there."""


def spot_interrupt(instance_id: str) -> dict:
    """Interrupt a running spot instance as AWS does: the two-minute warning goes to the queue
    of ``SPOT_INTERRUPTION_QUEUE_URL`` (EventBridge's event), then the instance is reclaimed
    (state reason ``Server.SpotInstanceTermination``). Without a queue it is reclaimed at once.
    Returns the layer's ``interruption`` object."""
    if not INSTANCE_ID.match(instance_id):
        raise ControlError("not an EC2 instance id")
    # Where boto3 sends EC2 calls (it honours AWS_ENDPOINT_URL): the AWS layer, never real AWS.
    endpoint = aws.client("ec2").meta.endpoint_url.rstrip("/")
    if "amazonaws.com" in endpoint:
        raise ControlError("this is real AWS, not the sandbox's AWS layer")
    try:
        interruption = AwsControl(endpoint).spot_interrupt(
            instance_id, warning_queue_url=settings.SPOT_INTERRUPTION_QUEUE_URL or None
        )
    except LayerControlError as exc:
        raise ControlError(f"the AWS layer answered {exc}"[:300]) from None
    except (urllib.error.URLError, OSError) as exc:
        raise ControlError(f"the AWS layer is unreachable: {exc}") from None
    return interruption.to_json()
