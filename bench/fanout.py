"""Fan-out benchmark: N websocket subscribers on one board, split over two `pcg serve`
instances that share PostgreSQL and Redis; M mutations; commit → delivery latency.

    .venv/bin/python bench/fanout.py                    # 1,000 subscribers, 40 mutations
    .venv/bin/python bench/fanout.py --subscribers 200 --mutations 20 --interval 0.2

Latency is measured per (subscriber, event) from the event's `occurredAt` (taken inside the
write's transaction, just before commit) to the moment the client decoded the message.
Clients run in separate processes so that their own decoding is not counted against the
servers' event loop; on a two-core machine they still compete for the same CPUs.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing as mp
import os
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

SECRET = "bench-secret-" + "x" * 40
SUBSCRIPTION = """subscription($p: ID!) { boardEvents(projectId: $p) {
  __typename seq occurredAt ... on TaskCreated { task { id title status } } } }"""
CREATE = "mutation($i: CreateTaskInput!) { createTask(input: $i) { task { id } } }"


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


async def _client_group(urls: list[str], token: str, project_id: str, count: int, expect: int,
                        ready: mp.Event, out: mp.Queue) -> None:
    import websockets

    latencies: list[float] = []
    received = 0

    async def one(url: str) -> None:
        nonlocal received
        async with websockets.connect(url, subprotocols=["graphql-transport-ws"], max_queue=None,
                                      open_timeout=60, ping_interval=None) as ws:
            await ws.send(json.dumps({"type": "connection_init", "payload": {"authorization": f"Bearer {token}"}}))
            assert json.loads(await ws.recv())["type"] == "connection_ack"
            await ws.send(json.dumps({"id": "1", "type": "subscribe",
                                      "payload": {"query": SUBSCRIPTION, "variables": {"p": project_id}}}))
            ready_count[0] += 1
            got = 0
            while got < expect:
                message = json.loads(await ws.recv())
                if message["type"] != "next":
                    continue
                now = time.time()
                at = datetime.fromisoformat(message["payload"]["data"]["boardEvents"]["occurredAt"])
                latencies.append((now - at.timestamp()) * 1000)
                got += 1
                received += 1

    ready_count = [0]
    tasks = []
    for i in range(count):
        tasks.append(asyncio.create_task(one(urls[i % len(urls)])))
        if i % 50 == 49:
            await asyncio.sleep(0.05)  # do not stampede the accept queues
    while ready_count[0] < count:
        await asyncio.sleep(0.05)
    await asyncio.sleep(1.0)  # let every subscription reach its broadcast subscribe
    ready.set()
    started = time.time()
    await asyncio.wait_for(asyncio.gather(*tasks), timeout=300)
    out.put({"latencies": latencies, "received": received, "elapsed": time.time() - started})


def client_process(urls, token, project_id, count, expect, ready, out) -> None:
    asyncio.run(_client_group(urls, token, project_id, count, expect, ready, out))


async def seed(database_url: str) -> tuple[str, str]:
    from tortoise import Tortoise

    from models import Organization, OrganizationMember, OrgRole, Project, ProjectMember, ProjectRole, User
    from resolvers.identity.auth import hash_password
    from resolvers.identity.sessions import issue_outside_request
    from resolvers.ids import to_global_id
    from server.db import migrate, tortoise_config
    from server.settings import Settings

    await migrate(Settings(database_url=database_url, secret_key=SECRET))
    await Tortoise.init(config=tortoise_config(database_url))
    try:
        user = await User.create(email="bench@example.test", name="Bench", password_hash=hash_password("benchmark!"))
        org = await Organization.create(slug="bench", name="Bench")
        await OrganizationMember.create(organization=org, user=user, role=OrgRole.OWNER)
        project = await Project.create(organization=org, name="Fan-out", created_by=user)
        await ProjectMember.create(project=project, user=user, role=ProjectRole.OWNER)
        token = (await issue_outside_request(user, SECRET, 3600)).access_token
        return token, to_global_id("Project", project.id)
    finally:
        await Tortoise.close_connections()


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _cpu_seconds(pid: int) -> float:
    """User + system CPU of a process and its reaped children, from /proc (Linux)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return sum(int(v) for v in fields[11:15]) / os.sysconf("SC_CLK_TCK")


def start_instance(port: int, env: dict, log: Path) -> subprocess.Popen:
    pcg = Path(sys.executable).parent / "pcg"
    cmd = [str(pcg)] if pcg.exists() else [sys.executable, "-m", "server.cli"]
    with log.open("w") as out:
        return subprocess.Popen([*cmd, "serve", "--host", "127.0.0.1", "--port", str(port)],
                                stdout=out, stderr=subprocess.STDOUT, env=env, cwd=ROOT)


def wait_healthy(port: int, proc: subprocess.Popen, log: Path) -> None:
    import httpx

    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"instance on {port} exited:\n{log.read_text()}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/api/health", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise SystemExit(f"instance on {port} did not start:\n{log.read_text()}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--subscribers", type=int, default=1000)
    parser.add_argument("--mutations", type=int, default=40)
    parser.add_argument("--interval", type=float, default=0.25, help="seconds between mutations")
    parser.add_argument("--client-processes", type=int, default=2)
    parser.add_argument("--executor", choices=["compiled", "graphql-core"], default="compiled",
                        help="the instances' executor (PCG_COMPILED_EXECUTION)")
    parser.add_argument("--redis", default="redis://127.0.0.1:6379")
    parser.add_argument("--postgres", default="postgres://postgres@127.0.0.1:5432/postgres")
    args = parser.parse_args()

    import asyncpg
    import httpx

    db = f"pcg_fanout_{os.getpid()}"
    admin = args.postgres.replace("postgres://", "postgresql://", 1)

    async def admin_sql(sql: str) -> None:
        conn = await asyncpg.connect(admin)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    asyncio.run(admin_sql(f'CREATE DATABASE "{db}"'))
    database_url = args.postgres.rsplit("/", 1)[0] + "/" + db
    procs: list[subprocess.Popen] = []
    try:
        token, project_id = asyncio.run(seed(database_url))
        tmp = Path(tempfile.mkdtemp(prefix="pcg-fanout-"))
        env = {k: v for k, v in os.environ.items() if not k.startswith("PCG_")} | {
            "PCG_DATABASE_URL": database_url, "PCG_BROADCAST_URL": args.redis,
            "PCG_SECRET_KEY": SECRET, "PCG_DATA_DIR": str(tmp),
            # Every subscriber is one user on 127.0.0.1: the per-IP socket cap and the points
            # budget would refuse most of them, which is not what this measures.
            "PCG_RATE_LIMIT": "0", "PCG_RATE_LIMIT_SOCKETS_PER_IP": "0",
            "PCG_COMPILED_EXECUTION": "0" if args.executor == "graphql-core" else "1",
        }
        ports = [free_port(), free_port()]
        for i, port in enumerate(ports):
            procs.append(start_instance(port, env, tmp / f"instance{i}.log"))
        for proc, port, i in zip(procs, ports, range(2)):
            wait_healthy(port, proc, tmp / f"instance{i}.log")

        urls = [f"ws://127.0.0.1:{p}/graphql" for p in ports]
        ctx = mp.get_context("spawn")
        out = ctx.Queue()
        readies, clients = [], []
        per = [args.subscribers // args.client_processes] * args.client_processes
        per[0] += args.subscribers - sum(per)
        for count in per:
            ready = ctx.Event()
            readies.append(ready)
            clients.append(ctx.Process(target=client_process,
                                       args=(urls, token, project_id, count, args.mutations, ready, out)))
            clients[-1].start()
        t0 = time.monotonic()
        for ready in readies:
            if not ready.wait(180):
                raise SystemExit("subscribers did not connect in time")
        connect_s = time.monotonic() - t0

        mutation_ms = []
        cpu_before = sum(_cpu_seconds(p.pid) for p in procs)
        with httpx.Client() as http:
            for i in range(args.mutations):
                started = time.perf_counter()
                r = http.post(f"http://127.0.0.1:{ports[i % 2]}/graphql",
                              json={"query": CREATE, "variables": {"i": {"projectId": project_id, "title": f"t{i}"}}},
                              headers={"Authorization": f"Bearer {token}"})
                mutation_ms.append((time.perf_counter() - started) * 1000)
                assert not r.json().get("errors"), r.text
                time.sleep(args.interval)
        results = [out.get(timeout=300) for _ in clients]
        cpu_used = sum(_cpu_seconds(p.pid) for p in procs) - cpu_before
        for c in clients:
            c.join(30)

        latencies = [x for r in results for x in r["latencies"]]
        received = sum(r["received"] for r in results)
        elapsed = max(r["elapsed"] for r in results)
        expected = args.subscribers * args.mutations
        print(f"subscribers            {args.subscribers} over 2 instances (Redis broadcast, PostgreSQL)")
        print(f"mutations              {args.mutations}, one every {args.interval * 1000:.0f} ms, alternating instances")
        print(f"connect + subscribe    {connect_s:.1f} s for all subscribers")
        print(f"deliveries             {received} of {expected} ({'all' if received == expected else 'MISSING'})")
        print(f"commit → delivery ms   p50 {percentile(latencies, 50):.1f}  p95 {percentile(latencies, 95):.1f}  "
              f"p99 {percentile(latencies, 99):.1f}  max {max(latencies):.1f}  mean {statistics.fmean(latencies):.1f}")
        print(f"events/s delivered     {received / elapsed:.0f} (all subscribers, over {elapsed:.1f} s)")
        print(f"mutation HTTP ms       p50 {percentile(mutation_ms, 50):.1f}  p95 {percentile(mutation_ms, 95):.1f}")
        print(f"server CPU             {cpu_used:.2f} s over both instances, {cpu_used / max(1, received) * 1e6:.0f} µs "
              f"per delivered event ({args.executor} executor)")
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
        asyncio.run(admin_sql(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)'))


if __name__ == "__main__":
    main()
