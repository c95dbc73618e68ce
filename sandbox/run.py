"""`make run`: a working Clusterweb on this machine with no AWS account and no cluster.

Starts, on loopback: slapd with the persona directory, Redis, an SMTP sink (mail readable on the
sandbox-only Mail page), a moto server seeded with the always-on part of the platform, a Celery
worker with beat, the web site on 127.0.0.1:8000 and the signup site on 127.0.0.1:8001. Writes
``var/sandbox/env`` so ``manage.py`` in this checkout reaches the running sandbox. Every run starts
fresh. Ctrl-C (SIGINT) or SIGTERM stops everything.
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

from sandbox import directory
from sandbox.aws import AwsLayer, StateDelays
from sandbox.jupyterhub import JupyterHubHarness
from sandbox.kube import KubeSimulator, bootstrap
from sandbox.kube.join import CA_CERT_HASH, mint_token
from sandbox.services.base import ManagedProcess, port_open, reserve_port, wait_for_port
from sandbox.services.celery_worker import CeleryWorker
from sandbox.services.redis import RedisServer
from sandbox.services.slapd import SlapdServer
from sandbox.services.smtp import SmtpSink

REPO = Path(__file__).resolve().parent.parent
VAR = Path(os.environ.get("CLUSTERWEB_VAR_DIR") or REPO / "var")
SANDBOX_DIR = VAR / "sandbox"
WEB_PORT, SIGNUP_PORT = 8000, 8001
CLUSTER_NAME = "sandbox"
REGION = "eu-west-1"
# Seconds instances spend pending, stopping and shutting-down: as on EC2, but short, so that the
# always-on nodes are up in seconds (the layer's defaults are of EC2's order).
STATE_DELAYS = StateDelays(pending=3, stopping=3, shutting_down=3)


def say(message: str) -> None:
    print(f"[sandbox] {message}", flush=True)


class Sandbox:
    def __init__(self, web_port: int = WEB_PORT, signup_port: int = SIGNUP_PORT) -> None:
        self.web_port = web_port
        self.signup_port = signup_port
        reserve_port(web_port, signup_port)  # no service of ours may be handed these
        self.stack: list = []  # started services, stopped in reverse order
        self.starting = True
        self.env: dict[str, str] = {}

    # --- start -----------------------------------------------------------------------------
    def start(self) -> None:
        for port in (self.web_port, self.signup_port):
            if port_open(port):
                raise SystemExit(
                    f"Port {port} is already in use: stop whatever listens there "
                    "(another `make run`?) and try again."
                )
        if SANDBOX_DIR.exists():
            shutil.rmtree(SANDBOX_DIR)  # each run starts fresh, its database included
        SANDBOX_DIR.mkdir(parents=True)
        logs = SANDBOX_DIR / "logs"
        logs.mkdir()

        started = time.monotonic()
        slapd = self._push(SlapdServer(SANDBOX_DIR / "slapd").start())
        say(f"OpenLDAP on {slapd.uri} with the personas alice, bob, carol")
        redis = self._push(RedisServer(SANDBOX_DIR / "redis").start())
        say(f"Redis on {redis.url}")
        smtp = self._push(SmtpSink(maildir=SANDBOX_DIR / "mail").start())
        say(f"SMTP sink on 127.0.0.1:{smtp.port} (read mail on the Mail page)")
        moto = self._push(AwsLayer(workdir=SANDBOX_DIR / "aws", delays=STATE_DELAYS).start())
        say(f"AWS (moto with Clusterweb's AWS layer) on {moto.url}")

        self.env = {
            "CLUSTERWEB_SANDBOX": "1",
            "CLUSTERWEB_VAR_DIR": str(VAR),
            "CLUSTER_NAME": CLUSTER_NAME,
            "DATABASE_URL": f"sqlite:///{SANDBOX_DIR / 'clusterweb.sqlite3'}",
            "REDIS_URL": redis.url,
            **slapd.env(),
            **smtp.env(),
            **moto.env(),
            "DEFAULT_FROM_EMAIL": "clusterweb@sandbox.local",
            "CLUSTERWEB_BIND": f"127.0.0.1:{self.web_port}",
            "CLUSTERWEB_SIGNUP_BIND": f"127.0.0.1:{self.signup_port}",
        }
        sim = self._push(KubeSimulator().start())
        # The product's identity for the product; the admin's for set-up (docs/node-join.md).
        kubeconfig = sim.write_kubeconfig(SANDBOX_DIR / "kubeconfig", identity="clusterweb")
        admin_kubeconfig = sim.write_kubeconfig(SANDBOX_DIR / "kubeconfig-admin")
        seed_aws(moto.url, api_server=f"{sim.host}:{sim.port}", token=mint_token(sim.store))
        self.env["SPOT_INTERRUPTION_QUEUE_URL"] = spot_queue_create(moto.url)
        say("seeded AWS: a t2.micro control node and two t2.small admin nodes, with join scripts")
        bootstrap(sim, cluster=CLUSTER_NAME, aws_env=moto.setup_env(), region=REGION)
        say(f"Kubernetes API simulator on {sim.url}: three Ready nodes, Spark master running")
        # Pushed after the simulator so it stops first: stopping the hub stops every server and
        # deletes its Pod.
        hub = self._push(
            JupyterHubHarness(
                sim.write_kubeconfig(SANDBOX_DIR / "kubeconfig-hub", identity="jupyterhub"),
                workdir=SANDBOX_DIR / "jupyterhub",
                log=logs / "jupyterhub.log",
                start_timeout=300,
                pod_ready_timeout=300,
            ).start()
        )
        say(f"JupyterHub on {hub.url} (servers' Pods in namespace jupyter)")
        # Launches join nodes to the simulator, pinning the sandbox's CA (docs/node-join.md).
        self.env.update(
            {"KUBECONFIG": str(kubeconfig), "KUBE_CA_CERT_HASH": CA_CERT_HASH, **hub.env()}
        )
        self._write_env_file()
        child_env = {**os.environ, **self.env, "DJANGO_SETTINGS_MODULE": "clusterweb.settings"}
        for key in ("CLUSTERWEB_TEST", "CLUSTERWEB_SITE"):
            child_env.pop(key, None)

        self._manage(child_env, "migrate", "--noinput", "-v", "0")
        self._manage(child_env, "collectstatic", "--noinput", "-v", "0")
        # Set-up mints the launch templates' bootstrap token: the admin's identity.
        self._manage({**child_env, "KUBECONFIG": str(admin_kubeconfig)}, "sandbox_seed")
        # CONVENTIONS: seeding and one sync finish before port 8000 answers.
        self._manage(child_env, "sync")

        self._push(
            CeleryWorker(
                SANDBOX_DIR / "worker",
                {**self.env, "DJANGO_SETTINGS_MODULE": "clusterweb.settings"},
                beat=True,
                concurrency=1,
            ).start()
        )
        say("Celery worker and beat running")
        for site, port in (("signup", self.signup_port), ("web", self.web_port)):
            process = ManagedProcess(
                f"gunicorn-{site}",
                [
                    sys.executable,
                    "-m",
                    "gunicorn",
                    "-c",
                    "python:clusterweb.gunicorn_conf",
                    "-b",
                    f"127.0.0.1:{port}",
                    "--workers",
                    "1",
                    "--threads",
                    "4",
                    "clusterweb.wsgi",
                ],
                env={**child_env, "CLUSTERWEB_SITE": site},
                log=logs / f"{site}.log",
                cwd=REPO,
            ).start()
            self._push(process)
            wait_for_port(port, process=process.process, name=f"the {site} site", timeout=60)
        self.starting = False
        say(f"ready in {time.monotonic() - started:.1f} s")
        self._banner()

    def _push(self, service):
        self.stack.append(service)
        return service

    def _manage(self, env: dict[str, str], *args: str) -> None:
        result = subprocess.run(
            [sys.executable, "manage.py", *args], cwd=REPO, env=env, stdin=subprocess.DEVNULL
        )
        if result.returncode != 0:
            raise SystemExit(f"manage.py {' '.join(args)} failed (exit {result.returncode})")

    def _write_env_file(self) -> None:
        path = SANDBOX_DIR / "env"
        lines = ["# Written by `make run`; removed when it stops. manage.py reads it."]
        lines += [f"{key}={value}" for key, value in self.env.items()]
        path.touch(mode=0o600)
        path.write_text("\n".join(lines) + "\n")

    def _banner(self) -> None:
        rows = "\n".join(f"    {p.uid:<6} {p.password:<18} {p.role}" for p in directory.PERSONAS)
        print(
            f"\n  Clusterweb sandbox: http://127.0.0.1:{self.web_port}/"
            f"   (signup site: http://127.0.0.1:{self.signup_port}/)\n\n"
            f"    user   password           role\n{rows}\n\n"
            f"  manage.py in this checkout talks to this sandbox (var/sandbox/env).\n"
            f"  Logs: {SANDBOX_DIR / 'logs'}. Press Ctrl-C to stop everything.\n",
            flush=True,
        )

    # --- stop ------------------------------------------------------------------------------
    def stop(self) -> None:
        (SANDBOX_DIR / "env").unlink(missing_ok=True)
        while self.stack:
            service = self.stack.pop()
            try:
                service.stop()
            except Exception as exc:  # keep stopping the rest
                say(f"could not stop {type(service).__name__}: {exc}")
        say("stopped")


def seed_aws(endpoint: str, *, api_server: str, token: str) -> None:
    """The always-on part of the platform: one t2.micro control-plane node and two t2.small admin
    nodes, tagged as cluster members, each joining through its pool's join script with
    ``token`` (docs/node-join.md)."""
    import boto3

    from provisioning.node_join import JoinSpec, join_script

    ec2 = boto3.client(
        "ec2",
        endpoint_url=endpoint,
        region_name=REGION,
        # The set-up key: the recorder files the seeding apart from the product's own calls.
        aws_access_key_id=AwsLayer.SETUP_ACCESS_KEY,
        aws_secret_access_key=AwsLayer.SETUP_ACCESS_KEY,
    )
    image = ec2.describe_images(Owners=["amazon"])["Images"][0]["ImageId"]
    for pool, instance_type, count in (("control", "t2.micro", 1), ("admin", "t2.small", 2)):
        labels = {"clusterweb.io/pool": pool, "clusterweb.io/capacity-type": "on-demand"}
        user_data = join_script(JoinSpec(api_server, token, CA_CERT_HASH, labels))
        for index in range(count):
            ec2.run_instances(
                ImageId=image,
                InstanceType=instance_type,
                MinCount=1,
                MaxCount=1,
                ClientToken=f"sandbox-{pool}-{index}",
                UserData=user_data,
                MetadataOptions={"HttpTokens": "required"},
                Placement={"AvailabilityZone": f"{REGION}a"},
                TagSpecifications=[
                    {
                        "ResourceType": "instance",
                        "Tags": [
                            {"Key": "Name", "Value": f"{pool}-{index + 1}"},
                            {"Key": "clusterweb:cluster", "Value": CLUSTER_NAME},
                            {"Key": "clusterweb:pool", "Value": pool},
                        ],
                    }
                ],
            )


def spot_queue_create(endpoint: str) -> str:
    """The SQS queue EC2's spot interruption warnings reach (in AWS, through an EventBridge rule
    on "EC2 Spot Instance Interruption Warning"); the product reads its URL from
    ``SPOT_INTERRUPTION_QUEUE_URL``, and the Simulate spot interruption button warns there."""
    import boto3

    sqs = boto3.client(
        "sqs",
        endpoint_url=endpoint,
        region_name=REGION,
        aws_access_key_id=AwsLayer.SETUP_ACCESS_KEY,
        aws_secret_access_key=AwsLayer.SETUP_ACCESS_KEY,
    )
    return sqs.create_queue(QueueName=f"{CLUSTER_NAME}-spot-interruptions")["QueueUrl"]


def main(argv: list[str] | None = None) -> int:
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # moto's request log
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--web-port", type=int, default=WEB_PORT)
    parser.add_argument("--signup-port", type=int, default=SIGNUP_PORT)
    parser.add_argument("--ready-file", help="write this file once the sandbox answers (tests)")
    args = parser.parse_args(argv)

    sandbox = Sandbox(args.web_port, args.signup_port)
    # A plain flag: a signal handler must not take locks the main thread may hold (Event.set()
    # inside Event.wait() deadlocks).
    stopping = {"requested": False}

    def request_stop(signum, frame):
        stopping["requested"] = True
        if not sandbox.stack or sandbox.starting:
            raise KeyboardInterrupt  # still starting: unwind through the finally below

    signal.signal(signal.SIGINT, request_stop)
    signal.signal(signal.SIGTERM, request_stop)
    try:
        sandbox.start()
        if args.ready_file:
            Path(args.ready_file).write_text("ready\n")
        while not stopping["requested"]:
            time.sleep(0.5)
            for service in sandbox.stack:
                running = getattr(service, "running", None)
                if running is not None and not running():
                    name = getattr(service, "name", type(service).__name__)
                    say(f"{name} exited; see {SANDBOX_DIR} and its logs/. Stopping.")
                    stopping["requested"] = True
    except KeyboardInterrupt:
        pass
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        sandbox.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
