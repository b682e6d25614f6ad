"""The verifier's own models: dlib's HOG detector and 5-point landmarks, dlib's ResNet
recognizer (run by onnxruntime, see `resnet`), and a CenterFace pass at a scale no preset uses.

All of them come with the ``verify`` extra (``dlib-bin``, ``face_recognition_models``) or with
veil itself (CenterFace); none is downloaded. Descriptors (face templates) exist only inside
`Recognizer.distances`: it returns distances and nothing else, so no caller can keep them.
"""

from __future__ import annotations

import hashlib
import importlib.util
import threading
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from .. import cores
from ..cache import cached
from ..detectors import Strategy
from ..detectors.centerface import CenterFace
from ..errors import UsageError
from ..extras import install_command
from ..faces import Faces
from ..pixels import Pixels
from .resnet import CHIP, build_graph, chips_to_input, read_weights

#: How to install the verify extra (dlib-bin and face_recognition_models), as a command that
#: works for an install from a clone or a wheel.
INSTALL_HINT = install_command("verify")

#: The second CenterFace pass: a scale none of the presets uses (they use 2, 1 and 0.5),
#: so the image is seen on another grid, and a small one: its cost is a sixth of a full pass
#: (verification must stay within half of the cleaning's time). A detection here that the
#: cleaning did not obscure fails the file, so it must be confident: on the face set's 853
#: originals, at 0.6 this pass boxes something that is not an annotated face in 5 photos; at
#: 0.3, in 172.
CENTERFACE_STRATEGY = Strategy(scales=(0.4,), threshold=0.6)
#: dlib's HOG detector runs without upsampling: it finds faces from about 80 px, where CenterFace
#: and HOG fail differently; smaller faces are left to the CenterFace pass (upsampling once
#: finds 40 px faces but costs four times as much). Its score threshold: on the face set, 0.4
#: boxes no non-face (dlib's default of 0 boxed 3; it also boxes the astronaut's glove).
HOG_UPSAMPLE = 0
HOG_THRESHOLD = 0.4
#: HOG's cost grows with pixels (about 20 ms per 0.1 MP here); larger images are shrunk to
#: this long side for it, so in a 12 MP photo it sees faces from about 250 px, and the
#: CenterFace pass the smaller ones.
HOG_MAX_SIDE = 1280
#: The second opinion's reach: the face height (the cleaning's box, in pixels) from which it
#: finds most faces in an original photo, so that a face the cleaning missed there would be
#: caught. Measured with ``python benchmarks/verify.py --reach`` on the face set's 853
#: originals (annotated faces the cleaning found, by the cleaning's box height): 40-48 px 23%
#: found, 48-56 px 39%, 56-64 px 62%, 64-80 px 79%, 80 px and up 95%; under 32 px 1 face of
#: 2303. Both parts are blind below it: CenterFace at scale 0.4 sees a 56 px face as 22 px,
#: and HOG starts at about 80 px (on the face set it found no annotated face that the
#: CenterFace pass missed). The pass runs at a fixed scale, so the reach is the same in pixels
#: whatever the photo's size.
JUDGE_MIN_PX = 56
#: A face turned away (`turned_away`) is found less often: 56-64 px 38% (21 faces), 64-80 px
#: 64% (22 faces), against 66% and 81% of the others; from here on most are found.
JUDGE_MIN_TURNED_PX = 64
#: Turned away: the nose, projected on the line between the eyes, falls outside the eyes' span
#: (the head is turned so far that the nose passes an eye), or the eyes are closer than this
#: share of the box's width (on the face set, faces of 56 px and more: median 0.44, 5th
#: percentile 0.22). 11% of the faces the cleaning finds there are turned away by this rule.
TURNED_EYE_SHARE = 0.25
_GREY = 128
#: The grainy control's noise, in grey levels: film-grain strength, about what a fill that is
#: meant to be measurable carries (a flat one compresses to nothing); not taken from the output,
#: so that a blurred face's own texture cannot make its control more face-like.
_GRAIN = 24.0


class VerifyUnavailable(UsageError):
    """The ``verify`` extra is not installed."""


def require_dlib() -> None:
    """Raise `VerifyUnavailable` (a usage error: exit 2) unless the verify extra is installed."""
    _dlib()


def _dlib() -> Any:
    """dlib, once its models are known to be installed."""
    try:
        import dlib
    except ImportError as exc:
        raise VerifyUnavailable(
            f"verification needs dlib's face models, which are not installed ({exc.name}); "
            f"install them with: {INSTALL_HINT}"
        ) from exc
    model_file(_LANDMARKS)
    return dlib


_LANDMARKS = "shape_predictor_5_face_landmarks.dat"
_RECOGNIZER = "dlib_face_recognition_resnet_model_v1.dat"


def model_file(name: str) -> Path:
    """A file of the ``face_recognition_models`` wheel, found without importing the package:
    its ``__init__`` imports ``pkg_resources``, which takes 0.4 s of every worker's start and
    which setuptools 81 removed."""
    spec = importlib.util.find_spec("face_recognition_models")
    for folder in list(spec.submodule_search_locations or []) if spec else []:
        path = Path(folder) / "models" / name
        if path.is_file():
            return path
    raise VerifyUnavailable(
        "verification needs dlib's face models, which are not installed "
        f"(face_recognition_models); install them with: {INSTALL_HINT}"
    )


class Recognizer:
    """dlib's face recognizer: how far apart two crops of the same place are, as identities."""

    #: dlib's own threshold: descriptors closer than this are the same person.
    SAME_PERSON = 0.6

    def __init__(self, threads: int | None = None) -> None:
        dlib = _dlib()
        self._dlib = dlib
        self._threads = threads or cores.available()
        self._landmarks = dlib.shape_predictor(str(model_file(_LANDMARKS)))
        self._mean = (0.0, 0.0, 0.0)
        self._session: Any = None
        self._lock = threading.Lock()

    def _network(self) -> Any:
        """The ONNX session, built on first use: behind veil's fill the gate usually leaves the
        recognizer nothing to compare, and building it costs about half a second."""
        if self._session is None:
            import onnxruntime as ort

            path = model_file(_RECOGNIZER)
            weights = read_weights(path)
            # The graph is cached: building it needs the onnx package, whose import is most
            # of the cost.
            digest = hashlib.sha256(path.read_bytes()).digest()
            graph = cached("dlib-resnet", [digest, b"graph/1"], lambda: build_graph(weights))
            options = ort.SessionOptions()
            options.intra_op_num_threads = self._threads
            options.inter_op_num_threads = 1
            self._mean = weights.mean_rgb
            self._session = ort.InferenceSession(graph, options, providers=["CPUExecutionProvider"])
        return self._session

    def distances(
        self, original: Pixels, output: Pixels, boxes: npt.NDArray[np.float32]
    ) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
        """For each (x1, y1, x2, y2) box: the descriptor distance from the original's face to
        the output at the very same place, and to the original with the box blanked grey
        (the nearer of two blanks: flat, and with a film grain).

        The output is cut out with the original's landmarks: the attacker is assumed to know
        exactly where the face was, the strongest position one can have. The blanked original
        is the control: a face that is certainly gone, in the very same surroundings. What the
        two images share around a face (hair, a hood, the picture's edge) brings even a blank
        under 0.6 for small faces, so only an output nearer than the blank tells of the face.
        A grainy fill moved a profile face's descriptor 0.1 nearer than a flat blank did (the
        demo clip, 2 runs in 12, with the face wholly covered), hence the grainy control.
        """
        if len(boxes) == 0:
            return np.zeros(0), np.zeros(0)
        chips = np.empty((4 * len(boxes), CHIP, CHIP, 3), np.uint8)
        grain = np.random.default_rng(0)  # the same controls on every run
        blank = original.copy()  # one copy, blanked and restored box by box
        for i, (x1, y1, x2, y2) in enumerate(np.round(boxes).astype(int).tolist()):
            shape = self._landmarks(original, self._dlib.rectangle(x1, y1, x2, y2))
            for j, image in enumerate((original, output)):
                chips[4 * i + j] = self._dlib.get_face_chip(image, shape, CHIP, 0.25)
            # Two controls: flat grey, and grey with a grain (a grainy patch moves the
            # descriptor more than a flat one does).
            region = blank[y1:y2, x1:x2]
            for j, noise in ((2, 0.0), (3, _GRAIN)):
                region[...] = np.clip(_GREY + grain.normal(0, noise, region.shape), 0, 255)
                chips[4 * i + j] = self._dlib.get_face_chip(blank, shape, CHIP, 0.25)
            region[...] = original[y1:y2, x1:x2]
        with self._lock:
            network = self._network()
            found = network.run(None, {"chips": chips_to_input(chips, self._mean)})[0]
        descriptors = np.asarray(found, np.float64)
        to_output = np.linalg.norm(descriptors[0::4] - descriptors[1::4], axis=1)
        to_flat = np.linalg.norm(descriptors[0::4] - descriptors[2::4], axis=1)
        to_grain = np.linalg.norm(descriptors[0::4] - descriptors[3::4], axis=1)
        to_blank = np.minimum(to_flat, to_grain)
        del found, descriptors  # face templates: gone as soon as they are compared
        return to_output, to_blank


class SecondOpinion:
    """Faces found by detectors other than the one that chose what to obscure: dlib's HOG,
    and CenterFace run another way (`CENTERFACE_STRATEGY`). ``centerface`` is a loaded
    model to share (the cleaning's own: the model is the same, the passes are not)."""

    def __init__(self, threads: int | None = None, centerface: CenterFace | None = None) -> None:
        dlib = _dlib()
        self._hog = dlib.get_frontal_face_detector()
        self._centerface = centerface or CenterFace(CENTERFACE_STRATEGY, threads=threads)

    def detect(self, rgb: Pixels) -> Faces:
        import cv2

        height, width = rgb.shape[:2]
        scale = min(1.0, HOG_MAX_SIDE / max(height, width))
        small = rgb
        if scale < 1.0:
            size = (max(1, round(width * scale)), max(1, round(height * scale)))
            small = np.ascontiguousarray(cv2.resize(rgb, size, interpolation=cv2.INTER_AREA))
        # HOG on brightness alone: a quarter faster than on colour; on the face set it finds
        # 128 annotated faces at 0.4 where colour finds 133, and boxes no non-face either way.
        grey = np.ascontiguousarray(small @ np.array([0.299, 0.587, 0.114]), dtype=np.uint8)
        rects, scores, _ = self._hog.run(grey, HOG_UPSAMPLE, HOG_THRESHOLD)
        boxes = np.array(
            [[r.left(), r.top(), r.right(), r.bottom()] for r in rects], np.float32
        ).reshape(-1, 4) / np.float32(scale)
        if len(boxes):  # dlib's boxes may reach past the image's edges
            boxes[:, 0::2] = boxes[:, 0::2].clip(0, width)
            boxes[:, 1::2] = boxes[:, 1::2].clip(0, height)
        hog = Faces(boxes, np.asarray(scores, np.float32))
        return Faces.merge([hog, self._centerface.detect(rgb, CENTERFACE_STRATEGY)])


def turned_away(faces: Faces) -> npt.NDArray[np.bool_]:
    """For each face, whether its landmarks show it strongly turned away (see
    `TURNED_EYE_SHARE`); False where the detector gave no landmarks."""
    points = faces.landmarks.reshape(-1, 5, 2).astype(np.float64)
    eye, other, nose = points[:, 0], points[:, 1], points[:, 2]
    span = other - eye
    length2 = (span**2).sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        along = ((nose - eye) * span).sum(axis=1) / length2  # 0 at one eye, 1 at the other
        width = faces.xyxy[:, 2] - faces.xyxy[:, 0]
        close = np.sqrt(length2) < TURNED_EYE_SHARE * width
    turned = (along < 0) | (along > 1) | close  # NaN compares False: no landmarks, not turned
    return np.asarray(turned, np.bool_)


def beyond_reach(faces: Faces) -> npt.NDArray[np.bool_]:
    """For each face, whether the second opinion would mostly miss a face like it: shorter
    than `JUDGE_MIN_PX`, or turned away and shorter than `JUDGE_MIN_TURNED_PX`."""
    height = faces.xyxy[:, 3] - faces.xyxy[:, 1]
    small = height < JUDGE_MIN_PX
    return np.asarray(small | (turned_away(faces) & (height < JUDGE_MIN_TURNED_PX)), np.bool_)
