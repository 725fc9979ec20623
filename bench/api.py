#!/usr/bin/env python3
"""The API benchmark: keeper serve on SQLite and on PostgreSQL, side by side, in one run.

Starts a throwaway PostgreSQL cluster, then one `keeper serve` per backend with the same generated
data (PRODUCTS products x BUILDS builds x EDITIONS editions, and one product with BIG_BUILDS
builds), and drives each route with wrk at concurrency 1 and 32, interleaved (for each
repetition, route and concurrency: SQLite, then PostgreSQL), REPS times DURATION seconds. Prints
every run, then the medians: requests per second, p50 and p99 latency, keeper's own CPU time per
request (user + system, from /proc), the PostgreSQL server's and wrk's CPU per request, the
PostgreSQL / SQLite ratio, and the load average. POSTGRES_CPUS=own gives the PostgreSQL server a
CPU of its own (see cpu_layout).

Build registration is measured twice: on a product with 10 builds (a fresh one per run, so the
run's own registrations do not count against it) and on the product with BIG_BUILDS.

Last, unless RESTART=0: readers of every read route and registering writers run against the
PostgreSQL server while its cluster restarts (`pg_ctl restart -m fast`); prints how many
requests failed while it was down and how many started after it was back, which must be none
(the script exits 1 otherwise).

Run it through bench/api, which builds the release binary and installs wrk.
"""

import base64
import concurrent.futures
import http.client
import json
import os
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time

KEEPER = os.environ["KEEPER_BIN"]
DURATION = int(os.environ.get("DURATION", "5"))
REPS = int(os.environ.get("REPS", "3"))
PRODUCTS = int(os.environ.get("PRODUCTS", "20"))
BUILDS = int(os.environ.get("BUILDS", "50"))
EDITIONS = int(os.environ.get("EDITIONS", "10"))
BIG_BUILDS = int(os.environ.get("BIG_BUILDS", "20000"))
CONCURRENCY = [int(c) for c in os.environ.get("CONCURRENCY", "1,32").split(",")]
# Concurrent registrations while seeding (keeper before 2026-12-03 gave 409s to more than one).
SEED_THREADS = int(os.environ.get("SEED_THREADS", "8"))
ONLY = os.environ.get("ROUTES", "")  # comma-separated route names; empty: all
RESTART = os.environ.get("RESTART", "1") != "0"
USER, PASSWORD = "bench", "bench-password"


def cpu_layout():
    """(keeper's and wrk's CPUs, the PostgreSQL server's CPUs). By default (POSTGRES_CPUS=shared)
    everything shares every CPU. POSTGRES_CPUS=own gives the server the last CPU to itself, as it
    has a machine of its own in production, and keeper and wrk the others, on both backends; or
    POSTGRES_CPUS names the server's CPUs (`2,3`)."""
    cpus = sorted(os.sched_getaffinity(0))
    wanted = os.environ.get("POSTGRES_CPUS", "shared")
    if wanted == "shared" or (wanted == "own" and len(cpus) < 2):
        return cpus, cpus
    server = cpus[-1:] if wanted == "own" else [int(c) for c in wanted.split(",")]
    rest = [c for c in cpus if c not in server]
    if not rest or not set(server) <= set(cpus):
        sys.exit(f"error: POSTGRES_CPUS={wanted} leaves no CPU of {cpus} for keeper and wrk")
    return rest, server


KEEPER_CPUS, POSTGRES_CPUS = cpu_layout()
CLK_TCK = os.sysconf("SC_CLK_TCK")
V2 = "application/vnd.ltdkeeper.v2+json"


def log(message):
    print(f"==> {message}", file=sys.stderr, flush=True)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(port, path="/health/ready", timeout=60):
    deadline = time.monotonic() + timeout
    while True:
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            conn.request("GET", path)
            if conn.getresponse().status == 200:
                return
        except OSError:
            pass
        if time.monotonic() > deadline:
            sys.exit(f"error: 127.0.0.1:{port}{path} did not answer within {timeout} s")
        time.sleep(0.1)


class Postgres:
    """A throwaway cluster on loopback, run as the postgres user when we are root."""

    def __init__(self, work):
        bins = sorted(d for d in os.listdir("/usr/lib/postgresql"))
        self.bin = f"/usr/lib/postgresql/{bins[-1]}/bin"
        self.dir = os.path.join(work, "pg")
        self.port = free_port()
        os.mkdir(self.dir)
        self.as_user = []
        if os.getuid() == 0:
            shutil.chown(self.dir, "postgres")
            self.as_user = ["runuser", "-u", "postgres", "--"]
        self._run("initdb", "-D", f"{self.dir}/data", "-A", "trust", "-U", "postgres")
        self.options = (f"-c listen_addresses=127.0.0.1 -p {self.port} -k {self.dir} "
                        "-c max_connections=200")
        self._run("pg_ctl", "-D", f"{self.dir}/data", "-l", f"{self.dir}/log", "-w", "-o",
                  self.options, "start")
        subprocess.run(
            ["psql", "-q", "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres", "-c",
             "CREATE DATABASE keeper"], check=True)
        self.url = f"postgres://postgres@127.0.0.1:{self.port}/keeper"

    def _run(self, tool, *args):
        done = subprocess.run(self.as_user + [f"{self.bin}/{tool}", *args],
                              capture_output=True, text=True,
                              preexec_fn=lambda: os.sched_setaffinity(0, POSTGRES_CPUS))
        if done.returncode != 0:
            sys.exit(f"error: {tool} failed:\n{done.stdout}{done.stderr}")

    def restart(self):
        """Fast restart (every connection terminated); returns once the server accepts again."""
        # The log file, not our pipe: the new server would hold the pipe open.
        self._run("pg_ctl", "-D", f"{self.dir}/data", "-l", f"{self.dir}/log", "-m", "fast", "-w",
                  "-o", self.options, "restart")

    def stop(self):
        self._run("pg_ctl", "-D", f"{self.dir}/data", "-m", "fast", "-w", "stop")

    def cpu_seconds(self):
        """CPU time of the server's processes alive now (postmaster and its children)."""
        with open(f"{self.dir}/data/postmaster.pid") as f:
            postmaster = int(f.readline())
        total = 0.0
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            try:
                with open(f"/proc/{entry}/stat") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(entry) == postmaster or int(fields[1]) == postmaster:
                total += (int(fields[11]) + int(fields[12])) / CLK_TCK
        return total


class Keeper:
    """`keeper serve` on one backend, without its worker (operations stay queued)."""

    def __init__(self, name, work, database_url):
        self.name = name
        self.port = free_port()
        data = os.path.join(work, f"store-{name}")
        env = dict(os.environ, KEEPER_BIND=f"127.0.0.1:{self.port}",
                   KEEPER_PUBLIC_URL=f"http://127.0.0.1:{self.port}",
                   KEEPER_DATABASE_URL=database_url, KEEPER_STORAGE_DIR=data,
                   KEEPER_BOOTSTRAP_USER=USER, KEEPER_BOOTSTRAP_PASSWORD=PASSWORD,
                   KEEPER_SERVE_RUNS_WORKER="false", KEEPER_LOG="warn")
        self.log = open(os.path.join(work, f"keeper-{name}.log"), "w")
        self.process = subprocess.Popen([KEEPER, "serve"], env=env, stdout=self.log,
                                        stderr=subprocess.STDOUT)
        wait_for(self.port)
        self.token = self._token()

    def _token(self):
        conn = http.client.HTTPConnection("127.0.0.1", self.port)
        basic = base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
        conn.request("GET", "/token", headers={"Authorization": f"Basic {basic}"})
        response = conn.getresponse()
        body = json.loads(response.read())
        if response.status != 200:
            sys.exit(f"error: GET /token answered {response.status}: {body}")
        return body["token"]

    def cpu_seconds(self):
        with open(f"/proc/{self.process.pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        # utime and stime are fields 14 and 15 of stat(5); fields[0] here is field 3.
        return (int(fields[11]) + int(fields[12])) / CLK_TCK

    def stop(self):
        self.process.send_signal(signal.SIGTERM)
        self.process.wait(timeout=60)
        self.log.close()


class Client:
    """One keep-alive connection per thread for seeding."""

    def __init__(self, keeper):
        self.keeper = keeper
        self.conn = http.client.HTTPConnection("127.0.0.1", keeper.port)

    def call(self, method, path, body=None, accept="application/json"):
        headers = {"Authorization": f"Bearer {self.keeper.token}", "Accept": accept}
        data = None
        if body is not None:
            data = json.dumps(body)
            headers["Content-Type"] = "application/json"
        self.conn.request(method, path, body=data, headers=headers)
        response = self.conn.getresponse()
        payload = response.read()
        if response.status >= 300:
            sys.exit(f"error: {method} {path} answered {response.status}: {payload[:300]!r}")
        return json.loads(payload) if payload else None


def create_product(client, slug):
    client.call("POST", "/products/", {"slug": slug, "title": f"Product {slug}",
                                        "doc_repo": f"https://github.com/example/{slug}"})


def add_builds(keeper, slug, count, threads=None):
    threads = threads or SEED_THREADS
    def register(_):
        client = clients.get()
        client.call("POST", f"/products/{slug}/builds/", {"git_refs": ["main"]})
        clients.put(client)

    import queue
    clients = queue.Queue()
    for _ in range(threads):
        clients.put(Client(keeper))
    with concurrent.futures.ThreadPoolExecutor(threads) as pool:
        list(pool.map(register, range(count)))


def seed(keeper):
    """The same data on every backend; returns the ids the routes read."""
    client = Client(keeper)
    for p in range(PRODUCTS):
        slug = f"bench-p{p:02d}"
        create_product(client, slug)
        add_builds(keeper, slug, BUILDS)
        for e in range(EDITIONS):
            client.call("POST", f"/products/{slug}/editions/",
                        {"slug": f"v{e}", "title": f"Version {e}", "mode": "git_refs",
                         "tracked_refs": [f"v{e}"]})
    target = f"bench-p{PRODUCTS // 2:02d}"
    editions = client.call("GET", f"/products/{target}/editions/")["editions"]
    builds = client.call("GET", f"/products/{target}/builds/")["builds"]
    create_product(client, "reg-big")
    started = time.monotonic()
    add_builds(keeper, "reg-big", BIG_BUILDS)
    log(f"{keeper.name}: registered {BIG_BUILDS} builds of reg-big in "
        f"{time.monotonic() - started:.0f} s")
    path = lambda url: "/" + url.split("/", 3)[3]
    return {"product": target, "edition": path(editions[len(editions) // 2]),
            "build": path(builds[len(builds) // 2])}


WRK_DONE = """
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    '{"requests":%d,"duration_us":%d,"socket_errors":%d,"status_errors":%d,"p50_us":%d,"p99_us":%d}\\n',
    summary.requests, summary.duration, e.connect + e.read + e.write + e.timeout, e.status,
    latency:percentile(50), latency:percentile(99)))
end
"""


def wrk_script(work, name, method="GET", body=None, headers=None):
    lines = [f'wrk.method = "{method}"']
    if body is not None:
        lines.append(f"wrk.body = '{json.dumps(body)}'")
    for key, value in (headers or {}).items():
        lines.append(f'wrk.headers["{key}"] = "{value}"')
    path = os.path.join(work, f"{name}.lua")
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n" + WRK_DONE)
    return path


def run_wrk(keeper, path, script, connections, postgres):
    """One wrk run; CPU per request of keeper, of the PostgreSQL server (its processes, whichever
    keeper is driven: near zero for SQLite) and of wrk itself."""
    before = keeper.cpu_seconds()
    pg_before = postgres.cpu_seconds()
    wrk_before = resource.getrusage(resource.RUSAGE_CHILDREN)
    out = subprocess.run(
        ["wrk", "-t1", f"-c{connections}", f"-d{DURATION}s", "--timeout", "10s", "-s", script,
         f"http://127.0.0.1:{keeper.port}{path}"],
        check=True, capture_output=True, text=True).stdout
    cpu = keeper.cpu_seconds() - before
    pg_cpu = postgres.cpu_seconds() - pg_before
    wrk_after = resource.getrusage(resource.RUSAGE_CHILDREN)
    wrk_cpu = (wrk_after.ru_utime + wrk_after.ru_stime
               - wrk_before.ru_utime - wrk_before.ru_stime)
    result = json.loads(out.strip().splitlines()[-1])
    requests = max(result["requests"], 1)
    return {"rps": result["requests"] / (result["duration_us"] / 1e6),
            "p50_ms": result["p50_us"] / 1000, "p99_ms": result["p99_us"] / 1000,
            "cpu_ms": cpu * 1000 / requests,
            "pg_cpu_ms": pg_cpu * 1000 / requests, "wrk_cpu_ms": wrk_cpu * 1000 / requests,
            "errors": result["socket_errors"] + result["status_errors"]}


def routes(keepers, ids, work):
    """(name, {backend: (path, script)}); a registration route makes its small product first."""
    found = []
    for name, path in [
        ("GET /products/", "/products/"),
        ("GET /products/<slug>", f"/products/{ids['sqlite']['product']}"),
        ("GET /products/<slug>/editions/", f"/products/{ids['sqlite']['product']}/editions/"),
        ("GET /editions/<id>", None),
        ("GET /builds/<id>", None),
    ]:
        per = {}
        for keeper in keepers:
            mine = ids[keeper.name]
            actual = path or (mine["edition"] if "editions" in name else mine["build"])
            per[keeper.name] = (actual, wrk_script(work, f"get-{keeper.name}"))
        found.append((name, per))
    for name, product in [("POST builds (10 before)", None), ("POST builds (20,000 before)",
                                                              "reg-big")]:
        per = {}
        for keeper in keepers:
            script = wrk_script(work, f"post-{keeper.name}", "POST", {"git_refs": ["main"]},
                                {"Authorization": f"Bearer {keeper.token}",
                                 "Content-Type": "application/json", "Accept": V2})
            per[keeper.name] = (product, script)
        found.append((name.replace("20,000", f"{BIG_BUILDS:,}"), per))
    return [r for r in found if not ONLY or any(o.strip() in r[0] for o in ONLY.split(","))]


def main():
    if not shutil.which("wrk"):
        sys.exit("error: wrk is not installed (bench/api installs it)")
    work = tempfile.mkdtemp(prefix="keeper-api-bench.")
    os.chmod(work, 0o755)  # the postgres user reaches its cluster inside
    keepers, postgres = [], None
    failed = False
    # keeper, wrk and this script's own clients inherit it.
    os.sched_setaffinity(0, KEEPER_CPUS)
    try:
        log(f"load average at start: {open('/proc/loadavg').read().strip()}")
        log(f"CPUs: keeper and wrk {KEEPER_CPUS}, the PostgreSQL server {POSTGRES_CPUS}")
        postgres = Postgres(work)
        keepers = [Keeper("sqlite", work, f"sqlite://{work}/keeper.sqlite3"),
                   Keeper("postgres", work, postgres.url)]
        ids = {}
        for keeper in keepers:
            log(f"seeding {keeper.name}: {PRODUCTS} products x {BUILDS} builds x {EDITIONS} "
                f"editions, and reg-big with {BIG_BUILDS} builds")
            ids[keeper.name] = seed(keeper)
        results = {}
        fresh = 0
        for rep in range(REPS):
            for name, per in routes(keepers, ids, work):
                for connections in CONCURRENCY:
                    for keeper in keepers:
                        path, script = per[keeper.name]
                        if name.startswith("POST"):
                            product = path
                            if product is None:
                                fresh += 1
                                product = f"reg-small-{fresh}"
                                create_product(Client(keeper), product)
                                add_builds(keeper, product, 10, threads=1)
                            path = f"/products/{product}/builds/"
                        r = run_wrk(keeper, path, script, connections, postgres)
                        results.setdefault((name, connections, keeper.name), []).append(r)
                        print(f"rep {rep + 1} {name:32} c={connections:<3} {keeper.name:9} "
                              f"{r['rps']:9.0f} rps  p50 {r['p50_ms']:6.2f} ms  "
                              f"p99 {r['p99_ms']:6.2f} ms  cpu {r['cpu_ms']:.3f} ms/req  "
                              f"postgres {r['pg_cpu_ms']:.3f}  wrk {r['wrk_cpu_ms']:.3f}  "
                              f"errors {r['errors']}", flush=True)
        report(results)
        if RESTART:
            postgres_keeper = next(k for k in keepers if k.name == "postgres")
            if restart_under_load(postgres_keeper, postgres, ids["postgres"]):
                failed = True
    finally:
        for keeper in keepers:
            keeper.stop()
        if postgres:
            postgres.stop()
        if os.environ.get("KEEP_WORK") != "1":
            shutil.rmtree(work, ignore_errors=True)
        else:
            log(f"kept {work}")
    if failed:
        sys.exit(1)


def restart_under_load(keeper, postgres, ids):
    """Readers and writers on `keeper` while `postgres` restarts; returns the failures of
    requests that started after it was back (5xx or no answer; a 4xx would be a bench bug)."""
    create_product(Client(keeper), "reg-restart")
    reads = ["/health/ready", "/products/", f"/products/{ids['product']}",
             f"/products/{ids['product']}/editions/", f"/products/{ids['product']}/builds/",
             ids["edition"], ids["build"]]
    stop = threading.Event()
    done = []  # (started, ended, outcome), appended by the load threads
    lock = threading.Lock()

    def load(index):
        conn = None
        write = index < 2
        while not stop.is_set():
            path = "/products/reg-restart/builds/" if write else reads[index % len(reads)]
            index += 1
            started = time.monotonic()
            try:
                if conn is None:
                    conn = http.client.HTTPConnection("127.0.0.1", keeper.port, timeout=30)
                headers = {"Authorization": f"Bearer {keeper.token}"}
                body = None
                if write:
                    body = json.dumps({"git_refs": ["main"]})
                    headers["Content-Type"] = "application/json"
                conn.request("POST" if write else "GET", path, body=body, headers=headers)
                response = conn.getresponse()
                response.read()
                outcome = None if response.status < 400 else f"{path}: {response.status}"
            except (OSError, http.client.HTTPException) as error:
                conn = None
                outcome = f"{path}: {error!r}"
            with lock:
                done.append((started, time.monotonic(), outcome))

    threads = [threading.Thread(target=load, args=(i,)) for i in range(10)]
    for thread in threads:
        thread.start()
    time.sleep(1)  # load before the restart, not synchronization
    down = time.monotonic()
    postgres.restart()
    back = time.monotonic()
    time.sleep(3)  # load after it
    stop.set()
    for thread in threads:
        thread.join()
    during = [o for s, e, o in done if o and s < back]
    after = [o for s, e, o in done if o and s >= back]
    print(f"\nPostgreSQL restart under load (8 readers of {len(reads)} routes, 2 registering "
          f"writers): down for {back - down:.2f} s; {len(done)} requests, "
          f"{sum(1 for s, e, o in done if s >= back)} started after it was back; "
          f"failed: {len(during)} while it was down, {len(after)} after it was back")
    for outcome in after[:10]:
        print(f"  after: {outcome}")
    return after


def report(results):
    print()
    print(f"Medians of {REPS} runs of {DURATION} s each (wrk -t1; keeper {KEEPER}); "
          f"{os.cpu_count()} cores (keeper and wrk on {KEEPER_CPUS}, the PostgreSQL server on "
          f"{POSTGRES_CPUS}); load average at end: {open('/proc/loadavg').read().strip()}")
    print()
    print("CPU/req is keeper's; server CPU/req is the PostgreSQL server's, wrk's is the load "
          "generator's (all in ms of CPU per request).")
    print()
    print("| route | c | SQLite rps | p50 | p99 | CPU/req | wrk CPU/req | PostgreSQL rps | p50 | "
          "p99 | CPU/req | server CPU/req | wrk CPU/req | PG / SQLite |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    names = []
    for name, _, _ in results:
        if name not in names:
            names.append(name)
    for name in names:
        for connections in CONCURRENCY:
            cells = []
            rps = {}
            for backend in ("sqlite", "postgres"):
                runs = results.get((name, connections, backend))
                if not runs:
                    cells += ["-"] * (5 if backend == "sqlite" else 6)
                    continue
                med = {k: statistics.median(r[k] for r in runs)
                       for k in ("rps", "p50_ms", "p99_ms", "cpu_ms", "pg_cpu_ms", "wrk_cpu_ms")}
                rps[backend] = med["rps"]
                errors = sum(r["errors"] for r in runs)
                cells += [f"{med['rps']:,.0f}" + (f" ({errors} errors)" if errors else ""),
                          f"{med['p50_ms']:.2f} ms", f"{med['p99_ms']:.2f} ms",
                          f"{med['cpu_ms']:.3f} ms"]
                if backend == "postgres":
                    cells.append(f"{med['pg_cpu_ms']:.3f} ms")
                cells.append(f"{med['wrk_cpu_ms']:.3f} ms")
            ratio = (f"{rps['postgres'] / rps['sqlite']:.0%}"
                     if len(rps) == 2 and rps["sqlite"] else "-")
            print(f"| {name} | {connections} | " + " | ".join(cells) + f" | {ratio} |")


if __name__ == "__main__":
    main()
