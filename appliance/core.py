"""The appliance's shared state for one daemon run: config, store, hardware, profile selection.

Constructing it does no I/O; `start()` opens (and checks) the store, sweeps what a crash left half-written,
detects the hardware and selects the profile.
"""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path
from typing import Any

import pynvml

from appliance.backends.registry import backend_rules
from appliance.client.credentials import ADMIN_KEY_FILE
from appliance.config import ApplianceConfig
from appliance.datasets.store import DatasetStore
from appliance.hardware.detect import detect_hardware
from appliance.hardware.models import HardwareReport
from appliance.profiles.loader import load_profiles
from appliance.profiles.schema import Profile
from appliance.profiles.select import Selection, select_profile
from appliance.registry.registry import Registry
from appliance.security.keys import ensure_local_admin_key
from appliance.security.private_dir import ensure_private_dir, runtime_dir_for
from appliance.state.store import StateStore
from appliance.state.sweep import LOCK_FILE, StateDirBusy, lock_state_dir, sweep

log = logging.getLogger(__name__)


class Appliance:
    def __init__(self, config: ApplianceConfig, nvml_lib: Any = pynvml) -> None:
        self.config = config
        self.nvml_lib = nvml_lib
        self.state_dir: Path = config.resolved_state_dir()
        self.store = StateStore(self.state_dir / "state.db")
        self.import_roots = [*config.import_roots, self.imports_dir]
        self.registry = Registry(self.store, self.state_dir / "models", self.import_roots)
        self.datasets = DatasetStore(self.store, self.state_dir / "datasets", self.import_roots)
        self.started_at = time.time()
        self.ready = False
        self._profiles: list[Profile] | None = None
        self._hardware: HardwareReport | None = None
        self._selection: Selection | None = None
        self._lock_fd: int | None = None

    @property
    def imports_dir(self) -> Path:
        """Always an allowed import root: operators drop models and datasets here."""
        return self.state_dir / "imports"

    @property
    def runtime_dir(self) -> Path:
        """Sockets of the backends: $RUNTIME_DIRECTORY, else under $XDG_RUNTIME_DIR, else a temp path (0700,
        checked at start: see appliance.security.private_dir)."""
        return runtime_dir_for(self.state_dir, os.environ)

    @property
    def logs_dir(self) -> Path:
        return self.state_dir / "logs"

    @property
    def admin_key_file(self) -> Path:
        return self.state_dir / ADMIN_KEY_FILE

    @property
    def profiles(self) -> list[Profile]:
        assert self._profiles is not None, "Appliance.start() not called"
        return self._profiles

    @property
    def hardware(self) -> HardwareReport:
        assert self._hardware is not None, "Appliance.start() not called"
        return self._hardware

    @property
    def selection(self) -> Selection:
        assert self._selection is not None, "Appliance.start() not called"
        return self._selection

    def start(self) -> None:
        """Lock the state directory, open the store, sweep, detect hardware, select the profile. Raises (with the
        reason, naming the file) on a state directory another daemon holds, a damaged store, an unsafe runtime
        directory, an admin key path that is a symlink, invalid profiles or config."""
        self.state_dir.mkdir(parents=True, exist_ok=True, mode=0o750)
        # The lock first: two daemons on one state directory would migrate, sweep and supervise the same rows.
        self._lock_fd = lock_state_dir(self.state_dir)
        if self._lock_fd is None:
            raise StateDirBusy(f"another daemon is running on {self.state_dir} (it holds {LOCK_FILE}): stop it "
                               "first, or give this one its own --state-dir")
        self.store.open()
        self.imports_dir.mkdir(exist_ok=True)
        ensure_private_dir(self.runtime_dir)
        sweep(self.store, self.state_dir, self.runtime_dir)
        ensure_local_admin_key(self.store, self.admin_key_file)
        self._profiles = load_profiles(self.config.resolved_profiles_dir(), backend_rules())
        self.refresh_hardware()
        log.info(
            "profile selected",
            extra={"profile": self.selection.name, "reason": self.selection.reason,
                   "schema_version": self.store.schema_version()},
        )

    def refresh_hardware(self) -> None:
        self._hardware = detect_hardware(self.state_dir, self.nvml_lib)
        self._selection = select_profile(self.profiles, self._hardware, self.config.profile)

    def stop(self) -> None:
        self.store.close()
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None
