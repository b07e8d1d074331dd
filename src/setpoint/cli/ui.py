"""``setpoint ui``: the dashboard alone, on a workspace, with no model loaded."""

from __future__ import annotations

from typing import Annotated

import typer

from setpoint.cli._common import JsonFlag, is_json, state, stderr


def ui(
    ctx: typer.Context,
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8080,
    insecure: Annotated[
        bool,
        typer.Option(
            "--insecure",
            help="Allow listening on a non-loopback address without API keys.",
        ),
    ] = False,
    json_: JsonFlag = False,
) -> None:
    """Serve the dashboard (/ui) of the workspace until interrupted, without serving
    its models: to look at a workspace, or to approve a rollout, from a browser.

    `setpoint serve` serves the same dashboard at /ui beside the endpoints. Once the
    workspace has ever had an API key, the dashboard asks for one (scope read to look,
    approve to approve, reject and acknowledge) and remembers it with a cookie for
    eight hours. Beyond loopback it needs keys unless --insecure."""
    import json

    import uvicorn

    from setpoint.serving.server import check_address, exposure, is_loopback
    from setpoint.ui.app import create_ui_app
    from setpoint.workspace import Workspace

    st = state(ctx)
    ws = st.workspace()
    overrides = exposure(
        host, insecure=insecure, has_keys=bool(ws.keys.list()), overrides={}, scope="read"
    )
    if overrides:  # beyond loopback: keys are required even if every one is revoked later
        ws = Workspace.open(ws.root, **{**st.overrides, **overrides})
    check_address(host, port)
    shown = f"[{host}]" if ":" in host else host
    url = f"http://{shown}:{port}/ui/"
    if is_json(ctx):
        print(json.dumps({"url": url, "keys_required": ws.settings.require_keys}), flush=True)
    else:
        stderr().print(f"Dashboard of {ws.root} on {url}; Ctrl-C to stop.", highlight=False)
        if not is_loopback(host):
            stderr().print(
                "[bold yellow]warning:[/] plain HTTP beyond loopback: put a TLS proxy in front.",
                highlight=False,
            )
    uvicorn.run(
        create_ui_app(ws),
        host=host,
        port=port,
        log_level="warning",
        access_log=False,
        proxy_headers=False,
        server_header=False,
    )
