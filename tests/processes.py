"""Real `pcg serve` processes for the tests that need a server of their own."""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from server.settings import PROJECT_ROOT

_SCRIPT = Path(sys.executable).parent / "pcg"
PCG = [str(_SCRIPT)] if _SCRIPT.exists() else [sys.executable, "-m", "server.cli"]
TIMEOUT = 30


def subprocess_env(data_dir: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PCG_")}
    return env | {"PCG_DATA_DIR": str(data_dir), "PYTHONUNBUFFERED": "1"} | extra


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _start(env: dict[str, str], port: int, log: Path, args) -> subprocess.Popen:
    with log.open("w") as out:
        return subprocess.Popen(
            [*PCG, "serve", "--host", "127.0.0.1", "--port", str(port), *args],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=PROJECT_ROOT,
        )


def _healthy(port: int) -> bool:
    try:
        return httpx.get(f"http://127.0.0.1:{port}/api/health", timeout=1).status_code == 200
    except httpx.TransportError:
        return False


def _stop(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


@contextlib.contextmanager
def serving(env: dict[str, str], port: int, log: Path, *args: str):
    """Run `pcg serve` until /api/health answers; always stop it."""
    proc = _start(env, port, log, args)
    try:
        deadline = time.monotonic() + TIMEOUT
        while not _healthy(port):
            if proc.poll() is not None:
                pytest.fail(f"pcg serve exited with {proc.returncode}:\n{log.read_text()}")
            if time.monotonic() > deadline:
                pytest.fail(f"pcg serve did not become healthy in {TIMEOUT} s:\n{log.read_text()}")
            time.sleep(0.1)
        yield log.read_text()
    finally:
        _stop(proc)


@contextlib.asynccontextmanager
async def aserving(env: dict[str, str], port: int, log: Path, *args: str):
    """`serving` for async tests: waits without blocking the event loop."""
    proc = _start(env, port, log, args)
    try:
        deadline = time.monotonic() + TIMEOUT
        async with httpx.AsyncClient() as client:
            while True:
                try:
                    r = await client.get(f"http://127.0.0.1:{port}/api/health", timeout=1)
                    if r.status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                if proc.poll() is not None:
                    pytest.fail(f"pcg serve exited with {proc.returncode}:\n{log.read_text()}")
                if time.monotonic() > deadline:
                    pytest.fail(f"pcg serve did not become healthy in {TIMEOUT} s:\n{log.read_text()}")
                await asyncio.sleep(0.1)
        yield proc
    finally:
        await asyncio.to_thread(_stop, proc)


class RedisServer:
    """A private redis-server, so the test can stop and restart it without touching others."""

    def __init__(self, tmp_path) -> None:
        self.port = free_port()
        self.dir = tmp_path
        self.proc = None

    def start(self) -> None:
        self.proc = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", str(self.dir)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while subprocess.run(["redis-cli", "-p", str(self.port), "ping"], capture_output=True).stdout.strip() != b"PONG":
            if time.monotonic() > deadline:
                raise RuntimeError("private redis-server did not start")
            time.sleep(0.05)

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(10)
            self.proc = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}"
