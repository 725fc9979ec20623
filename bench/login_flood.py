#!/usr/bin/env python3
"""Floods `GET /token` with wrong passwords against a real `keeper serve` while a normal client
reads, then opens `STALLED` (200) requests that announce a body and never send it, and prints
what each cost (issue 14).

    bench/login_flood.py                      # SQLite, debug build
    PROFILE=release CLIENTS=64 SECONDS=30 bench/login_flood.py
    KEEPER_DATABASE_URL=postgres://... bench/login_flood.py

Prints: the server's peak RSS (VmHWM) before and after the flood, the normal client's median and
99th-percentile latency on `GET /products/` and `GET /docs/<product>/` (reads that need no
password), how many guesses reached the password hash (answered 401) and how many were turned
away by the throttle (429); then, for the stalled bodies (half anonymous, half with a valid
token; `BODY_TIMEOUT` seconds, default 5), how many were answered and closed within the timeout
and the server's RSS before, during and after. Traffic goes to loopback only and stops by itself.
"""

import base64
import json
import multiprocessing
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request

CLIENTS = int(os.environ.get("CLIENTS", "64"))
STALLED = int(os.environ.get("STALLED", "200"))
BODY_TIMEOUT = int(os.environ.get("BODY_TIMEOUT", "5"))
SECONDS = float(os.environ.get("SECONDS", "30"))
PROFILE = os.environ.get("PROFILE", "debug")
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def keeper_binary():
    args = ["cargo", "build", "--bin", "keeper"] + (["--release"] if PROFILE == "release" else [])
    subprocess.run(args, cwd=ROOT, check=True, stdout=sys.stderr)
    meta = subprocess.run(
        ["cargo", "metadata", "--format-version", "1", "--no-deps"],
        cwd=ROOT, check=True, capture_output=True, text=True,
    )
    return os.path.join(json.loads(meta.stdout)["target_directory"], PROFILE, "keeper")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def memory_mib(pid, field):
    """A memory figure of /proc/<pid>/status: VmRSS (resident now) or VmHWM (peak resident)."""
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith(f"{field}:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def rss_mib(pid):
    return memory_mib(pid, "VmRSS")


def peak_rss_mib(pid):
    return memory_mib(pid, "VmHWM")


def request(url, user=None, password=None, token=None, method="GET", body=None):
    req = urllib.request.Request(url, method=method, data=body)
    if user is not None:
        pair = base64.b64encode(f"{user}:{password}".encode()).decode()
        req.add_header("Authorization", f"Basic {pair}")
    if token is not None:
        pair = base64.b64encode(f"{token}:".encode()).decode()
        req.add_header("Authorization", f"Basic {pair}")
    if body is not None:
        req.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(req, timeout=30) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as err:
        return err.code, err.read()


def reader(base, stop, results):
    """Reads `/products/` and `/docs/demo/` in turn until `stop`; sends the latencies (ms)."""
    reads = []
    while not stop.is_set():
        for path in ("/products/", "/docs/demo/"):
            started = time.perf_counter()
            request(f"{base}{path}")
            reads.append((time.perf_counter() - started) * 1000)
    results.put(reads)


def stalled_bodies(base, token, pid):
    """Opens STALLED connections that announce 1 MiB and send 10 bytes, then waits for each
    answer; counts those answered (and closed) within the body timeout plus a margin."""
    host, port = base.removeprefix("http://").split(":")
    before = rss_mib(pid)
    sockets = []
    for n in range(STALLED):
        conn = socket.create_connection((host, int(port)))
        auth = ""
        if n % 2:
            pair = base64.b64encode(f"{token}:".encode()).decode()
            auth = f"Authorization: Basic {pair}\r\n"
        conn.sendall((f"POST /products/ HTTP/1.1\r\nHost: {host}\r\n"
                      "Content-Type: application/json\r\nContent-Length: 1048576\r\n"
                      f"{auth}\r\n{{\"slug\": \"").encode())
        conn.settimeout(BODY_TIMEOUT + 10)
        sockets.append((n, conn))
    opened = time.time()
    during = rss_mib(pid)
    statuses = {}
    closed_in_time = 0
    for n, conn in sockets:
        try:
            data = b""
            while chunk := conn.recv(65536):
                data += chunk
            status = data.split(b" ", 2)[1].decode() if data.startswith(b"HTTP/") else "none"
            if time.time() - opened <= BODY_TIMEOUT + 5:
                closed_in_time += 1
        except OSError:
            status = "timeout"
        statuses[status] = statuses.get(status, 0) + 1
        conn.close()
    after = rss_mib(pid)
    print(f"stalled bodies: {STALLED} (half anonymous), body timeout {BODY_TIMEOUT} s")
    print(f"  answers: {dict(sorted(statuses.items()))}; answered and closed within the timeout "
          f"+ 5 s: {closed_in_time}")
    print(f"  server RSS before {before:.0f} MiB, while open {during:.0f} MiB, after {after:.0f} MiB")


def main():
    binary = keeper_binary()
    work = tempfile.mkdtemp(prefix="keeper-flood.")
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = {
        "PATH": os.environ["PATH"],
        "KEEPER_BIND": f"127.0.0.1:{port}",
        "KEEPER_BOOTSTRAP_USER": "admin",
        "KEEPER_BOOTSTRAP_PASSWORD": "the admin's password",
        "KEEPER_LOG": "warn",
        "KEEPER_BODY_TIMEOUT_SECS": str(BODY_TIMEOUT),
    }
    for name in ("MALLOC_ARENA_MAX", "KEEPER_LOGIN_CONCURRENCY", "KEEPER_LOGIN_FAILURES_PER_CLIENT",
                 "KEEPER_HTTP_WORKERS"):
        if name in os.environ:
            env[name] = os.environ[name]
    if "KEEPER_DATABASE_URL" in os.environ:
        env["KEEPER_DATABASE_URL"] = os.environ["KEEPER_DATABASE_URL"]
    server = subprocess.Popen([binary, "serve"], cwd=work, env=env, stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 60
        while True:
            try:
                if request(f"{base}/health/ready")[0] == 200:
                    break
            except OSError:
                pass
            if time.time() > deadline or server.poll() is not None:
                sys.exit("keeper serve did not start")
            time.sleep(0.05)
        status, body = request(f"{base}/token", "admin", "the admin's password")
        token = json.loads(body)["token"]
        request(f"{base}/products/", token=token, method="POST",
                body=json.dumps({"slug": "demo", "title": "Demo", "doc_repo": "x"}).encode())
        baseline = rss_mib(server.pid)

        stop = threading.Event()
        counts = {"401": 0, "429": 0, "other": 0}
        lock = threading.Lock()

        def guesser(n):
            tries = 0
            while not stop.is_set():
                tries += 1
                code, _ = request(f"{base}/token", f"victim{n % 8}", f"guess-{n}-{tries}")
                key = str(code) if code in (401, 429) else "other"
                with lock:
                    counts[key] += 1

        # The reader runs in its own process, so that its latencies do not include waiting for
        # the flooding threads' interpreter lock.
        results = multiprocessing.Queue()
        reader_stop = multiprocessing.Event()
        reader_process = multiprocessing.Process(
            target=reader, args=(base, reader_stop, results)
        )
        threads = [threading.Thread(target=guesser, args=(n,)) for n in range(CLIENTS)]
        reader_process.start()
        for thread in threads:
            thread.start()
        time.sleep(SECONDS)  # the flood's duration (a measurement, not a synchronization)
        stop.set()
        reader_stop.set()
        for thread in threads:
            thread.join()
        reads = results.get()
        reader_process.join()
        reads.sort()
        p99 = reads[max(0, int(len(reads) * 0.99) - 1)] if reads else float("nan")
        load = os.getloadavg()
        backend = "postgres" if "KEEPER_DATABASE_URL" in os.environ else "sqlite"
        print(f"login flood: {CLIENTS} clients, {SECONDS:.0f} s, {backend}, {PROFILE} build, "
              f"load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
        print(f"  server RSS before {baseline:.0f} MiB, peak {peak_rss_mib(server.pid):.0f} MiB, "
              f"after {rss_mib(server.pid):.0f} MiB")
        print(f"  guesses that reached the hash (401): {counts['401']}; throttled (429): "
              f"{counts['429']}; other: {counts['other']}")
        print(f"  normal reads during the flood: {len(reads)}, p50 "
              f"{statistics.median(reads) if reads else float('nan'):.1f} ms, p99 {p99:.1f} ms")
        stalled_bodies(base, token, server.pid)
    finally:
        server.terminate()
        server.wait(timeout=30)


if __name__ == "__main__":
    main()
