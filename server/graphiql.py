"""The GraphiQL page: our own build (graphiql/, bundled from the npm registry's packages by a
pinned lock file into graphiql/dist/) served from this origin, so it works offline. Without
that build, Strawberry's page, which loads everything from unpkg, with a note on how to build."""

from __future__ import annotations

import html

from starlette.staticfiles import StaticFiles

from server.settings import PROJECT_ROOT

GRAPHIQL_DIR = PROJECT_ROOT / "graphiql"
DIST = GRAPHIQL_DIR / "dist"
PAGE = GRAPHIQL_DIR / "index.html"
# Where the page (at /graphql) finds its assets: graphiql/index.html names them relatively.
STATIC_PATH = "/graphiql/static"
BUILT_FILES = ("graphiql.js", "graphiql.css", "workers/editor.js", "workers/graphql.js", "workers/json.js")

BUILD_HINT = (
    "GraphiQL's offline build is missing, so this page loads GraphiQL from unpkg.com and needs "
    "internet access. To serve it from this server: install Node.js 20+ with npm, then run "
    "`make graphiql` (or `make demo`) in the source tree, and reload."
)


def is_built() -> bool:
    return PAGE.is_file() and all((DIST / name).is_file() for name in BUILT_FILES)


def page() -> str:
    # Read per request: a `make graphiql` while the server runs takes effect on reload.
    return PAGE.read_text(encoding="utf-8")


def with_build_hint(cdn_page: str) -> str:
    """Strawberry's CDN page with the hint in a bar along the bottom (its CSP allows inline styles)."""
    notice = (
        '<div id="graphiql-build-hint" role="status" style="position:fixed;bottom:0;left:0;right:0;'
        "z-index:10;padding:6px 12px;font:13px sans-serif;background:#fff3cd;color:#664d03;"
        f'border-top:1px solid #ffe69c">{html.escape(BUILD_HINT)}</div>'
    )
    head, marker, rest = cdn_page.partition("<body>")
    return f"{head}{marker}\n{notice}{rest}" if marker else notice + cdn_page


class Assets(StaticFiles):
    """graphiql/dist/: file names carry no hash, so browsers revalidate (ETag, 304) rather
    than keep an old bundle after a rebuild."""

    def file_response(self, *args, **kwargs):
        response = super().file_response(*args, **kwargs)
        response.headers["Cache-Control"] = "no-cache"
        return response


def static_files() -> StaticFiles:
    # No check at startup: without a build the page falls back and nothing asks for these.
    return Assets(directory=DIST, check_dir=False)
