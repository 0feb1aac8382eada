"""``salrt serve``: a Triton model repository served with PyTriton (:func:`salrt.app.serve.serve`)."""

from __future__ import annotations

import argparse
from typing import Any

from salrt.cli import common as C


def add_parser(sub: Any) -> None:
    p = sub.add_parser("serve", help="serve a Triton model repository (salrt export --format triton) with PyTriton")
    p.add_argument("repository", help="the model repository folder")
    p.add_argument("--model", help="the servable model (default: the repository's only one)")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (0.0.0.0: every interface)")
    p.add_argument("--http-port", type=C.POS_INT, default=8000, help="HTTP port")
    p.add_argument("--grpc-port", type=C.POS_INT, default=8001, help="gRPC port")
    p.add_argument("--metrics-port", type=C.POS_INT, default=8002, help="metrics port")
    C.quiet_arg(p)
    p.set_defaults(func=handle)


def handle(args: argparse.Namespace) -> int:
    from salrt.app.serve import serve

    serve(
        args.repository, args.model, host=args.host, http_port=args.http_port, grpc_port=args.grpc_port,
        metrics_port=args.metrics_port, log=(lambda s: None) if args.quiet else C.info,
    )  # fmt: skip
    return 0
