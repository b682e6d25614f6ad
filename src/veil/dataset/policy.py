"""Dataset mode's policy: per record, leave it out, obscure its faces, or keep them (consent).

A policy file (TOML, format in docs/policy.md) lists rules; the first rule whose ``when`` matches
a record's fields, and whose ``unless`` does not, decides; when none does, ``default`` decides.

This is a privacy gate, so whatever is unclear fails closed:

* a field the record lacks, or holds as null, matches nothing: a missing consent is no consent;
* text counts as a boolean only when it is one of true/false/yes/no/1/0, so "false" is never
  consent;
* a list in the record is read in the protective direction. A ``drop`` or ``obscure`` rule
  applies when *any* element matches its ``when`` (one person in the EU is enough) and is
  excused by its ``unless`` only when *every* element matches (everyone consented). A ``keep``
  rule, which leaves faces visible, is the other way round: *every* element must match its
  ``when``, and one element matching its ``unless`` is enough to stop it.
"""

from __future__ import annotations

import difflib
import math
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, time
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any, Literal, TypeAlias

import numpy as np

from ..errors import UsageError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10 ships no TOML reader
    import tomli as tomllib

Action = Literal["drop", "obscure", "keep"]
ACTIONS: tuple[Action, ...] = ("drop", "obscure", "keep")

#: What a policy may compare a field with: TOML's text, booleans and numbers.
Scalar: TypeAlias = str | bool | int | float

#: Named sets a policy writes as "@name" in place of a value, so nobody pastes (and mistypes)
#: thirty country codes. Each holds codes and English names; comparison ignores case.
#: Sources: EU members, europa.eu "EU countries"
#: (https://european-union.europa.eu/principles-countries-history/eu-countries_en); the EEA adds
#: Iceland, Liechtenstein and Norway (EEA Agreement, https://www.efta.int/eea); codes are ISO
#: 3166-1 alpha-2, plus "EL", the code EU documents use for Greece (Interinstitutional Style
#: Guide, section 7.1), and the names' common variants. US states with a biometric privacy
#: statute: Illinois BIPA (740 ILCS 14), Texas CUBI (Bus. & Com. Code 503.001), Washington
#: (RCW 19.375); codes as USPS and ISO 3166-2 write them.
NAMED_SETS: dict[str, tuple[str, ...]] = {
    "eu_eea": (
        "AT", "Austria", "BE", "Belgium", "BG", "Bulgaria", "HR", "Croatia", "CY", "Cyprus",
        "CZ", "Czechia", "Czech Republic", "DK", "Denmark", "EE", "Estonia", "FI", "Finland",
        "FR", "France", "DE", "Germany", "GR", "EL", "Greece", "HU", "Hungary", "IE", "Ireland",
        "IT", "Italy", "LV", "Latvia", "LT", "Lithuania", "LU", "Luxembourg", "MT", "Malta",
        "NL", "Netherlands", "The Netherlands", "PL", "Poland", "PT", "Portugal", "RO",
        "Romania", "SK", "Slovakia", "SI", "Slovenia", "ES", "Spain", "SE", "Sweden",
        # EEA, not EU
        "IS", "Iceland", "LI", "Liechtenstein", "NO", "Norway",
    ),
    "bipa_like_us_states": (
        "IL", "US-IL", "Illinois", "TX", "US-TX", "Texas", "WA", "US-WA", "Washington",
    ),
}  # fmt: skip

#: Text a dataset uses for a boolean (consent is often stored as text). Nothing else counts.
_BOOL_WORDS: dict[str, bool] = {
    "true": True, "yes": True, "1": True, "false": False, "no": False, "0": False,
}  # fmt: skip

_TOP_KEYS = ("default", "drop_fields", "rule")
_RULE_KEYS = ("name", "action", "reason", "when", "unless")
_ACTION_WORDS: dict[str, str] = {
    "drop": "leave the record out",
    "obscure": "obscure faces",
    "keep": "keep faces visible",
}


def _text(value: str) -> str:
    return value.strip().casefold()


def _plain(value: Any) -> Any:
    """numpy values (Parquet read through pandas) as the Python values they stand for."""
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    return value


def _leaves(value: Any) -> list[Any]:
    value = _plain(value)
    if isinstance(value, list | tuple | set | frozenset):
        return [leaf for item in value for leaf in _leaves(item)]
    return [value]


def _lookup(node: Any, parts: tuple[str, ...]) -> list[Any]:
    """Every value the dotted path ``parts`` reaches below ``node``.

    Keys compare case-insensitively (a ``Country`` column must not slip past a rule on
    ``country``); a key may itself hold dots (a flat ``location.country`` column); lists are
    searched element by element. A branch that lacks the field gives None, so a test that
    needs every element to match fails on it; an empty list gives nothing.
    """
    node = _plain(node)
    if not parts:
        return _leaves(node)
    if isinstance(node, Mapping):
        found: list[Any] = []
        for cut in range(1, len(parts) + 1):
            key = ".".join(parts[:cut]).casefold()
            for name, child in node.items():
                if isinstance(name, str) and name.casefold() == key:
                    found.extend(_lookup(child, parts[cut:]))
        return found or [None]
    if isinstance(node, list | tuple):
        return [value for item in node for value in _lookup(item, parts)]
    return [None]


def _toml_type(value: object) -> str:
    if isinstance(value, dict):
        return "a table"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, datetime | date | time):
        return "a date/time"
    return type(value).__name__


def _show(value: Scalar) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str) and not value.startswith("@"):
        return f'"{value}"'
    return str(value)


@dataclass(frozen=True)
class Condition:
    """One field test: the field at ``path`` (dots reach into nested records) equals one of
    ``values``, which are kept as written ("@sets" included) for ``describe``."""

    path: str
    values: tuple[Scalar, ...]
    _parts: tuple[str, ...] = field(init=False, repr=False, compare=False)
    _texts: frozenset[str] = field(init=False, repr=False, compare=False)
    _bools: frozenset[bool] = field(init=False, repr=False, compare=False)
    _numbers: frozenset[int | float] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        parts = tuple(self.path.split("."))
        if not all(part.strip() for part in parts):
            raise UsageError(f"field name {self.path!r} is empty or has an empty part")
        if not self.values:
            raise UsageError(f"field {self.path!r}: an empty list matches nothing")
        texts: set[str] = set()
        bools: set[bool] = set()
        numbers: set[int | float] = set()
        for value in self.values:
            if isinstance(value, bool):
                bools.add(value)
            elif isinstance(value, int | float):
                if math.isnan(value):
                    raise UsageError(f"field {self.path!r}: nan matches nothing")
                numbers.add(value)
            elif isinstance(value, str) and value.startswith("@"):
                members = NAMED_SETS.get(value[1:])
                if members is None:
                    known = ", ".join("@" + name for name in NAMED_SETS)
                    raise UsageError(
                        f"field {self.path!r}: unknown set {value!r}; known sets: {known}"
                    )
                texts.update(_text(member) for member in members)
            elif isinstance(value, str):
                texts.add(_text(value))
            else:
                raise UsageError(
                    f"field {self.path!r}: a value must be text, true/false or a number, "
                    f"not {_toml_type(value)}"
                )
        object.__setattr__(self, "_parts", parts)
        object.__setattr__(self, "_texts", frozenset(texts))
        object.__setattr__(self, "_bools", frozenset(bools))
        object.__setattr__(self, "_numbers", frozenset(numbers))

    def matches(self, record: Mapping[str, Any], *, every: bool = False) -> bool:
        """Whether the record's field matches: any of its values, or with ``every`` all of
        them (and at least one). A missing field or null never matches."""
        found = _lookup(record, self._parts)
        if every:
            return bool(found) and all(self._matches_one(value) for value in found)
        return any(self._matches_one(value) for value in found)

    def _matches_one(self, value: Any) -> bool:
        value = _plain(value)
        if isinstance(value, bool):  # before numbers: True must not equal 1 here
            return value in self._bools
        if isinstance(value, int | float):
            # 1 == 1.0 by Python's rules; a 0/1 column also answers true/false.
            if value in self._numbers:
                return True
            return value in (0, 1) and bool(value) in self._bools
        if isinstance(value, str):
            text = _text(value)
            if text in self._texts:
                return True
            word = _BOOL_WORDS.get(text)
            return word is not None and word in self._bools
        return False  # None, tables, bytes, dates: nothing to compare with

    def describe(self) -> str:
        shown = [_show(value) for value in self.values[:6]]
        if len(self.values) > 6:
            shown.append(f"... ({len(self.values) - 6} more)")
        if len(shown) == 1:
            return f"{self.path} is {shown[0]}"
        return f"{self.path} is one of {', '.join(shown)}"


@dataclass(frozen=True)
class Rule:
    """When every ``when`` condition matches and not every ``unless`` condition does, the
    record gets ``action``; ``reason`` goes into the manifest."""

    name: str
    action: Action
    when: tuple[Condition, ...]
    unless: tuple[Condition, ...] = ()
    reason: str = ""

    def __post_init__(self) -> None:
        if not self.name.strip():
            raise UsageError("a rule needs a name")
        if self.action not in ACTIONS:
            raise UsageError(f"unknown action {self.action!r}; choose one of {', '.join(ACTIONS)}")
        if not self.when:
            raise UsageError("`when` is empty: a rule must test at least one field")
        if not self.reason.strip():
            object.__setattr__(self, "reason", f"rule {self.name}: {self.conditions()}")

    def applies(self, record: Mapping[str, Any]) -> bool:
        # A keep rule shows faces, so it must be sure: every list element must match `when`,
        # and any matching `unless` stops it. Other rules protect, so the reverse.
        showing = self.action == "keep"
        if not all(cond.matches(record, every=showing) for cond in self.when):
            return False
        return not (
            self.unless and all(cond.matches(record, every=not showing) for cond in self.unless)
        )

    def conditions(self) -> str:
        text = " and ".join(cond.describe() for cond in self.when)
        if self.unless:
            text += ", unless " + " and ".join(cond.describe() for cond in self.unless)
        return text


@dataclass(frozen=True)
class Decision:
    """What happens to one record, and why (for the manifest)."""

    #: drop: left out of the output; obscure: faces obscured and metadata stripped; keep: faces
    #: left as they are (consent), metadata still stripped.
    action: Action
    #: The rule that decided; None when the default applied.
    rule: str | None
    reason: str


@dataclass(frozen=True)
class Policy:
    """Rules in order (first match wins), the action when none matches, and the record fields
    (JSON sidecar keys, Parquet columns) left out of the output."""

    default: Action = "obscure"
    rules: tuple[Rule, ...] = ()
    #: Glob patterns, case-insensitive. ``exif``: img2dataset copies each image's EXIF (GPS,
    #: serial numbers, owner names) into the record, beside the image veil strips.
    drop_fields: tuple[str, ...] = ("exif",)

    def __post_init__(self) -> None:
        if self.default not in ACTIONS:
            raise UsageError(
                f"unknown default action {self.default!r}; choose one of {', '.join(ACTIONS)}"
            )
        seen: set[str] = set()
        for rule in self.rules:
            if rule.name in seen:  # the manifest names rules; two of a name would be ambiguous
                raise UsageError(f"two rules are named {rule.name!r}; names must be unique")
            seen.add(rule.name)
        for pattern in self.drop_fields:
            if not isinstance(pattern, str) or not pattern.strip():
                raise UsageError(f"drop_fields: {pattern!r} is not a field name or pattern")

    @classmethod
    def load(cls, path: Path) -> Policy:
        """Read a policy file; any problem is a UsageError naming the file and the rule."""
        try:
            text = Path(path).read_text(encoding="utf-8")
        except UnicodeDecodeError as exc:
            raise UsageError(f"{path}: not UTF-8 text ({exc.reason})") from None
        except OSError as exc:
            raise UsageError(f"cannot read policy file {path}: {exc.strerror or exc}") from None
        return cls.from_text(text, str(path))

    @classmethod
    def from_text(cls, text: str, source: str = "<policy>") -> Policy:
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:  # its message ends "(at line L, column C)"
            raise UsageError(f"{source}: not valid TOML: {exc}") from None
        _check_keys(data, _TOP_KEYS, source)
        default = data.get("default", "obscure")
        if default not in ACTIONS:
            raise UsageError(
                f"{source}: default must be one of {', '.join(ACTIONS)}, not {default!r}"
            )
        drop_fields = data.get("drop_fields", ["exif"])
        if not isinstance(drop_fields, list) or not all(
            isinstance(name, str) and name.strip() for name in drop_fields
        ):
            raise UsageError(
                f'{source}: drop_fields must be a list of field names, like ["exif", "gps*"]'
            )
        raw_rules = data.get("rule", [])
        if not isinstance(raw_rules, list):
            raise UsageError(
                f"{source}: write each rule as a [[rule]] table (two brackets), one per rule"
            )
        rules = tuple(_rule(raw, index, source) for index, raw in enumerate(raw_rules, 1))
        try:
            return cls(default=default, rules=rules, drop_fields=tuple(drop_fields))
        except UsageError as exc:
            raise UsageError(f"{source}: {exc}") from None

    def decide(self, fields: Mapping[str, Any]) -> Decision:
        """The first rule that applies to the record decides; with none, the default."""
        for rule in self.rules:
            if rule.applies(fields):
                return Decision(rule.action, rule.name, rule.reason)
        return Decision(self.default, None, "no rule matched: default action")

    def fields_to_drop(self, names: Iterable[str]) -> list[str]:
        """Those of ``names`` that ``drop_fields`` removes, in their order."""
        patterns = [_text(pattern) for pattern in self.drop_fields]
        return [
            name for name in names if any(fnmatchcase(_text(name), pattern) for pattern in patterns)
        ]

    def describe(self) -> str:
        lines = []
        if self.rules:
            count = f"{len(self.rules)} rules" if len(self.rules) > 1 else "1 rule"
            lines.append(f"{count}, the first that matches a record decides:")
            for index, rule in enumerate(self.rules, 1):
                action = _ACTION_WORDS[rule.action]
                lines.append(f"  {index}. {rule.name}: {action} when {rule.conditions()}")
            lines.append(f"any other record: {_ACTION_WORDS[self.default]}")
        else:
            lines.append(f"no rules: every record: {_ACTION_WORDS[self.default]}")
        dropped = ", ".join(self.drop_fields) if self.drop_fields else "none"
        lines.append(f"record fields left out: {dropped}; image metadata is always stripped")
        return "\n".join(lines)


def _check_keys(table: Mapping[str, Any], allowed: tuple[str, ...], where: str) -> None:
    for key in table:
        if key not in allowed:
            close = difflib.get_close_matches(key, allowed, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise UsageError(f"{where}: unknown key {key!r}{hint}; allowed: {', '.join(allowed)}")


def _rule(raw: Any, index: int, source: str) -> Rule:
    where = f"{source}: rule {index}"
    if not isinstance(raw, dict):
        raise UsageError(f"{where}: must be a [[rule]] table, not {_toml_type(raw)}")
    name = raw.get("name")
    if not isinstance(name, str) or not name.strip():
        raise UsageError(f'{where}: needs a name, like name = "gdpr-eu-eea"')
    where = f"{where} ({name!r})"
    _check_keys(raw, _RULE_KEYS, where)
    action = raw.get("action")
    if action not in ACTIONS:
        shown = "none" if action is None else repr(action)
        raise UsageError(f"{where}: action must be one of {', '.join(ACTIONS)}, not {shown}")
    reason = raw.get("reason", "")
    if not isinstance(reason, str):
        raise UsageError(f"{where}: reason must be text, not {_toml_type(reason)}")
    if "when" not in raw:
        raise UsageError(f'{where}: needs `when`, like when = {{ country = "DE" }}')
    try:
        when = _conditions(raw["when"], "when")
        unless = _conditions(raw["unless"], "unless") if "unless" in raw else ()
        return Rule(name=name, action=action, when=when, unless=unless, reason=reason)
    except UsageError as exc:
        raise UsageError(f"{where}: {exc}") from None


def _conditions(table: Any, key: str) -> tuple[Condition, ...]:
    if not isinstance(table, dict):
        raise UsageError(
            f'`{key}` must be a table of fields, like {key} = {{ country = "DE" }}, '
            f"not {_toml_type(table)}"
        )
    if not table:
        # An empty `when` would match every record; an empty `unless` would excuse every one.
        raise UsageError(f"`{key}` is empty: it must test at least one field")
    return tuple(_flatten(table, ""))


def _flatten(table: dict[str, Any], prefix: str) -> Iterable[Condition]:
    """Conditions from a table; a nested table (TOML's bare dotted keys make them:
    ``location.country = "DE"``) becomes a dotted path."""
    for key, value in table.items():
        path = prefix + key
        if isinstance(value, dict):
            if not value:
                raise UsageError(f"field {path!r} is an empty table: it tests nothing")
            yield from _flatten(value, path + ".")
            continue
        values = value if isinstance(value, list) else [value]
        for item in values:
            if isinstance(item, list | dict):
                raise UsageError(
                    f"field {path!r}: a value must be text, true/false or a number, "
                    f"not {_toml_type(item)}"
                )
        yield Condition(path, tuple(values))
