"""A deployment's guardrail policy: the API schema (every field described) and its checks at creation. A policy
that validates compiles: rule names are plain and unique, regexes compile and are safe to run, entities exist."""

from __future__ import annotations

import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from appliance.guardrails.pii import BUILTIN_ENTITIES
from appliance.guardrails.rules import checked_matcher
from appliance.names import NAME, NAME_RULE

LABEL = re.compile(r"^[A-Z][A-Z0-9_]{0,31}$")
Direction = Literal["input", "output"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Limits(_Strict):
    max_prompt_tokens: int | None = Field(
        None, ge=1, description="Most prompt tokens a request may carry (all message contents; estimated by the "
        "gateway unless it can count them). Unset: only the deployment's context length limits it.")
    max_answer_tokens: int | None = Field(
        None, ge=1, description="Most tokens an answer may have: a request asking for more (`max_tokens`, "
        "`max_completion_tokens`) is refused, one that does not say gets this as its `max_tokens`.")
    max_messages: int | None = Field(
        None, ge=1, description="Most messages a chat request may carry (beyond the gateway's global limit).")


class DenyRule(_Strict):
    name: str = Field(description=f"The rule's name, shown in refusals, metrics and audit ({NAME_RULE}).")
    direction: Literal["input", "output", "both"] = Field(
        "both", description="What the rule checks: the request (`input`), the answer (`output`) or both.")
    keywords: list[str] | None = Field(
        None, description="Words or phrases refused as whole words (words of a phrase match across any white "
        "space). Exactly one of `keywords` and `regex`.")
    regex: str | None = Field(
        None, description="A regular expression (Python syntax) refused where it matches. Refused at creation if "
        "it can match empty text or backtrack catastrophically. Exactly one of `keywords` and `regex`.")
    case_sensitive: bool = Field(False, description="Match case exactly (default: ignore case).")

    @field_validator("name")
    @classmethod
    def _plain_name(cls, name: str) -> str:
        if not NAME.match(name):
            raise ValueError(f"rule name {name!r}: use {NAME_RULE}")
        return name

    @model_validator(mode="after")
    def _one_kind(self) -> DenyRule:
        if (self.keywords is None) == (self.regex is None):
            raise ValueError(f"deny rule '{self.name}': give exactly one of keywords and regex")
        if self.keywords is not None and (not self.keywords or any(not k.strip() for k in self.keywords)):
            raise ValueError(f"deny rule '{self.name}': keywords must be a non-empty list of non-blank words")
        if self.regex is not None:
            try:
                checked_matcher(self.name, self.regex, deny=True, ignore_case=not self.case_sensitive)
            except ValueError as exc:
                raise ValueError(f"deny rule '{self.name}': {exc}") from None
        return self

    def applies(self, direction: Direction) -> bool:
        return self.direction in (direction, "both")


class CustomEntity(_Strict):
    label: str = Field(description="The entity's name, used in `redact` lists and as the mask `[LABEL]` (upper "
                       "case letters, digits and _, starting with a letter).")
    regex: str = Field(description="A regular expression (Python syntax) for the values; checked like a deny "
                       "rule's regex.")
    case_sensitive: bool = Field(True, description="Match case exactly (default: yes).")

    @model_validator(mode="after")
    def _valid(self) -> CustomEntity:
        if not LABEL.match(self.label):
            raise ValueError(f"entity label {self.label!r}: use upper case letters, digits and _, starting with "
                             "a letter, at most 32 characters")
        if self.label in BUILTIN_ENTITIES:
            raise ValueError(f"entity label {self.label!r} is a built-in entity")
        try:
            checked_matcher(self.label, self.regex, deny=False, ignore_case=not self.case_sensitive)
        except ValueError as exc:
            raise ValueError(f"entity '{self.label}': {exc}") from None
        return self


class Redaction(_Strict):
    input: list[str] = Field(default_factory=list, description="Entities masked in requests before the model "
                             f"sees them: {', '.join(BUILTIN_ENTITIES)} or a custom entity's label.")
    output: list[str] = Field(default_factory=list, description="Entities masked in answers (streamed ones "
                              "too: a value is never sent in part).")
    capture: list[str] = Field(default_factory=list, description="Entities masked in captured requests and "
                               "answers.")


class GuardModel(_Strict):
    deployment: str = Field(description="The local deployment asked for a verdict (a Llama-Guard-style model).")
    directions: list[Direction] = Field(default_factory=lambda: list[Direction](["input"]), min_length=1,
                                        description="Ask it before generation (`input`), after (`output`), or both.")
    timeout_s: float = Field(5.0, gt=0, le=60, description="How long to wait for its verdict.")
    on_error: Literal["fail-open", "fail-closed"] = Field(
        description="What a timeout, an error or an unreadable verdict does: let the request through "
        "(`fail-open`) or refuse it (`fail-closed`). No default: choose.")
    categories: dict[str, str] | None = Field(
        None, description="The unsafe-content categories put in its prompt, code → description (default: Llama "
        "Guard 3's S1–S14).")

    @field_validator("deployment")
    @classmethod
    def _plain_deployment(cls, name: str) -> str:
        if not NAME.match(name):
            raise ValueError(f"deployment {name!r}: use {NAME_RULE}")
        return name


class GuardrailPolicy(_Strict):
    """What a deployment's requests and answers must respect. Every part is optional."""

    limits: Limits = Field(default_factory=Limits, description="Size limits of a request and its answer.")
    deny: list[DenyRule] = Field(default_factory=list, description="Rules that refuse a request or end an answer.")
    redact: Redaction = Field(default_factory=Redaction, description="Entities masked, per direction.")
    custom_entities: list[CustomEntity] = Field(default_factory=list,
                                                description="Operator-defined entities (a regex and a label).")
    guard: GuardModel | None = Field(None, description="A guard model asked for a verdict (unset: none).")

    @model_validator(mode="after")
    def _consistent(self) -> GuardrailPolicy:
        names = [rule.name for rule in self.deny]
        if duplicate := next((n for n in names if names.count(n) > 1), None):
            raise ValueError(f"deny rule '{duplicate}' is defined twice")
        labels = [entity.label for entity in self.custom_entities]
        if duplicate := next((n for n in labels if labels.count(n) > 1), None):
            raise ValueError(f"entity '{duplicate}' is defined twice")
        known = set(BUILTIN_ENTITIES) | set(labels)
        for where in ("input", "output", "capture"):
            unknown = [e for e in getattr(self.redact, where) if e not in known]
            if unknown:
                raise ValueError(f"redact.{where}: unknown entity {unknown[0]!r} (known: {', '.join(sorted(known))})")
        return self
