"""Which container images the simulated kubelet can run, and as what.

A container whose image is known here runs as a small local **stand-in process** bound to its
pod's address (see ``runtime.py``); every other container is inert, as before (Running, Ready
once started, nothing listening). The stand-ins are scripts run by the simulator's interpreter
and import nothing from the project:

- the single-user notebook images (``quay.io/jupyterhub/singleuser``, KubeSpawner's default,
  and ``jupyterhub/singleuser``; the Jupyter Docker Stacks' ``quay.io/jupyter/*-notebook`` and
  ``jupyter/*-notebook``), whatever the command: ``sandbox/jupyterhub/singleuser.py``, the
  single-user server the hub spawns;
- ``apache/spark`` (``docker.io/apache/spark:*``) whose command line names
  ``org.apache.spark.deploy.master.Master``: ``spark.py master``, the standalone master;
- ``apache/spark`` naming ``org.apache.spark.deploy.worker.Worker``: ``spark.py worker``, a
  standalone worker.

A Spark image running anything else (``spark-submit``, a shell) is inert.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
SINGLEUSER = HERE.parent.parent / "jupyterhub" / "singleuser.py"
SPARK = HERE / "spark.py"

SPARK_MASTER_CLASS = "org.apache.spark.deploy.master.Master"
SPARK_WORKER_CLASS = "org.apache.spark.deploy.worker.Worker"
_SINGLEUSER_REPOSITORIES = ("quay.io/jupyterhub/singleuser", "docker.io/jupyterhub/singleuser")
_NOTEBOOK_ORGANISATIONS = ("quay.io/jupyter/", "docker.io/jupyter/")
_SPARK_REPOSITORIES = ("docker.io/apache/spark",)


def repository(image: str) -> str:
    """The image's repository in full (``registry/path``, no tag or digest), as a container
    runtime normalises it: no registry means Docker Hub, one path component ``library/``."""
    name = image.split("@", 1)[0]
    last = name.rsplit("/", 1)[-1]
    if ":" in last:
        name = name[: len(name) - len(last) + last.index(":")]
    first, _, rest = name.partition("/")
    if not rest or ("." not in first and ":" not in first and first != "localhost"):
        name = f"docker.io/{name}"
        if "/" not in name[len("docker.io/") :]:
            name = f"docker.io/library/{name[len('docker.io/') :]}"
    return name.lower()


def command_line(container: dict[str, Any]) -> list[str]:
    return [str(a) for a in (container.get("command") or []) + (container.get("args") or [])]


def standin_for(container: dict[str, Any]) -> list[str] | None:
    """The stand-in's script and arguments for this container, or None (inert)."""
    repo = repository(str(container.get("image") or ""))
    argv = command_line(container)
    if repo in _SINGLEUSER_REPOSITORIES or (
        repo.startswith(_NOTEBOOK_ORGANISATIONS) and repo.endswith("-notebook")
    ):
        return [str(SINGLEUSER), *argv]
    if repo in _SPARK_REPOSITORIES:
        for index, arg in enumerate(argv):
            if arg == SPARK_MASTER_CLASS:
                return [str(SPARK), "master", *argv[index + 1 :]]
            if arg == SPARK_WORKER_CLASS:
                return [str(SPARK), "worker", *argv[index + 1 :]]
    return None


def resolves_services(argv: list[str]) -> bool:
    """Whether the stand-in looks Service names up through the simulator (its workers do; it
    then gets the simulator's URL and a token for ``/_simulator/resolve``)."""
    return bool(argv) and argv[0] == str(SPARK)
