"""The README's first command (scripts/demo -> devtools.demo) end to end: its own Azurite and
emulator, the listing of what landed (manifests described, not ``rows=?``), and ``verify`` at the end."""

from __future__ import annotations

import subprocess
import sys

from devtools.azurite import ROOT


def test_the_demo_lists_every_blob_without_unknowns_and_ends_with_a_clean_verify():
    proc = subprocess.run([sys.executable, "-m", "devtools.demo", "--windows", "2", "--format", "json"],
                          cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, (proc.stdout, proc.stderr)
    out = proc.stdout
    listing = [ln for ln in out.splitlines() if ln.startswith("  segment/")]
    assert len(listing) == 14, out  # 2 windows x 6 types, 2 manifests
    assert not [ln for ln in listing if "?" in ln], listing
    manifests = [ln for ln in listing if "/_manifests/" in ln]
    assert len(manifests) == 2 and all("manifest: 6 file(s), " in ln for ln in manifests), manifests
    assert "$ python -m shared.cli verify --deep" in out
    assert "verify default in segment: 2 manifest(s), 12 data file(s)" in out and ": no problem" in out
    assert out.rstrip().splitlines()[-1].startswith("Next steps: ")
