#!/usr/bin/env python3
"""k8s_scale.py - ringress's control plane at scale, against the test API server.

Loads N Ingresses, N Services and N EndpointSlices of E endpoints each into
tests/support/kube-apiserver.py (TLS, bearer token), starts ringress with a
kubeconfig, and measures:

  * time from start to /readyz 200 (every kind listed, first snapshot in
    every shard);
  * snapshot build time (translation + compile) of generation 1, and of the
    rebuilds after one EndpointSlice change;
  * resident memory of ringress once ready and after the changes;
  * latency from one EndpointSlice change (just before the API write) to
    every shard having adopted the snapshot that carries it, read from the
    shards' "adopted generation" log lines (p50 / p99 over R changes), and
    checked with a request routed to the new endpoint.

Usage: k8s_scale.py [--ingresses 10000] [--endpoints 5] [--changes 100]
       [--shards N]; RINGRESS_BIN, RINGRESS_ECHO and RINGRESS_ROOT as for the
tests. Prints a Markdown table.
"""
import argparse
import http.client
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

ROOT = os.environ.get("RINGRESS_ROOT") or os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.environ.get("RINGRESS_BIN") or os.path.join(ROOT, "zig-out/bin/ringress")
ECHO = os.environ.get("RINGRESS_ECHO") or os.path.join(ROOT, "zig-out/bin/ringress-echo")
API_PORT, CTL_PORT, HTTP_PORT, ADMIN_PORT, ECHO_A, ECHO_B = 31900, 31901, 31902, 31903, 31910, 31911
TOKEN = "bench-token"


def ctl(method, path, body=None):
    c = http.client.HTTPConnection("127.0.0.1", CTL_PORT, timeout=600)
    data = json.dumps(body).encode() if body is not None else None
    c.request(method, path, body=data, headers={"Content-Type": "application/json"})
    r = c.getresponse()
    out = r.read()
    c.close()
    if r.status != 200:
        raise RuntimeError("%s %s: %d %s" % (method, path, r.status, out[:200]))
    return json.loads(out)


def wait_port(port, timeout):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            return True
        except OSError:
            time.sleep(0.02)
    return False


def get(port, path, host=None, timeout=2):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    c.request("GET", path, headers={"Host": host} if host else {})
    r = c.getresponse()
    body = r.read()
    c.close()
    return r.status, body


def objects(n, eps):
    items = [{"kind": "IngressClass", "metadata": {"name": "ringress"},
              "spec": {"controller": "ringress.io/ingress-controller"}}]
    for i in range(n):
        ns = "ns%d" % (i % 100)
        svc = "svc%d" % i
        items.append({"kind": "Service", "metadata": {"name": svc, "namespace": ns},
                      "spec": {"ports": [{"name": "http", "port": 80, "targetPort": 8080}]}})
        items.append({"kind": "EndpointSlice",
                      "metadata": {"name": svc + "-x", "namespace": ns,
                                   "labels": {"kubernetes.io/service-name": svc}},
                      "addressType": "IPv4", "ports": [{"name": "http", "port": 8080}],
                      "endpoints": [{"addresses": ["10.%d.%d.%d" % (i >> 16 & 255, i >> 8 & 255, (i & 255))],
                                     "conditions": {"ready": True}} for _ in range(1)] +
                                   [{"addresses": ["10.200.%d.%d" % (i % 250, k)],
                                     "conditions": {"ready": True}} for k in range(eps - 1)]})
        items.append({"kind": "Ingress", "metadata": {"name": "ing%d" % i, "namespace": ns},
                      "spec": {"ingressClassName": "ringress", "rules": [{
                          "host": "h%d.bench.test" % i, "http": {"paths": [{
                              "path": "/", "pathType": "Prefix", "backend": {"service": {
                                  "name": svc, "port": {"number": 80}}}}]}}]}})
    return items


def probe_objects(port):
    return [{"kind": "Service", "metadata": {"name": "probe", "namespace": "bench"},
             "spec": {"ports": [{"name": "http", "port": 80}]}},
            slice_obj(port),
            {"kind": "Ingress", "metadata": {"name": "probe", "namespace": "bench"},
             "spec": {"ingressClassName": "ringress", "rules": [{
                 "host": "probe.test", "http": {"paths": [{
                     "path": "/", "pathType": "Prefix", "backend": {"service": {
                         "name": "probe", "port": {"number": 80}}}}]}}]}}]


def slice_obj(port):
    return {"kind": "EndpointSlice",
            "metadata": {"name": "probe-x", "namespace": "bench",
                         "labels": {"kubernetes.io/service-name": "probe"}},
            "addressType": "IPv4", "ports": [{"name": "http", "port": port}],
            "endpoints": [{"addresses": ["127.0.0.1"], "conditions": {"ready": True}}]}


def rss_kb(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return -1


def cpu_s(pid):
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def log_ts(line):
    # 2026-11-26T12:39:01.700Z ...
    t = time.strptime(line[:19], "%Y-%m-%dT%H:%M:%S")
    return time.mktime(t) - time.timezone + int(line[20:23]) / 1000.0


def pct(v, p):
    v = sorted(v)
    return v[min(len(v) - 1, int(round(p / 100.0 * (len(v) - 1))))]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--ingresses", type=int, default=10000)
    ap.add_argument("--endpoints", type=int, default=5)
    ap.add_argument("--changes", type=int, default=100)
    ap.add_argument("--shards", type=int, default=0)
    a = ap.parse_args()

    d = tempfile.mkdtemp(prefix="ringress-k8s-bench-")
    procs = []

    def spawn(name, argv):
        f = open(os.path.join(d, name + ".log"), "w")
        p = subprocess.Popen(argv, stdout=f, stderr=subprocess.STDOUT, start_new_session=True)
        procs.append(p)
        return p

    try:
        spawn("kube-apiserver", [sys.executable, os.path.join(ROOT, "tests/support/kube-apiserver.py"),
                                 "--port", str(API_PORT), "--control-port", str(CTL_PORT),
                                 "--tls-dir", os.path.join(d, "tls"), "--token", TOKEN])
        if not wait_port(CTL_PORT, 20) or not wait_port(API_PORT, 20):
            sys.exit("API server did not start")
        spawn("echo-a", [ECHO, "--listen", "127.0.0.1:%d" % ECHO_A, "--name", "a"])
        spawn("echo-b", [ECHO, "--listen", "127.0.0.1:%d" % ECHO_B, "--name", "b"])
        wait_port(ECHO_A, 5)
        wait_port(ECHO_B, 5)

        items = objects(a.ingresses, a.endpoints) + probe_objects(ECHO_A)
        t = time.monotonic()
        for i in range(0, len(items), 5000):
            ctl("POST", "/_test/objects", {"items": items[i:i + 5000]})
        load_s = time.monotonic() - t
        nep = a.ingresses * a.endpoints
        print("loaded %d objects (%d endpoints) into the API server in %.1f s" %
              (len(items), nep, load_s), file=sys.stderr)

        kc = os.path.join(d, "kubeconfig")
        with open(kc, "w") as f:
            f.write("apiVersion: v1\nkind: Config\ncurrent-context: b\nclusters:\n"
                    "- name: b\n  cluster: {server: 'https://127.0.0.1:%d', "
                    "certificate-authority: %s}\ncontexts:\n- name: b\n  context: "
                    "{cluster: b, user: u}\nusers:\n- name: u\n  user: {token: %s}\n" %
                    (API_PORT, os.path.join(d, "tls/ca.crt"), TOKEN))
        argv = [BIN, "--kubeconfig", kc, "--bind", "127.0.0.1", "--http-port", str(HTTP_PORT),
                "--admin-port", str(ADMIN_PORT), "--https-port", "0", "--log-level", "debug", "--update-status=false",
                "--sync-period", "200ms"]
        if a.shards:
            argv += ["--shards", str(a.shards)]
        t0 = time.monotonic()
        rg = spawn("ringress", argv)
        ready = None
        while time.monotonic() - t0 < 120:
            try:
                if get(ADMIN_PORT, "/readyz", timeout=1)[0] == 200:
                    ready = time.monotonic() - t0
                    break
            except OSError:
                pass
            time.sleep(0.005)
        if ready is None:
            sys.exit("ringress not ready in 120 s; see %s" % d)
        rss_ready = rss_kb(rg.pid)
        cpu_ready = cpu_s(rg.pid)
        log = os.path.join(d, "ringress.log")
        with open(log) as f:
            text = f.read()
        lists = [log_ts(l) for l in text.splitlines() if "[k8s] list " in l]
        start = log_ts(text.splitlines()[0])
        m = re.search(r"generation 1: .* built in (\d+) ms", text)
        build1 = int(m.group(1)) if m else -1
        nshards = len(set(re.findall(r"shard (\d+): adopted", text))) or 1
        st, body = get(HTTP_PORT, "/", "probe.test")
        assert b"service=a" in body, body[:200]

        lat, builds = [], []
        pos = os.path.getsize(log)
        for k in range(a.changes):
            port, name = (ECHO_B, b"b") if k % 2 == 0 else (ECHO_A, b"a")
            t_change = time.time()
            ctl("POST", "/_test/objects", slice_obj(port))
            # Wait for the generation carrying it to be adopted by every shard.
            deadline = time.monotonic() + 10
            gen, adopted = None, {}
            while time.monotonic() < deadline:
                with open(log) as f:
                    f.seek(pos)
                    chunk = f.read()
                for line in chunk.splitlines():
                    m = re.search(r"generation (\d+): .* built in (\d+) ms", line)
                    if m and gen is None:
                        gen = int(m.group(1))
                        builds.append(int(m.group(2)))
                    m = re.search(r"shard (\d+): adopted generation (\d+)", line)
                    if m and gen is not None and int(m.group(2)) >= gen:
                        adopted.setdefault(int(m.group(1)), log_ts(line))
                if gen is not None and len(adopted) >= nshards:
                    break
                time.sleep(0.002)
            if gen is None or len(adopted) < nshards:
                sys.exit("change %d not adopted in 10 s; see %s" % (k, d))
            lat.append((max(adopted.values()) - t_change) * 1000)
            pos = os.path.getsize(log)
            st, body = get(HTTP_PORT, "/", "probe.test")
            assert b"service=" + name in body, body[:200]
        rss_end = rss_kb(rg.pid)

        print("| measure | value | target |")
        print("| --- | --- | --- |")
        print("| objects | %d Ingresses, %d Services, %d EndpointSlices, %d endpoints | |" %
              (a.ingresses, a.ingresses, a.ingresses, nep))
        print("| shards | %d | |" % nshards)
        print("| start to ready (/readyz 200) | %.2f s | < 2 s |" % ready)
        print("| ... of which waiting for the lists (last list done) | %.2f s | |" %
              (max(lists) - start))
        print("| ringress CPU time (all threads) until ready | %.2f s | |" % cpu_ready)
        print("| snapshot build, generation 1 | %d ms | |" % build1)
        print("| snapshot build, after one EndpointSlice change (p50 / max) | %d / %d ms | |" %
              (pct(builds, 50), max(builds)))
        print("| change -> every shard adopted (p50 / p99 / max, %d changes) | %.1f / %.1f / %.1f ms | p99 < 50 ms |" %
              (len(lat), pct(lat, 50), pct(lat, 99), max(lat)))
        print("| resident memory when ready / after the changes | %d / %d MiB | < 300 MB |" %
              (rss_ready // 1024, rss_end // 1024))
    finally:
        for p in procs:
            try:
                os.killpg(p.pid, signal.SIGKILL)
            except OSError:
                pass
            p.wait()
        if not os.environ.get("RINGRESS_KEEP_TMP"):
            shutil.rmtree(d, ignore_errors=True)
        else:
            print("kept %s" % d, file=sys.stderr)


if __name__ == "__main__":
    main()
