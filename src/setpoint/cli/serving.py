"""``setpoint deploy`` and ``setpoint deployments``: endpoints and what they serve."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from setpoint.cli._common import (
    Col,
    Group,
    JsonFlag,
    emit,
    facts,
    fmt,
    is_json,
    render_rows,
    short,
    state,
)
from setpoint.errors import UsageError
from setpoint.serving.config import Fallback
from setpoint.serving.deployments import Deployment

deployments_app = typer.Typer(
    cls=Group, help="Endpoints, their configuration and its history.", no_args_is_help=True
)

Endpoint = Annotated[str, typer.Argument(help="Endpoint name, e.g. credit.", show_default=False)]
_TUNING = "Hot path"


def deploy(
    ctx: typer.Context,
    endpoint: Endpoint,
    model: Annotated[
        str | None,
        typer.Option(
            help="What serves: NAME@ALIAS follows the alias (NAME alone means NAME@champion), "
            "NAME@VERSION pins a version (MLflow's models:/NAME@ALIAS and "
            "models:/NAME/VERSION too). Required for a new endpoint."
        ),
    ] = None,
    challenger: Annotated[
        str | None, typer.Option(help="A second model that gets traffic by --mode.")
    ] = None,
    mode: Annotated[
        str | None,
        typer.Option(
            help="shadow: the challenger gets a copy of each request, off the caller's "
            "path; canary: it answers --share of the requests."
        ),
    ] = None,
    share: Annotated[float | None, typer.Option(help="Share of requests a canary answers.")] = None,
    sticky_key: Annotated[
        str | None,
        typer.Option(
            help="Input column whose value keeps a caller on one route (canary); "
            "without it the share is drawn per request."
        ),
    ] = None,
    no_challenger: Annotated[
        bool, typer.Option("--no-challenger", help="Remove the challenger.")
    ] = False,
    fallback_model: Annotated[
        str | None, typer.Option(help="Model that answers while the model cannot.")
    ] = None,
    fallback_value: Annotated[
        str | None,
        typer.Option(help='Constant answer (JSON) while the model cannot, e.g. 0 or "review".'),
    ] = None,
    no_fallback: Annotated[
        bool, typer.Option("--no-fallback", help="Remove the fallback.")
    ] = False,
    max_batch_size: Annotated[
        int | None, typer.Option(help="Most rows predicted in one call.", rich_help_panel=_TUNING)
    ] = None,
    max_wait_ms: Annotated[
        float | None,
        typer.Option(
            help="Most a request waits for others to batch with.", rich_help_panel=_TUNING
        ),
    ] = None,
    cache: Annotated[
        bool | None,
        typer.Option(
            "--cache/--no-cache",
            help="Answer repeated inputs from a cache.",
            rich_help_panel=_TUNING,
        ),
    ] = None,
    cache_size: Annotated[
        int | None, typer.Option(help="Cached answers kept.", rich_help_panel=_TUNING)
    ] = None,
    cache_ttl: Annotated[
        float | None, typer.Option(help="Seconds a cached answer lives.", rich_help_panel=_TUNING)
    ] = None,
    latency_budget_ms: Annotated[
        float | None,
        typer.Option(
            help="Past this, the fallback answers (and the breaker counts a failure).",
            rich_help_panel=_TUNING,
        ),
    ] = None,
    max_queue_rows: Annotated[
        int | None,
        typer.Option(
            help="Rows that may wait for the model; beyond them (or beyond what the "
            "latency budget allows) new requests get 503 with Retry-After.",
            rich_help_panel=_TUNING,
        ),
    ] = None,
    on_error: Annotated[
        str | None,
        typer.Option(
            help="A batch with bad rows: reject it whole (422), or per_row: answer the good "
            "rows and list errors for the others.",
            rich_help_panel=_TUNING,
        ),
    ] = None,
    log: Annotated[
        str | None,
        typer.Option(
            help="durable: a prediction is on disk before it is answered; async: lower "
            "latency, the last few milliseconds can be lost in a crash.",
            rich_help_panel=_TUNING,
        ),
    ] = None,
    log_retention: Annotated[
        str | None,
        typer.Option(
            help="Delete the endpoint's log records (predictions, feedback, refused rows) "
            "older than this, e.g. 90d or 36h, by a daily job. Default: keep them.",
        ),
    ] = None,
    no_log_retention: Annotated[
        bool, typer.Option("--no-log-retention", help="Keep log records for good.")
    ] = False,
    docs_values: Annotated[
        bool | None,
        typer.Option(
            "--docs-values/--no-docs-values",
            help="Show the ranges and categories of the training data, and example rows, "
            "in /openapi.json and /docs (never for personal-data columns). Default: "
            "columns and types only.",
        ),
    ] = None,
    note: Annotated[str, typer.Option(help="Why (kept in the audit log).")] = "",
    json_: JsonFlag = False,
) -> None:
    """Create an endpoint or change what it serves and how. Settings not given keep
    their current values; every change is a new revision."""
    if fallback_model is not None and fallback_value is not None:
        raise UsageError("give --fallback-model or --fallback-value, not both")
    if log_retention is not None and no_log_retention:
        raise UsageError("give --log-retention or --no-log-retention, not both")
    fallback = None
    if fallback_model is not None:
        fallback = Fallback(model=fallback_model)
    elif fallback_value is not None:
        try:
            fallback = Fallback(value=json.loads(fallback_value))
        except json.JSONDecodeError:
            raise UsageError(
                f"--fallback-value {fallback_value!r} is not JSON; quote text: '\"review\"'"
            ) from None
    deployment = (
        state(ctx)
        .workspace()
        .deploy(
            endpoint,
            note=note,
            model=model,
            challenger=challenger,
            mode=mode,
            share=share,
            sticky_key=sticky_key,
            no_challenger=no_challenger or None,
            fallback=fallback,
            no_fallback=no_fallback or None,
            max_batch_size=max_batch_size,
            max_wait_ms=max_wait_ms,
            cache_enabled=cache,
            cache_size=cache_size,
            cache_ttl_s=cache_ttl,
            latency_budget_ms=latency_budget_ms,
            max_queue_rows=max_queue_rows,
            on_error=on_error.replace("-", "_") if on_error else None,
            log=log,
            log_retention=log_retention,
            no_log_retention=no_log_retention or None,
            docs_values=docs_values,
        )
    )
    emit(ctx, deployment.to_dict(), lambda c: _render(c, deployment))


@deployments_app.command("list")
def list_(ctx: typer.Context, json_: JsonFlag = False) -> None:
    """List endpoints with what they serve."""
    found = state(ctx).workspace().deployments.current()

    def render(c: Console) -> None:
        if not found:
            c.print(
                "No endpoints yet. Create one with: setpoint deploy NAME --model MODEL@champion"
            )
            return
        render_rows(
            c,
            [
                "endpoint",
                short("revision", "right"),
                "model",
                "challenger",
                "fallback",
                short("updated (UTC)"),
            ],
            [
                (
                    d.endpoint,
                    str(d.revision),
                    d.config.model,
                    f"{d.config.challenger} ({d.config.mode})" if d.config.challenger else "-",
                    _fallback(d),
                    d.created_at.strftime("%Y-%m-%d %H:%M"),
                )
                for d in found
            ],
        )

    emit(ctx, [d.to_dict() for d in found], render)


@deployments_app.command("show")
def show(ctx: typer.Context, endpoint: Endpoint, json_: JsonFlag = False) -> None:
    """Show an endpoint's current configuration."""
    deployment = state(ctx).workspace().deployments.get(endpoint)
    emit(ctx, deployment.to_dict(), lambda c: _render(c, deployment))


@deployments_app.command("history")
def history(ctx: typer.Context, endpoint: Endpoint, json_: JsonFlag = False) -> None:
    """Every revision of an endpoint, oldest first."""
    revisions = state(ctx).workspace().deployments.history(endpoint)

    def render(c: Console) -> None:
        render_rows(
            c,
            [
                short("revision", "right"),
                short("when (UTC)"),
                "by",
                "model",
                "challenger",
                Col("note", fold=16),
            ],
            [
                (
                    str(d.revision),
                    d.created_at.strftime("%Y-%m-%d %H:%M:%S"),
                    d.created_by,
                    d.config.model,
                    f"{d.config.challenger} ({d.config.mode})" if d.config.challenger else "-",
                    d.note,
                )
                for d in revisions
            ],
        )

    emit(ctx, [d.to_dict() for d in revisions], render)


def _fallback(d: Deployment) -> str:
    fb = d.config.fallback
    if fb is None:
        return "-"
    return fb.model if fb.model else f"constant {json.dumps(fb.value)}"


def _render(c: Console, d: Deployment) -> None:
    cfg = d.config
    rows: list[tuple[str, Any]] = [
        ("endpoint", f"{d.endpoint} (revision {d.revision})"),
        ("model", cfg.model),
        (
            "challenger",
            f"{cfg.challenger} ({cfg.mode}, share {cfg.share})" if cfg.challenger else "-",
        ),
        ("fallback", _fallback(d)),
        (
            "batching",
            f"up to {cfg.batching.max_batch_size} rows, wait <= {fmt(cfg.batching.max_wait_ms)} ms",
        ),
        (
            "cache",
            f"{cfg.cache.size} entries, {fmt(cfg.cache.ttl_s)} s" if cfg.cache.enabled else "off",
        ),
        ("latency budget", f"{fmt(cfg.latency_budget_ms)} ms"),
        ("max queued rows", fmt(cfg.max_queue_rows)),
        ("bad rows", "reject the batch" if cfg.on_error == "reject" else "answer per row"),
        ("prediction log", cfg.log),
        ("log retention", cfg.log_retention or "keep every record"),
        (
            "API docs",
            "ranges, categories, examples" if cfg.docs_values else "columns and types only",
        ),
        ("changed", f"{d.created_at.isoformat(timespec='seconds')} by {d.created_by}"),
    ]
    c.print(facts((key, str(value)) for key, value in rows))


_RAY = "Ray engine (--engine ray)"


def serve(
    ctx: typer.Context,
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8000,
    workers: Annotated[int, typer.Option(help="Server processes (one core each).")] = 1,
    insecure: Annotated[
        bool,
        typer.Option(
            "--insecure",
            help="Allow listening on a non-loopback address without API keys (a workspace "
            "that has ever had a key still needs one).",
        ),
    ] = False,
    require_keys: Annotated[
        bool,
        typer.Option(
            "--require-keys",
            help="Every request needs a valid API key, even while the workspace has none "
            "(401 until `setpoint keys create`); also the require_keys setting.",
        ),
    ] = False,
    background: Annotated[
        str,
        typer.Option(
            help="What runs beside the server: worker (due jobs, e.g. retraining a policy "
            "asked for), loop (also monitors, policies and rollouts, every --loop-every "
            "seconds), or off (run `setpoint worker` / `setpoint loop` apart).",
        ),
    ] = "worker",
    loop_every: Annotated[
        float, typer.Option(help="Seconds between ticks of the loop (--background loop).")
    ] = 300.0,
    tls_cert: Annotated[
        Path | None,
        typer.Option(
            help="Serve HTTPS with this certificate (PEM; intermediates after it).",
            rich_help_panel="TLS",
        ),
    ] = None,
    tls_key: Annotated[
        Path | None,
        typer.Option(
            help="The certificate's private key (PEM, not encrypted).", rich_help_panel="TLS"
        ),
    ] = None,
    engine: Annotated[
        str,
        typer.Option(
            help="local: uvicorn processes on this machine; ray: replicas on a Ray "
            "cluster behind Ray Serve's proxy (the ray extra; see docs/scaling.md).",
        ),
    ] = "local",
    replicas: Annotated[
        int, typer.Option(help="Replicas, each serving every endpoint.", rich_help_panel=_RAY)
    ] = 1,
    min_replicas: Annotated[
        int | None,
        typer.Option(help="Autoscale between this and --max-replicas.", rich_help_panel=_RAY),
    ] = None,
    max_replicas: Annotated[
        int | None, typer.Option(help="Autoscale up to this many.", rich_help_panel=_RAY)
    ] = None,
    target_ongoing: Annotated[
        float,
        typer.Option(
            help="Autoscaling target: ongoing requests per replica.", rich_help_panel=_RAY
        ),
    ] = 8.0,
    max_ongoing: Annotated[
        int,
        typer.Option(help="Requests a replica takes at once (more wait).", rich_help_panel=_RAY),
    ] = 64,
    replica_cpus: Annotated[
        float, typer.Option(help="CPUs Ray reserves per replica.", rich_help_panel=_RAY)
    ] = 1.0,
    address: Annotated[
        str | None,
        typer.Option(
            help="A running Ray cluster (default: $RAY_ADDRESS, else start one here).",
            rich_help_panel=_RAY,
        ),
    ] = None,
    proxy_on_every_node: Annotated[
        bool,
        typer.Option(
            "--proxy-on-every-node",
            help="Run Ray Serve's HTTP proxy on every node (behind a load balancer), "
            "not only on the head node.",
            rich_help_panel=_RAY,
        ),
    ] = False,
    json_: JsonFlag = False,
) -> None:
    """Serve every endpoint of the workspace over HTTP, or HTTPS with --tls-cert and
    --tls-key, until interrupted (Ctrl-C drains in-flight requests and flushes the
    prediction log). The job worker runs beside it unless --background off. The
    dashboard is at /ui on the same address (see setpoint ui).

    Requests need an API key once the workspace has ever had one (revoking every key
    closes the server, it never opens it), with --require-keys, and beyond loopback
    unless --insecure. Beyond loopback, serve HTTPS (or put a TLS proxy in front): API
    keys and the data cross the network in the clear otherwise, and the server warns
    about it."""
    from setpoint.serving.server import check_address, is_loopback
    from setpoint.serving.server import serve as run
    from setpoint.serving.tls import check_tls

    if engine not in ("local", "ray"):
        raise UsageError(f"--engine {engine!r}: use local or ray")
    tls = check_tls(tls_cert, tls_key)
    if engine == "ray":
        _check_ray_options(ctx, tls is not None, workers, background, min_replicas, max_replicas)
    st = state(ctx)
    ws = st.workspace()
    overrides = {**st.overrides, **({"require_keys": True} if require_keys else {})}
    endpoints = ws.deployments.current()
    if not endpoints:
        raise UsageError(
            "the workspace has no endpoints to serve; create one with: "
            "setpoint deploy NAME --model MODEL@champion"
        )
    if engine == "local" or not (address or os.environ.get("RAY_ADDRESS")):
        check_address(host, port)  # the proxy listens on this machine too
    stderr_console = Console(stderr=True)
    if tls is None and not is_loopback(host):
        stderr_console.print(
            f"[bold yellow]warning:[/] {host} is reachable from other machines and this "
            "server speaks plain HTTP: API keys and data cross the network in the clear. "
            "Give --tls-cert and --tls-key, or put a TLS proxy in front.",
            highlight=False,
        )
    scheme = "https" if tls is not None else "http"
    active = ws.keys.list()
    required = (
        require_keys
        or ws.settings.require_keys
        or bool(ws.keys.list(include_revoked=True))
        or (not is_loopback(host) and not insecure)
    )
    names = [d.endpoint for d in endpoints]
    started: dict[str, Any] = {
        "endpoints": names,
        "url": f"{scheme}://{host}:{port}",
        "workers": workers,
        "keys_required": required,
        "active_keys": len(active),
    }

    def announce(url: str, how: str) -> None:
        if is_json(ctx):  # one line a script can read before the server's own log
            print(json.dumps({**started, "url": url}), flush=True)
        else:
            stderr_console.print(
                f"Serving {', '.join(names)} on {url} ({how}); Ctrl-C to stop.",
                highlight=False,
            )
            stderr_console.print(_keys_status(required, len(active)), highlight=False)

    if engine == "ray":
        from setpoint.serving import ray_engine
        from setpoint.serving.server import exposure

        scale = ray_engine.Replicas(
            fixed=replicas, minimum=min_replicas, maximum=max_replicas, target=target_ongoing
        )
        started.pop("workers")
        started["replicas"] = scale.describe()
        if not is_json(ctx):
            where = address or os.environ.get("RAY_ADDRESS") or "this machine"
            stderr_console.print(f"Starting {scale.describe()} on Ray ({where})…", highlight=False)
        ray_engine.serve_until_stopped(
            ws,
            address=address,
            announce=lambda url: announce(url, f"{scale.describe()} on Ray"),
            overrides=exposure(host, insecure=insecure, has_keys=bool(active), overrides=overrides),
            host=host,
            port=port,
            replicas=scale,
            proxy_on_every_node=proxy_on_every_node,
            replica=ray_engine.ReplicaSettings(
                cpus=replica_cpus,
                max_ongoing=max_ongoing,
                background=background,
                loop_every=loop_every,
            ),
        )
        return
    announce(started["url"], f"{workers} worker{'s' if workers > 1 else ''}")
    run(
        str(ws.root),
        host=host,
        port=port,
        workers=workers,
        insecure=insecure,
        has_keys=bool(active),
        overrides=overrides,
        background=background,
        loop_every=loop_every,
        tls=tls,
    )


def _check_ray_options(
    ctx: typer.Context,
    tls: bool,
    workers: int,
    background: str,
    min_replicas: int | None,
    max_replicas: int | None,
) -> None:
    """Refuse what --engine ray cannot do, naming what to do instead."""
    if tls:
        raise UsageError(
            "--engine ray serves plain HTTP from Ray Serve's proxy: leave out --tls-cert and "
            "--tls-key and terminate TLS at the load balancer in front of the cluster"
        )
    if workers != 1:
        raise UsageError("--workers is for --engine local; on Ray, give --replicas")
    source = ctx.get_parameter_source("replicas")
    autoscaled = min_replicas is not None or max_replicas is not None
    if autoscaled and source is not None and source.name == "COMMANDLINE":
        raise UsageError("give --replicas N, or --min-replicas and --max-replicas, not both")
    if autoscaled and (min_replicas is None or max_replicas is None):
        raise UsageError("autoscaling needs both --min-replicas and --max-replicas")
    if background == "loop":
        raise UsageError(
            "--background loop runs the monitors in one process, not in every replica: "
            "use --background worker or off, and run `setpoint loop` once beside the cluster"
        )


def _keys_status(required: bool, active: int) -> str:
    if not required:
        return "No API keys: anyone who can reach it may call it (see --require-keys)."
    if active:
        return f"API keys are required ({active} active)."
    return (
        "API keys are required and none is active: every request gets 401 until one "
        "is created with: setpoint keys create --scope predict"
    )


keys_app = typer.Typer(
    cls=Group,
    help="API keys for the server: once the workspace has had one, every request needs one.",
    no_args_is_help=True,
)


@keys_app.command("create")
def keys_create(
    ctx: typer.Context,
    scope: Annotated[
        str,
        typer.Option(
            help="predict, feedback, read (/openapi.json, /docs, endpoint metadata and "
            "the dashboard), approve (the dashboard and its approve, reject and "
            "acknowledge buttons), or admin (everything)."
        ),
    ],
    endpoint: Annotated[
        str | None, typer.Option(help="Only this endpoint (default: every endpoint).")
    ] = None,
    rate: Annotated[
        float | None, typer.Option(help="Most requests per second for this key.")
    ] = None,
    note: Annotated[str, typer.Option(help="Who or what the key is for.")] = "",
    json_: JsonFlag = False,
) -> None:
    """Create an API key. Its text is shown this once: store it where the client reads it."""
    key, token = (
        state(ctx)
        .workspace()
        .keys.create(scope, endpoint=endpoint, rate_per_second=rate, note=note)
    )

    def render(c: Console) -> None:
        c.print(f"API key {key.key_id} ({key.scope}, {key.endpoint or 'every endpoint'}):")
        c.print(token, markup=False, highlight=False)
        c.print("It is not stored anywhere; if it is lost, revoke it and create another.")

    emit(ctx, key.to_dict() | {"key": token}, render)


@keys_app.command("list")
def keys_list(
    ctx: typer.Context,
    all_: Annotated[bool, typer.Option("--all", help="Include revoked keys.")] = False,
    json_: JsonFlag = False,
) -> None:
    """List API keys (never their secret part)."""
    found = state(ctx).workspace().keys.list(include_revoked=all_)

    def render(c: Console) -> None:
        if not found:
            c.print(
                "No active API keys. A workspace that never had one is served without "
                "(on loopback only); once it had one, every request needs one."
            )
            return
        render_rows(
            c,
            [
                short("key id"),
                short("scope"),
                "endpoint",
                short("rate/s", "right"),
                Col("note", fold=16),
                short("created (UTC)"),
                short("revoked"),
            ],
            [
                (
                    k.key_id,
                    k.scope,
                    k.endpoint or "*",
                    fmt(k.rate_per_second),
                    k.note,
                    k.created_at.strftime("%Y-%m-%d %H:%M"),
                    k.revoked_at.strftime("%Y-%m-%d %H:%M") if k.revoked_at else "-",
                )
                for k in found
            ],
        )

    emit(ctx, [k.to_dict() for k in found], render)


@keys_app.command("revoke")
def keys_revoke(
    ctx: typer.Context,
    key_id: Annotated[str, typer.Argument(help="The key id (from keys list).", show_default=False)],
    json_: JsonFlag = False,
) -> None:
    """Revoke an API key; running servers refuse it within refresh_seconds. Revoking the
    last key does not open the server: requests need a key until one is created."""
    key = state(ctx).workspace().keys.revoke(key_id)
    emit(ctx, key.to_dict(), lambda c: c.print(f"Revoked API key {key.key_id}."))
