#!/usr/bin/env python3
"""kube-apiserver.py - a Kubernetes API server for ringress's tests.

Python standard library only. It implements what ringress relies on, the
way the real API server does it:

  * list with resourceVersion and pagination (limit / continue; an expired
    continue token answers 410 Gone), fieldSelector and labelSelector
    (=, ==, != and existence);
  * watch streams (ADDED / MODIFIED / DELETED / BOOKMARK / ERROR), one JSON
    object per line, sent with chunked transfer encoding and cut into
    chunks at arbitrary byte positions (several events may share a chunk);
    timeoutSeconds; a watch from a compacted resourceVersion gets an ERROR
    event with code 410 (or an HTTP 410 when configured);
  * GET / POST / PUT / PATCH (JSON merge patch) / DELETE of objects, the
    status subresource, resourceVersion preconditions (409 Conflict);
  * bearer-token authentication (401), or a client certificate signed by
    the test CA; TLS with a CA and certificates generated at start-up with
    the openssl command line into --tls-dir (reused when present).

A control interface on a separate plain-HTTP port (--control-port) lets
tests drive it:

  POST /_test/objects        object or {"items": [...]}: create or replace
  POST /_test/delete         {"kind", "namespace", "name"}
  GET  /_test/object?kind=K&namespace=N&name=X
  POST /_test/compact        history compacted: older watches/continues -> 410
                             ({"drop": true} also cuts the watches)
  POST /_test/drop-watches   cut every watch stream abruptly
  POST /_test/inject         {"plural": "ingresses", "raw": "text"}: raw bytes
                             written into the current watches of that resource
  POST /_test/config         {"chunk_max": N, "bookmark_interval": S,
                              "watch_http_410": bool, "max_watch_seconds": S,
                              "fail": [{"method", "path_contains", "status",
                                        "count"}], "token": "..."}
  GET  /_test/requests       API requests seen: [{"method","path","ua","status"}]
  POST /_test/requests/clear
  GET  /_test/watches        {"plural": count of open watches}
  GET  /_test/health

--state FILE keeps the objects and the resourceVersion across restarts (the
event history is not kept: a watch from before the restart resumes only from
the last resourceVersion, as after an etcd compaction).
"""

import argparse
import base64
import bisect
import copy
import json
import os
import random
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
import urllib.parse
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

RESOURCES = {
    # plural: (prefix, kind, apiVersion, namespaced, has status subresource)
    "ingresses": ("/apis/networking.k8s.io/v1", "Ingress", "networking.k8s.io/v1", True, True),
    "ingressclasses": ("/apis/networking.k8s.io/v1", "IngressClass", "networking.k8s.io/v1", False, False),
    "services": ("/api/v1", "Service", "v1", True, True),
    "endpointslices": ("/apis/discovery.k8s.io/v1", "EndpointSlice", "discovery.k8s.io/v1", True, False),
    "secrets": ("/api/v1", "Secret", "v1", True, False),
    "configmaps": ("/api/v1", "ConfigMap", "v1", True, False),
    "pods": ("/api/v1", "Pod", "v1", True, True),
    "nodes": ("/api/v1", "Node", "v1", False, True),
    "leases": ("/apis/coordination.k8s.io/v1", "Lease", "coordination.k8s.io/v1", True, False),
}
KIND_PLURAL = {v[1]: k for k, v in RESOURCES.items()}


def log(msg):
    sys.stderr.write("%s kube-apiserver: %s\n" % (time.strftime("%H:%M:%S"), msg))
    sys.stderr.flush()


def status_obj(code, reason, message):
    return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
            "message": message, "reason": reason, "code": code}


def merge_patch(target, patch):
    """RFC 7386 JSON merge patch."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    if not isinstance(target, dict):
        target = {}
    out = dict(target)
    for k, v in patch.items():
        if v is None:
            out.pop(k, None)
        else:
            out[k] = merge_patch(out.get(k), v)
    return out


def lookup(obj, dotted):
    cur = obj
    for part in dotted.split("."):
        if not isinstance(cur, dict) or part not in cur:
            return None
        cur = cur[part]
    return cur


def parse_selector(sel):
    """'a=b,c!=d,e' -> [(key, op, value)]."""
    out = []
    for term in (sel or "").split(","):
        term = term.strip()
        if not term:
            continue
        if "!=" in term:
            k, v = term.split("!=", 1)
            out.append((k.strip(), "!=", v.strip()))
        elif "==" in term:
            k, v = term.split("==", 1)
            out.append((k.strip(), "=", v.strip()))
        elif "=" in term:
            k, v = term.split("=", 1)
            out.append((k.strip(), "=", v.strip()))
        else:
            out.append((term, "exists", None))
    return out


def field_match(obj, terms):
    for k, op, v in terms:
        val = lookup(obj, k)
        val = "" if val is None else str(val)
        if op == "=" and val != v:
            return False
        if op == "!=" and val == v:
            return False
    return True


def label_match(obj, terms):
    labels = lookup(obj, "metadata.labels") or {}
    for k, op, v in terms:
        if op == "exists" and k not in labels:
            return False
        if op == "=" and labels.get(k) != v:
            return False
        if op == "!=" and labels.get(k) == v:
            return False
    return True


class Watcher:
    def __init__(self, plural):
        self.plural = plural
        self.dropped = False
        self.raw = []  # injected raw text


class State:
    def __init__(self, state_file):
        self.cond = threading.Condition()
        self.rv = 1000
        self.compacted = 0
        self.objects = {}  # (plural, ns, name) -> obj (stored with kind/apiVersion)
        self.sorted = {}  # plural -> [((ns, name), obj)] sorted, rebuilt after a change
        self.keys = {}  # plural -> [(ns, name)] of self.sorted[plural], for continue tokens
        self.list_json = {}  # (plural, ns, name) -> (resourceVersion, item as JSON bytes)
        self.events = []  # (rv, plural, type, obj)
        self.event_rvs = []
        self.watchers = set()
        self.requests = []
        self.config = {"chunk_max": 64, "bookmark_interval": 5.0, "watch_http_410": False,
                       "max_watch_seconds": 0, "fail": [], "token": None}
        self.state_file = state_file
        if state_file and os.path.exists(state_file):
            with open(state_file) as f:
                data = json.load(f)
            self.rv = data["rv"]
            self.compacted = self.rv  # history is gone
            for o in data["objects"]:
                self.objects[(o["plural"], o["ns"], o["name"])] = o["obj"]
            log("state loaded: %d objects at resourceVersion %d" % (len(self.objects), self.rv))

    def save(self):
        if not self.state_file:
            return
        tmp = self.state_file + ".tmp"
        with open(tmp, "w") as f:
            json.dump({"rv": self.rv, "objects": [
                {"plural": k[0], "ns": k[1], "name": k[2], "obj": v}
                for k, v in self.objects.items()]}, f)
        os.replace(tmp, self.state_file)

    # All methods below are called with self.cond held.
    def by_plural(self, plural):
        cached = self.sorted.get(plural)
        if cached is None:
            cached = sorted((((ns, name), o) for (p, ns, name), o in self.objects.items()
                             if p == plural), key=lambda x: x[0])
            self.sorted[plural] = cached
            self.keys[plural] = [k for k, _ in cached]
        return cached

    def item_json(self, plural, key, obj):
        """The object as a list item (no kind/apiVersion), serialised once per version."""
        rv = obj["metadata"].get("resourceVersion")
        hit = self.list_json.get((plural,) + key)
        if hit is None or hit[0] != rv:
            hit = (rv, json.dumps(strip_for_list(obj)).encode())
            self.list_json[(plural,) + key] = hit
        return hit[1]

    def emit(self, plural, etype, obj):
        self.sorted.pop(plural, None)
        self.events.append((self.rv, plural, etype, copy.deepcopy(obj)))
        self.event_rvs.append(self.rv)
        self.cond.notify_all()

    def put(self, plural, obj, save=True):
        """Create or replace; returns (type, stored object)."""
        _, kind, api, namespaced, _ = RESOURCES[plural]
        meta = obj.setdefault("metadata", {})
        ns = meta.get("namespace") or ("default" if namespaced else "")
        if namespaced:
            meta["namespace"] = ns
        else:
            meta.pop("namespace", None)
        name = meta.get("name")
        key = (plural, ns, name)
        old = self.objects.get(key)
        self.rv += 1
        obj["kind"] = kind
        obj["apiVersion"] = api
        meta["resourceVersion"] = str(self.rv)
        if old:
            meta["uid"] = old["metadata"].get("uid")
            meta["creationTimestamp"] = old["metadata"].get("creationTimestamp")
        else:
            meta.setdefault("uid", str(uuid.uuid4()))
            meta.setdefault("creationTimestamp", time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))
        self.objects[key] = obj
        etype = "MODIFIED" if old else "ADDED"
        self.emit(plural, etype, obj)
        if save:
            self.save()
        return etype, obj

    def delete(self, plural, ns, name):
        obj = self.objects.pop((plural, ns, name), None)
        if obj is None:
            return None
        self.list_json.pop((plural, ns, name), None)
        self.rv += 1
        obj = copy.deepcopy(obj)
        obj["metadata"]["resourceVersion"] = str(self.rv)
        self.emit(plural, "DELETED", obj)
        self.save()
        return obj


STATE = None


def strip_for_list(obj):
    o = dict(obj)
    o.pop("kind", None)
    o.pop("apiVersion", None)
    return o


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "kube-apiserver-test"

    def log_message(self, fmt, *args):
        if os.environ.get("KUBE_TEST_VERBOSE"):
            log(fmt % args)

    def setup(self):
        if isinstance(self.request, ssl.SSLSocket):
            self.request.settimeout(10)
            try:
                self.request.do_handshake()
            except (ssl.SSLError, OSError) as e:
                log("TLS handshake failed: %s" % e)
                raise
            self.request.settimeout(None)
        super().setup()

    # ---- helpers ----
    def send_json(self, code, obj, extra=None):
        self.send_body(code, "application/json", json.dumps(obj).encode(), extra)

    def send_body(self, code, ctype, body, extra=None):
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        for k, v in (extra or {}).items():
            self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)
        self.log_request_status(code)

    def log_request_status(self, code):
        if getattr(self, "_logged", False) or self.path.startswith("/_test"):
            return
        self._logged = True
        with STATE.cond:
            STATE.requests.append({"method": self.command, "path": self.path,
                                   "ua": self.headers.get("User-Agent", ""), "status": code})

    def read_body(self):
        n = int(self.headers.get("Content-Length") or 0)
        data = self.rfile.read(n) if n else b""
        if not data:
            return None
        return json.loads(data)

    def fail(self, code, reason, message):
        self.send_json(code, status_obj(code, reason, message))

    # ---- dispatch ----
    def do_GET(self):
        self.handle_any()

    def do_POST(self):
        self.handle_any()

    def do_PUT(self):
        self.handle_any()

    def do_PATCH(self):
        self.handle_any()

    def do_DELETE(self):
        self.handle_any()

    def handle_any(self):
        self._logged = False
        try:
            if self.server.control:
                return self.control()
            return self.api()
        except (BrokenPipeError, ConnectionResetError, ssl.SSLError, socket.timeout):
            self.close_connection = True
        except json.JSONDecodeError as e:
            self.fail(400, "BadRequest", "invalid JSON: %s" % e)

    def authorized(self):
        tok = STATE.config.get("token")
        if tok is None:
            return True
        if isinstance(self.request, ssl.SSLSocket) and self.request.getpeercert():
            return True
        return self.headers.get("Authorization", "") == "Bearer " + tok

    def injected_failure(self):
        with STATE.cond:
            for rule in STATE.config.get("fail", []):
                if rule.get("count", 0) <= 0:
                    continue
                if rule.get("method") and rule["method"] != self.command:
                    continue
                if rule.get("path_contains") and rule["path_contains"] not in self.path:
                    continue
                rule["count"] -= 1
                return rule.get("status", 500)
        return None

    def api(self):
        u = urllib.parse.urlsplit(self.path)
        q = dict(urllib.parse.parse_qsl(u.query, keep_blank_values=True))
        if not self.authorized():
            return self.fail(401, "Unauthorized", "Unauthorized")
        code = self.injected_failure()
        if code:
            return self.fail(code, "InternalError", "injected failure")
        route = self.route(u.path)
        if not route:
            return self.fail(404, "NotFound", "the server could not find the requested resource")
        plural, ns, name, sub = route
        m = self.command
        if name is None:
            if m == "GET":
                if q.get("watch") in ("1", "true"):
                    return self.watch(plural, ns, q)
                return self.list(plural, ns, q)
            if m == "POST":
                return self.create(plural, ns)
            return self.fail(405, "MethodNotAllowed", "method not allowed")
        if m == "GET":
            with STATE.cond:
                obj = STATE.objects.get((plural, ns, name))
            if obj is None:
                return self.fail(404, "NotFound", '%s "%s" not found' % (plural, name))
            return self.send_json(200, obj)
        if m in ("PUT", "PATCH"):
            return self.update(plural, ns, name, sub, m == "PATCH")
        if m == "DELETE":
            with STATE.cond:
                obj = STATE.delete(plural, ns, name)
            if obj is None:
                return self.fail(404, "NotFound", '%s "%s" not found' % (plural, name))
            return self.send_json(200, obj)
        return self.fail(405, "MethodNotAllowed", "method not allowed")

    def route(self, path):
        parts = [p for p in path.split("/") if p]
        if parts[:2] == ["api", "v1"]:
            rest = parts[2:]
            prefix = "/api/v1"
        elif len(parts) >= 3 and parts[0] == "apis":
            rest = parts[3:]
            prefix = "/" + "/".join(parts[:3])
        else:
            return None
        ns = ""
        if len(rest) >= 2 and rest[0] == "namespaces" and len(rest) != 2:
            ns = rest[1]
            rest = rest[2:]
        if not rest or rest[0] not in RESOURCES or RESOURCES[rest[0]][0] != prefix:
            return None
        plural = rest[0]
        if RESOURCES[plural][3] is False and ns:
            return None
        name = rest[1] if len(rest) > 1 else None
        sub = rest[2] if len(rest) > 2 else None
        if sub not in (None, "status") or len(rest) > 3:
            return None
        return plural, ns, name, sub

    # ---- list ----
    def select(self, plural, ns, q):
        fs = parse_selector(q.get("fieldSelector"))
        ls = parse_selector(q.get("labelSelector"))
        if not ns and not fs and not ls:
            return STATE.by_plural(plural)
        out = []
        for (ons, name), obj in STATE.by_plural(plural):
            if ns and ons != ns:
                continue
            if (not fs or field_match(obj, fs)) and (not ls or label_match(obj, ls)):
                out.append(((ons, name), obj))
        return out

    def list(self, plural, ns, q):
        limit = int(q.get("limit") or 0)
        cont = q.get("continue")
        with STATE.cond:
            list_rv = STATE.rv
            start = None
            if cont:
                try:
                    tok = json.loads(base64.urlsafe_b64decode(cont.encode()))
                    list_rv, start = tok["rv"], tuple(tok["start"])
                except Exception:
                    return self.fail(400, "BadRequest", "invalid continue token")
                if list_rv < STATE.compacted:
                    return self.fail(410, "Expired",
                                     "The provided continue parameter is too old to display a "
                                     "consistent list result. You can start a new list without "
                                     "the continue parameter.")
            items = self.select(plural, ns, q)
            if start is not None:
                keys = STATE.keys[plural] if items is STATE.sorted.get(plural) \
                    else [k for k, _ in items]
                items = items[bisect.bisect_right(keys, start):]
            meta = {"resourceVersion": str(list_rv)}
            if limit and len(items) > limit:
                last = items[limit - 1][0]
                meta["continue"] = base64.urlsafe_b64encode(
                    json.dumps({"rv": list_rv, "start": list(last)}).encode()).decode()
                meta["remainingItemCount"] = len(items) - limit
                items = items[:limit]
            head = {"kind": RESOURCES[plural][1] + "List", "apiVersion": RESOURCES[plural][2],
                    "metadata": meta}
            body = b"".join((json.dumps(head).encode()[:-1], b', "items": [',
                             b", ".join(STATE.item_json(plural, k, o) for k, o in items),
                             b"]}"))
        self.send_body(200, "application/json", body)

    # ---- watch ----
    def write_chunks(self, data):
        """Writes data as HTTP chunks cut at random byte positions."""
        cmax = max(1, int(STATE.config.get("chunk_max", 64)))
        i = 0
        while i < len(data):
            n = random.randint(1, cmax)
            piece = data[i:i + n]
            self.wfile.write(b"%x\r\n%s\r\n" % (len(piece), piece))
            i += n
        self.wfile.flush()

    def watch(self, plural, ns, q):
        fs = parse_selector(q.get("fieldSelector"))
        ls = parse_selector(q.get("labelSelector"))
        timeout = int(q.get("timeoutSeconds") or 1800)
        mws = STATE.config.get("max_watch_seconds") or 0
        if mws:
            timeout = min(timeout, mws)
        bookmarks = q.get("allowWatchBookmarks") == "true"
        rv_param = q.get("resourceVersion") or ""
        with STATE.cond:
            rv = int(rv_param) if rv_param.isdigit() and rv_param != "0" else None
            too_old = rv is not None and rv < STATE.compacted
            http410 = STATE.config.get("watch_http_410")
        if too_old and http410:
            return self.fail(410, "Expired", "too old resource version: %s" % rv_param)
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        self.log_request_status(200)
        if too_old:
            ev = {"type": "ERROR", "object": status_obj(
                410, "Expired", "too old resource version: %s (%d)" % (rv_param, STATE.compacted))}
            self.write_chunks(json.dumps(ev).encode() + b"\n")
            self.wfile.write(b"0\r\n\r\n")
            self.wfile.flush()
            return
        w = Watcher(plural)
        with STATE.cond:
            STATE.watchers.add(w)
            if rv is None:  # from now, with the current objects as ADDED
                pending = [("ADDED", o) for _, o in self.select(plural, ns, q)]
                pos = len(STATE.events)
            else:
                pending = []
                pos = bisect.bisect_right(STATE.event_rvs, rv)
        deadline = time.monotonic() + timeout
        last_bookmark = time.monotonic()
        try:
            while True:
                out = b""
                for etype, obj in pending:
                    out += json.dumps({"type": etype, "object": obj}).encode() + b"\n"
                pending = []
                with STATE.cond:
                    if w.dropped:
                        raise ConnectionAbortedError()
                    if not out and not w.raw and pos >= len(STATE.events):
                        STATE.cond.wait(0.2)
                    if w.dropped:
                        raise ConnectionAbortedError()
                    for erv, p, etype, obj in STATE.events[pos:]:
                        if p != plural:
                            continue
                        if ns and obj["metadata"].get("namespace") != ns:
                            continue
                        if not (field_match(obj, fs) and label_match(obj, ls)):
                            continue
                        out += json.dumps({"type": etype, "object": obj}).encode() + b"\n"
                    pos = len(STATE.events)
                    raw, w.raw = w.raw, []
                    cur_rv = STATE.rv
                    bmi = STATE.config.get("bookmark_interval") or 0
                for r in raw:
                    out += r
                now = time.monotonic()
                if bookmarks and bmi and now - last_bookmark >= bmi:
                    last_bookmark = now
                    out += json.dumps({"type": "BOOKMARK", "object": {
                        "kind": RESOURCES[plural][1], "apiVersion": RESOURCES[plural][2],
                        "metadata": {"resourceVersion": str(cur_rv)}}}).encode() + b"\n"
                if out:
                    self.write_chunks(out)
                if now >= deadline:
                    self.wfile.write(b"0\r\n\r\n")
                    self.wfile.flush()
                    return
        except ConnectionAbortedError:
            # Cut abruptly, no final chunk: the client sees a broken stream.
            self.close_connection = True
            try:
                self.connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        finally:
            with STATE.cond:
                STATE.watchers.discard(w)

    # ---- writes ----
    def create(self, plural, ns):
        obj = self.read_body()
        if not isinstance(obj, dict) or not isinstance(obj.get("metadata"), dict) \
                or not obj["metadata"].get("name"):
            return self.fail(422, "Invalid", "metadata.name is required")
        namespaced = RESOURCES[plural][3]
        if namespaced:
            obj["metadata"]["namespace"] = ns or obj["metadata"].get("namespace") or "default"
        with STATE.cond:
            key = (plural, obj["metadata"].get("namespace", ""), obj["metadata"]["name"])
            if key in STATE.objects:
                return self.fail(409, "AlreadyExists",
                                 '%s "%s" already exists' % (plural, key[2]))
            obj["metadata"].pop("resourceVersion", None)
            _, stored = STATE.put(plural, obj)
            out = copy.deepcopy(stored)
        self.send_json(201, out)

    def update(self, plural, ns, name, sub, patch):
        body = self.read_body()
        if not isinstance(body, dict):
            return self.fail(400, "BadRequest", "body must be a JSON object")
        ctype = (self.headers.get("Content-Type") or "").split(";")[0].strip()
        if patch and ctype not in ("application/merge-patch+json",
                                   "application/strategic-merge-patch+json"):
            return self.fail(415, "UnsupportedMediaType", "unsupported patch type %s" % ctype)
        has_status = RESOURCES[plural][4]
        with STATE.cond:
            cur = STATE.objects.get((plural, ns, name))
            if cur is None:
                return self.fail(404, "NotFound", '%s "%s" not found' % (plural, name))
            want_rv = (body.get("metadata") or {}).get("resourceVersion")
            if want_rv and want_rv != cur["metadata"]["resourceVersion"]:
                return self.fail(409, "Conflict",
                                 'Operation cannot be fulfilled on %s "%s": the object has been '
                                 'modified; please apply your changes to the latest version and '
                                 'try again' % (plural, name))
            new = merge_patch(cur, body) if patch else copy.deepcopy(body)
            if sub == "status":
                # Only status changes through the subresource.
                keep = copy.deepcopy(cur)
                if "status" in new:
                    keep["status"] = new["status"]
                else:
                    keep.pop("status", None)
                new = keep
            elif has_status:
                if "status" in cur:
                    new["status"] = copy.deepcopy(cur["status"])
                else:
                    new.pop("status", None)
            new.setdefault("metadata", {})
            new["metadata"]["name"] = name
            if RESOURCES[plural][3]:
                new["metadata"]["namespace"] = ns
            _, stored = STATE.put(plural, new)
            out = copy.deepcopy(stored)
        self.send_json(200, out)

    # ---- control interface ----
    def control(self):
        u = urllib.parse.urlsplit(self.path)
        q = dict(urllib.parse.parse_qsl(u.query))
        p, m = u.path, self.command
        if p == "/_test/health":
            return self.send_json(200, {"ok": True, "resourceVersion": STATE.rv})
        if p == "/_test/objects" and m == "POST":
            body = self.read_body()
            items = body.get("items") if isinstance(body, dict) and "items" in body \
                and "kind" not in body else [body]
            with STATE.cond:
                for obj in items:
                    plural = KIND_PLURAL.get(obj.get("kind"))
                    if not plural:
                        return self.fail(400, "BadRequest", "unknown kind %r" % obj.get("kind"))
                    STATE.put(plural, copy.deepcopy(obj), save=False)
                STATE.save()
                rv = STATE.rv
            return self.send_json(200, {"resourceVersion": str(rv)})
        if p == "/_test/delete" and m == "POST":
            body = self.read_body()
            plural = KIND_PLURAL.get(body.get("kind"))
            if not plural:
                return self.fail(400, "BadRequest", "unknown kind")
            ns = body.get("namespace") or ("default" if RESOURCES[plural][3] else "")
            with STATE.cond:
                obj = STATE.delete(plural, ns, body.get("name"))
            if obj is None:
                return self.fail(404, "NotFound", "not found")
            return self.send_json(200, {"resourceVersion": obj["metadata"]["resourceVersion"]})
        if p == "/_test/object" and m == "GET":
            plural = KIND_PLURAL.get(q.get("kind"))
            if not plural:
                return self.fail(400, "BadRequest", "unknown kind")
            ns = q.get("namespace") or ("default" if RESOURCES[plural][3] else "")
            with STATE.cond:
                obj = STATE.objects.get((plural, ns, q.get("name")))
            if obj is None:
                return self.fail(404, "NotFound", "not found")
            return self.send_json(200, obj)
        if p == "/_test/compact" and m == "POST":
            body = self.read_body() or {}
            with STATE.cond:
                STATE.rv += 1
                STATE.compacted = STATE.rv
                if body.get("drop"):
                    for w in STATE.watchers:
                        w.dropped = True
                STATE.cond.notify_all()
            return self.send_json(200, {"compacted": STATE.compacted})
        if p == "/_test/drop-watches" and m == "POST":
            with STATE.cond:
                n = len(STATE.watchers)
                for w in STATE.watchers:
                    w.dropped = True
                STATE.cond.notify_all()
            return self.send_json(200, {"dropped": n})
        if p == "/_test/inject" and m == "POST":
            body = self.read_body()
            with STATE.cond:
                n = 0
                for w in STATE.watchers:
                    if w.plural == body.get("plural"):
                        w.raw.append(body.get("raw", "").encode())
                        n += 1
                STATE.cond.notify_all()
            return self.send_json(200, {"watches": n})
        if p == "/_test/config" and m == "POST":
            body = self.read_body() or {}
            with STATE.cond:
                STATE.config.update(body)
            return self.send_json(200, {"ok": True})
        if p == "/_test/requests" and m == "GET":
            with STATE.cond:
                reqs = list(STATE.requests)
            return self.send_json(200, reqs)
        if p == "/_test/requests/clear" and m == "POST":
            with STATE.cond:
                STATE.requests = []
            return self.send_json(200, {"ok": True})
        if p == "/_test/watches" and m == "GET":
            with STATE.cond:
                counts = {}
                for w in STATE.watchers:
                    counts[w.plural] = counts.get(w.plural, 0) + 1
            return self.send_json(200, counts)
        return self.fail(404, "NotFound", "no such control endpoint")


def openssl(*args, cwd):
    subprocess.run(["openssl"] + list(args), cwd=cwd, check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def make_certs(d):
    """CA, server certificate for 127.0.0.1/localhost, client certificate."""
    os.makedirs(d, exist_ok=True)
    if all(os.path.exists(os.path.join(d, f)) for f in
           ("ca.crt", "server.crt", "server.key", "client.crt", "client.key")):
        return
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    openssl("req", "-x509", *ec, "-keyout", "ca.key", "-out", "ca.crt", "-days", "2",
            "-subj", "/CN=ringress-test-ca",
            "-addext", "basicConstraints=critical,CA:TRUE",
            "-addext", "keyUsage=critical,keyCertSign,cRLSign", cwd=d)
    for who, ext in (("server", "subjectAltName=IP:127.0.0.1,DNS:localhost\n"
                                "extendedKeyUsage=serverAuth\nbasicConstraints=CA:FALSE\n"),
                     ("client", "extendedKeyUsage=clientAuth\nbasicConstraints=CA:FALSE\n")):
        with open(os.path.join(d, who + ".ext"), "w") as f:
            f.write(ext)
        openssl("req", *ec, "-keyout", who + ".key", "-out", who + ".csr",
                "-subj", "/CN=" + ("127.0.0.1" if who == "server" else "ringress-test"), cwd=d)
        openssl("x509", "-req", "-in", who + ".csr", "-CA", "ca.crt", "-CAkey", "ca.key",
                "-CAcreateserial", "-out", who + ".crt", "-days", "2",
                "-extfile", who + ".ext", cwd=d)


class Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128


def main():
    global STATE
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--control-port", type=int, required=True)
    ap.add_argument("--tls-dir", help="generate/use ca.crt, server.*, client.* here (TLS on)")
    ap.add_argument("--token", help="bearer token required (default: none)")
    ap.add_argument("--state", help="file keeping objects across restarts")
    ap.add_argument("--seed", type=int, default=None)
    a = ap.parse_args()
    if a.seed is not None:
        random.seed(a.seed)
    STATE = State(a.state)
    STATE.config["token"] = a.token

    api = Server(("127.0.0.1", a.port), Handler)
    api.control = False
    if a.tls_dir:
        make_certs(a.tls_dir)
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(os.path.join(a.tls_dir, "server.crt"),
                            os.path.join(a.tls_dir, "server.key"))
        ctx.load_verify_locations(os.path.join(a.tls_dir, "ca.crt"))
        ctx.verify_mode = ssl.CERT_OPTIONAL
        api.socket = ctx.wrap_socket(api.socket, server_side=True,
                                     do_handshake_on_connect=False)
    ctl = Server(("127.0.0.1", a.control_port), Handler)
    ctl.control = True

    def stop(*_):
        log("stopping")
        os._exit(0)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    threading.Thread(target=ctl.serve_forever, daemon=True).start()
    log("listening on %s://127.0.0.1:%d (control http://127.0.0.1:%d)" %
        ("https" if a.tls_dir else "http", a.port, a.control_port))
    api.serve_forever()


if __name__ == "__main__":
    main()
