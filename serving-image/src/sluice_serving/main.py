"""Entry point: read the configuration, listen, load the model in the background, serve, drain on
SIGTERM."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import logging
import os
import shutil
import signal
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from sluice_serving import __version__, logs, shadow, threads
from sluice_serving.app import App
from sluice_serving.config import Config, ConfigError, help_table
from sluice_serving.experiment import Experiment
from sluice_serving.fallback import Answerer, answerer
from sluice_serving.fetch import fetch
from sluice_serving.metrics import Metrics, Peers
from sluice_serving.models import Model, load_model
from sluice_serving.server import Server

log = logging.getLogger("sluice_serving")

DESCRIPTION = """\
sluice's model server. Serves one model with the Open Inference Protocol (V2) REST API (and its
binary tensor data extension), the V1 :predict form, and Prometheus metrics on /metrics, all on one
port (or /metrics alone on SLUICE_METRICS_PORT), and the protocol's gRPC API on SLUICE_GRPC_PORT when
it is set. Configured by environment variables only; SIGTERM drains in-flight requests before exiting.

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
    if cfg.workers > 1 and 0 in (cfg.port, cfg.grpc_port):
        print("sluice-serving: configuration error: SLUICE_WORKERS > 1 needs a fixed PORT (and SLUICE_GRPC_PORT)",
              file=sys.stderr)  # fmt: skip
        sys.exit(2)
    logs.setup(cfg.log_level)
    threads.pin_environment(cfg.num_threads)
    sys.exit(_supervise(cfg) if cfg.workers > 1 else _run(cfg, None))


def _run(cfg: Config, peers: Peers | None) -> int:
    try:
        import uvloop
    except ImportError:
        return asyncio.run(serve(cfg, peers))
    return uvloop.run(serve(cfg, peers))


def _supervise(cfg: Config) -> int:
    """Fork SLUICE_WORKERS workers on one port (SO_REUSEPORT), pass SIGTERM/SIGINT on, and wait for them.
    When one fails, the others are stopped and the exit code is the failed one's, so the pod restarts."""
    try:
        Path(cfg.cache_dir).mkdir(parents=True, exist_ok=True)
        directory = Path(tempfile.mkdtemp(prefix=".workers-", dir=cfg.cache_dir))
    except OSError as exc:
        log.error("cannot create the workers' metrics directory", extra={"dir": cfg.cache_dir, "error": str(exc)})
        return 1
    children: set[int] = set()
    for index in range(cfg.workers):
        pid = os.fork()
        if pid == 0:  # the worker
            code = 1
            try:
                code = _run(cfg, Peers(directory, index, cfg.workers))
            finally:
                logging.shutdown()
                os._exit(code)
        children.add(pid)

    def forward(signum: int, _frame: Any) -> None:
        for child in children:
            with contextlib.suppress(ProcessLookupError):
                os.kill(child, signum)

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    code = 0
    while children:
        pid, status = os.wait()
        children.discard(pid)
        exit_code = os.waitstatus_to_exitcode(status)
        if exit_code != 0 and code == 0:
            code = exit_code if exit_code > 0 else 1
            log.error("a worker failed; stopping the others", extra={"pid": pid, "exit_code": exit_code})
            forward(signal.SIGTERM, None)
    shutil.rmtree(directory, ignore_errors=True)
    return code


def _load(cfg: Config) -> tuple[Model, Answerer | None, float]:
    started = time.perf_counter()
    file = fetch(cfg.model_uri, cfg.cache_dir, cfg.model_digest, cfg.download_timeout, cfg.max_model_bytes,
                 cfg.mlflow_tracking_uri, cfg.model_format)  # fmt: skip
    model = load_model(file, cfg.model_format or file.format, bool(cfg.model_digest), cfg.num_threads)
    fallback = None
    if cfg.fallback is not None:
        spec = cfg.fallback
        fallback_model = None
        if spec.kind == "model":
            fallback_file = fetch(spec.uri, cfg.cache_dir, spec.digest, cfg.download_timeout, cfg.max_model_bytes)
            fallback_model = load_model(fallback_file, spec.format, bool(spec.digest), cfg.num_threads)
        fallback = answerer(spec, model, fallback_model)
    return model, fallback, time.perf_counter() - started


async def _publish(metrics: Metrics) -> None:
    while True:
        metrics.publish()
        await asyncio.sleep(0.25)


async def serve(cfg: Config, peers: Peers | None = None) -> int:
    """Run until SIGTERM/SIGINT (0) or a failed model load (1); `peers`: one of SLUICE_WORKERS workers."""
    loop = asyncio.get_running_loop()
    metrics = Metrics(cfg, peers)
    app = App(cfg, metrics)
    if cfg.experiment is not None:
        timeout, limit = cfg.request_timeout, cfg.max_body_bytes
        app.experiment = Experiment(cfg.experiment, cfg.model_version, metrics, timeout=timeout, limit=limit)
    server = Server(app)
    metrics_server = Server(App(cfg, metrics, metrics_only=True)) if cfg.metrics_port is not None else None
    try:
        port = await server.start(cfg.host, cfg.port, reuse_port=peers is not None)
        if metrics_server is not None and cfg.metrics_port is not None:
            metrics_port = await metrics_server.start(cfg.host, cfg.metrics_port, reuse_port=peers is not None)
            log.info("metrics listening", extra={"host": cfg.host, "port": metrics_port})
        grpc_server = await _start_grpc(app, peers is not None)
    except OSError as exc:
        log.error("cannot listen", extra={"host": cfg.host, "port": cfg.port, "error": str(exc)})
        return 1
    log.info(
        "listening",
        extra={"host": cfg.host, "port": port, "model": cfg.model_name, "version": cfg.model_version,
               "track": cfg.track, "worker": peers.index if peers is not None else 0},
    )  # fmt: skip
    publisher = asyncio.ensure_future(_publish(metrics)) if peers is not None else None
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)

    loaded: asyncio.Future[tuple[Model, Answerer | None, float]] = loop.create_future()

    def load_in_thread() -> None:
        try:
            result = _load(cfg)
            app.shadow = shadow.from_env(cfg, metrics.registry, os.environ)  # the canary's shadow phase only
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
            if grpc_server is not None:
                await grpc_server.stop(0)
            stopping.cancel()
            return 1
        model, fallback, seconds = loaded.result()
        width = model.inputs[0].shape[1] if len(model.inputs[0].shape) == 2 else -1
        metrics.model_loaded(seconds, model.feature_names, width, model.classifier)
        app.set_model(model, fallback)
        pools = threads.pin_pools(cfg.num_threads)  # here: the loop's thread predicts
        if peers is not None:
            peers.mark_ready()
        # Everything allocated so far (modules, the model) lives as long as the process: move it out of the
        # collector's reach, so that no full collection walks it while requests wait.
        gc.collect()
        gc.freeze()
        log.info(
            "model ready",
            extra={"seconds": round(seconds, 3), "platform": model.platform,
                   "fallback": fallback.kind if fallback is not None else None, "threads": pools},
        )  # fmt: skip
        await stopping
    log.info("draining", extra={"timeout": cfg.drain_timeout})
    if grpc_server is not None:  # refuses new RPCs at once, answers those in flight, then cancels what is left
        await asyncio.gather(server.drain(cfg.drain_timeout), grpc_server.stop(cfg.drain_timeout))
    else:
        await server.drain(cfg.drain_timeout)
    if metrics_server is not None:
        await metrics_server.drain(0)
    if publisher is not None:
        publisher.cancel()
    log.info("stopped")
    return 0


async def _start_grpc(app: App, reuse_port: bool) -> Any:
    """The gRPC API's server when SLUICE_GRPC_PORT is set (grpc is imported only then, in the worker: never
    before a fork)."""
    cfg = app.cfg
    if cfg.grpc_port is None:
        return None
    from sluice_serving import grpc_api

    server, port = await grpc_api.start(app, cfg.host, cfg.grpc_port, reuse_port)
    log.info("grpc listening", extra={"host": cfg.host, "port": port})
    return server


def _settle(
    future: asyncio.Future[tuple[Model, Answerer | None, float]],
    result: tuple[Model, Answerer | None, float] | None,
    exc: Exception | None,
) -> None:
    if future.done():
        return
    if exc is not None:
        future.set_exception(exc)
    elif result is not None:
        future.set_result(result)
