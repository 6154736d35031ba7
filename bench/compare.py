"""pcg-graphql against PostGraphile 4 on the same PostgreSQL board, both as real servers.

    (cd bench/postgraphile && npm ci)            # once: PostGraphile 4, pinned by its lock file
    .venv/bin/python bench/compare.py            # a temp PostgreSQL database, dropped after

It seeds bench/board.py's 500-task board into a fresh database built by the migrations, starts
`pcg serve` (one process: response cache off for the cold rows, on for the cached row) and
PostGraphile's CLI on the same database, each on its own 127.0.0.1 port, and asks each for
the same board: every column's tasks with assignee, labels, comment and subtask counts and
custom properties (PostGraphile through its generated schema: conditions, relations and
totalCount stand in for our board and counts). Blocks of requests alternate between the
servers so a busy machine slows them alike; it prints p50/p95 at concurrency 1, requests/s
at concurrency 16, each server process's CPU per request (from /proc) and PostgreSQL's
(the database server's processes, summed). Nothing of PostGraphile is part of the product.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402
import orjson  # noqa: E402
from tortoise import Tortoise  # noqa: E402

from bench.board import BOARD, PG_ADMIN_URL, SECRET, seed  # noqa: E402
from models import MODEL_MODULES, TaskStatus  # noqa: E402
from resolvers.identity.sessions import issue_outside_request  # noqa: E402
from resolvers.ids import to_global_id  # noqa: E402
from server.db import migrate  # noqa: E402
from server.settings import Settings  # noqa: E402
from tests.processes import free_port, subprocess_env  # noqa: E402

POSTGRAPHILE = ROOT / "bench" / "postgraphile" / "node_modules" / ".bin" / "postgraphile"
CLK_TCK = os.sysconf("SC_CLK_TCK")

_COLUMN = """
  COL: tasksByProjectId(condition: {status: "VALUE", archivedAt: null}, orderBy: [POSITION_ASC, ID_ASC], first: 100) {
    totalCount
    pageInfo { hasNextPage endCursor }
    nodes {
      id title status priority position dueDate version customProperties
      comments: taskCommentsByTaskId { totalCount }
      subtasks: tasksByParentId(condition: {archivedAt: null}) { totalCount }
      assignee: userByAssigneeId { id name }
      labels: taskLabelsByTaskId { nodes { label: labelByLabelId { id name color } } }
    }
  }"""
POSTGRAPHILE_BOARD = (
    "query Board($id: Int!) { projectById(id: $id) { id name"
    + "".join(_COLUMN.replace("COL", s.name.lower()).replace("VALUE", s.value) for s in TaskStatus)
    + " } }"
)


def _cpu(pids: list[int]) -> dict[int, float]:
    """CPU seconds so far of each process still alive."""
    out = {}
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except FileNotFoundError:
            continue
        out[pid] = (int(fields[11]) + int(fields[12])) / CLK_TCK  # utime, stime after the name
    return out


def _spent(before: dict[int, float], after: dict[int, float]) -> float:
    """CPU spent between two readings by the processes alive at the second (a backend that
    started meanwhile counts whole; one that exited is lost, a small undercount)."""
    return sum(seconds - before.get(pid, 0.0) for pid, seconds in after.items())


def _children(pid: int) -> list[int]:
    out = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout.split()
    pids = [int(p) for p in out]
    return [pid, *pids, *(c for p in pids for c in _children(p))]


def _postgres_pids() -> list[int]:
    out = subprocess.run(["pgrep", "-u", "postgres"], capture_output=True, text=True).stdout.split()
    return [int(p) for p in out]


class Server:
    def __init__(self, name: str, port: int, proc: subprocess.Popen, query: str, variables: dict,
                 headers: dict) -> None:
        self.name, self.port, self.proc = name, port, proc
        self.body = orjson.dumps({"query": query, "variables": variables})
        self.headers = {"Content-Type": "application/json", **headers}

    async def ask(self, client: httpx.AsyncClient) -> bytes:
        r = await client.post(f"http://127.0.0.1:{self.port}/graphql", content=self.body, headers=self.headers)
        if r.status_code != 200 or b'"errors"' in r.content[:200]:
            raise RuntimeError(f"{self.name} answered {r.status_code}: {r.text[:300]}")
        return r.content


async def _wait(port: int, proc: subprocess.Popen, log: Path, path: str) -> None:
    deadline = time.monotonic() + 60
    async with httpx.AsyncClient() as client:
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RuntimeError(f"exited {proc.returncode}:\n{log.read_text()}")
            try:
                await client.get(f"http://127.0.0.1:{port}{path}", timeout=1)
                return
            except httpx.TransportError:
                await asyncio.sleep(0.2)
    raise RuntimeError(f"not up in 60 s:\n{log.read_text()}")


async def _block(server: Server, client: httpx.AsyncClient, n: int, concurrency: int, stats: dict) -> None:
    pids = _children(server.proc.pid)
    cpu0, pg0 = _cpu(pids), _cpu(_postgres_pids())
    latencies: list[float] = []
    remaining = n

    async def worker() -> None:
        nonlocal remaining
        while remaining > 0:
            remaining -= 1
            t = time.perf_counter()
            await server.ask(client)
            latencies.append(time.perf_counter() - t)

    t0 = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    stats["elapsed"] += time.perf_counter() - t0
    stats["cpu"] += _spent(cpu0, _cpu(pids))
    stats["pg"] += _spent(pg0, _cpu(_postgres_pids()))
    stats["latencies"] += latencies
    stats["count"] += len(latencies)


async def measure(servers: list[Server], n: int, concurrency: int, rounds: int) -> dict[str, dict]:
    stats = {s.name: {"elapsed": 0.0, "cpu": 0.0, "pg": 0.0, "latencies": [], "count": 0} for s in servers}
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(timeout=60, limits=limits) as client:
        for _ in range(rounds):
            for server in servers:
                await _block(server, client, n // rounds, concurrency, stats[server.name])
    out = {}
    for name, s in stats.items():
        lat = sorted(s["latencies"])
        out[name] = {
            "p50": statistics.median(lat) * 1000, "p95": lat[int(len(lat) * 0.95) - 1] * 1000,
            "rps": s["count"] / s["elapsed"], "cpu": s["cpu"] / s["count"] * 1000,
            "pg": s["pg"] / s["count"] * 1000,
        }
    return out


def _row(name: str, m: dict) -> str:
    return (f"  {name:<34} p50 {m['p50']:8.2f} ms  p95 {m['p95']:8.2f} ms  {m['rps']:7.1f} req/s  "
            f"server cpu {m['cpu']:7.2f} ms/req  postgres cpu {m['pg']:6.2f} ms/req")


async def main(args) -> None:
    if not POSTGRAPHILE.exists():
        sys.exit("PostGraphile is not installed: (cd bench/postgraphile && npm ci)")
    import asyncpg

    name = f"pcg_compare_{os.getpid()}"
    admin = PG_ADMIN_URL.replace("postgres://", "postgresql://", 1)
    conn = await asyncpg.connect(admin)
    await conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
    await conn.execute(f'CREATE DATABASE "{name}"')
    await conn.close()
    url = PG_ADMIN_URL.rsplit("/", 1)[0] + "/" + name
    tmp = Path(tempfile.mkdtemp())
    procs: list[subprocess.Popen] = []
    try:
        settings = Settings(env="test", database_url=url, secret_key=SECRET)
        await migrate(settings)
        await Tortoise.init(db_url=url, modules={"models": MODEL_MODULES})
        owner, project = await seed(args.tasks, 20, random.Random(7))
        token = (await issue_outside_request(owner, SECRET, 3600)).access_token
        await Tortoise.close_connections()

        def pcg(cache: bool) -> tuple[subprocess.Popen, int]:
            port = free_port()
            env = subprocess_env(tmp / f"pcg-{cache}", PCG_DATABASE_URL=url, PCG_SECRET_KEY=SECRET,
                                 PCG_RATE_LIMIT="0", PCG_RESPONSE_CACHE="1" if cache else "0",
                                 PCG_SLOW_OPERATION_MS="60000", PCG_LOG_LEVEL="warning")
            log = (tmp / f"pcg-{cache}.log").open("w")
            proc = subprocess.Popen([str(ROOT / ".venv" / "bin" / "pcg"), "serve", "--host", "127.0.0.1",
                                     "--port", str(port)], stdout=log, stderr=subprocess.STDOUT, env=env, cwd=ROOT)
            procs.append(proc)
            return proc, port

        cold, cold_port = pcg(False)
        warm, warm_port = pcg(True)
        pg_port = free_port()
        pg_log = (tmp / "postgraphile.log").open("w")
        pgraphile = subprocess.Popen(
            [str(POSTGRAPHILE), "-c", url, "--schema", "public", "--host", "127.0.0.1", "--port", str(pg_port),
             "--disable-query-log"],
            stdout=pg_log, stderr=subprocess.STDOUT, cwd=POSTGRAPHILE.parent.parent.parent,
            env={**os.environ, "NODE_ENV": "production"},
        )
        procs.append(pgraphile)
        for proc, port, log, path in ((cold, cold_port, tmp / "pcg-False.log", "/api/health"),
                                      (warm, warm_port, tmp / "pcg-True.log", "/api/health"),
                                      (pgraphile, pg_port, tmp / "postgraphile.log", "/graphql")):
            await _wait(port, proc, log, path)

        ours = {"id": to_global_id("Project", project.id)}
        auth = {"Authorization": f"Bearer {token}"}
        servers = [
            Server("pcg-graphql, cold (no cache)", cold_port, cold, BOARD, ours, auth),
            Server("pcg-graphql, cached", warm_port, warm, BOARD, ours, auth),
            Server("PostGraphile 4.14", pg_port, pgraphile, POSTGRAPHILE_BOARD, {"id": project.id}, {}),
        ]
        async with httpx.AsyncClient(timeout=60) as client:
            sizes = {}
            for server in servers:
                answer = orjson.loads(await server.ask(client))
                for _ in range(args.warmup):
                    await server.ask(client)
                sizes[server.name] = len(orjson.dumps(answer))
        c1 = await measure(servers, args.requests, 1, 5)
        c16 = await measure(servers, args.requests * 2, 16, 5)
        print("pcg-graphql vs PostGraphile 4 — PostgreSQL, one server process each, over 127.0.0.1")
        print(f"  board: {args.tasks} tasks; answers {', '.join(f'{k}: {v / 1024:.0f} KiB' for k, v in sizes.items())}")
        for label, results in (("concurrency 1", c1), ("concurrency 16", c16)):
            print(f" {label}")
            for n, m in results.items():
                print(_row(n, m))
        ref = "PostGraphile 4.14"
        for n in ("pcg-graphql, cold (no cache)", "pcg-graphql, cached"):
            print(f"  {n} / PostGraphile: throughput at c=16 x{c16[n]['rps'] / c16[ref]['rps']:.2f}, "
                  f"server cpu x{c1[n]['cpu'] / c1[ref]['cpu']:.2f}, p95 at c=1 x{c1[n]['p95'] / c1[ref]['p95']:.2f}")
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
        shutil.rmtree(tmp, ignore_errors=True)
        conn = await asyncpg.connect(admin)
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await conn.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tasks", type=int, default=500)
    parser.add_argument("--requests", type=int, default=100, help="requests per server at concurrency 1 (x2 at 16)")
    parser.add_argument("--warmup", type=int, default=10)
    asyncio.run(main(parser.parse_args()))
