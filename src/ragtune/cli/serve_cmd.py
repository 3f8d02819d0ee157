"""ragtune serve."""

from __future__ import annotations

import json
import os
from pathlib import Path

import click

from ragtune.cli.common import err_console, json_option, open_project, project_option
from ragtune.errors import ConfigError


@click.command("serve")
@click.option(
    "--host", default=None, help="Address to bind (default [server] host). Beyond loopback needs RAGTUNE_API_TOKEN."
)
@click.option("--port", type=click.IntRange(1, 65535), default=None, help="Port to bind (default [server] port).")
@click.option(
    "--log-level",
    type=click.Choice(["critical", "error", "warning", "info", "debug"]),
    default="info",
    show_default=True,
    help="uvicorn's log level (info logs each request).",
)
@project_option
@json_option
def serve_cmd(host: str | None, port: int | None, log_level: str, project_dir: Path | None, as_json: bool) -> None:
    """Serve the project over HTTP: OpenAI-compatible chat, search, ask, ingest, forget and traces.

    Callers authenticate with `Authorization: Bearer <token>`: RAGTUNE_API_TOKEN is the admin's token, and
    [server.callers.NAME] tables in ragtune.toml add more. With no token set, only loopback addresses may be bound.
    Models load before the server accepts requests. See docs/server.md.
    """
    project = open_project(project_dir)
    settings = project.config.server
    host = host or settings.host
    port = port or settings.port
    try:
        import uvicorn

        from ragtune.server.app import create_app
        from ragtune.server.auth import TOKEN_ENV, check_bind
        from ragtune.server.connections import bind, server_config
    except ImportError as exc:
        raise ConfigError(f"`ragtune serve` needs {exc.name}; run `pip install fastapi uvicorn`") from None
    check_bind(host, os.environ)  # before anything loads: a refused address must not wait for a model
    app = create_app(project)
    # Bound here, before uvicorn's start-up loads the models: a port in use fails in a moment, not after them.
    sockets = bind(host, port)
    state = app.state.ragtune
    shown = f"[{host.strip('[]')}]" if ":" in host else host
    info = {
        "url": f"http://{shown}:{port}",
        "project": str(project.root),
        "auth": "token" if state.callers.token_required else f"none ({TOKEN_ENV} not set; loopback only)",
        "openai_base_url": f"http://{shown}:{port}/v1",
    }
    try:
        if as_json:
            click.echo(json.dumps(info))
        else:
            err_console.print(
                f"serving {info['project']} at {info['url']} (auth: {info['auth']}); loading models, then ready",
                markup=False,
            )
        uvicorn.Server(server_config(app, host, port, log_level=log_level)).run(sockets=sockets)
    finally:
        for sock in sockets:
            sock.close()
        project.close()


def register(cli: click.Group) -> None:
    cli.add_command(serve_cmd)
