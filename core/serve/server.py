"""Start ``lookalike serve`` from its parsed arguments: check them, load the library, run uvicorn.

Safe by default: it listens on 127.0.0.1; any other address needs a token (``--token-file``) and it refuses to
start without one. On loopback without a token only the loopback names are accepted as Host, so a web page
cannot reach the service by rebinding a DNS name to 127.0.0.1.
"""

from __future__ import annotations

import ipaddress
import logging
import os
import stat
import sys

from core.errors import LookalikeError
from core.progress import ProgressFn, no_progress

log = logging.getLogger(__name__)

LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1", "[::1]")


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def read_token(path: str | os.PathLike) -> str:
    """The token in ``path`` (surrounding whitespace dropped); ``ValueError`` if unreadable or empty."""
    try:
        with open(path, encoding="utf-8") as fh:
            token = fh.read().strip()
        mode = os.stat(path).st_mode
    except (OSError, UnicodeDecodeError) as e:
        raise ValueError(
            f"cannot read the token file {os.fspath(path)}: {getattr(e, 'strerror', None) or e}"
        ) from None
    if not token or any(c.isspace() for c in token):
        raise ValueError(f"the token file {os.fspath(path)} must hold one token (no spaces)")
    if len(token) < 16:
        raise ValueError(
            f"the token in {os.fspath(path)} is too short: use at least 16 characters "
            "(e.g. python -c 'import secrets; print(secrets.token_urlsafe())')"
        )
    if mode & (stat.S_IRGRP | stat.S_IROTH):
        log.warning("the token file %s can be read by other users (chmod 600 it)", os.fspath(path))
    return token


def run(a, progress: ProgressFn = no_progress, done=lambda: None) -> int:
    """Serve ``a.paths`` until interrupted (``a``: the ``serve`` subcommand's arguments)."""
    token = read_token(a.token_file) if a.token_file else None
    loopback = is_loopback(a.host)
    if not loopback and token is None:
        raise ValueError(
            f"refusing to listen on {a.host} without a token: anyone who can reach it could query "
            "your photos. Pass --token-file FILE (clients send 'Authorization: Bearer <token>'), "
            "or keep the default --host 127.0.0.1"
        )
    try:
        import uvicorn

        from core.serve.app import create_app
    except ImportError as e:
        raise LookalikeError(
            f"lookalike serve needs its extra ({e.name} is missing): pip install 'lookalike[serve]'"
        ) from None
    from core.scan import ScanOptions
    from core.serve.roots import Roots
    from core.serve.service import ServeEngine, Service

    roots = Roots(a.paths)
    engine = ServeEngine(model_dir=a.model, device=a.device, cache_dir=a.cache_dir, use_cache=not a.no_cache)
    options = ScanOptions(
        include=tuple(a.include), exclude=tuple(a.exclude), min_size=a.min_size, include_hidden=a.hidden
    )
    service = Service(engine, roots, options)
    try:
        lib = service.load(progress)
    finally:
        done()
    hosts = None if token or not loopback else [*LOOPBACK_HOSTS, a.host]
    app = create_app(service, token=token, cors_origins=a.cors_origin, allowed_hosts=hosts)
    shown = f"[{a.host}]" if ":" in a.host and not a.host.startswith("[") else a.host
    print(
        f"lookalike: serving {len(lib.files)} photos ({len(lib.problems)} problems) from "
        f"{', '.join(roots.paths)} at http://{shown}:{a.port}/ (API docs at /docs"
        f"{'; token required' if token else ''}). Ctrl+C stops.",
        file=sys.stderr,
        flush=True,
    )
    config = uvicorn.Config(
        app,
        host=a.host,
        port=a.port,
        log_level="warning",
        access_log=False,
        server_header=False,
        lifespan="off",
    )
    server = uvicorn.Server(config)
    try:
        server.run()
    except KeyboardInterrupt:  # uvicorn stops cleanly on Ctrl+C, then raises it again: a normal stop
        pass
    finally:
        service.close()
    return 0 if server.started else 1
