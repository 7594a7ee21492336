"""Domain errors (registry, deployments, golden sets) to API errors, in one place for the control routes."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from appliance.api.errors import BadRequest, Conflict, NotFound
from appliance.datasets.errors import DatasetError
from appliance.deploy.bluegreen import EvalRegression
from appliance.deploy.manager import DeploymentConflict, DeploymentError, DeploymentNotFound
from appliance.evaluation.golden import GoldenError
from appliance.registry.registry import ModelInUse, ModelNotFound, NameConflict, RegistryError


@contextmanager
def domain_errors() -> Iterator[None]:
    try:
        yield
    except (ModelNotFound, DeploymentNotFound) as exc:
        raise NotFound(str(exc)) from exc
    except EvalRegression as exc:  # before DeploymentError, of which it is one
        raise Conflict(str(exc), code="eval_regression") from exc
    except (NameConflict, ModelInUse, DeploymentConflict) as exc:
        raise Conflict(str(exc)) from exc
    except (RegistryError, DeploymentError, GoldenError, DatasetError) as exc:
        raise BadRequest(str(exc)) from exc
