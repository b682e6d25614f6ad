"""What identifying metadata is, in words: the categories `veil scan` and the report use,
and `MetaField`, one item a file reveals. Every container's reader speaks this vocabulary."""

from __future__ import annotations

from dataclasses import dataclass

# Categories shown by `veil scan`, in the order a person cares about them.
PLACE, PERSON, DEVICE, SERIAL, TIME, PICTURE, TEXT, OTHER = (
    "place",
    "person",
    "device",
    "serial",
    "time",
    "embedded picture",
    "text",
    "other",
)
CATEGORIES = (PLACE, PERSON, DEVICE, SERIAL, TIME, PICTURE, TEXT, OTHER)
#: Each category as a heading for people (the review page).
LABELS = {
    PLACE: "Place",
    PERSON: "Owner or author",
    DEVICE: "Device",
    SERIAL: "Serial number",
    TIME: "Time",
    PICTURE: "Embedded picture",
    TEXT: "Text",
    OTHER: "Other",
}


@dataclass(frozen=True)
class MetaField:
    """One identifying item: ``name`` is stable (it goes into reports), ``value`` is for people."""

    category: str
    name: str
    value: str
