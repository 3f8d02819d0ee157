"""Traces: what happened inside every answer, stored in the project's SQLite file and optionally exported as
OpenTelemetry spans (OpenInference conventions)."""

from ragtune.traces.store import Trace, list_traces, load_trace, save_trace

__all__ = ["Trace", "list_traces", "load_trace", "save_trace"]
