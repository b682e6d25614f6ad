"""Dataset policy: matching (fail closed), rule order, nested fields, named sets, drop_fields,
the example policies, and a clear UsageError for every kind of bad file."""

from __future__ import annotations

import pickle
import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from veil.dataset.policy import NAMED_SETS, Condition, Decision, Policy, Rule
from veil.errors import UsageError

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "policies"
MISSING = object()  # a record without the field at all


def _one_rule(when: str, unless: str = "", action: str = "drop") -> Policy:
    text = f'[[rule]]\nname = "r"\naction = "{action}"\nwhen = {{ {when} }}\n'
    if unless:
        text += f"unless = {{ {unless} }}\n"
    return Policy.from_text(text)


def _record(value: Any) -> dict[str, Any]:
    return {} if value is MISSING else {"f": value}


@pytest.mark.parametrize(
    ("wanted", "value", "matches"),
    [
        # text: trimmed, any case
        ('"IL"', "il", True),
        ('"IL"', " IL ", True),
        ('"il "', "IL", True),
        ('"Germany"', "GERMANY", True),
        ('"DE"', "DEU", False),
        ('"DE"', "D E", False),
        # numbers: numerically, never booleans, never text
        ("1", 1.0, True),
        ("2.5", 2.5, True),
        ("1", 2, False),
        ("1", True, False),
        ("1", "1", False),
        # booleans: booleans, the six words, and 0/1 columns
        ("true", True, True),
        ("true", "true", True),
        ("true", " Yes ", True),
        ("true", "1", True),
        ("true", 1, True),
        ("true", False, False),
        ("true", "false", False),
        ("true", "no", False),
        ("true", "0", False),
        ("true", "maybe", False),
        ("true", "", False),
        ("true", "y", False),
        ("true", 0, False),
        ("true", 2, False),
        ("false", False, True),
        ("false", "FALSE", True),
        ("false", "no", True),
        ("false", 0, True),
        ("false", True, False),
        # null and missing match nothing, not even false
        ('"DE"', None, False),
        ("false", None, False),
        ("false", MISSING, False),
        ("true", float("nan"), False),  # pandas' missing value
        ("1", float("nan"), False),
        ('"DE"', MISSING, False),
        # lists in the record: any element
        ('"DE"', ["US", "DE"], True),
        ('"DE"', ["US", ["FR", "de"]], True),
        ('"DE"', ["US", "FR"], False),
        ('"DE"', [], False),
        # lists in the policy: any value
        ('["FR", "DE"]', "de", True),
        ('["FR", 3, true]', 3, True),
        ('["FR", 3, true]', "yes", True),
        ('["FR", 3, true]', "ES", False),
        # values that are neither text, booleans nor numbers
        ('"DE"', {"country": "DE"}, False),
        ('"DE"', b"DE", False),
        # numpy values, as pandas hands Parquet columns over
        ("true", np.bool_(True), True),
        ("true", np.bool_(False), False),
        ("3", np.int64(3), True),
        ('"DE"', np.str_("de"), True),
        ('"DE"', np.array(["US", "DE"]), True),
    ],
)
def test_when_matching(wanted: str, value: Any, matches: bool) -> None:
    policy = _one_rule(f"f = {wanted}")
    assert policy.decide(_record(value)).action == ("drop" if matches else "obscure")


@pytest.mark.parametrize(
    ("consent", "excused"),
    [
        (True, True),
        ("true", True),
        ("Yes", True),
        (" 1", True),
        (1, True),
        ([True, "yes"], True),
        # fail closed: anything short of a clear yes is no consent
        (MISSING, False),
        (None, False),
        (False, False),
        ("false", False),
        ("no", False),
        ("0", False),
        ("", False),
        ("consent", False),
        (0, False),
        ([], False),
        ([None], False),
        ([True, False], False),  # two people, one said no: the rule still applies
        ([True, None], False),
    ],
)
def test_unless_fails_closed(consent: Any, excused: bool) -> None:
    policy = _one_rule('country = "DE"', "consent = true")
    record = {"country": "DE"} | ({} if consent is MISSING else {"consent": consent})
    assert policy.decide(record).action == ("obscure" if excused else "drop")


def test_unless_needs_every_field() -> None:
    policy = _one_rule('country = "DE"', 'consent = true, purpose = "research"')
    assert policy.decide({"country": "DE", "consent": True}).action == "drop"
    record = {"country": "DE", "consent": True, "purpose": "Research"}
    assert policy.decide(record).action == "obscure"


def test_when_needs_every_field() -> None:
    policy = _one_rule('country = "DE", adult = true')
    assert policy.decide({"country": "DE"}).action == "obscure"
    assert policy.decide({"country": "DE", "adult": "yes"}).action == "drop"


@pytest.mark.parametrize(
    ("record", "action"),
    [
        ({"consent": True}, "keep"),
        ({"consent": [True, True]}, "keep"),
        # a keep rule shows faces: every person in the record must match its `when`...
        ({"consent": [True, False]}, "obscure"),
        ({"consent": [True, None]}, "obscure"),
        ({"consent": []}, "obscure"),
        # ...and one person matching its `unless` stops it
        ({"consent": True, "minor": [False, True]}, "obscure"),
        ({"consent": True, "minor": False}, "keep"),
        ({"consent": True, "minor": None}, "keep"),
    ],
)
def test_keep_rule_reads_lists_strictly(record: dict[str, Any], action: str) -> None:
    policy = _one_rule("consent = true", "minor = true", action="keep")
    assert policy.decide(record).action == action


def test_first_matching_rule_wins() -> None:
    rules = {
        "eu": '[[rule]]\nname = "eu"\naction = "drop"\nwhen = { country = "@eu_eea" }\n',
        "ok": '[[rule]]\nname = "ok"\naction = "keep"\nwhen = { consent = true }\n',
    }
    record = {"country": "FR", "consent": True}
    eu_first = Policy.from_text(rules["eu"] + rules["ok"])
    ok_first = Policy.from_text(rules["ok"] + rules["eu"])
    assert eu_first.decide(record) == Decision("drop", "eu", "rule eu: country is @eu_eea")
    assert ok_first.decide(record).rule == "ok"
    assert eu_first.decide({"country": "US"}) == Decision(
        "obscure", None, "no rule matched: default action"
    )


@pytest.mark.parametrize("default", ["drop", "obscure", "keep"])
def test_default_applies_when_no_rule_matches(default: str) -> None:
    policy = Policy.from_text(f'default = "{default}"')
    assert policy.decide({"anything": 1}) == Decision(
        default,  # type: ignore[arg-type]
        None,
        "no rule matched: default action",
    )


@pytest.mark.parametrize(
    "when",
    [
        '"location.country" = "DE"',  # one quoted key with a dot
        'location.country = "DE"',  # TOML bare dotted key: a nested table
        'location = { country = "DE" }',
    ],
)
@pytest.mark.parametrize(
    ("record", "matches"),
    [
        ({"location": {"country": "de"}}, True),
        ({"location.country": "DE"}, True),  # a flat column named with a dot
        ({"Location": {"COUNTRY": "DE"}}, True),  # keys compare case-insensitively
        ({"location": [{"country": "US"}, {"country": "DE"}]}, True),
        ({"location": {"country": "US"}}, False),
        ({"location": {"city": "Berlin"}}, False),
        ({"location": "DE"}, False),
        ({"location": None}, False),
        ({"country": "DE"}, False),
        ({}, False),
    ],
)
def test_nested_fields(when: str, record: dict[str, Any], matches: bool) -> None:
    assert _one_rule(when).decide(record).action == ("drop" if matches else "obscure")


def test_nested_unless_across_a_list_needs_everyone() -> None:
    policy = _one_rule('country = "DE"', "people.consent = true")
    people = [{"consent": True}, {"consent": "yes"}]
    assert policy.decide({"country": "DE", "people": people}).action == "obscure"
    people = [{"consent": True}, {"name": "no consent field"}]
    assert policy.decide({"country": "DE", "people": people}).action == "drop"


def test_field_name_case() -> None:
    # A "Country" column must not slip past a rule written for "country".
    policy = _one_rule('country = "DE"')
    assert policy.decide({"Country": "DE"}).action == "drop"
    assert policy.decide({"COUNTRY": "us", "country": "de"}).action == "drop"


EU_EEA = {
    "AT": "Austria", "BE": "Belgium", "BG": "Bulgaria", "HR": "Croatia", "CY": "Cyprus",
    "CZ": "Czechia", "DK": "Denmark", "EE": "Estonia", "FI": "Finland", "FR": "France",
    "DE": "Germany", "GR": "Greece", "HU": "Hungary", "IE": "Ireland", "IT": "Italy",
    "LV": "Latvia", "LT": "Lithuania", "LU": "Luxembourg", "MT": "Malta", "NL": "Netherlands",
    "PL": "Poland", "PT": "Portugal", "RO": "Romania", "SK": "Slovakia", "SI": "Slovenia",
    "ES": "Spain", "SE": "Sweden", "IS": "Iceland", "LI": "Liechtenstein", "NO": "Norway",
}  # fmt: skip


def test_eu_eea_set_is_the_thirty_states() -> None:
    assert len(EU_EEA) == 30
    members = {value.casefold() for value in NAMED_SETS["eu_eea"]}
    for code, name in EU_EEA.items():
        assert code.casefold() in members and name.casefold() in members
    codes = {value for value in NAMED_SETS["eu_eea"] if len(value) == 2}
    assert codes - set(EU_EEA) == {"EL"}  # Greece as EU documents write it


@pytest.mark.parametrize(
    ("value", "matches"),
    [
        *[(code, True) for code in EU_EEA],
        *[(name.upper(), True) for name in EU_EEA.values()],
        ("el", True),
        ("Czech Republic", True),
        ("the netherlands", True),
        ("CH", False),
        ("Switzerland", False),
        ("GB", False),
        ("United Kingdom", False),
        ("US", False),
        ("", False),
    ],
)
def test_eu_eea_set(value: str, matches: bool) -> None:
    policy = _one_rule('country = "@eu_eea"')
    assert policy.decide({"country": value}).action == ("drop" if matches else "obscure")


@pytest.mark.parametrize(
    ("value", "matches"),
    [
        ("IL", True),
        ("il ", True),
        ("Illinois", True),
        ("US-IL", True),
        ("TX", True),
        ("texas", True),
        ("WA", True),
        ("Washington", True),
        ("CA", False),
        ("California", False),
        ("NY", False),
    ],
)
def test_bipa_set(value: str, matches: bool) -> None:
    policy = _one_rule('state = "@bipa_like_us_states"')
    assert policy.decide({"state": value}).action == ("drop" if matches else "obscure")


def test_set_inside_a_list() -> None:
    policy = _one_rule('country = ["@eu_eea", "CH", "@bipa_like_us_states"]')
    for value in ("Germany", "ch", "Texas"):
        assert policy.decide({"country": value}).action == "drop"
    assert policy.decide({"country": "US"}).action == "obscure"


@pytest.mark.parametrize(
    ("patterns", "names", "dropped"),
    [
        (None, ["url", "caption", "exif", "EXIF"], ["exif", "EXIF"]),
        (["exif", "gps*"], ["GPSLatitude", "gps_lon", "exif", "agps", "caption"],
         ["GPSLatitude", "gps_lon", "exif"]),
        (["*_exif", "camera?"], ["raw_exif", "exif", "camera1", "camera12"],
         ["raw_exif", "camera1"]),
        (["Owner*"], ["owner_name", "OWNER", "co_owner"], ["owner_name", "OWNER"]),
        ([], ["exif", "gps"], []),
    ],
)  # fmt: skip
def test_fields_to_drop(patterns: list[str] | None, names: list[str], dropped: list[str]) -> None:
    text = "" if patterns is None else f"drop_fields = {patterns!r}".replace("'", '"')
    assert Policy.from_text(text).fields_to_drop(names) == dropped
    assert Policy.from_text(text).fields_to_drop(iter(names)) == dropped


@pytest.mark.parametrize("name", ["gdpr.toml", "bipa.toml", "gdpr-and-bipa.toml"])
def test_examples_load(name: str) -> None:
    policy = Policy.load(EXAMPLES / name)
    assert policy.default == "obscure"
    assert policy.fields_to_drop(["exif", "gps_lat", "caption"]) == ["exif", "gps_lat"]
    assert policy.describe().count("\n") >= 2


SAMPLES: list[tuple[dict[str, Any], str, str | None]] = [
    ({"country": "DE"}, "drop", "gdpr-eu-eea"),
    ({"country": "Germany", "consent": "false"}, "drop", "gdpr-eu-eea"),
    ({"country": "no", "consent": None}, "drop", "gdpr-eu-eea"),  # Norway, not "no"
    ({"country": ["US", "FR"], "consent": False}, "drop", "gdpr-eu-eea"),
    ({"country": "DE", "consent": True}, "keep", "consented"),
    ({"country": "de", "consent": "yes"}, "keep", "consented"),
    ({"country": "US", "state": "IL"}, "drop", "bipa-us-states"),
    ({"country": "US", "state": "Texas", "consent": "no"}, "drop", "bipa-us-states"),
    ({"state": "WA"}, "drop", "bipa-us-states"),  # no country field: still caught
    ({"country": "US", "state": "IL", "consent": "1"}, "keep", "consented"),
    ({"country": "US", "state": "CA"}, "obscure", None),
    ({"country": "US", "state": "CA", "consent": True}, "keep", "consented"),
    ({"country": "US", "consent": [True, False]}, "obscure", None),
    ({"country": "JP", "consent": "maybe"}, "obscure", None),
    ({"country": None}, "obscure", None),
    ({}, "obscure", None),
]


@pytest.mark.parametrize(("record", "action", "rule"), SAMPLES)
def test_gdpr_and_bipa_example(record: dict[str, Any], action: str, rule: str | None) -> None:
    decision = Policy.load(EXAMPLES / "gdpr-and-bipa.toml").decide(record)
    assert (decision.action, decision.rule) == (action, rule)
    assert decision.reason


@pytest.mark.parametrize(("record", "action", "rule"), SAMPLES)
def test_single_law_examples(record: dict[str, Any], action: str, rule: str | None) -> None:
    # Each single-law policy makes the same drops as the combined one for its own law, and
    # never keeps faces visible: it has no consent rule.
    for name, own in (("gdpr.toml", "gdpr-eu-eea"), ("bipa.toml", "bipa-us-states")):
        decision = Policy.load(EXAMPLES / name).decide(record)
        expected = ("drop", own) if rule == own else ("obscure", None)
        assert (decision.action, decision.rule) == expected, name


def test_describe() -> None:
    text = Policy.load(EXAMPLES / "gdpr-and-bipa.toml").describe()
    for part in ("3 rules", "gdpr-eu-eea", "@eu_eea", "unless consent is true", "consented"):
        assert part in text
    assert "any other record: obscure faces" in text
    assert "exif, gps*" in text
    long = _one_rule('country = ["a", "b", "c", "d", "e", "f", "g", "h"]').describe()
    assert "(2 more)" in long and '"h"' not in long
    assert "every record: obscure faces" in Policy().describe()


RULE = '[[rule]]\nname = "eu"\naction = "drop"\nwhen = { country = "DE" }\n'


@pytest.mark.parametrize(
    ("text", "fragments"),
    [
        ('default = "obscure"\nname "x"\n', ["not valid TOML", "line 2"]),
        ("rule = [\n", ["not valid TOML", "end of document"]),
        ('defualt = "drop"', ["unknown key 'defualt'", "did you mean 'default'"]),
        ('default = "blur"', ["default must be one of drop, obscure, keep", "'blur'"]),
        ("default = true", ["default must be one of"]),
        ('drop_fields = "exif"', ["drop_fields must be a list"]),
        ('drop_fields = ["exif", 3]', ["drop_fields must be a list"]),
        ('drop_fields = [""]', ["drop_fields must be a list"]),
        ('[rule]\nname = "x"\naction = "drop"\nwhen = { a = 1 }', ["[[rule]]"]),
        ("rule = [1]", ["rule 1", "must be a [[rule]] table"]),
        (RULE + '[[rule]]\naction = "drop"\nwhen = { a = 1 }', ["rule 2", "needs a name"]),
        ('[[rule]]\nname = " "\naction = "drop"\nwhen = { a = 1 }', ["rule 1", "needs a name"]),
        ("[[rule]]\nname = 7\naction = 'drop'\nwhen = { a = 1 }", ["rule 1", "needs a name"]),
        (RULE + RULE, ["two rules are named 'eu'"]),
        (
            '[[rule]]\nname = "x"\naction = "dorp"\nwhen = { a = 1 }',
            ["rule 1 ('x')", "action must be one of drop, obscure, keep", "'dorp'"],
        ),
        ('[[rule]]\nname = "x"\nwhen = { a = 1 }', ["rule 1 ('x')", "action", "not none"]),
        (
            '[[rule]]\nname = "x"\naction = "drop"\nwhen = { a = 1 }\nwhn = { b = 2 }',
            ["rule 1 ('x')", "unknown key 'whn'", "did you mean 'when'"],
        ),
        ('[[rule]]\nname = "x"\naction = "drop"', ["rule 1 ('x')", "needs `when`"]),
        ('[[rule]]\nname = "x"\naction = "drop"\nwhen = {}', ["rule 1 ('x')", "`when` is empty"]),
        (
            '[[rule]]\nname = "x"\naction = "drop"\nwhen = { a = 1 }\nunless = {}',
            ["rule 1 ('x')", "`unless` is empty"],
        ),
        (
            '[[rule]]\nname = "x"\naction = "drop"\nwhen = "DE"',
            ["rule 1 ('x')", "`when` must be a table", "not str"],
        ),
        (
            '[[rule]]\nname = "x"\naction = "drop"\nwhen = { a = 1 }\nunless = ["consent"]',
            ["`unless` must be a table", "not a list"],
        ),
        (
            '[[rule]]\nname = "x"\naction = "drop"\nwhen = { country = [] }',
            ["rule 1 ('x')", "field 'country'", "empty list"],
        ),
        (
            '[[rule]]\nname = "x"\naction = "drop"\nwhen = { country = [["DE"]] }',
            ["field 'country'", "not a list"],
        ),
        (
            '[[rule]]\nname = "x"\naction = "drop"\nwhen = { country = [{ a = 1 }] }',
            ["field 'country'", "not a table"],
        ),
        (
            '[[rule]]\nname = "x"\naction = "drop"\nwhen = { taken = 2024-01-01 }',
            ["field 'taken'", "not a date/time"],
        ),
        (
            '[[rule]]\nname = "x"\naction = "drop"\nwhen = { score = nan }',
            ["field 'score'", "nan matches nothing"],
        ),
        (
            '[[rule]]\nname = "x"\naction = "drop"\nwhen = { location = {} }',
            ["field 'location' is an empty table"],
        ),
        (
            '[[rule]]\nname = "x"\naction = "drop"\nwhen = { "a..b" = 1 }',
            ["field name 'a..b'", "empty part"],
        ),
        (
            '[[rule]]\nname = "x"\naction = "drop"\nwhen = { country = "@eu" }',
            ["rule 1 ('x')", "unknown set '@eu'", "@eu_eea", "@bipa_like_us_states"],
        ),
        (
            '[[rule]]\nname = "x"\naction = "drop"\nreason = 5\nwhen = { a = 1 }',
            ["rule 1 ('x')", "reason must be text"],
        ),
    ],
)
def test_bad_file(tmp_path: Path, text: str, fragments: list[str]) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(UsageError) as caught:
        Policy.load(path)
    message = str(caught.value)
    assert message.startswith(f"{path}: ")
    for fragment in fragments:
        assert fragment in message


def test_unreadable_files(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match=r"cannot read policy file .*absent\.toml"):
        Policy.load(tmp_path / "absent.toml")
    with pytest.raises(UsageError, match="cannot read policy file"):
        Policy.load(tmp_path)  # a folder
    latin1 = tmp_path / "latin1.toml"
    latin1.write_bytes('# Müller\ndefault = "drop"\n'.encode("latin-1"))
    with pytest.raises(UsageError, match=r"latin1\.toml: not UTF-8"):
        Policy.load(latin1)


def test_from_text_names_its_source() -> None:
    with pytest.raises(UsageError, match=r"^<policy>: unknown key 'rules'"):
        Policy.from_text("rules = []")
    with pytest.raises(UsageError, match=r"^cli --policy: "):
        Policy.from_text('default = "x"', source="cli --policy")


def test_empty_file_obscures_everything() -> None:
    policy = Policy.from_text("")
    assert policy == Policy()
    assert policy.decide({"country": "DE", "consent": True}).action == "obscure"
    assert policy.fields_to_drop(["exif"]) == ["exif"]


@pytest.mark.parametrize(
    ("build", "fragment"),
    [
        (lambda: Policy(default="blur"), "unknown default action 'blur'"),  # type: ignore[arg-type]
        (lambda: Policy(drop_fields=("exif", "")), "drop_fields"),
        (lambda: Rule("", "drop", (Condition("a", (1,)),)), "needs a name"),
        (lambda: Rule("r", "hide", (Condition("a", (1,)),)), "unknown action 'hide'"),  # type: ignore[arg-type]
        (lambda: Rule("r", "drop", ()), "`when` is empty"),
        (lambda: Condition("a", ()), "empty list"),
        (lambda: Condition("", ("x",)), "empty"),
        (lambda: Condition("a", (None,)), "not NoneType"),  # type: ignore[arg-type]
    ],
)
def test_python_construction_is_checked(build: Any, fragment: str) -> None:
    with pytest.raises(UsageError, match=re.escape(fragment)):
        build()


def test_built_in_python_matches_loaded() -> None:
    rule = Rule("eu", "drop", (Condition("country", ("@eu_eea",)),), (Condition("ok", (True,)),))
    policy = Policy(rules=(rule,))
    assert policy.decide({"country": "Austria"}) == Decision(
        "drop", "eu", "rule eu: country is @eu_eea, unless ok is true"
    )
    assert policy.decide({"country": "Austria", "ok": "yes"}).action == "obscure"


def test_policy_survives_pickling() -> None:
    # Worker processes and Ray actors receive the policy pickled.
    policy = Policy.load(EXAMPLES / "gdpr-and-bipa.toml")
    copy = pickle.loads(pickle.dumps(policy))
    assert copy == policy
    for record, action, rule in SAMPLES:
        assert (copy.decide(record).action, copy.decide(record).rule) == (action, rule)
