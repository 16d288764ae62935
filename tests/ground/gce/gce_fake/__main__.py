"""python -m gce_fake --host 127.0.0.1 --port N [--port-file F]"""

from __future__ import annotations

import argparse
import os
import signal
import sys

from .server import Fake, serve


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="gce_fake", description="Google Compute Engine fake for cloudgate tests")
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=0, help="0 picks a free port")
    ap.add_argument("--port-file", help="write the bound port here once listening")
    args = ap.parse_args(argv)
    fake = Fake()
    srv = serve(args.host, args.port, fake)
    host, port = srv.server_address[:2]
    if args.port_file:
        tmp = args.port_file + ".tmp"
        with open(tmp, "w") as f:
            f.write(f"{port}\n")
        os.replace(tmp, args.port_file)
    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
    print(f"gce_fake ready on http://{host}:{port} (compute.v1 discovery revision {fake.d.revision}, "
          f"{fake.d.source})", flush=True)
    try:
        srv.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        srv.server_close()
    print("gce_fake stopped", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
