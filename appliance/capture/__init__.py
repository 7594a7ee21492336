"""Capture, feedback and review (issue 23): answers of deployments that opted in, stored after the capture
redaction; feedback from the applications that got them; a review queue; exports as dataset rows.

The request path calls `CaptureSettings.wants()` and `CaptureWriter.submit()` (never blocks, never raises);
`POST /v1/feedback` calls `record_feedback`; the control routes call `review` (list, get, decide), `purge` and
`write_export`; the daemon starts a `CaptureWriter` and a `RetentionSweeper`.
"""

from appliance.capture.export import ExportResult, ExportSelection, NothingToExport, Skipped, write_export
from appliance.capture.feedback import NotYourResponse, ResponseNotFound, record_feedback
from appliance.capture.models import (
    CaptureDetail,
    CapturedItem,
    CaptureFilter,
    CaptureSettings,
    CaptureSummary,
    ChatMessage,
    Feedback,
    FeedbackBody,
    Review,
    ReviewDecision,
    normalise_rating,
)
from appliance.capture.review import CaptureNotFound, count_captures, decide, get_capture, list_captures
from appliance.capture.sweep import RetentionSweeper, SweepResult, purge, sweep_retention
from appliance.capture.writer import CaptureWriter, WriterStats

__all__ = [
    "CaptureDetail",
    "CaptureFilter",
    "CaptureNotFound",
    "CaptureSettings",
    "CaptureSummary",
    "CaptureWriter",
    "CapturedItem",
    "ChatMessage",
    "ExportResult",
    "ExportSelection",
    "Feedback",
    "FeedbackBody",
    "NotYourResponse",
    "NothingToExport",
    "ResponseNotFound",
    "RetentionSweeper",
    "Review",
    "ReviewDecision",
    "Skipped",
    "SweepResult",
    "WriterStats",
    "count_captures",
    "decide",
    "get_capture",
    "list_captures",
    "normalise_rating",
    "purge",
    "record_feedback",
    "sweep_retention",
    "write_export",
]
