"""`pcg serve` with one fault injected: `organization(slug:)` raises an unexpected error, so a
test can follow a masked error from the response to its log line in a real process.

    python -m tests.faulty_server serve --host 127.0.0.1 --port N

Importing this module changes nothing (tests import FAULT); only running it injects the fault.
"""

from __future__ import annotations

import sys

FAULT = "injected fault for the log test"


async def _boom(ctx, slug: str):
    raise RuntimeError(FAULT)


def main(argv: list[str]) -> int:
    import resolvers.org.organizations
    from server.cli import main as pcg

    resolvers.org.organizations.organization_by_slug = _boom
    return pcg(argv)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
