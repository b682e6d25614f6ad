"""Make the sample photos and clip of the Quick start: real faces carrying the metadata
harvesters read.

The pictures come with scikit-image (public-domain NASA astronaut portrait and the classic
"cameraman"); the metadata is ours: a GPS position, a camera serial number, an owner's name,
a capture time, an XMP packet, PNG text chunks, and a sideways EXIF orientation, so that
`veil scan` has something to show and `veil clean` has something to remove. The clip pans
across the two portraits, with a tone for sound and the Eiffel Tower as its recorded place.

    python examples/make_samples.py samples/

It needs veil with its ``demo`` extra (scikit-image, for the two pictures): ``make demo`` installs
it, or ``pip install '.[verify,demo]'`` in veil's folder.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import av
import numpy as np
from PIL import ExifTags, Image, PngImagePlugin

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
    try:
        from skimage import data  # the pictures ship inside the package: no download
    except ImportError:
        sys.exit("make_samples.py needs the demo extra: pip install '.[demo]' in veil's folder")
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
    pan(np.asarray(pair), folder / "colleagues-pan.mov")
    print(f"wrote 3 sample photos and a sample clip to {folder}")


def pan(picture: np.ndarray, path: Path, seconds: int = 3, fps: int = 25) -> None:
    """A 480x360 camera pan across ``picture`` (QuickTime, H.264 and AAC) with a location."""
    width, height, frames = 480, 360, seconds * fps
    with av.open(str(path), "w", format="mov") as out:
        out.metadata.update(
            {"location": "+48.8584+002.2945+035.000/", "make": "ExampleCam", "model": "X100 Pro"}
        )
        video = out.add_stream("libx264", rate=fps)
        video.width, video.height, video.pix_fmt = width, height, "yuv420p"
        audio = out.add_stream("aac", rate=48000)
        audio.layout = "mono"
        for i in range(frames):
            left = round(i * (picture.shape[1] - width) / (frames - 1))
            crop = np.ascontiguousarray(picture[76 : 76 + height, left : left + width])
            frame = av.VideoFrame.from_ndarray(crop, format="rgb24")
            frame.pts = i
            out.mux(video.encode(frame))
        out.mux(video.encode())
        tone = (0.2 * np.sin(np.arange(48000 * seconds) * 2 * np.pi * 440 / 48000)).astype(
            np.float32
        )
        for start in range(0, len(tone) - 1023, 1024):
            sound = av.AudioFrame.from_ndarray(
                tone[None, start : start + 1024], format="fltp", layout="mono"
            )
            sound.sample_rate, sound.pts = 48000, start
            out.mux(audio.encode(sound))
        out.mux(audio.encode())


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description="Make the Quick start's sample photos and clip, with identifying metadata."
    )
    parser.add_argument(
        "folder", nargs="?", type=Path, default=Path("samples"), help="where (default: samples)"
    )
    main(parser.parse_args().folder)
