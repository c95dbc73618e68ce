"""The cloud bridge: EC2 instances of the cluster join the simulated cluster as Nodes.

It plays the parts a real cluster splits between the instance's first boot (the join script of
docs/node-join.md: ``kubeadm join`` with a bootstrap token, checked by ``join.py``), the kubelet
(registration with labels, taints and provider ID from its flags only, the node's capacity,
NotReady then Ready) and the cloud controller manager (addresses, the shutdown taint, deleting the
Node of an instance that is gone). It follows the AWS side with boto3 against
``AWS_ENDPOINT_URL`` (the moto server or the AWS layer), polling every ``interval`` seconds, and
writes through the simulator's store, so every Node it writes is validated. See README.md,
"Cloud bridge", for the contract with the launch code.
"""

from __future__ import annotations

import base64
import gzip
import logging
import math
import os
import threading
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .controllers.base import EventRecorder, node_ready_status, set_condition, stamp
from .errors import ApiError
from .join import JoinError, check_token, read_join_script
from .resources import NODES, validate_labels
from .schema import KUBERNETES_VERSION
from .selectors import label_value_errors, qualified_name_errors

if TYPE_CHECKING:
    from .server import KubeSimulator
    from .store import Store

log = logging.getLogger(__name__)

CLUSTER_TAG = "clusterweb:cluster"
INSTANCE_TYPE_LABEL = "node.kubernetes.io/instance-type"
ZONE_LABEL = "topology.kubernetes.io/zone"
SHUTDOWN_TAINT = "node.cloudprovider.kubernetes.io/shutdown"
GPU_RESOURCE = "nvidia.com/gpu"

# What the kubelet may set on its own Node with --node-labels under kubernetes.io / k8s.io
# (NodeRestriction; "Well-Known Labels, Annotations and Taints").
_KUBELET_LABELS = frozenset(
    {
        "kubernetes.io/hostname",
        "kubernetes.io/arch",
        "kubernetes.io/os",
        "beta.kubernetes.io/arch",
        "beta.kubernetes.io/os",
        "beta.kubernetes.io/instance-type",
        "node.kubernetes.io/instance-type",
        "failure-domain.beta.kubernetes.io/region",
        "failure-domain.beta.kubernetes.io/zone",
        "topology.kubernetes.io/region",
        "topology.kubernetes.io/zone",
    }
)
_KUBELET_NAMESPACES = ("kubelet.kubernetes.io", "node.kubernetes.io")

# The kubelet's first status on a new node, before the CNI plugin is up.
_NOT_READY_MESSAGE = (
    "container runtime network not ready: NetworkReady=false reason:NetworkPluginNotReady "
    "message:Network plugin returns error: cni plugin not initialized"
)
_HEALTHY = (
    ("MemoryPressure", "KubeletHasSufficientMemory", "kubelet has sufficient memory available"),
    ("DiskPressure", "KubeletHasNoDiskPressure", "kubelet has no disk pressure"),
    ("PIDPressure", "KubeletHasSufficientPID", "kubelet has sufficient PID available"),
)
_EVICTION_HARD_MEMORY_MI = 100  # kubelet's default memory.available<100Mi
_ROOT_VOLUME_KI = 20959212  # a 20 GiB gp3 root volume as the kubelet reports it


class UserDataError(ValueError):
    """Kubelet flags a kubelet would refuse to start with."""


# -- the launch contract -------------------------------------------------------------------------


def parse_user_data(value: str) -> str:
    """EC2 user data as text, from the base64 ``DescribeInstanceAttribute`` returns (gzipped
    user data, which cloud-init accepts, is unzipped)."""
    data = base64.b64decode(value)
    if data[:2] == b"\x1f\x8b":
        data = gzip.decompress(data)
    return data.decode("utf-8", errors="replace")


def kubelet_flags(flags: Mapping[str, str]) -> tuple[dict[str, str], list[dict[str, str]]]:
    """The node labels and taints the kubelet's ``--node-labels=k=v,k2=v2`` and
    ``--register-with-taints=key=value:Effect,...`` ask for (flag name → value, as the join
    script's ``KUBELET_EXTRA_ARGS`` gives them). Raises :class:`UserDataError` where the
    kubelet would refuse to start.
    """
    labels: dict[str, str] = {}
    for item in filter(None, flags.get("node-labels", "").split(",")):
        key, sep, value = item.partition("=")
        if not sep:
            raise UserDataError(f"invalid --node-labels entry {item!r}: want key=value")
        labels[key] = value
    problems = [
        f"--node-labels {e.field}: {e.message()}" for e in validate_labels(labels, "labels")
    ]
    restricted = sorted(key for key in labels if not _kubelet_may_set(key))
    if restricted:
        problems.append(
            "unknown 'kubernetes.io' or 'k8s.io' labels specified with --node-labels: "
            + str(restricted)
        )
    taints: list[dict[str, str]] = []
    for item in filter(None, flags.get("register-with-taints", "").split(",")):
        try:
            taints.append(_parse_taint(item))
        except UserDataError as exc:
            problems.append(str(exc))
    seen: set[tuple[str, str]] = set()
    for taint in taints:
        pair = (taint["key"], taint["effect"])
        if pair in seen:
            problems.append(f"--register-with-taints: duplicated taint {pair}")
        seen.add(pair)
    if problems:
        raise UserDataError("; ".join(problems))
    return labels, taints


def _kubelet_may_set(key: str) -> bool:
    namespace = key.split("/", 1)[0] if "/" in key else ""
    if namespace == "node-restriction.kubernetes.io" or namespace.endswith(
        ".node-restriction.kubernetes.io"
    ):
        return False
    kubernetes = namespace in ("kubernetes.io", "k8s.io") or namespace.endswith(
        (".kubernetes.io", ".k8s.io")
    )
    if not kubernetes:
        return True
    return key in _KUBELET_LABELS or any(
        namespace == ns or namespace.endswith("." + ns) for ns in _KUBELET_NAMESPACES
    )


def _parse_taint(spec: str) -> dict[str, str]:
    """The kubelet's ``key[=value]:Effect`` taint syntax."""
    head, sep, effect = spec.rpartition(":")
    if not sep or not head:
        raise UserDataError(f"invalid taint spec {spec!r}: want key[=value]:Effect")
    key, _, value = head.partition("=")
    if effect not in ("NoSchedule", "PreferNoSchedule", "NoExecute"):
        raise UserDataError(f"invalid taint effect {effect!r} in {spec!r}")
    errors = qualified_name_errors(key) + label_value_errors(value)
    if errors:
        raise UserDataError(f"invalid taint {spec!r}: {'; '.join(errors)}")
    taint = {"key": key, "effect": effect}
    if value:
        taint["value"] = value
    return taint


# -- what an instance type offers ----------------------------------------------------------------


def max_pods(instance_type: Mapping[str, Any]) -> int:
    """The EKS AMI's max pods with the VPC CNI: ENIs x (IPv4 addresses per ENI - 1) + 2."""
    network = instance_type.get("NetworkInfo") or {}
    enis = int(network.get("MaximumNetworkInterfaces", 0))
    per_eni = int(network.get("Ipv4AddressesPerInterface", 0))
    if enis and per_eni:
        return enis * (per_eni - 1) + 2
    return 110  # the kubelet's own default


def _cpu_reserved_millicores(cores: int) -> int:
    """The EKS AMI's kube-reserved CPU: 6% of the first core, 1% of the second, 0.5% of the
    next two, 0.25% of the rest."""
    reserved = 0.0
    lower = 0
    for upper, share in ((1000, 0.06), (2000, 0.01), (4000, 0.005), (math.inf, 0.0025)):
        millis = cores * 1000
        if millis <= lower:
            break
        reserved += (min(millis, upper) - lower) * share
        lower = upper  # type: ignore[assignment]
    return int(reserved)


def node_resources(instance_type: Mapping[str, Any]) -> tuple[dict[str, str], dict[str, str]]:
    """(capacity, allocatable) for an EC2 instance type, as a kubelet on the EKS AMI reports
    them at registration ("Reserve Compute Resources for System Daemons"): memory capacity about
    5% below the nominal size (what the kernel keeps), allocatable minus kube-reserved (255 MiB +
    11 MiB per pod; CPU by the AMI's table) and the 100 MiB hard eviction threshold. No
    ``nvidia.com/gpu``: that appears only when the NVIDIA device plugin runs on the node
    (:func:`gpu_count` is what it will find)."""
    cores = int((instance_type.get("VCpuInfo") or {}).get("DefaultVCpus", 1))
    mib = int((instance_type.get("MemoryInfo") or {}).get("SizeInMiB", 1024))
    pods = max_pods(instance_type)
    memory_ki = int(mib * 1024 * 0.95)
    reserved_ki = (255 + 11 * pods + _EVICTION_HARD_MEMORY_MI) * 1024
    capacity = {
        "cpu": str(cores),
        "ephemeral-storage": f"{_ROOT_VOLUME_KI}Ki",
        "hugepages-1Gi": "0",
        "hugepages-2Mi": "0",
        "memory": f"{memory_ki}Ki",
        "pods": str(pods),
    }
    allocatable = {
        "cpu": f"{cores * 1000 - _cpu_reserved_millicores(cores)}m",
        # nodefs.available<10%, as the kubelet's default eviction threshold.
        "ephemeral-storage": str(int(_ROOT_VOLUME_KI * 1024 * 0.9)),
        "hugepages-1Gi": "0",
        "hugepages-2Mi": "0",
        "memory": f"{max(memory_ki - reserved_ki, 0)}Ki",
        "pods": str(pods),
    }
    return capacity, allocatable


def gpu_count(instance_type: Mapping[str, Any]) -> int:
    """The NVIDIA GPUs of an instance type (``GpuInfo``)."""
    gpus = (instance_type.get("GpuInfo") or {}).get("Gpus", ())
    return sum(int(g.get("Count", 0)) for g in gpus if g.get("Manufacturer", "NVIDIA") == "NVIDIA")


def _arch(instance: Mapping[str, Any], instance_type: Mapping[str, Any]) -> str:
    arch = instance.get("Architecture") or ""
    if not arch:
        supported = (instance_type.get("ProcessorInfo") or {}).get("SupportedArchitectures") or []
        arch = "x86_64" if "x86_64" in supported else (supported[0] if supported else "x86_64")
    return {"x86_64": "amd64", "arm64": "arm64", "i386": "386"}.get(arch, arch)


# -- the bridge ----------------------------------------------------------------------------------


@dataclass
class SyncReport:
    """What one :meth:`CloudBridge.sync_once` did, by node name."""

    registered: list[str] = field(default_factory=list)
    ready: list[str] = field(default_factory=list)
    not_ready: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    # Instances of the cluster still pending, or running but not (yet) a Ready node.
    waiting: list[str] = field(default_factory=list)


@dataclass
class _Member:
    instance_id: str
    node: str
    labels: dict[str, str]
    taints: list[dict[str, str]]
    registered_at: float  # monotonic; readiness counts from here


class CloudBridge:
    """Keeps one Node per running EC2 instance of the cluster (``clusterweb:cluster`` tag).

    ``sync_once()`` does one round (deterministic, for tests); ``start()`` runs rounds every
    ``interval`` seconds on a thread (sooner when a node is due to become Ready), ``stop()``
    joins it. ``problems`` maps an instance id to why it did not join (kubelet flags a kubelet
    would refuse); ``last_error`` is the last AWS error of the background loop.
    """

    def __init__(
        self,
        target: KubeSimulator | Store,
        cluster: str,
        *,
        aws_env: Mapping[str, str] | None = None,
        region: str | None = None,
        interval: float = 5.0,
        ready_delay: float = 3.0,
    ) -> None:
        from .server import KubeSimulator

        self.simulator = target if isinstance(target, KubeSimulator) else None
        self.store: Store = target.store if isinstance(target, KubeSimulator) else target
        self.cluster = cluster
        self.aws_env = dict(aws_env) if aws_env is not None else None
        env = self.aws_env if self.aws_env is not None else os.environ
        self.region = region or env.get("AWS_DEFAULT_REGION") or env.get("AWS_REGION") or ""
        self.interval = interval
        self.ready_delay = ready_delay
        self.events = EventRecorder(self.store)
        self.problems: dict[str, str] = {}
        self.last_error: str | None = None
        self._members: dict[str, _Member] = {}  # by instance id
        self._types: dict[str, dict[str, Any]] = {}
        self._user_data: dict[str, str] = {}
        self._client: Any = None
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    # -- lifecycle -----------------------------------------------------------------------------

    def start(self) -> CloudBridge:
        if self._thread is None:
            self._stopping.clear()
            self._thread = threading.Thread(target=self._run, name="cloud-bridge", daemon=True)
            self._thread.start()
            if self.simulator is not None:
                self.simulator.attach(self)
        return self

    def stop(self) -> None:
        thread = self._thread
        if thread is None:
            return
        self._stopping.set()
        thread.join(timeout=15)
        self._thread = None
        if self.simulator is not None:
            self.simulator.detach(self)

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def _run(self) -> None:
        wait = 0.0
        while not self._stopping.wait(wait):
            try:
                self.sync_once()
                self.last_error = None
            except Exception as exc:  # AWS unreachable, throttled...: try again next round
                self.last_error = repr(exc)
                log.warning("cloud bridge: %s", exc)
            wait = self._next_wait()

    def _next_wait(self) -> float:
        wait = self.interval
        now = time.monotonic()
        for member in self._members.values():
            node = self.store.peek(NODES, "", member.node)
            if node is not None and node_ready_status(node.obj) == "False":
                wait = min(wait, max(member.registered_at + self.ready_delay - now, 0.0) + 0.01)
        return wait

    # -- AWS -----------------------------------------------------------------------------------

    def _ec2(self) -> Any:
        if self._client is None:
            import boto3
            from botocore.config import Config

            env = self.aws_env if self.aws_env is not None else os.environ
            session = boto3.session.Session(
                aws_access_key_id=env.get("AWS_ACCESS_KEY_ID") or None,
                aws_secret_access_key=env.get("AWS_SECRET_ACCESS_KEY") or None,
                region_name=self.region or None,
            )
            self._client = session.client(
                "ec2",
                endpoint_url=env.get("AWS_ENDPOINT_URL") or None,
                config=Config(
                    connect_timeout=2,
                    read_timeout=10,
                    retries={"mode": "standard", "max_attempts": 2},
                ),
            )
        return self._client

    def _instances(self) -> list[dict[str, Any]]:
        instances = []
        paginator = self._ec2().get_paginator("describe_instances")
        filters = [{"Name": f"tag:{CLUSTER_TAG}", "Values": [self.cluster]}]
        for page in paginator.paginate(Filters=filters):
            for reservation in page.get("Reservations", ()):
                instances.extend(reservation.get("Instances", ()))
        return instances

    def _instance_type(self, name: str) -> dict[str, Any]:
        if name not in self._types:
            answer = self._ec2().describe_instance_types(InstanceTypes=[name])
            types = answer.get("InstanceTypes") or [{}]
            self._types[name] = types[0]
        return self._types[name]

    def _flags(self, instance_id: str) -> str:
        if instance_id not in self._user_data:
            answer = self._ec2().describe_instance_attribute(
                InstanceId=instance_id, Attribute="userData"
            )
            raw = (answer.get("UserData") or {}).get("Value") or ""
            self._user_data[instance_id] = parse_user_data(raw) if raw else ""
        return self._user_data[instance_id]

    # -- one round -----------------------------------------------------------------------------

    def sync_once(self) -> SyncReport:
        """Look at EC2 once and bring the Nodes in line. Raises what boto3 raises."""
        with self._lock:
            report = SyncReport()
            instances = self._instances()
            seen: set[str] = set()
            for instance in instances:
                instance_id = instance["InstanceId"]
                state = (instance.get("State") or {}).get("Name", "")
                tags = {t["Key"]: t["Value"] for t in instance.get("Tags") or ()}
                if tags.get(CLUSTER_TAG) != self.cluster or state == "terminated":
                    continue
                seen.add(instance_id)
                if state == "running":
                    self._running(instance, tags, report)
                    member = self._members.get(instance_id)
                    node = self.store.peek(NODES, "", member.node) if member else None
                    if node is None or node_ready_status(node.obj) != "True":
                        report.waiting.append(instance_id)
                elif state == "pending":
                    report.waiting.append(instance_id)
                elif state in ("stopping", "stopped", "shutting-down"):
                    self._unreachable(instance_id, stopped=state == "stopped", report=report)
            for instance_id in [i for i in self._members if i not in seen]:
                self._remove(self._members.pop(instance_id), report)
            for instance_id in [i for i in self.problems if i not in seen]:
                del self.problems[instance_id]
            return report

    def wait_ready(self, timeout: float) -> SyncReport:
        """Sync until every pending or running instance of the cluster is a Ready node (an
        instance whose kubelet flags are refused never will be, and is not waited for).
        Raises TimeoutError after ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        while True:
            report = self.sync_once()
            waiting = [i for i in report.waiting if i not in self.problems]
            if not waiting:
                return report
            if time.monotonic() >= deadline:
                raise TimeoutError(f"instances not Ready nodes after {timeout:g} s: {waiting}")
            time.sleep(min(max(self.ready_delay / 4, 0.02), 0.5))

    def members(self) -> dict[str, str]:
        """Instance id → node name, for every instance this bridge registered."""
        with self._lock:
            return {i: m.node for i, m in self._members.items()}

    def _running(self, instance: dict[str, Any], tags: dict[str, str], report: SyncReport) -> None:
        instance_id = instance["InstanceId"]
        member = self._members.get(instance_id)
        node = self.store.peek(NODES, "", member.node) if member else None
        if member is None or node is None:
            self._register(instance, tags, report)
            return
        status = node_ready_status(node.obj)
        if status == "Unknown":
            # Started again after a stop: the kubelet comes back and reports NotReady first.
            member.registered_at = time.monotonic()
            self._set_ready(member, False, report)
        elif status != "True" and time.monotonic() - member.registered_at >= self.ready_delay:
            self._set_ready(member, True, report)
        # A running instance is not shut down. Checked every round, not only on the transition:
        # the update can lose a race with another controller writing the same Node.
        self._set_taint(member, SHUTDOWN_TAINT, present=False)

    def _join(self, instance: dict[str, Any]) -> tuple[dict[str, str], list[dict[str, str]]]:
        """Run the instance's user data as the join specification says (``join.py``): the
        labels and taints its kubelet registers with, or :class:`JoinError` /
        :class:`UserDataError` when it never becomes a node."""
        instance_id = instance["InstanceId"]
        zone = (instance.get("Placement") or {}).get("AvailabilityZone", "")
        type_name = instance.get("InstanceType", "")
        if (instance.get("MetadataOptions") or {}).get("HttpEndpoint") == "disabled":
            raise JoinError("the instance metadata service is disabled: curl fails")
        metadata = {
            "instance-id": instance_id,
            "instance-type": type_name,
            "placement/availability-zone": zone,
            "placement/region": zone[:-1] if zone else self.region,
            "local-ipv4": instance.get("PrivateIpAddress", ""),
            "local-hostname": instance.get("PrivateDnsName", ""),
            "ami-id": instance.get("ImageId", ""),
        }
        request = read_join_script(self._flags(instance_id), metadata)
        if self.simulator is not None:
            # kubeadm dials the address in the script: a wrong control-plane endpoint never joins.
            endpoint = f"{self.simulator.host}:{self.simulator.port}"
            if request.api_server != endpoint:
                raise JoinError(
                    f"kubeadm join {request.api_server}: no API server answers there "
                    f"(the control-plane endpoint is {endpoint})"
                )
        labels, taints = kubelet_flags(request.flags)
        provider_id = f"aws:///{zone}/{instance_id}"
        if request.flags.get("provider-id") != provider_id:
            raise JoinError(
                f"--provider-id must be {provider_id} (read from the metadata service), "
                f"not {request.flags.get('provider-id', '(missing)')!r}"
            )
        for label, value in ((INSTANCE_TYPE_LABEL, type_name), (ZONE_LABEL, zone)):
            if labels.get(label) != value:
                raise JoinError(f"--node-labels must set {label}={value} from the metadata service")
        check_token(self.store, request)
        return labels, taints

    def _register(self, instance: dict[str, Any], tags: dict[str, str], report: SyncReport) -> None:
        instance_id = instance["InstanceId"]
        if instance_id in self.problems:
            return  # user data runs once, at first boot: a failed join stays failed
        try:
            labels, taints = self._join(instance)
        except (JoinError, UserDataError) as exc:
            log.warning("instance %s cannot join: %s", instance_id, exc)
            self.problems[instance_id] = str(exc)
            return
        zone = (instance.get("Placement") or {}).get("AvailabilityZone", "")
        name = instance.get("PrivateDnsName") or instance_id
        type_name = instance.get("InstanceType", "")
        type_info = self._instance_type(type_name)
        arch = _arch(instance, type_info)
        # What the kubelet sets on itself; everything else comes from --node-labels.
        standard = {
            "kubernetes.io/hostname": name,
            "kubernetes.io/os": "linux",
            "kubernetes.io/arch": arch,
            "beta.kubernetes.io/os": "linux",
            "beta.kubernetes.io/arch": arch,
        }
        all_labels = {**labels, **standard}
        capacity, allocatable = node_resources(type_info)
        addresses = []
        if instance.get("PrivateIpAddress"):
            addresses.append({"type": "InternalIP", "address": instance["PrivateIpAddress"]})
        if instance.get("PublicIpAddress"):
            addresses.append({"type": "ExternalIP", "address": instance["PublicIpAddress"]})
        addresses.append({"type": "Hostname", "address": name})
        if instance.get("PrivateDnsName"):
            addresses.append({"type": "InternalDNS", "address": instance["PrivateDnsName"]})
        if instance.get("PublicDnsName"):
            addresses.append({"type": "ExternalDNS", "address": instance["PublicDnsName"]})
        now = stamp(self.store.clock())
        status: dict[str, Any] = {
            "capacity": capacity,
            "allocatable": allocatable,
            "addresses": addresses,
            "daemonEndpoints": {"kubeletEndpoint": {"Port": 10250}},
            "nodeInfo": self._node_info(instance_id, arch),
        }
        for type_, reason, message in _HEALTHY:
            set_condition(status, type_, "False", now, reason=reason, message=message)
        set_condition(
            status, "Ready", "False", now, reason="KubeletNotReady", message=_NOT_READY_MESSAGE
        )
        for cond in status["conditions"]:
            cond["lastHeartbeatTime"] = now
        spec: dict[str, Any] = {"providerID": f"aws:///{zone}/{instance_id}"}
        if taints:
            spec["taints"] = [dict(t) for t in taints]
        body = {
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {
                "name": name,
                "labels": all_labels,
                "annotations": {
                    "node.alpha.kubernetes.io/ttl": "0",
                    "volumes.kubernetes.io/controller-managed-attach-detach": "true",
                },
            },
            "spec": spec,
            "status": status,
        }
        existing = self.store.peek(NODES, "", name)
        if existing is not None:
            # A node of that name from an earlier instance (or a restart of this bridge).
            if (existing.obj.get("spec") or {}).get("providerID") != spec["providerID"]:
                self.store.delete(NODES, "", name)
            else:
                self._members[instance_id] = _Member(
                    instance_id, name, labels, taints, time.monotonic()
                )
                return
        gpus = gpu_count(type_info)
        if gpus:
            self.store.devices[name] = {GPU_RESOURCE: gpus}
        else:
            self.store.devices.pop(name, None)
        created = self.store.seed([body])[0]
        self.problems.pop(instance_id, None)
        member = _Member(instance_id, name, labels, taints, time.monotonic())
        self._members[instance_id] = member
        report.registered.append(name)
        self.events.record(created, "Normal", "Starting", "Starting kubelet.", "kubelet", host=name)
        self.events.record(
            created,
            "Normal",
            "RegisteredNode",
            f"Node {name} event: Registered Node {name} in Controller",
            "node-controller",
        )
        if self.ready_delay <= 0:
            self._set_ready(member, True, report)

    def _node_info(self, instance_id: str, arch: str) -> dict[str, str]:
        machine = uuid.uuid5(uuid.NAMESPACE_URL, f"ec2:{instance_id}")
        return {
            "machineID": machine.hex,
            "systemUUID": "ec2" + str(machine)[3:],
            "bootID": str(uuid.uuid5(machine, "boot")),
            "kernelVersion": "6.1.134-152.225.amzn2023.x86_64",
            "osImage": "Amazon Linux 2023.7.20250512",
            "containerRuntimeVersion": "containerd://1.7.27",
            "kubeletVersion": f"v{KUBERNETES_VERSION}.0-eks-clusterweb",
            "kubeProxyVersion": "",
            "operatingSystem": "linux",
            "architecture": arch,
        }

    def _set_ready(self, member: _Member, ready: bool, report: SyncReport) -> None:
        entry = self.store.peek(NODES, "", member.node)
        if entry is None:
            return
        node = entry.copy()
        status = node.setdefault("status", {})
        now = stamp(self.store.clock())
        for type_, reason, message in _HEALTHY:
            set_condition(status, type_, "False", now, reason=reason, message=message)
        if ready:
            set_condition(
                status,
                "Ready",
                "True",
                now,
                reason="KubeletReady",
                message="kubelet is posting ready status",
            )
        else:
            set_condition(
                status,
                "Ready",
                "False",
                now,
                reason="KubeletNotReady",
                message=_NOT_READY_MESSAGE,
            )
        for cond in status.get("conditions") or ():
            cond["lastHeartbeatTime"] = now
        try:
            self.store.update(NODES, node, subresource="status")
        except ApiError as exc:
            if exc.code in (404, 409):
                return  # deleted, or changed meanwhile: the next round tries again
            raise
        (report.ready if ready else report.not_ready).append(member.node)
        if ready:
            self.events.record(
                node,
                "Normal",
                "NodeReady",
                f"Node {member.node} status is now: NodeReady",
                "kubelet",
                host=member.node,
            )

    def _unreachable(self, instance_id: str, *, stopped: bool, report: SyncReport) -> None:
        """The instance is stopping or stopped: the kubelet went silent (every condition
        Unknown, as the node lifecycle controller marks it), and a stopped instance gets the
        cloud controller manager's shutdown taint. The Node stays: it comes back on start."""
        member = self._members.get(instance_id)
        if member is None:
            return
        entry = self.store.peek(NODES, "", member.node)
        if entry is None:
            return
        if node_ready_status(entry.obj) != "Unknown":
            node = entry.copy()
            now = stamp(self.store.clock())
            for cond in node.get("status", {}).get("conditions") or ():
                if cond.get("status") != "Unknown":
                    cond["status"] = "Unknown"
                    cond["reason"] = "NodeStatusUnknown"
                    cond["message"] = "Kubelet stopped posting node status."
                    cond["lastTransitionTime"] = now
            try:
                self.store.update(NODES, node, subresource="status")
            except ApiError as exc:
                if exc.code not in (404, 409):
                    raise
                return
            report.not_ready.append(member.node)
        if stopped:
            self._set_taint(member, SHUTDOWN_TAINT, present=True)

    def _set_taint(self, member: _Member, key: str, *, present: bool) -> None:
        for _ in range(3):  # a 409 means the Node changed meanwhile: read it again
            entry = self.store.peek(NODES, "", member.node)
            if entry is None:
                return
            taints = list((entry.obj.get("spec") or {}).get("taints") or ())
            has = any(t.get("key") == key and t.get("effect") == "NoSchedule" for t in taints)
            if has == present:
                return
            node = entry.copy()
            if present:
                taints.append({"key": key, "effect": "NoSchedule"})
            else:
                taints = [
                    t
                    for t in taints
                    if not (t.get("key") == key and t.get("effect") == "NoSchedule")
                ]
            if taints:
                node["spec"]["taints"] = taints
            else:
                node["spec"].pop("taints", None)
            try:
                self.store.update(NODES, node)
                return
            except ApiError as exc:
                if exc.code == 404:
                    return  # deleted meanwhile
                if exc.code != 409:
                    raise

    def _remove(self, member: _Member, report: SyncReport) -> None:
        """The instance is terminated or gone: delete its Node, as the cloud node lifecycle
        controller does; the pod GC then deals with the pods that were on it."""
        entry = self.store.peek(NODES, "", member.node)
        if entry is None:
            return
        provider = (entry.obj.get("spec") or {}).get("providerID", "")
        if not provider.endswith("/" + member.instance_id):
            return  # the name belongs to another instance now
        self.events.record(
            entry.obj,
            "Normal",
            "DeletingNode",
            f"Deleting node {member.node} because it does not exist in the cloud provider",
            "cloud-node-lifecycle-controller",
        )
        try:
            self.store.delete(NODES, "", member.node)
        except ApiError as exc:
            if exc.code != 404:
                raise
            return
        self._user_data.pop(member.instance_id, None)
        report.removed.append(member.node)
