"""HTTP caching of GET query answers: an ETag of the body, 304 on If-None-Match, and a
Cache-Control that never lets a shared cache keep an answer given to a credential."""

from __future__ import annotations

import hashlib

from starlette.requests import Request
from starlette.responses import Response


def http_cache(request: Request, response: Response) -> Response:
    etag = '"' + hashlib.sha256(response.body).hexdigest()[:32] + '"'
    authenticated = "authorization" in request.headers
    # An answer depends on who asks: only the asker's own browser may keep it, and not on
    # disk; an anonymous answer may be kept but is revalidated (cheap with the ETag).
    cache_control = "private, no-store" if authenticated else "public, no-cache"
    vary = "Authorization, Accept"
    matches = request.headers.get("if-none-match", "")
    if etag in [tag.strip() for tag in matches.split(",")] or matches.strip() == "*":
        not_modified = Response(status_code=304)
        not_modified.headers.update({"ETag": etag, "Cache-Control": cache_control, "Vary": vary})
        return not_modified
    response.headers["ETag"] = etag
    response.headers["Cache-Control"] = cache_control
    response.headers["Vary"] = vary
    return response
