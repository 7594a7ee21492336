"""Look-ups the kinds' pre-flights share: a registry model or a dataset a job names, or a 404 naming the param.
Imported inside the pre-flights (the registry pulls in the GGUF reader), never at a kind module's top."""

from __future__ import annotations

from typing import TYPE_CHECKING

from appliance.datasets.errors import DatasetError
from appliance.errors import BadRequest, NotFound
from appliance.registry.registry import ModelRecord, RegistryError

if TYPE_CHECKING:
    from appliance.core import Appliance


def model_named(appliance: Appliance, name: str, param: str) -> ModelRecord:
    try:
        return appliance.registry.get(name)
    except RegistryError as exc:
        raise NotFound(str(exc), param=param) from exc


def dataset_exists(appliance: Appliance, ref: str, param: str, kinds: tuple[str, ...] = ("sft",)) -> None:
    """The dataset exists and holds records of one of `kinds` (conversations, unless the job says otherwise)."""
    try:
        record = appliance.datasets.get_ref(ref)
    except DatasetError as exc:
        raise NotFound(str(exc), param=param) from exc
    if record.report.kind not in kinds:
        raise BadRequest(f"dataset {record.name} v{record.version} holds {record.report.kind} records; this job "
                         f"takes {' or '.join(kinds)} datasets", param=param)
