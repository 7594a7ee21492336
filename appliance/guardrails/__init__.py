"""Guardrails: a deployment's policy (limits, deny rules, PII redaction, a guard model), compiled once and applied
to requests, whole answers and streamed answers. `Guardrails(policy)` is the entry point; see checks.py for
request bodies and answers, sse.py for streams, guard_model.py for the guard model."""
