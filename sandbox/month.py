"""The sandbox's month, as far as `make run`'s runner needs it before Django is configured: where
the replayed history starts, and the replay steps that launch the always-on nodes there (the
history itself is ``sandbox/history.py``).

The history starts at the 1st of the month, 00:00 UTC; in the first days of a month (before
EARLY_DAYS full days have passed) it starts LOOKBACK_DAYS earlier instead, in the previous
month, so the dashboard has full billed days to compare (Cost Explorer's latest day lags).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

CLUSTER_TAG = "clusterweb:cluster"
EARLY_DAYS = 3
LOOKBACK_DAYS = 7
# The always-on part of the platform: (pool, instance type, count), on-demand in zone "a".
BASE_NODES = (("control", "t2.micro", 1), ("admin", "t2.small", 2))


def history_start(now: datetime) -> datetime:
    """Midnight UTC where the sandbox's history begins for a sandbox started at ``now``."""
    now = now.astimezone(UTC)
    first = datetime(now.year, now.month, 1, tzinfo=UTC)
    if now - first >= timedelta(days=EARLY_DAYS):
        return first
    day = (now - timedelta(days=LOOKBACK_DAYS)).date()
    return datetime(day.year, day.month, day.day, tzinfo=UTC)


def base_launch_steps(
    at: datetime,
    *,
    image_id: str,
    cluster: str,
    region: str,
    user_data: dict[str, str] | None = None,
) -> list[dict[str, Any]]:
    """Replay steps launching the always-on nodes at ``at``: one t2.micro control-plane node and
    two t2.small admin nodes, tagged as cluster members, each with its pool's join script
    (``user_data`` by pool; none when the test has no Kubernetes to join)."""
    steps = []
    for pool, instance_type, count in BASE_NODES:
        for index in range(count):
            params: dict[str, Any] = {
                "ImageId": image_id,
                "InstanceType": instance_type,
                "MinCount": 1,
                "MaxCount": 1,
                "ClientToken": f"sandbox-{pool}-{index}",
                "MetadataOptions": {"HttpTokens": "required"},
                "Placement": {"AvailabilityZone": f"{region}a"},
                "TagSpecifications": [
                    {
                        "ResourceType": "instance",
                        "Tags": [
                            {"Key": "Name", "Value": f"{pool}-{index + 1}"},
                            {"Key": CLUSTER_TAG, "Value": cluster},
                            {"Key": "clusterweb:pool", "Value": pool},
                        ],
                    }
                ],
            }
            if user_data and pool in user_data:
                params["UserData"] = user_data[pool]
            steps.append({"at": at, "action": "RunInstances", "params": params})
    return steps
