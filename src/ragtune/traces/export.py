"""OpenTelemetry export of traces (OpenInference conventions). Filled in below."""

from __future__ import annotations

from ragtune.config import TelemetrySection
from ragtune.traces.store import Trace


def export_trace(settings: TelemetrySection, trace: Trace) -> None:
    if not settings.otlp_endpoint:
        return
    raise NotImplementedError
