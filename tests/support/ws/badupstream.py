#!/usr/bin/env python3
"""badupstream.py - HTTP/1.1 backends that misbehave on purpose, for
tests/integration/upstream_test.c.

  badupstream.py --listen ADDR:PORT --name NAME --mode reset
      reads each request completely (head + Content-Length body), logs
      "request N METHOD TARGET body=B", then closes with RST (SO_LINGER 0)
      without answering.
  badupstream.py --listen ADDR:PORT --name NAME --mode idle-close --idle-ms MS
      a keep-alive server answering every request 200 with the body lines
      "service=NAME", "conn-requests=K", "body-bytes=B"; it closes a connection
      that stays idle MS ms after a response (no Connection: close announced),
      as servers with a short keep-alive timeout do. Logs
      "conn C closed idle after K requests".
  badupstream.py --listen ADDR:PORT --name NAME --mode reset-reused --reset-after B
      answers the first request of each connection (body lines as
      idle-close, always "conn-requests=1", and "body-crc=X", the CRC-32 of
      the request body in hex) and keeps the connection open; of
      a second request on it, reads the head and the first B bytes of its
      body (or of what arrived with the head, if more; the whole body if
      shorter), then closes with RST without an answer, as an upstream that
      dropped a kept-alive connection resets what arrives on it. Logs
      "conn C reset request 2 after N body bytes". A connection idle for
      30 s is reset too ("conn C error timed out").

One thread per connection. Prints "listening" once bound; SIGTERM exits.
"""
import argparse
import signal
import socket
import struct
import sys
import threading
import zlib

lock = threading.Lock()
counters = {"req": 0, "conn": 0}


def log(msg):
    with lock:
        sys.stdout.write(msg + "\n")
        sys.stdout.flush()


def read_head(sock, buf):
    """Returns (method, target, content_length, bytes after the head) or
    None on EOF."""
    while b"\r\n\r\n" not in buf:
        data = sock.recv(65536)
        if not data:
            return None
        buf += data
    head, _, rest = buf.partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    parts = lines[0].split(b" ")
    method = parts[0].decode("latin-1")
    target = parts[1].decode("latin-1") if len(parts) > 1 else ""
    clen = 0
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            clen = int(value.strip())
    return method, target, clen, rest


def read_request(sock, buf):
    """Returns (method, target, body_len, rest, body's CRC-32) or None on
    EOF/timeout."""
    h = read_head(sock, buf)
    if h is None:
        return None
    method, target, clen, rest = h
    while len(rest) < clen:
        data = sock.recv(65536)
        if not data:
            return None
        rest += data
    return method, target, clen, rest[clen:], zlib.crc32(rest[:clen])


def read_head_and(sock, nbytes):
    """Reads a request head and at least the first nbytes of its
    Content-Length body (all of it if shorter). Returns (method, target,
    body bytes read) or None on EOF."""
    h = read_head(sock, b"")
    if h is None:
        return None
    method, target, clen, rest = h
    want = min(nbytes, clen)
    while len(rest) < want:
        data = sock.recv(min(65536, want - len(rest)))
        if not data:
            break
        rest += data
    return method, target, len(rest)


def serve_reset(sock, name):
    sock.settimeout(30)
    try:
        r = read_request(sock, b"")
    except OSError:
        r = None
    if r is not None:
        with lock:
            counters["req"] += 1
            n = counters["req"]
        log("request %d %s %s body=%d" % (n, r[0], r[1], r[2]))
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


def serve_reset_reused(sock, name, reset_after, cid):
    sock.settimeout(30)
    try:
        r = read_request(sock, b"")
        if r is None:
            sock.close()
            return
        body = ("service=%s\nconn-requests=1\nbody-bytes=%d\nbody-crc=%08x\n"
                % (name, r[2], r[4])).encode()
        sock.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: %d\r\n\r\n"
                     % len(body) + body)
        r = read_head_and(sock, reset_after)
        if r is not None:
            log("conn %d reset request 2 after %d body bytes" % (cid, r[2]))
    except OSError as e:
        log("conn %d error %s" % (cid, e))
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


def serve_idle_close(sock, name, idle_ms, cid):
    buf = b""
    k = 0
    try:
        while True:
            # The first request may take its time; later ones get idle_ms.
            sock.settimeout(30 if k == 0 else idle_ms / 1000.0)
            try:
                r = read_request(sock, buf)
            except socket.timeout:
                log("conn %d closed idle after %d requests" % (cid, k))
                break
            if r is None:
                log("conn %d closed by peer after %d requests" % (cid, k))
                break
            method, target, blen, buf, _ = r
            k += 1
            body = ("service=%s\nconn-requests=%d\nbody-bytes=%d\n" % (name, k, blen)).encode()
            sock.settimeout(30)
            sock.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: %d\r\n\r\n"
                         % len(body) + body)
    except OSError as e:
        log("conn %d error %s after %d requests" % (cid, e, k))
    sock.close()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--listen", required=True)
    ap.add_argument("--name", default="bad")
    ap.add_argument("--mode", choices=["reset", "idle-close", "reset-reused"], required=True)
    ap.add_argument("--idle-ms", type=int, default=100)
    ap.add_argument("--reset-after", type=int, default=0)
    a = ap.parse_args()
    host, _, port = a.listen.rpartition(":")
    ls = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind((host, int(port)))
    ls.listen(256)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    log("listening on %s mode %s" % (a.listen, a.mode))
    while True:
        s, _ = ls.accept()
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        with lock:
            counters["conn"] += 1
            cid = counters["conn"]
        if a.mode == "reset":
            t = threading.Thread(target=serve_reset, args=(s, a.name), daemon=True)
        elif a.mode == "reset-reused":
            t = threading.Thread(target=serve_reset_reused, args=(s, a.name, a.reset_after, cid),
                                 daemon=True)
        else:
            t = threading.Thread(target=serve_idle_close, args=(s, a.name, a.idle_ms, cid), daemon=True)
        t.start()


if __name__ == "__main__":
    main()
