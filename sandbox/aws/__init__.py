"""The simulated AWS of the sandbox and the tests: moto over real HTTP, plus what moto lacks
(ClientToken idempotency, instance states that take time, launches AWS refuses, spot prices and
interruptions, injected AWS errors, storage sizes, one clock with the product, a replay of past
actions, a record of the actions called per access key). See README.md in this directory."""

from sandbox.aws.controls import Fault, SpotInterruption
from sandbox.aws.layer import AwsControl, AwsLayer, LayerControlError
from sandbox.aws.lifecycle import StateDelays
from sandbox.aws.moto_state import Conflict, NotFound

__all__ = [
    "AwsControl",
    "AwsLayer",
    "Conflict",
    "Fault",
    "LayerControlError",
    "NotFound",
    "SpotInterruption",
    "StateDelays",
]
