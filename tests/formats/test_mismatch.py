"""Files whose content is another kind than their extension names (a phone's HEIF photo sent
as .jpg, a PNG renamed .jpg): cleaned as what they are, their name kept, the report saying
so; content veil does not clean is still refused (files made in the test)."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from PIL import Image

from helpers import astronaut, exif_block, exiftool_path, exiftool_read, identifying_tags
from veil import Pipeline, Settings
from veil.formats import disagreement, handler_for


def _saved(kind: str) -> bytes:
    out = io.BytesIO()
    Image.fromarray(astronaut()).save(out, kind, exif=exif_block(), quality=90)
    return out.getvalue()


@pytest.mark.parametrize(
    ("name", "kind", "signature"),
    [
        ("IMG_0412.jpg", "HEIF", b"ftyp"),  # what phones and messengers send
        ("renamed.jpg", "PNG", b"\x89PNG"),
        ("photo.webp", "JPEG", b"\xff\xd8"),
    ],
)
def test_a_picture_named_as_another_kind_is_cleaned_as_what_it_is(
    tmp_path: Path, name: str, kind: str, signature: bytes
) -> None:
    src = tmp_path / name
    src.write_bytes(_saved(kind))
    assert handler_for(src).name == kind

    result = Pipeline(Settings()).run(src, tmp_path / "out" / name)

    assert result.status == "cleaned", result.error
    assert result.content is not None
    assert result.content.startswith(f"the content is {kind}, the extension says")
    assert len(result.faces) == 1 and "GPS" in result.metadata_removed
    out = (tmp_path / "out" / name).read_bytes()
    assert signature in out[:16]  # still what it was, under the name it had
    assert json.loads(result.to_json())["content"] == result.content
    if exiftool_path():
        (row,) = exiftool_read(tmp_path / "out" / name)
        assert identifying_tags(row) == []


def test_a_file_whose_content_and_extension_agree_says_nothing_of_it(tmp_path: Path) -> None:
    src = tmp_path / "photo.jpg"
    src.write_bytes(_saved("JPEG"))
    assert disagreement(src, handler_for(src)) is None
    result = Pipeline(Settings(faces=False)).run(src, tmp_path / "out.jpg")
    assert result.status == "cleaned" and result.content is None
    assert "content" not in json.loads(result.to_json())


def test_content_veil_does_not_clean_is_still_refused(tmp_path: Path) -> None:
    src = tmp_path / "document.jpg"
    src.write_bytes(b"%PDF-1.7\n" + bytes(200))
    result = Pipeline(Settings()).run(src, tmp_path / "out.jpg")
    assert result.status == "failed" and "not a valid JPEG" in (result.error or "")
    assert not (tmp_path / "out.jpg").exists()
