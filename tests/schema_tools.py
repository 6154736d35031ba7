"""The pinned npm schema tools of tests/tools (graphql-inspector, graphql-codegen), installed
once per lock file with `npm ci` and run as subprocesses."""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from server.settings import PROJECT_ROOT

TOOLS = PROJECT_ROOT / "tests" / "tools"
LOCK = TOOLS / "package-lock.json"
ON_CI = bool(os.environ.get("CI"))
TIMEOUT = 120


def unavailable(reason: str):
    """Skip where Node or the registry cannot be had here; on CI, fail."""
    if ON_CI:
        pytest.fail(f"{reason} (CI must run the schema tools)")
    pytest.skip(reason)


def npm_ci(folder: Path) -> Path:
    """`folder`/node_modules, installed by `npm ci` from its lock file whenever the lock
    changed since the last install (a stamp records its hash)."""
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        unavailable(f"node and npm are needed for {folder.name}/")
    lock = folder / "package-lock.json"
    digest = hashlib.sha256(lock.read_bytes()).hexdigest()
    stamp = folder / "node_modules" / ".pcg-lock-sha256"
    # Two test processes must not run `npm ci` into the same folder at once.
    guard = Path(tempfile.gettempdir()) / f"pcg-npm-{hashlib.sha256(bytes(folder)).hexdigest()[:12]}.lock"
    with open(guard, "w") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        if not (stamp.exists() and stamp.read_text() == digest):
            done = subprocess.run([npm, "ci", "--no-audit", "--no-fund", "--loglevel=error"], cwd=folder,
                                  capture_output=True, text=True, timeout=300, check=False)
            if done.returncode != 0:
                unavailable(f"npm ci in {folder} failed:\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}")
            stamp.write_text(digest)
    return folder / "node_modules"


def installed_tools() -> Path:
    """tests/tools/node_modules/.bin: graphql-inspector and graphql-codegen."""
    return npm_ci(TOOLS) / ".bin"


def inspector_diff(old: Path, new: Path) -> dict[str, list[dict]]:
    """graphql-inspector's diff of two SDL files: {"breaking", "dangerous", "safe"}, each a list
    of {type, message, path}."""
    bin_dir = installed_tools()
    with tempfile.TemporaryDirectory() as tmp:
        report = Path(tmp) / "diff.json"
        done = subprocess.run(
            [str(bin_dir / "graphql-inspector"), "diff", str(old), str(new),
             "--onComplete", str(TOOLS / "report-changes.cjs")],
            cwd=TOOLS, env=os.environ | {"PCG_INSPECTOR_REPORT": str(report)},
            capture_output=True, text=True, timeout=TIMEOUT, check=False,
        )
        assert done.returncode == 0 and report.exists(), (
            f"graphql-inspector diff failed ({done.returncode}):\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
        )
        return json.loads(report.read_text())


def codegen(schema: Path, documents: list[Path], out: Path) -> subprocess.CompletedProcess:
    """graphql-codegen with the typescript and typescript-operations plugins. Every custom
    scalar must be mapped (`strictScalars`): a new one fails here until it is given a type."""
    bin_dir = installed_tools()
    config = out.with_suffix(".codegen.json")
    config.write_text(json.dumps({
        "schema": str(schema),
        "documents": [str(d) for d in documents],
        "generates": {str(out): {
            "plugins": ["typescript", "typescript-operations"],
            "config": {
                "strictScalars": True,
                "scalars": {"DateTime": "string", "Date": "string", "JSON": "unknown"},
            },
        }},
    }))
    return subprocess.run(
        [str(bin_dir / "graphql-codegen"), "--config", str(config)],
        cwd=TOOLS, capture_output=True, text=True, timeout=TIMEOUT, check=False,
    )
