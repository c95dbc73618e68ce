"""The simulated AWS of the sandbox and the tests: moto over real HTTP, plus what moto lacks
(ClientToken idempotency, spot interruptions, injected AWS errors, storage sizes, a record of the
actions called). See README.md in this directory."""

from sandbox.aws.controls import Fault, SpotInterruption
from sandbox.aws.layer import AwsControl, AwsLayer, LayerControlError
from sandbox.aws.moto_state import Conflict, NotFound

__all__ = [
    "AwsControl",
    "AwsLayer",
    "Conflict",
    "Fault",
    "LayerControlError",
    "NotFound",
    "SpotInterruption",
]
