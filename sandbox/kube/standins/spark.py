"""Stand-ins for Apache Spark's standalone master and worker (``spark-class
org.apache.spark.deploy.master.Master`` / ``...worker.Worker spark://HOST:PORT``), run by the
simulated kubelet for ``apache/spark`` containers. The standard library only; run as a script.

    python spark.py master [--host H] [--port 7077] [--webui-port 8080]
    python spark.py worker [--cores N] [--memory 2g] [--webui-port 8081] spark://HOST:PORT[,...]

What they reproduce ("Spark Standalone Mode", and the sources named below, Spark 3.5):

**Master** (``deploy/master/Master.scala``, ``MasterArguments.scala``): listens on the pod's
address, port ``--port``/``SPARK_MASTER_PORT`` (7077) for workers, and serves its web UI on
``--webui-port``/``SPARK_MASTER_WEBUI_PORT`` (8080) with the JSON status at ``/json`` (and
``/json/``) in the field names of ``deploy/JsonProtocol.scala`` ``writeMasterState`` and
``writeWorkerInfo``: ``url``, ``workers`` [{``id``, ``host``, ``port``, ``webuiaddress``,
``cores``, ``coresused``, ``coresfree``, ``memory`` (MiB), ``memoryused``, ``memoryfree``,
``resources``, ``resourcesused``, ``resourcesfree``, ``state``, ``lastheartbeat`` (epoch ms)}],
``aliveworkers``, ``cores``, ``coresused``, ``memory``, ``memoryused``, ``resources``,
``resourcesused``, ``activeapps``, ``completedapps``, ``activedrivers``, ``completeddrivers``,
``status`` (``ALIVE``). Its URL is ``spark://HOST:PORT`` with HOST its address
(``Utils.localHostName`` is the IP unless ``--host``/``SPARK_MASTER_HOST`` says otherwise).
A worker is dropped as Spark drops it: when its connection goes (``onDisconnected``: the
process died) or when no heartbeat came for ``spark.worker.timeout`` seconds (checked every
timeout, ``timeOutDeadWorkers``); it is then ``DEAD`` (no longer counted in ``aliveworkers``,
``cores``, ``memory``) and leaves the list ``spark.dead.worker.persistence`` (15) timeouts later.
A heartbeat from a worker it dropped asks it to register again (``ReconnectWorker``); a second
registration of a live worker id is refused (``Duplicate worker ID``).

**Worker** (``deploy/worker/Worker.scala``, ``WorkerArguments.scala``): registers with the master
named on its command line (several ``spark://`` URLs separated by commas: the first that answers),
resolving a Service name (``NAME``, ``NAME.NAMESPACE``, ``NAME.NAMESPACE.svc``,
``...svc.cluster.local``) through the simulator as cluster DNS and kube-proxy would: to a ready pod
behind the Service (``CLUSTERWEB_KUBE_API``, ``/_simulator/resolve``). It retries registration at
Spark's intervals (6 attempts about 10 s apart, then about 60 s apart; 16 in all, then "All masters
are unresponsive! Giving up." and exit 1), scaled by ``spark.worker.timeout / 60`` (at least 0.1),
and heartbeats every quarter of the timeout. Cores: ``--cores`` or ``SPARK_WORKER_CORES``, else the
container's CPU limit (rounded up) or its node's CPUs, as the JVM sees its cgroup; memory:
``--memory``/``SPARK_WORKER_MEMORY``, else that memory less 1 GiB (at least 512 MiB), as
``Utils.inferDefaultMemory``. Its own web UI (``--webui-port``, 8081) serves ``/json`` as
``writeWorkerState``.

``spark.worker.timeout`` comes from ``-Dspark.worker.timeout=N`` in ``SPARK_MASTER_OPTS`` /
``SPARK_WORKER_OPTS``, as with Spark, else from the simulator's control
(``CLUSTERWEB_SPARK_WORKER_TIMEOUT``, ``ControllerOptions.spark_worker_timeout``), else 60.

The wire protocol between the two is the stand-ins' own (JSON lines over TCP), not Spark's RPC:
only a stand-in worker can join a stand-in master.
"""

from __future__ import annotations

import json
import math
import os
import random
import re
import select
import socket
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from socketserver import StreamRequestHandler, ThreadingTCPServer

SPARK_VERSION = "3.5.3"
DEFAULT_TIMEOUT = 60.0
DEFAULT_PERSISTENCE = 15
INITIAL_REGISTRATION_RETRIES = 6
TOTAL_REGISTRATION_RETRIES = 16


def log(component: str, message: str) -> None:
    stamp = datetime.now(UTC).strftime("%y/%m/%d %H:%M:%S")
    print(f"{stamp} INFO {component}: {message}", flush=True)


def java_property(name: str, *variables: str) -> str | None:
    """``-Dname=value`` from the JVM options in the given environment variables."""
    for variable in variables:
        for match in re.finditer(rf"-D{re.escape(name)}=(\S+)", os.environ.get(variable, "")):
            return match.group(1)
    return None


def worker_timeout(*variables: str) -> float:
    value = java_property("spark.worker.timeout", *variables)
    if value is None:
        value = os.environ.get("CLUSTERWEB_SPARK_WORKER_TIMEOUT") or str(DEFAULT_TIMEOUT)
    return float(value.rstrip("s"))


def pod_ip() -> str:
    return os.environ.get("CLUSTERWEB_POD_IP") or "127.0.0.1"


def parse_options(args: list[str], flags: dict[str, str]) -> tuple[dict[str, str], list[str]]:
    """``--name value`` / ``-n value`` options (``flags`` maps each spelling to a key) and the
    positional arguments."""
    options: dict[str, str] = {}
    positional: list[str] = []
    index = 0
    while index < len(args):
        arg = args[index]
        name, _, inline = arg.partition("=")
        if name in flags:
            if inline:
                options[flags[name]] = inline
            elif index + 1 < len(args):
                options[flags[name]] = args[index + 1]
                index += 1
        elif not arg.startswith("-"):
            positional.append(arg)
        index += 1
    return options, positional


def memory_mb(text: str) -> int:
    """Spark's ``Utils.memoryStringToMb``: ``2g``, ``512m``, ``1024`` (MiB)."""
    match = re.fullmatch(r"(\d+)([kKmMgGtT]?)[bB]?", text.strip())
    if not match:
        raise SystemExit(f"Invalid memory string: {text}")
    number, unit = int(match.group(1)), match.group(2).lower()
    factor = {"k": 1 / 1024, "": 1, "m": 1, "g": 1024, "t": 1024 * 1024}[unit]
    return int(number * factor)


# -- master ---------------------------------------------------------------------------------------


class Master:
    def __init__(self, host: str, port: int, webui_port: int, bind: str) -> None:
        self.host = host
        self.port = port
        self.bind = bind
        self.webui_port = webui_port
        self.url = f"spark://{host}:{port}"
        self.timeout = worker_timeout("SPARK_MASTER_OPTS", "SPARK_DAEMON_JAVA_OPTS")
        persistence = java_property("spark.dead.worker.persistence", "SPARK_MASTER_OPTS")
        self.persistence = int(persistence) if persistence else DEFAULT_PERSISTENCE
        self.lock = threading.Lock()
        self.workers: list[dict] = []  # in registration order, DEAD ones until culled

    def alive(self, worker_id: str) -> dict | None:
        for worker in self.workers:
            if worker["id"] == worker_id and worker["state"] == "ALIVE":
                return worker
        return None

    def register(self, message: dict, connection: object) -> dict:
        with self.lock:
            if self.alive(message["id"]) is not None:
                log(
                    "Master",
                    "Worker registration failed. Attempted to re-register worker at same "
                    f"address: {message['host']}:{message['port']}",
                )
                return {"type": "RegisterWorkerFailed", "message": "Duplicate worker ID"}
            # A DEAD worker at the same address makes room (Master.registerWorker).
            self.workers = [
                w
                for w in self.workers
                if not (w["host"] == message["host"] and w["port"] == message["port"])
            ]
            cores, memory = int(message["cores"]), int(message["memory"])
            self.workers.append(
                {
                    "id": message["id"],
                    "host": message["host"],
                    "port": int(message["port"]),
                    "webuiaddress": message["webuiaddress"],
                    "cores": cores,
                    "coresused": 0,
                    "coresfree": cores,
                    "memory": memory,
                    "memoryused": 0,
                    "memoryfree": memory,
                    "resources": {},
                    "resourcesused": {},
                    "resourcesfree": {},
                    "state": "ALIVE",
                    "lastheartbeat": int(time.time() * 1000),
                    "_connection": id(connection),  # which connection's loss removes it
                }
            )
        log(
            "Master",
            f"Registering worker {message['host']}:{message['port']} with {cores} cores, "
            f"{float(memory):.1f} MiB RAM",
        )
        return {
            "type": "RegisteredWorker",
            "master": self.url,
            "masterWebUiUrl": f"http://{self.host}:{self.webui_port}",
        }

    def heartbeat(self, worker_id: str) -> dict | None:
        with self.lock:
            worker = self.alive(worker_id)
            if worker is not None:
                worker["lastheartbeat"] = int(time.time() * 1000)
                return None
            if any(w["id"] == worker_id for w in self.workers):
                log(
                    "Master",
                    f"Got heartbeat from unregistered worker {worker_id}. "
                    "Asking it to re-register.",
                )
                return {"type": "ReconnectWorker", "masterUrl": self.url}
        log(
            "Master",
            f"Got heartbeat from unregistered worker {worker_id}. "
            "This worker was never registered, so ignoring the heartbeat.",
        )
        return None

    def remove(self, worker_id: str, why: str, connection: object = None) -> None:
        with self.lock:
            worker = self.alive(worker_id)
            if worker is None:
                return
            if connection is not None and worker["_connection"] != id(connection):
                return  # registered again on another connection since
            worker["state"] = "DEAD"
        log("Master", f"Removing worker {worker_id} on {worker['host']}:{worker['port']}: {why}")

    def reap(self) -> None:
        """``timeOutDeadWorkers``, every ``timeout`` seconds."""
        while True:
            time.sleep(self.timeout)
            now = time.time() * 1000
            timeout_ms = self.timeout * 1000
            for worker in list(self.workers):
                if worker["lastheartbeat"] >= now - timeout_ms:
                    continue
                if worker["state"] != "DEAD":
                    seconds = int(self.timeout)
                    log(
                        "Master",
                        f"Removing {worker['id']} because we got no heartbeat in {seconds} seconds",
                    )
                    self.remove(worker["id"], f"Not receiving heartbeat for {seconds} seconds")
                elif worker["lastheartbeat"] < now - (self.persistence + 1) * timeout_ms:
                    with self.lock:
                        self.workers = [w for w in self.workers if w is not worker]

    def state(self) -> dict:
        with self.lock:
            workers = [{k: v for k, v in w.items() if not k.startswith("_")} for w in self.workers]
        alive = [w for w in workers if w["state"] == "ALIVE"]
        return {
            "url": self.url,
            "workers": workers,
            "aliveworkers": len(alive),
            "cores": sum(w["cores"] for w in alive),
            "coresused": sum(w["coresused"] for w in alive),
            "memory": sum(w["memory"] for w in alive),
            "memoryused": sum(w["memoryused"] for w in alive),
            "resources": [w["resources"] for w in alive],
            "resourcesused": [w["resourcesused"] for w in alive],
            "activeapps": [],
            "completedapps": [],
            "activedrivers": [],
            "completeddrivers": [],
            "status": "ALIVE",
        }

    def serve(self) -> None:
        master = self

        class Rpc(StreamRequestHandler):
            def handle(self) -> None:
                registered = ""
                for raw in self.rfile:
                    try:
                        message = json.loads(raw)
                    except ValueError:
                        return  # not a worker: Spark's RPC would drop it too
                    kind = message.get("type")
                    if kind == "RegisterWorker":
                        answer = master.register(message, self)
                        if answer["type"] == "RegisteredWorker":
                            registered = message["id"]
                    elif kind == "Heartbeat":
                        answer = master.heartbeat(str(message.get("workerId")))
                    else:
                        answer = None
                    if answer is not None:
                        self.wfile.write(json.dumps(answer).encode() + b"\n")
                        self.wfile.flush()
                if registered:  # onDisconnected: the worker's connection went away
                    master.remove(registered, f"{self.client_address[0]} got disassociated", self)

        class Rpcd(ThreadingTCPServer):
            daemon_threads = True
            allow_reuse_address = True

        rpc = Rpcd((self.bind, self.port), Rpc)
        web = _web_server(self.bind, self.webui_port, self.state, f"Spark Master at {self.url}")
        log("Master", f"Starting Spark master at {self.url}")
        log("Master", f"Running Spark version {SPARK_VERSION}")
        threading.Thread(target=web.serve_forever, daemon=True).start()
        log(
            "MasterWebUI",
            f"Bound MasterWebUI to {self.bind}, and started at http://{self.host}:{self.webui_port}",
        )
        threading.Thread(target=self.reap, daemon=True).start()
        log("Master", "I have been elected leader! New state: ALIVE")
        rpc.serve_forever(poll_interval=0.2)


def _web_server(bind: str, port: int, state, title: str) -> ThreadingHTTPServer:
    class Web(BaseHTTPRequestHandler):
        server_version = "Jetty(9.4.54.v20240208)"
        sys_version = ""

        def log_message(self, format: str, *args: object) -> None:
            pass

        def do_GET(self) -> None:
            path = urllib.parse.urlsplit(self.path).path
            if path in ("/json", "/json/"):
                body = json.dumps(state(), indent=2).encode()
                kind = "application/json;charset=utf-8"
                code = 200
            elif path == "/":
                rows = "".join(
                    f"<tr><td>{w['id']}</td><td>{w['host']}:{w['port']}</td><td>{w['state']}"
                    f"</td><td>{w['cores']}</td><td>{w['memory']} MiB</td></tr>"
                    for w in state().get("workers", [])
                )
                body = (
                    f"<!DOCTYPE html><html><head><title>{title}</title></head><body>"
                    f"<h3>{title}</h3><table>{rows}</table></body></html>"
                ).encode()
                kind = "text/html;charset=utf-8"
                code = 200
            else:
                body, kind, code = b"Not Found", "text/plain;charset=utf-8", 404
            self.send_response(code)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    class Webd(ThreadingHTTPServer):
        daemon_threads = True
        allow_reuse_address = True

    return Webd((bind, port), Web)


def master_main(args: list[str]) -> int:
    options, _ = parse_options(
        args,
        {
            "--host": "host",
            "-h": "host",
            "--ip": "host",
            "-i": "host",
            "--port": "port",
            "-p": "port",
            "--webui-port": "webui",
            "--properties-file": "properties",
        },
    )
    bind = pod_ip()
    host = options.get("host") or os.environ.get("SPARK_MASTER_HOST") or bind
    port = int(options.get("port") or os.environ.get("SPARK_MASTER_PORT") or 7077)
    webui = int(options.get("webui") or os.environ.get("SPARK_MASTER_WEBUI_PORT") or 8080)
    Master(host, port, webui, bind).serve()
    return 0


# -- worker ---------------------------------------------------------------------------------------


def resolve(host: str, port: int) -> tuple[str, int] | None:
    """Where a connection to host:port from this pod goes: an address as it is; a Service name
    through the simulator (cluster DNS and kube-proxy); None when nothing answers."""
    try:
        socket.inet_aton(host)
        return host, port
    except OSError:
        pass
    api = os.environ.get("CLUSTERWEB_KUBE_API", "")
    if not api:
        try:
            return socket.gethostbyname(host), port
        except OSError:
            return None
    query = urllib.parse.urlencode(
        {"host": host, "port": port, "namespace": os.environ.get("CLUSTERWEB_POD_NAMESPACE", "")}
    )
    request = urllib.request.Request(
        f"{api}/_simulator/resolve?{query}",
        headers={"Authorization": f"Bearer {os.environ.get('CLUSTERWEB_KUBE_TOKEN', '')}"},
    )
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            answer = json.load(response)
    except (OSError, ValueError):
        return None
    return str(answer["ip"]), int(answer["port"])


class Worker:
    def __init__(self, args: list[str]) -> None:
        options, positional = parse_options(
            args,
            {
                "--host": "host",
                "-h": "host",
                "--ip": "host",
                "-i": "host",
                "--port": "port",
                "-p": "port",
                "--cores": "cores",
                "-c": "cores",
                "--memory": "memory",
                "-m": "memory",
                "--webui-port": "webui",
                "--work-dir": "workdir",
                "-d": "workdir",
                "--properties-file": "properties",
            },
        )
        masters = [u for p in positional for u in p.split(",") if u]
        if not masters:
            raise SystemExit("Usage: Worker [options] <master>")
        self.masters = []
        for url in masters:
            address = url.removeprefix("spark://")
            host, _, port = address.rpartition(":")
            self.masters.append((host, int(port or 7077)))
        self.bind = pod_ip()
        self.host = options.get("host") or os.environ.get("SPARK_WORKER_HOST") or self.bind
        cores = options.get("cores") or os.environ.get("SPARK_WORKER_CORES")
        self.cores = (
            int(cores)
            if cores
            else max(math.ceil(float(os.environ.get("CLUSTERWEB_CPU_LIMIT") or 1)), 1)
        )
        memory = options.get("memory") or os.environ.get("SPARK_WORKER_MEMORY")
        if memory:
            self.memory = memory_mb(memory)
        else:
            total = int(os.environ.get("CLUSTERWEB_MEMORY_LIMIT") or 2**31) // 2**20
            self.memory = max(total - 1024, 512)
        self.webui_port = int(
            options.get("webui") or os.environ.get("SPARK_WORKER_WEBUI_PORT") or 8081
        )
        self.timeout = worker_timeout("SPARK_WORKER_OPTS", "SPARK_DAEMON_JAVA_OPTS")
        # The worker's own RPC endpoint (Spark binds one; nothing connects to it here).
        self.rpc = socket.socket()
        self.rpc.bind(
            (self.bind, int(options.get("port") or os.environ.get("SPARK_WORKER_PORT") or 0))
        )
        self.rpc.listen()
        self.port = self.rpc.getsockname()[1]
        stamp = datetime.now(UTC).strftime("%Y%m%d%H%M%S")
        self.id = f"worker-{stamp}-{self.host}-{self.port}"
        self.master_url = ""
        self.master_web = ""

    def state(self) -> dict:
        return {
            "id": self.id,
            "masterurl": self.master_url,
            "masterwebuiurl": self.master_web,
            "cores": self.cores,
            "coresused": 0,
            "coresfree": self.cores,
            "memory": self.memory,
            "memoryused": 0,
            "memoryfree": self.memory,
            "resources": {},
            "resourcesused": {},
            "resourcesfree": {},
            "executors": [],
            "finishedexecutors": [],
        }

    def interval(self, attempt: int) -> float:
        """Worker.scala's registration retry intervals, scaled by timeout / 60 (but never below
        a tenth of them: a short timeout in tests must not make a worker give up on a master
        that is a little slow to start)."""
        scale = max(self.timeout / DEFAULT_TIMEOUT, 0.1)
        base = 10 if attempt < INITIAL_REGISTRATION_RETRIES else 60
        return base * scale * random.uniform(0.5, 1.5)

    def connect(self) -> socket.socket | None:
        for host, port in self.masters:
            address = resolve(host, port)
            if address is None:
                log(
                    "Worker",
                    f"Failed to connect to master {host}:{port}: unknown host or no endpoints",
                )
                continue
            try:
                connection = socket.create_connection(address, timeout=5)
            except OSError as exc:
                log("Worker", f"Failed to connect to master {host}:{port}: {exc}")
                continue
            log("Worker", f"Connecting to master {host}:{port}...")
            message = {
                "type": "RegisterWorker",
                "id": self.id,
                "host": self.host,
                "port": self.port,
                "cores": self.cores,
                "memory": self.memory,
                "webuiaddress": f"http://{self.host}:{self.webui_port}",
                "masterAddress": f"{host}:{port}",
            }
            try:
                connection.sendall(json.dumps(message).encode() + b"\n")
                answer = json.loads(connection.makefile("rb").readline() or b"{}")
            except (OSError, ValueError):
                connection.close()
                continue
            if answer.get("type") == "RegisteredWorker":
                self.master_url = answer["master"]
                self.master_web = answer.get("masterWebUiUrl", "")
                log("Worker", f"Successfully registered with master {self.master_url}")
                connection.settimeout(None)
                return connection
            log("Worker", f"Worker registration failed: {answer.get('message')}")
            connection.close()
            if answer.get("message") == "Duplicate worker ID":
                raise SystemExit(1)  # Worker.scala: "Worker registration failed" exits
        return None

    def run(self) -> int:
        web = _web_server(
            self.bind, self.webui_port, self.state, f"Spark Worker at {self.host}:{self.port}"
        )
        threading.Thread(target=web.serve_forever, daemon=True).start()
        log(
            "Worker",
            f"Starting Spark worker {self.host}:{self.port} with {self.cores} cores, "
            f"{self.memory}.0 MiB RAM",
        )
        attempts = 0
        while True:
            connection = self.connect()
            if connection is None:
                attempts += 1
                if attempts >= TOTAL_REGISTRATION_RETRIES:
                    log("Worker", "All masters are unresponsive! Giving up.")
                    return 1
                time.sleep(self.interval(attempts))
                continue
            attempts = 0
            self.heartbeat(connection)
            connection.close()
            log("Worker", f"Connection to master {self.master_url} lost: re-registering")

    def heartbeat(self, connection: socket.socket) -> None:
        """Heartbeats every timeout / 4 until the master goes or asks to register again."""
        every = self.timeout / 4
        buffered = b""
        next_beat = time.monotonic()
        while True:
            now = time.monotonic()
            if now >= next_beat:
                beat = {"type": "Heartbeat", "workerId": self.id}
                try:
                    connection.sendall(json.dumps(beat).encode() + b"\n")
                except OSError:
                    return
                next_beat = now + every
            readable, _, _ = select.select([connection], [], [], max(next_beat - now, 0))
            if not readable:
                continue
            try:
                chunk = connection.recv(65536)
            except OSError:
                return
            if not chunk:
                return
            buffered += chunk
            while b"\n" in buffered:
                line, buffered = buffered.split(b"\n", 1)
                if json.loads(line or b"{}").get("type") == "ReconnectWorker":
                    log("Worker", "Master with url asked us to reconnect")
                    return


def main(argv: list[str]) -> int:
    if not argv or argv[0] not in ("master", "worker"):
        print("usage: spark.py master|worker [spark-class arguments]", file=sys.stderr)
        return 2
    if argv[0] == "master":
        return master_main(argv[1:])
    return Worker(argv[1:]).run()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
