"""python -m faultproxy --upstream aws=http://127.0.0.1:4566 --upstream gce=http://127.0.0.1:8999

One listening port per upstream (``--port-base 0``: free ports picked by the kernel); a JSON
line ``{"ready": {"aws": PORT, "gce": PORT}}`` is written to stdout and to ``--port-file``
once every socket listens. Config and figures are shared by all ports. Upstream names ``aws``
and ``gce`` select the protocol of injected errors.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading
from typing import Any

from .faults import AWS, GCE
from .proxy import Config, ProxyServer, Stats


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="faultproxy", description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--upstream", action="append", required=True, metavar="aws|gce=URL")
    parser.add_argument("--port-file")
    args = parser.parse_args(argv)

    config, stats, stopping = Config(), Stats(), threading.Event()
    servers: dict[str, ProxyServer] = {}
    for spec in args.upstream:
        label, _, url = spec.partition("=")
        if label not in (AWS, GCE) or not url.startswith("http://"):
            parser.error(f"--upstream {spec!r}: want aws=http://... or gce=http://...")
        servers[label] = ProxyServer(args.host, 0, label, url, label, config, stats, stopping)
    ports = {label: s.server_address[1] for label, s in servers.items()}
    threads = [threading.Thread(target=s.serve_forever, name=f"proxy-{label}", daemon=True) for label, s in servers.items()]
    for t in threads:
        t.start()

    def stop(signum: int, frame: Any) -> None:
        stopping.set()
        for s in servers.values():
            threading.Thread(target=s.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    line = json.dumps({"ready": ports})
    if args.port_file:
        with open(args.port_file + ".tmp", "w") as f:
            f.write(line + "\n")
        os.replace(args.port_file + ".tmp", args.port_file)
    print(line, flush=True)
    for t in threads:
        t.join()
    sys.exit(0)


if __name__ == "__main__":
    main()
