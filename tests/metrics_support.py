"""Scraping /metrics in tests: the exposition parsed by prometheus_client's own parser."""

from __future__ import annotations

import asyncio
import time

from prometheus_client.parser import text_string_to_metric_families


class Scrape:
    def __init__(self, text: str) -> None:
        self.text = text
        self.values: dict[tuple[str, frozenset], float] = {}
        self.names: set[str] = set()
        for family in text_string_to_metric_families(text):
            self.names.add(family.name)
            for sample in family.samples:
                self.names.add(sample.name)
                self.values[(sample.name, frozenset(sample.labels.items()))] = sample.value

    # Positional-only: `name` is also a label (the operation's).
    def __call__(self, metric: str, /, **labels: str) -> float:
        return self.values.get((metric, frozenset(labels.items())), 0.0)

    def delta(self, before: Scrape, metric: str, /, **labels: str) -> float:
        return self(metric, **labels) - before(metric, **labels)


async def scrape(http, headers: dict | None = None) -> Scrape:
    response = await http.get("/metrics", headers=headers or {})
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    return Scrape(response.text)


async def scrape_until(http, check, headers: dict | None = None, timeout: float = 10.0) -> Scrape:
    """Scrape until `check(scrape)` holds (something finishing in the background)."""
    deadline = time.monotonic() + timeout
    while True:
        current = await scrape(http, headers)
        if check(current) or time.monotonic() > deadline:
            return current
        await asyncio.sleep(0.05)
