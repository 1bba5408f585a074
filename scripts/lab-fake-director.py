#!/usr/bin/env python3
"""lab-fake-director.py: a slow, test-only LVS-DR director in Python, standing in for xlb.

    XLB_BIN=scripts/lab-fake-director.py scripts/lab.sh demo

Takes xlb's command line (`run --config FILE`) and reads the config that `lab.sh demo`
generates (not general YAML: only the keys `interface`, `vip`, `ports`, `protocol`,
`address`, `mac`, `weight`, as lab.sh writes them). On an AF_PACKET socket it answers
ARP requests and IPv6 neighbour solicitations for the VIPs with its own MAC, and
forwards each TCP/UDP frame for VIP:port to a real server picked by a hash of the
5-tuple over the weights (same flow, same server), rewriting only the Ethernet
addresses: the DR behaviour xlb implements, so the lab's demo and its checks can be
exercised before (and independently of) xlb's data plane. The kernel of the director's
namespace ignores VIP traffic (ip_forward=0, no VIP address), so nothing answers twice.
Exits 0 on SIGTERM/SIGINT. Not for production and not fast.
"""

import re
import signal
import socket
import struct
import sys
import zlib

ETH_P_ALL = 0x0003
PACKET_OUTGOING = 4


def parse_config(path):
    text = open(path, encoding="utf-8").read()
    iface = re.search(r"^interface:\s*(\S+)", text, re.M).group(1)
    services = []
    for block in re.split(r"^  - name:", text, flags=re.M)[1:]:
        vip = re.search(r"vip:\s*\"?([0-9a-fA-F.:]+)\"?", block).group(1)
        ports = [int(p) for p in re.search(r"ports:\s*\[([^\]]*)\]", block).group(1).split(",") if p.strip()]
        proto = {"tcp": 6, "udp": 17}[re.search(r"protocol:\s*(\w+)", block).group(1)]
        reals = []
        for m in re.finditer(r"address:\s*\"?([0-9a-fA-F.:]+)\"?\s+mac:\s*\"([0-9a-fA-F:]+)\"\s+weight:\s*(\d+)", block):
            reals += [bytes.fromhex(m.group(2).replace(":", ""))] * int(m.group(3))
        fam = socket.AF_INET6 if ":" in vip else socket.AF_INET
        services.append((socket.inet_pton(fam, vip), proto, ports, reals))
    return iface, services


def csum(data):
    if len(data) % 2:
        data += b"\0"
    s = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF


def main():
    if len(sys.argv) != 4 or sys.argv[1] != "run" or sys.argv[2] != "--config":
        print("usage: lab-fake-director.py run --config FILE", file=sys.stderr)
        return 64
    iface, services = parse_config(sys.argv[3])
    mymac = bytes.fromhex(open(f"/sys/class/net/{iface}/address").read().strip().replace(":", ""))
    vips = {vip for vip, *_ in services}
    sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
    sock.bind((iface, 0))
    sock.settimeout(0.2)
    running = [True]

    def stop(_s, _f):
        running[0] = False

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    print(f"fake director on {iface} ({mymac.hex(':')}), {len(services)} services", flush=True)
    forwarded = 0
    while running[0]:
        try:
            frame, addr = sock.recvfrom(65535)
        except socket.timeout:
            continue
        except InterruptedError:
            continue
        if addr[2] == PACKET_OUTGOING or len(frame) < 14:
            continue
        etype = struct.unpack("!H", frame[12:14])[0]
        if etype == 0x0806 and len(frame) >= 42:
            op, sha, spa, tpa = struct.unpack("!H", frame[20:22])[0], frame[22:28], frame[28:32], frame[38:42]
            if op == 1 and tpa in vips:
                arp = struct.pack("!HHBBH", 1, 0x0800, 6, 4, 2) + mymac + tpa + sha + spa
                sock.send(sha + mymac + b"\x08\x06" + arp)
            continue
        if etype == 0x0800 and len(frame) >= 34:
            ihl = (frame[14] & 0x0F) * 4
            proto, src, dst, l4 = frame[23], frame[26:30], frame[30:34], 14 + ihl
        elif etype == 0x86DD and len(frame) >= 54:
            proto, src, dst, l4 = frame[20], frame[22:38], frame[38:54], 54
            if proto == 58 and len(frame) >= 78 and frame[54] == 135 and frame[62:78] in vips:
                target = frame[62:78]
                na_dst = src if src != bytes(16) else bytes.fromhex("ff020000000000000000000000000001")
                body = struct.pack("!BBHI", 136, 0, 0, 0x60000000) + target + b"\x02\x01" + mymac
                pseudo = target + na_dst + struct.pack("!IxxxB", len(body), 58)
                body = body[:2] + struct.pack("!H", csum(pseudo + body)) + body[4:]
                ip6 = struct.pack("!IHBB", 0x60000000, len(body), 58, 255) + target + na_dst
                sock.send(frame[6:12] + mymac + b"\x86\xdd" + ip6 + body)
                continue
        else:
            continue
        if len(frame) < l4 + 4:
            continue
        dport = struct.unpack("!H", frame[l4 + 2:l4 + 4])[0]
        for vip, sproto, ports, reals in services:
            if dst == vip and proto == sproto and (not ports or dport in ports) and reals:
                real = reals[zlib.crc32(src + dst + frame[l4:l4 + 4] + bytes([proto])) % len(reals)]
                sock.send(real + mymac + frame[12:])
                forwarded += 1
                break
    print(f"fake director: forwarded {forwarded} frames; exiting", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
