"""The gateway's hop over a Unix socket: vLLM is launched on its socket alone (`--uds`, no TCP port), and a
process that listens on a socket alone is supervised, probed and stopped through that socket (a real child
serving HTTP on AF_UNIX), with the socket its user's alone and gone after the stop."""

from __future__ import annotations

import asyncio
import stat
import sys
from pathlib import Path

import httpx

from appliance.backends import vllm
from appliance.backends.base import Capabilities, Launch, LaunchSpec, injected_arguments
from appliance.backends.process import BackendProcess
from appliance.plan.serving import SlotKvMemory

# An HTTP server on the Unix socket given as argv[1]: 200 "ok" to any GET.
SERVER = """
import http.server, socketserver, sys
class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def do_GET(self):
        self.send_response(200); self.send_header("Content-Length", "2"); self.end_headers(); self.wfile.write(b"ok")
    def log_message(self, *args):
        pass
socketserver.UnixStreamServer(sys.argv[1], Handler).serve_forever()
"""


def test_vllm_listens_on_its_socket_alone(tmp_path: Path) -> None:
    socket_path = tmp_path / "chat.1.sock"
    spec = LaunchSpec(deployment="chat", model_path=tmp_path, port=9000, unix_socket=socket_path, api_key="k")
    args, injected = injected_arguments(vllm.BUILDERS, spec, vllm.TUNABLE_FLAGS)
    assert injected["network"] == f"--uds {socket_path}"
    assert "--port" not in args and "--host" not in args
    backend = vllm.VllmBackend(tmp_path)
    assert backend.capabilities.unix_socket and not backend.capabilities.tcp_port
    assert backend.health_url(spec) == "http://vllm.sock/health"
    # Given no socket (a command line shown for a recorded GPU box), loopback TCP as before.
    tcp = LaunchSpec(deployment="chat", model_path=tmp_path, port=9000)
    assert injected_arguments(vllm.BUILDERS, tcp, vllm.TUNABLE_FLAGS)[1]["network"] == "--host 127.0.0.1 --port 9000"
    assert backend.endpoint(tcp) == "http://127.0.0.1:9000"


class SocketOnlyBackend:
    """A stand-in for a backend on its socket alone (as vLLM with --uds)."""

    name = "socket-only"
    capabilities = Capabilities(formats=("hf",), memory=SlotKvMemory(), continuous_batching=False,
                                lora_adapters=False, gpu_required=False, unix_socket=True, tcp_port=False)

    def build_launch(self, spec: LaunchSpec) -> Launch:
        return Launch(argv=[sys.executable, "-c", SERVER, str(spec.unix_socket)])

    def health_url(self, spec: LaunchSpec) -> str:
        return "http://backend/health"

    def endpoint(self, spec: LaunchSpec) -> str:
        return "http://backend"


def test_a_process_on_its_socket_alone_is_reached_through_it(tmp_path: Path) -> None:
    runtime = tmp_path / "run"
    runtime.mkdir(mode=0o700)
    spec = LaunchSpec(deployment="d", model_path=tmp_path, port=1, unix_socket=runtime / "d.1.sock")
    reported: list[dict[str, int | None]] = []

    async def on_state(name: str, state: str, message: str, info: dict[str, int | None]) -> None:
        reported.append(info)

    async def scenario() -> tuple[str, int, str]:
        # The shared pool is TCP only: had the process used it, it could never become ready.
        async with httpx.AsyncClient(timeout=2) as shared:
            proc = BackendProcess(SocketOnlyBackend(), spec, tmp_path / "d.log", on_state,  # type: ignore[arg-type]
                                  shared)
            proc.start()
            try:
                assert await proc.wait_ready(30), proc.state_message
                assert proc.client is not shared
                answer = (await proc.client.get(f"{proc.endpoint}/v1/models")).text
                mode = stat.S_IMODE(spec.unix_socket.stat().st_mode)  # type: ignore[union-attr]
                return answer, mode, proc.state_message
            finally:
                await proc.stop()

    answer, mode, message = asyncio.run(scenario())
    assert answer == "ok"
    assert mode & 0o077 == 0  # the backend's umask (0700: a socket's x bit means nothing): only our user connects
    assert message == f"serving on socket {spec.unix_socket}"
    assert reported and all(info["port"] is None for info in reported)  # no TCP port to show
    assert not spec.unix_socket.exists()  # type: ignore[union-attr]
