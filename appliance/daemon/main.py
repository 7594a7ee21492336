"""`slm-appliance daemon`: start the appliance, bind the API, tell systemd, serve until SIGTERM."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import resource
import signal
import socket
from typing import Any

import uvicorn
import uvloop
from prometheus_client import CollectorRegistry

from appliance.backends.registry import create_backends
from appliance.capture.runtime import CaptureRuntime
from appliance.children import go_offline
from appliance.config import ApplianceConfig
from appliance.core import Appliance
from appliance.daemon.app import create_app, guarded
from appliance.daemon.bootstrap import bootstrap_embeddings, bootstrap_starter
from appliance.daemon.retrieval_wiring import retrieval_service
from appliance.daemon.sdnotify import Notifier
from appliance.daemon.trials_wiring import trials_runtime
from appliance.deploy.service import Deployments
from appliance.gateway.admission import Gates
from appliance.jobs.runner import JobRunner, ServingPause
from appliance.jobs.store import JobStore
from appliance.retrieval.service import RetrievalService
from appliance.trials.runtime import TrialsRuntime
from appliance.web.protocol import guarded_protocol

log = logging.getLogger(__name__)


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(512)
    sock.set_inheritable(False)
    return sock


def _local_url(sock: socket.socket) -> str:
    """The bound API as this box reaches it (a wildcard bind through loopback): what job workers call."""
    host, port = sock.getsockname()[:2]
    if host in ("0.0.0.0", "::"):
        host = "127.0.0.1" if sock.family == socket.AF_INET else "::1"
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def _deployments(appliance: Appliance, registry: CollectorRegistry,
                 gates: Gates) -> tuple[Deployments, TrialsRuntime]:
    config = appliance.config
    backends = create_backends(config, appliance.state_dir)
    trials = trials_runtime(appliance, registry, lambda: deployments, gates)
    deployments = Deployments(appliance.store, appliance.registry, appliance.selection, appliance.hardware,
                              backends, appliance.logs_dir, appliance.runtime_dir, appliance.import_roots,
                              config.backend_niceness, trials)
    return deployments, trials


async def _stop_parts(jobs: JobRunner, retrieval: RetrievalService, capture: CaptureRuntime,
                      deployments: Deployments) -> None:
    """Once the server has stopped: running jobs checkpoint, then the vector backends, the capture writer and the
    backends go."""
    await jobs.shutdown()
    retrieval.close()
    await capture.stop()
    await deployments.shutdown()


async def serve(appliance: Appliance, notifier: Notifier) -> int:
    """Run until SIGTERM/SIGINT. Returns the process exit code."""
    config = appliance.config
    try:
        sock = _bind(config.host, config.port)
    except OSError as exc:
        log.error("cannot bind the API socket", extra={"host": config.host, "port": config.port, "error": str(exc)})
        return 1
    registry = CollectorRegistry()  # the daemon's metrics: the gateway's, the trials', the capture writer's
    gates = Gates(config.queue_depth, config.per_key_concurrency)  # the gateway's admission; shadows read it
    deployments, trials = _deployments(appliance, registry, gates)
    training = appliance.selection.profile.training
    pause = None if training.serving_during_training else ServingPause(deployments.pause_all, deployments.resume)
    jobs = JobRunner(JobStore(appliance.store), appliance.state_dir, appliance.import_roots,
                     training.max_seq_length, serving_pause=pause, daemon_url=_local_url(sock))
    retrieval = retrieval_service(appliance, deployments, jobs)
    app = create_app(appliance, deployments, jobs, trials, gates, retrieval)
    protocol = guarded_protocol(config.header_timeout_s, 64 * 1024, config.max_connections)
    uv_config = uvicorn.Config(guarded(app, appliance), log_config=None, access_log=False, lifespan="off",
                               timeout_graceful_shutdown=10, http=protocol, timeout_keep_alive=5)
    uv_config.load()
    server = uvicorn.Server(uv_config)
    server.lifespan = uv_config.lifespan_class(uv_config)
    await server.startup(sockets=[sock])

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        # Handlers only signal; the loop below does the stopping.
        loop.add_signal_handler(sig, stop.set)

    # Deployments the store says should run come back; on a fresh box the starter model is deployed.
    await deployments.reconcile()
    jobs.start()  # jobs a crash interrupted go back to the queue and resume
    capture: CaptureRuntime = app.state.capture
    capture.start()
    await bootstrap_starter(appliance, deployments)
    await bootstrap_embeddings(appliance, deployments)
    bound = sock.getsockname()
    appliance.ready = True
    log.info("daemon ready", extra={"listen": f"{bound[0]}:{bound[1]}", "profile": appliance.selection.name})
    notifier.ready(f"serving on {bound[0]}:{bound[1]}, profile {appliance.selection.name}")
    ticker = asyncio.create_task(server.main_loop())
    interval = notifier.watchdog_interval / 2 if notifier.watchdog_interval else 5.0
    while not stop.is_set():
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=interval)
        if notifier.watchdog_interval:
            notifier.watchdog()

    log.info("stopping")
    notifier.stopping()
    appliance.ready = False
    server.should_exit = True
    await ticker
    await server.shutdown(sockets=[sock])
    await _stop_parts(jobs, retrieval, capture, deployments)
    sock.close()
    log.info("stopped")
    return 0


def _raise_open_files_limit() -> None:
    """Soft limit up to the hard one (systemd gives 1024/524288): each connection and backend log is a file, and
    the connection cap, not the soft limit, should decide when a client is turned away."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = hard if hard != resource.RLIM_INFINITY else 65536
    if soft < wanted:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (min(wanted, 65536), hard))


def run_daemon(config: ApplianceConfig, nvml_lib: Any = None) -> int:
    """`nvml_lib`: the NVML module to read GPUs through (default: the real pynvml; a recorded replay in demos)."""
    go_offline()
    _raise_open_files_limit()
    notifier = Notifier()
    appliance = Appliance(config) if nvml_lib is None else Appliance(config, nvml_lib)
    try:
        appliance.start()
    except Exception as exc:  # a startup failure must say why and exit non-zero, not dump a traceback
        log.error("startup failed", extra={"error": str(exc)})
        notifier.notify(f"STATUS=startup failed: {exc}")
        return 1
    try:
        # uvloop: a C event loop, for gateway latency; it supports the subprocess features supervision uses.
        return uvloop.run(serve(appliance, notifier))
    finally:
        appliance.stop()
