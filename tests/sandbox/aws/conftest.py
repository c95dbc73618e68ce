"""Clients for the AWS layer's tests: real boto3 over HTTP to the session's layer (the ``aws``
fixture resets it per test), with retries off so each call is exactly one request and an
injected error reaches the test exactly as the layer sent it."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import boto3
import pytest
from botocore.config import Config

REGION = "eu-west-1"
# One of the Amazon images moto ships in every region. Asking DescribeImages for one costs a
# second per test (moto filters thousands of images); RunInstances takes any id.
IMAGE_ID = "ami-12c6146b"
NO_RETRIES = Config(retries={"mode": "standard", "total_max_attempts": 1})


@pytest.fixture
def boto(aws) -> Callable[..., Any]:
    def make(service: str, region: str = REGION, config: Config = NO_RETRIES) -> Any:
        return boto3.client(service, region_name=region, config=config)

    return make


@pytest.fixture
def ec2(boto):
    return boto("ec2")


@pytest.fixture
def image_id() -> str:
    return IMAGE_ID


def launch(ec2: Any, image_id: str, instance_type: str = "t2.micro", **extra: Any) -> dict:
    """One RunInstances call; returns the whole response."""
    return ec2.run_instances(
        ImageId=image_id, InstanceType=instance_type, MinCount=1, MaxCount=1, **extra
    )


def instance_count(ec2: Any) -> int:
    return sum(len(r["Instances"]) for r in ec2.describe_instances()["Reservations"])
