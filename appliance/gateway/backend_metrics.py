"""The backends' own Prometheus metrics (vLLM's `vllm:*`, llama-server's `llamacpp:*`) folded into ours:
renamed under `slm_backend_`, labelled with their deployment, one family block however many backends report."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Mapping

import httpx

from appliance.backends.process import BackendProcess

_NAME = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{.*\})?(\s.*)$")
SCRAPE_TIMEOUT_S = 2.0


def _rename(name: str) -> str:
    return "slm_backend_" + name.replace(":", "_")


def fold(texts: Mapping[str, str]) -> str:
    """Prometheus text of several deployments' backends as one exposition (families merged, labels added)."""
    families: dict[str, tuple[list[str], list[str]]] = {}
    for deployment, text in texts.items():
        family = ""
        for line in text.splitlines():
            if line.startswith("# HELP ") or line.startswith("# TYPE "):
                kind, name, *rest = line[2:].split(" ", 2)
                family = _rename(name)
                meta, _ = families.setdefault(family, ([], []))
                entry = f"# {kind} {family} {rest[0] if rest else ''}".rstrip()
                if entry not in meta:
                    meta.append(entry)
                continue
            match = _NAME.match(line)
            if match is None or not family:
                continue
            name, labels, value = match.groups()
            label = f'deployment="{deployment}"'
            merged = "{" + label + ("," + labels[1:] if labels and labels != "{}" else "}")
            families[family][1].append(f"{_rename(name)}{merged}{value}")
    return "".join("\n".join([*meta, *samples]) + "\n" for meta, samples in families.values())


async def scrape(processes: Mapping[str, BackendProcess]) -> str:
    """Each ready backend's /metrics (with its key); a backend that does not answer in time is left out."""

    async def one(process: BackendProcess) -> str:
        try:
            response = await process.client.get(f"{process.endpoint}/metrics", headers=process.spec.auth_headers(),
                                                timeout=SCRAPE_TIMEOUT_S)
        except httpx.HTTPError:
            return ""
        return response.text if response.status_code == 200 else ""

    names = [name for name, p in processes.items() if p.ready]
    texts = await asyncio.gather(*(one(processes[name]) for name in names))
    return fold(dict(zip(names, texts, strict=True)))
