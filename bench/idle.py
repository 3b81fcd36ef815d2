#!/usr/bin/env python3
"""bench/idle.py - idle keep-alive memory for bench/run.sh (case idle10k).

Opens keep-alive connections to 127.0.0.1:PORT one after another, sends one
GET on each and reads the whole response, then leaves the connection open.
At every count in --counts (ascending) it waits --settle seconds and prints
"COUNT RSS_KIB": the summed VmRSS of the --pids processes and their
children (nginx: master and worker). Exits non-zero if a request fails.

    python3 bench/idle.py --port 18081 --pids 1234 --counts 1000,10000 [--path /index.html]
"""
import argparse
import os
import resource
import socket
import sys
import time


def tree(pid):
    out = [pid]
    try:
        for t in os.listdir(f"/proc/{pid}/task"):
            try:
                with open(f"/proc/{pid}/task/{t}/children") as f:
                    for c in f.read().split():
                        out.extend(tree(int(c)))
            except OSError:
                pass
    except OSError:
        pass
    return out


def rss_kib(pids):
    total = 0
    seen = set()
    for p in pids:
        for q in tree(p):
            if q in seen:
                continue
            seen.add(q)
            try:
                with open(f"/proc/{q}/status") as f:
                    for line in f:
                        if line.startswith("VmRSS:"):
                            total += int(line.split()[1])
            except OSError:
                pass
    return total


def one(port, req):
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    s.sendall(req)
    buf = b""
    while b"\r\n\r\n" not in buf:
        d = s.recv(65536)
        if not d:
            raise OSError("connection closed before the response head")
        buf += d
    head, body = buf.split(b"\r\n\r\n", 1)
    lines = head.split(b"\r\n")
    status = lines[0].split()[1]
    if status != b"200":
        raise OSError("status " + status.decode())
    length = 0
    for line in lines[1:]:
        k, _, v = line.partition(b":")
        if k.strip().lower() == b"content-length":
            length = int(v)
    while len(body) < length:
        d = s.recv(65536)
        if not d:
            raise OSError("connection closed inside the body")
        body += d
    return s


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--pids", required=True)
    ap.add_argument("--counts", default="1000,10000")
    ap.add_argument("--path", default="/index.html")
    ap.add_argument("--settle", type=float, default=1.0)
    a = ap.parse_args()
    counts = [int(c) for c in a.counts.split(",")]
    pids = [int(p) for p in a.pids.split(",")]
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = max(counts) + 100
    if hard != resource.RLIM_INFINITY and hard < want:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (want, want))
        except (ValueError, OSError):
            sys.exit(f"idle.py: RLIMIT_NOFILE hard limit {hard} < {want}")
    else:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
    req = f"GET {a.path} HTTP/1.1\r\nHost: bench\r\n\r\n".encode()
    socks = []
    for c in counts:
        while len(socks) < c:
            try:
                socks.append(one(a.port, req))
            except OSError as e:
                sys.exit(f"idle.py: connection {len(socks) + 1}: {e}")
        time.sleep(a.settle)
        print(c, rss_kib(pids), flush=True)
    # Check that the proxy kept them all: a closed peer reads as EOF.
    closed = 0
    for s in socks:
        s.setblocking(False)
        try:
            if s.recv(1) == b"":
                closed += 1
        except BlockingIOError:
            pass
    if closed:
        sys.exit(f"idle.py: the proxy closed {closed} of {len(socks)} idle connections")


if __name__ == "__main__":
    main()
