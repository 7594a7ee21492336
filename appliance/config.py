"""The daemon's configuration: one typed schema fed by a TOML file, `SLM_*` environment variables and flags.

Precedence, highest first: explicit overrides (CLI flags), environment, config file, defaults.
"""

from __future__ import annotations

import os
import sys
import tomllib
from contextvars import ContextVar
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, SecretStr, ValidationError
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from appliance.errors import ApplianceError
from appliance.validation import all_problems

DEFAULT_CONFIG_FILE = Path("/etc/slm-appliance/config.toml")
SERVICE_STATE_DIR = Path("/var/lib/slm-appliance")
_config_file: ContextVar[Path | None] = ContextVar("_config_file", default=None)


class ConfigError(ApplianceError):
    """The configuration file or an override is invalid; the message names the file and the field."""


class _TomlFileSource(PydanticBaseSettingsSource):
    """Reads the TOML file chosen for this load (a context variable, so loads do not share state)."""

    def get_field_value(self, field: Any, field_name: str) -> tuple[Any, str, bool]:  # pragma: no cover
        return None, field_name, False

    def __call__(self) -> dict[str, Any]:
        path = _config_file.get()
        if path is None:
            return {}
        with path.open("rb") as fh:
            return tomllib.load(fh)


class ApplianceConfig(BaseSettings):
    """Settings of the appliance daemon and its CLI."""

    model_config = SettingsConfigDict(env_prefix="SLM_", extra="forbid")

    host: str = Field("127.0.0.1", description="Address the API binds; loopback unless set on purpose.")
    port: int = Field(8470, ge=0, le=65535, description="TCP port of the control API and the /v1 gateway.")
    state_dir: Path | None = Field(
        None, description="Where the SQLite store, models and logs live (default: service or user dir)."
    )
    profiles_dir: Path | None = Field(None, description="Folder of hardware profile TOML files.")
    profile: str | None = Field(None, description="Pin this hardware profile instead of selecting one.")
    log_level: str = Field("info", description="debug, info, warning or error.")
    import_roots: list[Path] = Field(
        default_factory=list,
        description="Folders models and datasets may be imported from (the state dir's imports/ always).",
    )
    llama_bin_dir: Path | None = Field(
        None, description="Folder holding llama-server and llama-quantize (default: the build cache)."
    )
    llama_cpu_variant: str | None = Field(
        None, description="With a llama.cpp build of CPU variants: run this one (x64, haswell, icelake, zen4, ...) "
        "instead of the best one that runs on this CPU (backends/cpu_variants.py)."
    )
    vllm_python: Path | None = Field(
        None, description="Interpreter of vLLM's own virtual environment (default: the `make vllm` build cache, "
        "then /opt/slm-appliance/vllm)."
    )
    vllm_cpu_kv_cache_gib: int = Field(
        1, ge=1, le=1024, description="KV cache vLLM's CPU build reserves, in GiB (it takes most of RAM otherwise)."
    )
    starter_model: bool = Field(
        True, description="On first start, import and serve the bundled SmolLM2-135M-Instruct GGUF."
    )
    default_embeddings: bool = Field(
        True, description="On first start, import and serve the bundled all-MiniLM-L6-v2 GGUF as the "
        "`minilm-embeddings` deployment (/v1/embeddings: semantic dedup of dataset imports, retrieval)."
    )
    rate_limit_per_minute: int = Field(600, ge=1, description="Requests per minute allowed per API key.")
    queue_depth: int = Field(32, ge=1, description="Requests waiting per deployment before 429.")
    max_body_bytes_v1: int = Field(8 * 1024 * 1024, ge=1024, description="Largest request body on /v1 (413 over).")
    max_body_bytes_control: int = Field(1024 * 1024, ge=1024,
                                        description="Largest request body on the control API (413 over).")
    body_timeout_s: float = Field(30.0, gt=0, description="Time a client has to send a whole request body (408).")
    header_timeout_s: float = Field(
        10.0, gt=0, description="Time a connection has to send a request's headers; idle or slow ones are closed."
    )
    max_connections: int = Field(
        2048, ge=16, description="Open connections kept; past it the longest-idle one is closed for a new one."
    )
    auth_failures_per_minute: int = Field(
        30, ge=1, description="Requests with a bad key allowed per client address per minute before 429."
    )
    per_key_concurrency: int = Field(
        16, ge=1, description="Inference requests one key may have running or queued at once (429 over)."
    )
    max_messages: int = Field(1024, ge=1, description="Most chat messages in one request.")
    max_json_depth: int = Field(32, ge=4, description="Deepest nesting of arrays/objects in a /v1 request body.")
    upstream_read_timeout_s: float = Field(
        300.0, gt=0, description="A backend silent this long mid-answer is given up on (the slot is freed)."
    )
    capture_sweep_interval_s: float = Field(
        300.0, gt=0, description="How often captured answers past their deployment's retention are deleted."
    )
    watch_interval_s: float = Field(
        15.0, gt=0, description="How often the live watch compares a new version with the one it replaced."
    )
    shadow_embeddings: str | None = Field(
        "minilm-embeddings", description="The embeddings deployment a shadow's pairs are compared through "
        "(embedding cosine); none: no cosine."
    )
    shadow_gives_way: bool = Field(
        True, description="A shadow whose candidate computes on the same CPU cores as the live deployment asks it "
        "only while the live side is idle and withdraws the request when live traffic arrives (two llama.cpp "
        "processes on the same cores stall each other: docs/deploy.md). Off: the shadow competes for the cores."
    )
    backend_niceness: int = Field(
        10, ge=0, le=19,
        description="CPU niceness of backend processes: backends saturate every core, and the gateway, the API "
        "and the systemd watchdog must still get CPU at once (0 disables).",
    )
    retrieval_backend: Literal["sqlite-vec", "qdrant"] = Field(
        "sqlite-vec", description="Where vector stores keep their chunks: `sqlite-vec` (state_dir/vectors.db, "
        "nothing to run) or `qdrant` (retrieval_qdrant_url, else a local-mode folder). Stores keep theirs."
    )
    retrieval_qdrant_url: str | None = Field(
        None, description="Qdrant server or cluster URL for retrieval_backend = qdrant (none: local mode in "
        "retrieval_qdrant_path, one process at a time, for tests and single boxes)."
    )
    retrieval_qdrant_api_key: SecretStr | None = Field(None, description="Qdrant API key (never logged).")
    retrieval_qdrant_path: Path | None = Field(
        None, description="Qdrant local-mode folder when no URL is set (default: state_dir/qdrant). Set, it also "
        "keeps the stores there reachable while retrieval_backend is sqlite-vec."
    )
    retrieval_qdrant_shards: int = Field(1, ge=1, le=64, description="Shards of each new Qdrant collection.")
    retrieval_qdrant_replicas: int = Field(1, ge=1, le=8, description="Replicas of each shard (Qdrant cluster).")
    retrieval_embeddings: str = Field(
        "minilm-embeddings", description="The embeddings deployment new vector stores embed with (served name)."
    )
    retrieval_max_file_bytes: int = Field(
        64 * 1024 * 1024, ge=1024, description="Largest file /v1/files accepts (413 over)."
    )

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return init_settings, env_settings, _TomlFileSource(settings_cls)

    def resolved_state_dir(self) -> Path:
        """The state directory: configured, systemd's StateDirectory, the service default, or a user dir."""
        if self.state_dir is not None:
            return self.state_dir
        systemd_dir = os.environ.get("STATE_DIRECTORY")
        if systemd_dir:
            return Path(systemd_dir.split(":")[0])
        # The service itself, or root's CLI on a box where the package's service has run.
        if os.geteuid() == 0 and (os.environ.get("INVOCATION_ID") or SERVICE_STATE_DIR.exists()):
            return SERVICE_STATE_DIR
        xdg = os.environ.get("XDG_DATA_HOME")
        home = os.path.expanduser("~")
        if not xdg and home == "~":  # a user without a home (systemd DynamicUser outside StateDirectory)
            return SERVICE_STATE_DIR
        base = Path(xdg) if xdg else Path(home) / ".local" / "share"
        return base / "slm-appliance"

    def resolved_profiles_dir(self) -> Path:
        """The profiles folder: configured, the source tree's, the installed data files, or /usr/share."""
        if self.profiles_dir is not None:
            return self.profiles_dir
        candidates = [
            Path(__file__).resolve().parent.parent / "profiles",
            Path(sys.prefix) / "share" / "slm-appliance" / "profiles",
            Path("/usr/share/slm-appliance/profiles"),
        ]
        for candidate in candidates:
            if candidate.is_dir():
                return candidate
        return candidates[-1]

    def base_url(self) -> str:
        host = "127.0.0.1" if self.host in ("0.0.0.0", "") else self.host
        return f"http://{host}:{self.port}"


def load_config(path: Path | None = None, **overrides: Any) -> ApplianceConfig:
    """Load the configuration.

    Args:
        path: TOML file; when None, `/etc/slm-appliance/config.toml` if it exists.
        overrides: values from CLI flags (None values are ignored).

    Raises:
        ConfigError: unreadable file, bad TOML, unknown key or invalid value (file and field named).
    """
    if path is None and DEFAULT_CONFIG_FILE.is_file():
        path = DEFAULT_CONFIG_FILE
    if path is not None and not path.is_file():
        raise ConfigError(f"{path}: config file not found")
    token = _config_file.set(path)
    try:
        return ApplianceConfig(**{k: v for k, v in overrides.items() if v is not None})
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: invalid TOML: {exc}") from exc
    except ValidationError as exc:
        where = str(path) if path else "environment/flags"
        problems = all_problems(exc)
        raise ConfigError(f"{where}: {problems}") from exc
    finally:
        _config_file.reset(token)
