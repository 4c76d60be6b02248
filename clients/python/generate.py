#!/usr/bin/env python3
"""Generates the Python stubs of every proto/ticketdrop/v1/*.proto with grpcio-tools
(pinned in scripts/stack.sh, installed in .stack/venv), into clients/python/gen/ or the
folder given:

    .stack/venv/bin/python clients/python/generate.py [OUT_DIR]
"""

import pathlib
import sys

from grpc_tools import protoc

ROOT = pathlib.Path(__file__).resolve().parents[2]


def main() -> int:
    out = pathlib.Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "clients/python/gen"
    out.mkdir(parents=True, exist_ok=True)
    protos = sorted(str(p.relative_to(ROOT / "proto")) for p in (ROOT / "proto/ticketdrop/v1").glob("*.proto"))
    # The google.rpc status and ErrorInfo the clients read from a failed call.
    rpc = sorted(str(p.relative_to(ROOT / "clients/proto")) for p in (ROOT / "clients/proto/google/rpc").glob("*.proto"))
    # grpc_tools ships the well-known types (google/protobuf/*.proto) as its own include.
    well_known = pathlib.Path(protoc.__file__).parent / "_proto"
    code = protoc.main(
        ["grpc_tools.protoc", f"-I{ROOT / 'proto'}", f"-I{ROOT / 'clients/proto'}", f"-I{well_known}",
         f"--python_out={out}", f"--grpc_python_out={out}", *protos, *rpc]
    )
    if code != 0:
        print(f"protoc failed with {code}", file=sys.stderr)
    return code


if __name__ == "__main__":
    sys.exit(main())
