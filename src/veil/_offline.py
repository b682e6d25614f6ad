"""Imported first by ``veil``: keep the libraries veil uses from reporting on their users.

onnxruntime (measured with 1.31 on Linux) writes a device id and a queue of usage events (OS,
CPU model, memory, the Python executable's path) under ``~/.cache/Microsoft/DeveloperTools``
and a session file in the temporary folder, for upload to Microsoft, unless
``ORT_DISABLE_TELEMETRY`` is set before it is first imported; setting it later, or calling
``onnxruntime.disable_telemetry_events()``, does not stop it. veil promises no telemetry, so
it sets the variable for its own process and the workers it starts. A program that imports
onnxruntime before veil must set it itself. Tested in tests/verify/test_verify.py.
"""

from __future__ import annotations

import os

os.environ["ORT_DISABLE_TELEMETRY"] = "1"
