"""Push recipients' systems for the delivery benchmarks: one process, one or more ports on 127.0.0.1.

Run by :mod:`e2e_bench` and :mod:`fanout_bench` as a separate process (so that its work is not the load
generator's): uvicorn (uvloop, httptools) serving any path ``/r/<agency code>``, as many agencies as the
benchmark registers. Each POST is read whole, checked as a recipient would (the gateway's signature over
the headers with the gateway certificate, addressed to ``<agency code>``, the body's SHA-256), and answered
200 (400 if the check fails, so that a broken delivery shows as a dead one rather than as a fast one). The
instant of the answer is recorded with the recipient, ``X-Gateway-Document-Id`` and
``X-Gateway-Delivery-Id``.

``GET /_arrivals`` returns the log as JSON, ``GET /_count?document=<id>`` how many distinct recipients got
that document. Prints ``ready`` once listening; stops on SIGTERM.

    python bench/recipients.py --port 8101 --port 8102 --certificate var/keys/gateway.cert.pem
"""

from __future__ import annotations

import argparse
import asyncio
import json
import socket
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import uvicorn
from cryptography import x509

from gateway.envelope.push_signature import PushSignatureError, verify_push

Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]


class Recipients:
    def __init__(self, certificate: x509.Certificate) -> None:
        self.certificate = certificate
        #: (answered at, recipient, gateway document id, delivery id, attempt, verified)
        self.arrivals: list[tuple[float, str, str, str, int, bool]] = []
        self.by_document: dict[str, set[str]] = {}

    async def __call__(self, scope: dict[str, Any], receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        path: str = scope["path"]
        if scope["method"] == "GET":
            await self._control(path, scope, send)
            return
        body = bytearray()
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        recipient = path.rsplit("/", 1)[-1]
        try:
            verify_push(headers, bytes(body), self.certificate, recipient=recipient)
            verified = True
        except PushSignatureError:
            verified = False
        document = headers.get("x-gateway-document-id", "")
        await send({"type": "http.response.start", "status": 200 if verified else 400,
                    "headers": [(b"content-length", b"0")]})
        await send({"type": "http.response.body", "body": b""})
        self.arrivals.append((time.time(), recipient, document, headers.get("x-gateway-delivery-id", ""),
                              int(headers.get("x-gateway-attempt", "0") or 0), verified))
        if verified:
            self.by_document.setdefault(document, set()).add(recipient)

    async def _control(self, path: str, scope: dict[str, Any], send: Send) -> None:
        if path == "/_arrivals":
            payload: Any = self.arrivals
        elif path == "/_count":
            query = parse_qs(scope.get("query_string", b"").decode())
            payload = {"count": len(self.by_document.get(query.get("document", [""])[0], ())),
                       "total": len(self.arrivals)}
        else:
            payload = {"error": "not found"}
        data = json.dumps(payload).encode()
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(data)).encode())]})
        await send({"type": "http.response.body", "body": data})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--port", type=int, action="append", required=True)
    parser.add_argument("--certificate", type=Path, required=True, help="the gateway's certificate (PEM)")
    args = parser.parse_args()
    app = Recipients(x509.load_pem_x509_certificate(args.certificate.read_bytes()))
    sockets = []
    for port in args.port:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", port))
        sockets.append(sock)
    config = uvicorn.Config(app, log_config=None, log_level="warning", access_log=False, lifespan="off",
                            backlog=2048, timeout_keep_alive=60)
    server = uvicorn.Server(config)

    async def run() -> None:
        task = asyncio.create_task(server.serve(sockets=sockets))
        while not server.started:  # noqa: ASYNC110  # uvicorn offers a flag, not an event
            await asyncio.sleep(0.01)
        print("ready", flush=True)
        await task

    try:
        import uvloop

        uvloop.run(run())
    except ImportError:  # uvicorn[standard] brings uvloop
        asyncio.run(run())


if __name__ == "__main__":
    main()
