"""Make the sample photos of the Quick start: real faces carrying the metadata harvesters read.

The pictures come with scikit-image (public-domain NASA astronaut portrait and the classic
"cameraman"); the metadata is ours: a GPS position, a camera serial number, an owner's name,
a capture time, an XMP packet, PNG text chunks, and a sideways EXIF orientation, so that
`veil scan` has something to show and `veil clean` has something to remove.

    python examples/make_samples.py samples/
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
from PIL import ExifTags, Image, PngImagePlugin
from skimage import data

GPS = {  # 48.85837 N, 2.29448 E: the Eiffel Tower, as a phone would record it
    ExifTags.GPS.GPSLatitudeRef: "N",
    ExifTags.GPS.GPSLatitude: (48.0, 51.0, 30.13),
    ExifTags.GPS.GPSLongitudeRef: "E",
    ExifTags.GPS.GPSLongitude: (2.0, 17.0, 40.13),
    ExifTags.GPS.GPSAltitudeRef: 0,
    ExifTags.GPS.GPSAltitude: 35.0,
}
XMP = (
    b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-'
    b'syntax-ns#"><rdf:Description xmlns:dc="http://purl.org/dc/elements/1.1/"><dc:creator>'
    b"Jane Photographer</dc:creator></rdf:Description></rdf:RDF></x:xmpmeta>"
)


def camera_exif(orientation: int = 1) -> Image.Exif:
    exif = Image.Exif()
    exif[ExifTags.Base.Make] = "ExampleCam"
    exif[ExifTags.Base.Model] = "X100 Pro"
    exif[ExifTags.Base.Software] = "ExampleCam Firmware 2.1"
    exif[ExifTags.Base.Artist] = "Jane Photographer"
    exif[ExifTags.Base.Orientation] = orientation
    details = exif.get_ifd(ExifTags.IFD.Exif)
    details[ExifTags.Base.BodySerialNumber] = "SN-4C0FFEE-1234"
    details[ExifTags.Base.CameraOwnerName] = "Jane Photographer"
    details[ExifTags.Base.DateTimeOriginal] = "2026:05:01 14:32:10"
    exif.get_ifd(ExifTags.IFD.GPSInfo).update(GPS)
    return exif


def main(folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    astronaut = Image.fromarray(data.astronaut())
    astronaut.save(folder / "astronaut.jpg", quality=92, exif=camera_exif(), xmp=XMP)
    # Stored sideways with EXIF orientation 6, as phones do: veil must show it upright.
    astronaut.transpose(Image.Transpose.ROTATE_90).save(
        folder / "astronaut-phone.jpg", quality=90, exif=camera_exif(orientation=6)
    )
    cameraman = Image.fromarray(np.stack([data.camera()] * 3, axis=2))
    pair = Image.new("RGB", (1024, 512))
    pair.paste(astronaut, (0, 0))
    pair.paste(cameraman, (512, 0))
    text = PngImagePlugin.PngInfo()
    text.add_text("Author", "Jane Photographer")
    text.add_text("Location", "Champ de Mars, Paris")
    text.add_itxt("Comment", "Two colleagues at the launch party")
    pair.save(folder / "colleagues.png", pnginfo=text)
    print(f"wrote 3 sample photos to {folder}")


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "samples"))
