"""`pcg serve --workers 2`: whichever worker answers a scrape, /metrics reports all of them
(prometheus-client's multiprocess mode in a fresh directory under the data dir)."""

from __future__ import annotations

import time

import httpx

from tests.metrics_support import Scrape
from tests.processes import free_port, serving, subprocess_env

HELLO = "query Hello { __typename }"


def test_workers_share_one_view_of_the_counters(tmp_path, redis_server):
    port = free_port()
    env = subprocess_env(tmp_path, PCG_BROADCAST_URL=redis_server.url, PCG_RATE_LIMIT="0",
                         PCG_SECRET_KEY="workers-secret-" + "x" * 32)
    with serving(env, port, tmp_path / "serve.log", "--workers", "2"):
        directories = list(tmp_path.glob("metrics-*"))
        assert len(directories) == 1 and directories[0].is_dir()
        for _ in range(20):
            # A new connection each time, so that both workers take some.
            with httpx.Client() as http:
                response = http.post(f"http://127.0.0.1:{port}/graphql", json={"query": HELLO})
            assert response.status_code == 200 and "errors" not in response.json()
        # Every scrape sums all workers, whichever answers it. A worker still starting (under
        # load its siblings can take every request first) reports its broker as not yet
        # connected, so look again until both are up, within a bound.
        deadline = time.monotonic() + 30
        while True:
            with httpx.Client() as http:
                response = http.get(f"http://127.0.0.1:{port}/metrics")
            assert response.status_code == 200, response.text
            scraped = Scrape(response.text)
            assert scraped("pcg_operations_total", type="query", name="Hello", outcome="ok") == 20
            pids = {p.stem.rsplit("_", 1)[-1] for p in directories[0].glob("*.db")}
            if scraped("pcg_broker_connected") == 1 and len(pids) >= 2:
                break  # both workers wrote their values there, and both brokers are connected
            assert time.monotonic() < deadline, (scraped("pcg_broker_connected"), pids)
            time.sleep(0.2)
    assert not directories[0].exists()  # removed when pcg serve exits
