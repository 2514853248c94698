"""Entry point: read the configuration, listen, load the model in the background, serve, drain on
SIGTERM."""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
import threading
import time
from typing import Any

from sluice_serving import __version__, logs
from sluice_serving.app import App
from sluice_serving.config import Config, ConfigError, help_table
from sluice_serving.fetch import fetch
from sluice_serving.metrics import Metrics
from sluice_serving.models import Model, load_model
from sluice_serving.server import Server

log = logging.getLogger("sluice_serving")

DESCRIPTION = """\
sluice's model server. Serves one model with the Open Inference Protocol (V2) REST API, the V1
:predict form, and Prometheus metrics on /metrics, all on one port. Configured by environment
variables only; SIGTERM drains in-flight requests before exiting.

probes: liveness GET /v2/health/live, readiness GET /v2/health/ready (503 until the model is loaded
and again once draining).
exit codes: 0 after a drain, 1 when the model cannot be fetched or loaded, 2 on bad configuration."""


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="sluice-serving",
        description=DESCRIPTION,
        epilog="environment:\n" + help_table(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.parse_args(argv)
    try:
        cfg = Config.from_env()
    except ConfigError as exc:
        print(f"sluice-serving: configuration error: {exc}", file=sys.stderr)
        sys.exit(2)
    logs.setup(cfg.log_level)
    try:
        import uvloop
    except ImportError:
        sys.exit(asyncio.run(serve(cfg)))
    sys.exit(uvloop.run(serve(cfg)))


def _load(cfg: Config) -> tuple[Model, float]:
    started = time.perf_counter()
    path = fetch(cfg.model_uri, cfg.cache_dir, cfg.model_digest, cfg.download_timeout)
    model = load_model(path, cfg.model_format, bool(cfg.model_digest), cfg.num_threads)
    return model, time.perf_counter() - started


async def serve(cfg: Config) -> int:
    """Run until SIGTERM/SIGINT (0) or a failed model load (1)."""
    loop = asyncio.get_running_loop()
    metrics = Metrics(cfg)
    app = App(cfg, metrics)
    server = Server(app)
    try:
        port = await server.start(cfg.host, cfg.port)
    except OSError as exc:
        log.error("cannot listen", extra={"host": cfg.host, "port": cfg.port, "error": str(exc)})
        return 1
    log.info(
        "listening",
        extra={"host": cfg.host, "port": port, "model": cfg.model_name, "version": cfg.model_version,
               "track": cfg.track},
    )  # fmt: skip
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)

    loaded: asyncio.Future[tuple[Model, float]] = loop.create_future()

    def load_in_thread() -> None:
        try:
            result = _load(cfg)
        except Exception as exc:
            loop.call_soon_threadsafe(_settle, loaded, None, exc)
        else:
            loop.call_soon_threadsafe(_settle, loaded, result, None)

    # A daemon thread, so that a SIGTERM during a long download does not wait for it.
    threading.Thread(target=load_in_thread, name="model-load", daemon=True).start()
    stopping: asyncio.Future[Any] = asyncio.ensure_future(stop.wait())
    await asyncio.wait({loaded, stopping}, return_when=asyncio.FIRST_COMPLETED)
    if loaded.done():
        failure = loaded.exception()
        if failure is not None:
            log.error("model load failed: %s", failure, extra={"uri": cfg.model_uri, "format": cfg.model_format})
            await server.drain(0)
            stopping.cancel()
            return 1
        model, seconds = loaded.result()
        width = model.inputs[0].shape[1] if len(model.inputs[0].shape) == 2 else -1
        metrics.model_loaded(seconds, model.feature_names, width, model.classifier)
        app.set_model(model)
        log.info("model ready", extra={"seconds": round(seconds, 3), "platform": model.platform})
        await stopping
    log.info("draining", extra={"timeout": cfg.drain_timeout})
    await server.drain(cfg.drain_timeout)
    log.info("stopped")
    return 0


def _settle(
    future: asyncio.Future[tuple[Model, float]], result: tuple[Model, float] | None, exc: Exception | None
) -> None:
    if future.done():
        return
    if exc is not None:
        future.set_exception(exc)
    elif result is not None:
        future.set_result(result)
