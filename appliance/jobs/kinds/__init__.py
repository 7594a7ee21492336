"""The job kinds. Each module here declares one (`KIND`: its params model, pre-flight, handler and how a form
shows it); the list below registers them. The API (`POST /api/v1/jobs`, `GET /api/v1/job-kinds`), the runner,
the worker and the CLI read `KINDS`, the TUI reads the API: no other place names a job type.

Adding a kind: one module here that defines `KIND` (its handler may live in it, or in `jobs/handlers/` when it
pulls in torch), and its module name below, on one line.
"""

from __future__ import annotations

from appliance.jobs.kinds.base import JobKind, JobKinds

# In the order menus list them; the first is the TUI form's default.
KINDS = JobKinds.load(__name__, (
    "finetune",
    "evaluate",
    "export",
    "dataset_import",
    "dpo",
    "kto",
    "orpo",
    "distill",
    "vector_store_ingest",
))

__all__ = ["KINDS", "JobKind", "JobKinds"]
