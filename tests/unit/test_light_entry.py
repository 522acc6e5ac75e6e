"""The API process must stay light: only the Keras worker may import TensorFlow."""

from __future__ import annotations

import subprocess
import sys

from tests.integration.conftest import ROOT


def test_importing_the_service_does_not_import_tensorflow() -> None:
    code = (
        "import sys, service\n"
        "heavy = sorted(m for m in ('tensorflow', 'keras') if m in sys.modules)\n"
        "print(','.join(heavy))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.strip()
    assert out == ""
