"""Run the simulator on its own: ``python -m sandbox.kube --port 0 --kubeconfig PATH``.

Prints the port it listens on (one line, then flushes) and serves until SIGINT or SIGTERM.
``--controllers`` runs the simulated control plane too; ``--cluster NAME`` also the cloud bridge
for that cluster's EC2 instances (AWS reached through ``AWS_ENDPOINT_URL`` and the usual
``AWS_*`` variables).
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading


def _skip_slow_optional_imports() -> None:
    # jsonschema imports rfc3987_syntax when it is installed, which builds a grammar at import
    # time (~0.7 s) only to check the "iri" formats; the simulator never checks formats (nor does
    # kubernetes-validate), so a standalone process skips it to start in well under a second.
    if "rfc3987_syntax" not in sys.modules:
        sys.modules["rfc3987_syntax"] = None  # type: ignore[assignment]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sandbox.kube", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--kubeconfig", help="write a kubeconfig for the simulator here")
    parser.add_argument("--token", help="bearer token to require (default: random)")
    parser.add_argument(
        "--controllers", action="store_true", help="run the scheduler, kubelets and controllers"
    )
    parser.add_argument(
        "--cluster", help="run the cloud bridge for this cluster's instances (implies controllers)"
    )
    args = parser.parse_args(argv)

    _skip_slow_optional_imports()
    from sandbox.kube import KubeSimulator

    sim = KubeSimulator(host=args.host, port=args.port, token=args.token).start()
    if args.controllers or args.cluster:
        sim.start_controllers()
    if args.cluster:
        from sandbox.kube.bridge import CloudBridge

        CloudBridge(sim, args.cluster).start()
    if args.kubeconfig:
        sim.write_kubeconfig(args.kubeconfig)
    print(sim.port, flush=True)

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        stop.wait()
    except KeyboardInterrupt:
        pass
    finally:
        sim.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
