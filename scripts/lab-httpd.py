#!/usr/bin/env python3
"""lab-httpd.py: the real servers' services in the xlb lab (scripts/lab.sh).

    lab-httpd.py NAME [--http-port 80] [--udp-port 5353]

HTTP: a ThreadingHTTPServer speaking HTTP/1.1 with keep-alive, bound to [::] dual-stack
(so it serves IPv4 too, including the VIPs on lo). Every GET (any path, `/health`
included) answers 200 with body "NAME\\n" and headers `X-Real-Server: NAME` and
`X-Client: <client ip>:<port>` (so a test can tell whether two requests shared one
connection). HEAD answers the same headers without a body.
GET /big?size=N (N bytes, default 50000000, at most 10^10) answers a deterministic body:
byte i is i % 251 (for transfer tests that check length and sha256 at the end).

UDP echo: bound to [::] dual-stack; each datagram gets "NAME <payload>" back, sent from
the address it was sent to (IP_PKTINFO/IPV6_PKTINFO), so a reply to a VIP comes from the
VIP, as a DR real server must answer.

Logs one line per request/datagram to stdout (flushed). Exits 0 on SIGTERM/SIGINT.
"""

import argparse
import signal
import socket
import struct
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

# One period-aligned chunk of the /big body (byte i is i % 251): 261 periods, ~64 KB.
BIG_CHUNK = bytes(range(251)) * 261
BIG_MAX = 10**10


def log(msg: str) -> None:
    sys.stdout.write(msg + "\n")
    sys.stdout.flush()


class DualStackServer(ThreadingHTTPServer):
    address_family = socket.AF_INET6
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128

    def server_bind(self) -> None:
        self.socket.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        super().server_bind()


def client_addr(addr) -> str:
    host, port = addr[0], addr[1]
    if host.startswith("::ffff:") and "." in host:
        host = host[len("::ffff:"):]
    if ":" in host:
        return f"[{host}]:{port}"
    return f"{host}:{port}"


def make_handler(name: str):
    body = (name + "\n").encode()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        server_version = "xlb-lab-httpd"
        sys_version = ""

        def _headers(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(len(body)))
            self.send_header("X-Real-Server", name)
            self.send_header("X-Client", client_addr(self.client_address))
            self.end_headers()

        def _big(self) -> None:
            try:
                size = int(parse_qs(urlsplit(self.path).query).get("size", ["50000000"])[0])
            except ValueError:
                size = -1
            if not 0 <= size <= BIG_MAX:
                self.send_error(400, "size must be an integer 0..10^10")
                return
            self.send_response(200)
            self.send_header("Content-Type", "application/octet-stream")
            self.send_header("Content-Length", str(size))
            self.send_header("X-Real-Server", name)
            self.send_header("X-Client", client_addr(self.client_address))
            self.end_headers()
            left = size
            while left > 0:
                n = min(left, len(BIG_CHUNK))
                self.wfile.write(BIG_CHUNK[:n])
                left -= n

        def do_GET(self) -> None:  # noqa: N802 (http.server naming)
            if urlsplit(self.path).path == "/big":
                self._big()
                return
            self._headers()
            self.wfile.write(body)

        def do_HEAD(self) -> None:  # noqa: N802
            self._headers()

        def log_message(self, format: str, *args) -> None:  # noqa: A002
            log(f"http {client_addr(self.client_address)} {format % args}")

    return Handler


def udp_echo(name: str, port: int, stop: threading.Event) -> None:
    sock = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
    sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_RECVPKTINFO, 1)
    sock.bind(("::", port))
    sock.settimeout(0.2)
    prefix = (name + " ").encode()
    while not stop.is_set():
        try:
            data, anc, _flags, addr = sock.recvmsg(65535, socket.CMSG_SPACE(20))
        except socket.timeout:
            continue
        except OSError as e:
            log(f"udp recv error: {e}")
            continue
        cmsgs = []
        for level, ctype, cdata in anc:
            if level == socket.IPPROTO_IPV6 and ctype == socket.IPV6_PKTINFO and len(cdata) >= 20:
                # struct in6_pktinfo { struct in6_addr addr; int ifindex; }: reply from the
                # address the datagram was sent to (for IPv4 it is v4-mapped, which the
                # kernel accepts on a dual-stack socket). ifindex 0: route normally.
                cmsgs.append((socket.IPPROTO_IPV6, socket.IPV6_PKTINFO, cdata[:16] + struct.pack("@i", 0)))
        try:
            sock.sendmsg([prefix + data], cmsgs, 0, addr)
        except OSError as e:
            log(f"udp send error to {client_addr(addr)}: {e}")
            continue
        log(f"udp {client_addr(addr)} {len(data)} bytes")
    sock.close()


def main() -> int:
    ap = argparse.ArgumentParser(description="xlb lab real-server HTTP and UDP echo services")
    ap.add_argument("name")
    ap.add_argument("--http-port", type=int, default=80)
    ap.add_argument("--udp-port", type=int, default=5353)
    args = ap.parse_args()

    stop = threading.Event()
    httpd = DualStackServer(("::", args.http_port), make_handler(args.name))
    udp = threading.Thread(target=udp_echo, args=(args.name, args.udp_port, stop), daemon=True)
    udp.start()

    def on_signal(_signum, _frame) -> None:
        stop.set()
        # shutdown() blocks until serve_forever returns: call it from another thread.
        threading.Thread(target=httpd.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    log(f"{args.name}: http on [::]:{args.http_port}, udp echo on [::]:{args.udp_port}")
    httpd.serve_forever(poll_interval=0.2)
    httpd.server_close()
    udp.join(timeout=2)
    log(f"{args.name}: stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
