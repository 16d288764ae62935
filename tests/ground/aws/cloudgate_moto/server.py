"""Launcher: moto server (all services) + cloudgate's VPC Lattice extension + call log.

    python -m cloudgate_moto.server --host 127.0.0.1 --port 4566

Prints one line ``cloudgate-moto ready http://HOST:PORT`` to stdout once the socket listens.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
from typing import Any

from importlib.metadata import version

from werkzeug.serving import make_server

from . import lattice_ext
from .calllog import CallLogMiddleware, default_log


def build_app() -> Any:
    # The extension must be installed before moto builds its per-service Flask apps.
    lattice_ext.apply()
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app

    moto_app = DomainDispatcherApplication(create_backend_app)

    def target_health(payload: dict[str, Any]) -> Any:
        return lattice_ext.set_target_health(
            payload.get("accountId", os.environ.get("MOTO_ACCOUNT_ID", "123456789012")),
            payload.get("region", "us-east-1"),
            payload["targetGroupIdentifier"],
            payload["id"],
            payload.get("port"),
            payload.get("status"),
        )

    info = {"moto": version("moto"), "botocore": version("botocore"), "lattice_ext": True}
    return CallLogMiddleware(moto_app, default_log(), info=info,
                             control={"/_ground/lattice/target-health": target_health})


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 = pick a free port (see the ready line)")
    args = parser.parse_args(argv)

    # --port 0 binds an ephemeral port; the ready line tells which (race-free for launchers).
    server = make_server(args.host, args.port, build_app(), threaded=True)
    host, port = server.server_address[:2]
    # moto uses MOTO_PORT when it builds URLs pointing back at itself (e.g. presigned S3 URLs).
    if os.environ.get("MOTO_PORT") in (None, "", "0"):
        os.environ["MOTO_PORT"] = str(port)

    def stop(signum: int, frame: Any) -> None:
        # shutdown() blocks until serve_forever returns, so call it off the serving thread.
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    print(f"cloudgate-moto ready http://{host}:{port}", flush=True)
    try:
        server.serve_forever()
    finally:
        server.server_close()
    sys.exit(0)


if __name__ == "__main__":
    main()
