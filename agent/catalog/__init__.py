"""The service catalog: fees, commission rules, fields and their validators.

The bundled ``default.json`` holds SAMPLE fees (see its ``note``); an enrolled
kiosk uses the catalog the server sent, stored in the ledger's meta table.
"""

from __future__ import annotations

import functools
import json
import re
from dataclasses import dataclass
from importlib import resources
from typing import Any

from agent.errors import InvalidInput

__all__ = ["Catalog", "Choice", "Field", "Service", "bundled", "from_json"]


@dataclass(frozen=True)
class Choice:
    """One of a field's fixed values (a DISCOM, a bank, a telecom operator) and its labels."""

    value: str
    label_en: str
    label_hi: str


@dataclass(frozen=True)
class Field:
    name: str
    required: bool
    pattern: str
    example: str
    label_en: str
    label_hi: str
    choices: tuple[Choice, ...] = ()

    def check(self, value: str) -> str:
        """The value as stored: a choice is matched case-insensitively and stored as the catalog
        spells it."""
        if self.choices:
            for c in self.choices:
                if c.value.casefold() == value.casefold():
                    value = c.value
                    break
            else:
                raise InvalidInput(
                    f"field '{self.name}' must be one of: {', '.join(c.value for c in self.choices)}"
                )
        if not re.fullmatch(self.pattern, value):
            # Never echo the value: an operator may have typed an Aadhaar number into it.
            raise InvalidInput(f"field '{self.name}' is not in the expected form (like: {self.example})")
        return value


@dataclass(frozen=True)
class Service:
    code: str
    name_en: str
    name_hi: str
    category: str
    fee_paise: int
    max_amount_paise: int
    online_only: bool
    commission: dict[str, Any]
    fields: tuple[Field, ...]
    mobile: str  # required | optional | none
    aadhaar: str  # required | optional | none

    @property
    def fee_only(self) -> bool:
        """The citizen pays the fee and nothing else: no amount is asked (max amount 0)."""
        return self.max_amount_paise == 0

    def check_fields(self, given: dict[str, str]) -> dict[str, str]:
        known = {f.name: f for f in self.fields}
        for name in given:
            if name not in known:
                raise InvalidInput(  # the name as typed is not repeated: it may be a citizen's number
                    f"service {self.code} has no field of that name (fields: {', '.join(known) or 'none'})"
                )
        out: dict[str, str] = {}
        for f in self.fields:
            value = given.get(f.name, "").strip()
            if not value:
                if f.required:
                    raise InvalidInput(f"service {self.code} needs --field {f.name}=... (like: {f.example})")
                continue
            out[f.name] = f.check(value)
        return out

    def public(self) -> dict[str, Any]:
        return {
            "code": self.code,
            "name_en": self.name_en,
            "name_hi": self.name_hi,
            "category": self.category,
            "fee_paise": self.fee_paise,
            "max_amount_paise": self.max_amount_paise,
            "online_only": self.online_only,
            "fee_only": self.fee_only,
            "commission": dict(self.commission),  # the Catalog is cached: hand out copies
            "mobile": self.mobile,
            "aadhaar": self.aadhaar,
            "fields": [
                {
                    "name": f.name,
                    "required": f.required,
                    "example": f.example,
                    "pattern": f.pattern,
                    "label_en": f.label_en,
                    "label_hi": f.label_hi,
                    "choices": [
                        {"value": c.value, "label_en": c.label_en, "label_hi": c.label_hi} for c in f.choices
                    ],
                }
                for f in self.fields
            ],
        }


@dataclass(frozen=True)
class Catalog:
    version: int
    services: tuple[Service, ...]
    note: str = ""

    def get(self, code: str) -> Service:
        for s in self.services:
            if s.code == code:
                return s
        raise InvalidInput("unknown service code; see kiosk-agent catalog")


def _choices(items: list[Any]) -> tuple[Choice, ...]:
    """``["JVVNL", ...]`` or ``[{"value": "JVVNL", "label_en": ..., "label_hi": ...}, ...]``."""
    out = []
    for c in items:
        if isinstance(c, str):
            out.append(Choice(c, c, c))
        else:
            value = str(c["value"])
            out.append(Choice(value, c.get("label_en", value), c.get("label_hi", c.get("label_en", value))))
    return tuple(out)


def from_json(doc: dict[str, Any]) -> Catalog:
    services = []
    for s in doc["services"]:
        fields = tuple(
            Field(
                f["name"],
                bool(f["required"]),
                f["pattern"],
                f["example"],
                f.get("label_en", f["name"]),
                f.get("label_hi", f["name"]),
                _choices(f.get("choices", [])),
            )
            for f in s.get("fields", [])
        )
        services.append(
            Service(
                s["code"],
                s["name_en"],
                s["name_hi"],
                s.get("category", ""),
                int(s["fee_paise"]),
                int(s["max_amount_paise"]),
                bool(s["online_only"]),
                dict(s["commission"]),
                fields,
                s.get("mobile", "optional"),
                s.get("aadhaar", "none"),
            )
        )
    return Catalog(int(doc["version"]), tuple(services), doc.get("note", ""))


def bundled_json() -> dict[str, Any]:
    text = resources.files("agent.catalog").joinpath("default.json").read_text(encoding="utf-8")
    doc: dict[str, Any] = json.loads(text)
    return doc


@functools.lru_cache(maxsize=1)
def bundled() -> Catalog:
    """Parsed once per process (it is frozen): not on every transaction's hot path."""
    return from_json(bundled_json())


@functools.lru_cache(maxsize=4)
def from_text(text: str) -> Catalog:
    """A stored catalog document, parsed once per distinct text."""
    return from_json(json.loads(text))
