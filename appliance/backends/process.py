"""One supervised backend process: start in its own process group, wait healthy, watch, restart with
exponential backoff, stop with terminate → wait → kill. State changes go to a callback (the store).

A backend that fails to start MAX_FAILED_STARTS times in a row is given up on (state 'failed', with the last
reason and the log to read). A callback that fails (the store's disk is full) is logged and retried on the next
health check: supervision itself goes on."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import httpx

from appliance.backends.base import Backend, BackendUnavailable, LaunchSpec, http_healthy
from appliance.children import child_env, child_setup
from appliance.logfiles import rotate_if_large

log = logging.getLogger(__name__)
STARTUP_TIMEOUT_S = 180.0
HEALTH_INTERVAL_S = 2.0
HEALTH_FAILURES_BEFORE_RESTART = 3
BACKOFF_START_S, BACKOFF_MAX_S = 1.0, 30.0
STABLE_AFTER_S = 60.0
MAX_FAILED_STARTS = 5  # in a row, none of them healthy: a circuit breaker, not a restart loop forever
# A backend's socket (0700: bound with mode 0777 & ~umask) and its caches are ours alone, in a 0700 runtime dir.
BACKEND_UMASK = 0o077
# The client of a process on its socket alone: expire idle connections before uvicorn does (5 s).
SOCKET_LIMITS = httpx.Limits(max_connections=64, max_keepalive_connections=16, keepalive_expiry=2.0)
LOG_CHECK_EVERY = 15  # health intervals between log size checks
StateCallback = Callable[[str, str, str, dict[str, int | None]], Awaitable[None]]


class BackendProcess:
    def __init__(self, backend: Backend, spec: LaunchSpec, log_path: Path, on_state: StateCallback,
                 client: httpx.AsyncClient, niceness: int = 0, quiet: bool = False) -> None:
        self.niceness = niceness
        self.backend = backend
        self.spec = spec
        self.log_path = log_path
        self.on_state = on_state
        self.shared_client = client
        self.state = "pending"
        self.state_message = ""
        self.restarts = 0
        self.failed_starts = 0  # consecutive starts that never became healthy
        self._unreported = False  # the last state did not reach the store (its write failed)
        self.proc: asyncio.subprocess.Process | None = None
        self._own_client: httpx.AsyncClient | None = None  # made in start() for a backend on its socket alone
        self.injected: dict[str, str] = {}
        self._stopping = False
        self._task: asyncio.Task[None] | None = None
        self._ready = asyncio.Event()
        self._settled = asyncio.Event()
        # A blue/green candidate reports nothing to the store until it takes over the name (and an old one
        # being drained nothing after): the row describes the process the gateway routes to.
        self.quiet = quiet
        # Requests the gateway has routed here and not finished: a drained process stops when this is 0.
        self.inflight = 0

    @property
    def ready(self) -> bool:
        return self.state == "ready"

    @property
    def gave_up(self) -> bool:
        """Supervision ended on its own (the backend cannot start here), not by `stop()`."""
        return self._task is not None and self._task.done() and not self._stopping

    @property
    def endpoint(self) -> str:
        return self.backend.endpoint(self.spec)

    @property
    def socket_only(self) -> bool:
        """It listens on its Unix socket and on no TCP port (vLLM with --uds)."""
        return self.spec.unix_socket is not None and not self.backend.capabilities.tcp_port

    @property
    def address(self) -> str:
        """Where it listens, for the operator."""
        return f"socket {self.spec.unix_socket}" if self.socket_only else self.endpoint

    @property
    def client(self) -> httpx.AsyncClient:
        """The HTTP client that reaches this process (health, probes, gate, metrics, adapters): the shared pool,
        or, for a process on its socket alone, a client of its own over that socket."""
        return self._own_client or self.shared_client

    def start(self) -> None:
        if self.socket_only and self._own_client is None:
            assert self.spec.unix_socket is not None
            transport = httpx.AsyncHTTPTransport(uds=str(self.spec.unix_socket), limits=SOCKET_LIMITS)
            self._own_client = httpx.AsyncClient(transport=transport, timeout=httpx.Timeout(None))
        self._task = asyncio.create_task(self._supervise(), name=f"supervise-{self.spec.deployment}")

    async def wait_ready(self, timeout: float) -> bool:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._ready.wait(), timeout)
        return self.ready

    async def wait_settled(self, timeout: float) -> bool:
        """Until the first start either serves (True) or fails, i.e. exits or is restarted (False)."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._settled.wait(), timeout)
        return self.ready

    async def drain(self, timeout: float) -> int:
        """Wait until no routed request is left (or `timeout`); returns how many were still running."""
        deadline = time.monotonic() + timeout
        while self.inflight > 0 and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        return self.inflight

    def request_started(self) -> None:
        self.inflight += 1

    def request_finished(self) -> None:
        self.inflight -= 1

    def silence(self) -> None:
        """Report nothing more to the store (a process another one has just replaced)."""
        self.quiet = True

    async def publish(self) -> None:
        """Report the current state to the store (a candidate that just took over its deployment's name)."""
        self.quiet = False
        await self._set(self.state, self.state_message)

    async def _set(self, state: str, message: str) -> None:
        self.state, self.state_message = state, message
        if state == "ready":
            self._ready.set()
        else:
            self._ready.clear()
        if state in ("ready", "restarting", "failed", "stopped"):
            self._settled.set()
        log.info("deployment state", extra={"deployment": self.spec.deployment, "state": state, "detail": message,
                                            "port": self.spec.port, "reported": not self.quiet})
        if self.quiet:
            return
        await self._report()

    async def _report(self) -> None:
        pid = self.proc.pid if self.proc and self.proc.returncode is None else None
        port = None if self.socket_only else self.spec.port
        try:
            await self.on_state(self.spec.deployment, self.state, self.state_message,
                                {"pid": pid, "port": port, "restarts": self.restarts})
        except Exception as exc:  # supervision outlives its bookkeeping; the next health check reports again
            self._unreported = True
            log.error("deployment state not recorded", extra={"deployment": self.spec.deployment,
                                                              "state": self.state, "error": str(exc)})
        else:
            self._unreported = False

    async def _spawn(self) -> asyncio.subprocess.Process:
        launch = self.backend.build_launch(self.spec)
        if self.spec.unix_socket is not None:
            self.spec.unix_socket.unlink(missing_ok=True)  # left behind by a backend that was killed
        self.injected = launch.injected
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        rotate_if_large(self.log_path)
        env = child_env(launch.env)
        # Unbuffered: on a full disk the header line is lost at once, not raised again when the file closes.
        with self.log_path.open("ab", buffering=0) as log_file:
            with contextlib.suppress(OSError):
                log_file.write(f"\n=== {time.strftime('%Y-%m-%d %H:%M:%S')} start: {' '.join(launch.argv)}\n"
                               .encode())
            return await asyncio.create_subprocess_exec(
                *launch.argv, stdin=asyncio.subprocess.DEVNULL, stdout=log_file, stderr=log_file, env=env,
                start_new_session=True, preexec_fn=child_setup(self.niceness, BACKEND_UMASK),
            )

    async def _wait_healthy(self, proc: asyncio.subprocess.Process) -> bool:
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        url = self.backend.health_url(self.spec)
        while time.monotonic() < deadline and proc.returncode is None and not self._stopping:
            if await http_healthy(self.client, url):
                return True
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(proc.wait(), 0.25)
        return False

    async def _watch(self, proc: asyncio.subprocess.Process) -> str:
        """Until the process exits or stops answering; returns why."""
        failures, ticks = 0, 0
        url = self.backend.health_url(self.spec)
        while not self._stopping:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(proc.wait(), HEALTH_INTERVAL_S)
            if proc.returncode is not None:
                return f"backend exited with code {proc.returncode}"
            failures = 0 if await http_healthy(self.client, url) else failures + 1
            ticks += 1
            if self._unreported and not self.quiet:
                await self._report()
            if ticks % LOG_CHECK_EVERY == 0:
                rotate_if_large(self.log_path)
            if failures >= HEALTH_FAILURES_BEFORE_RESTART:
                await self._terminate(proc)
                return f"backend failed {failures} health checks"
        return "stopped"

    async def _supervise(self) -> None:
        backoff = BACKOFF_START_S
        while not self._stopping:
            await self._set("starting", f"starting {self.backend.name} on {self.address}")
            try:
                self.proc = proc = await self._spawn()
            except (BackendUnavailable, OSError) as exc:
                await self._set("failed", str(exc))
                return
            if await self._wait_healthy(proc):
                self.failed_starts = 0
                started = time.monotonic()
                await self._set("ready", f"serving on {self.address}")
                reason = await self._watch(proc)
                if time.monotonic() - started > STABLE_AFTER_S:
                    backoff = BACKOFF_START_S
            else:
                reason = (f"backend exited with code {proc.returncode} during startup" if proc.returncode is not None
                          else "backend did not become healthy in time")
                await self._terminate(proc)
                self.failed_starts += 1
            if self._stopping:
                break
            if self.failed_starts >= MAX_FAILED_STARTS:
                await self._set("failed", f"{reason}; gave up after {self.failed_starts} failed starts in a row "
                                          f"(log: {self.log_path}); start the deployment again to retry")
                return
            self.restarts += 1
            await self._set("restarting", f"{reason}; restart #{self.restarts} in {backoff:g}s (log: {self.log_path})")
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, BACKOFF_MAX_S)

    async def _terminate(self, proc: asyncio.subprocess.Process, grace: float = 10.0) -> None:
        if proc.returncode is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            await asyncio.wait_for(proc.wait(), grace)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            await proc.wait()

    async def stop(self, message: str = "stopped by operator") -> None:
        self._stopping = True
        if self.proc is not None:
            await self._terminate(self.proc)
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._own_client is not None:
            await self._own_client.aclose()
            self._own_client = None
        if self.spec.unix_socket is not None:
            self.spec.unix_socket.unlink(missing_ok=True)  # a server that binds its path leaves it behind
        await self._set("stopped", message)
