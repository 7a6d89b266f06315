"""`hf gpumem`: register gpumem as a command of the Hugging Face CLI (`hf`), the way `hf extensions install` does.

hf (huggingface_hub >= 1.0, `cli/extensions.py`) runs `hf NAME ARGS` by reading
`~/.local/share/hf/extensions/hf-NAME/manifest.json` and executing the `executable_path` it names with ARGS,
passing the exit code through. `hf extensions install` only fills that folder from a public GitHub repository
named `hf-NAME`; it never looks at PATH, so installing gpumem (which ships an `hf-gpumem` script) is not enough.
This writes the same manifest for the installed `hf-gpumem` script (or, run from a source tree, a small wrapper
that starts this Python with `-m gpumem`). `hf extensions list` shows it; `hf extensions remove gpumem` removes it.
"""

from __future__ import annotations

import json
import os
import shlex
import sys
import sysconfig
from datetime import UTC, datetime
from pathlib import Path

from .reading.files import write_atomically

NAME = "gpumem"


def extensions_root() -> Path:
    """Where hf keeps its extensions (hf's EXTENSIONS_ROOT)."""
    return Path("~/.local/share/hf/extensions").expanduser()


def installed_script() -> Path | None:
    """The `hf-gpumem` console script installed beside this Python, if any."""
    name = "hf-gpumem.exe" if os.name == "nt" else "hf-gpumem"
    script = Path(sysconfig.get_path("scripts")) / name
    return script if script.is_file() else None


def register() -> Path:
    """Write hf's manifest for `hf gpumem`; returns the program hf will run."""
    folder = extensions_root() / f"hf-{NAME}"
    folder.mkdir(parents=True, exist_ok=True)
    program = installed_script()
    if program is None:  # a source checkout: start this Python on the gpumem it imports
        program = folder / f"hf-{NAME}"
        source = Path(__file__).resolve().parent.parent
        write_atomically(program, "#!/bin/sh\n"
                                  f"PYTHONPATH={shlex.quote(str(source))}${{PYTHONPATH:+:$PYTHONPATH}} "
                                  f"exec {shlex.quote(sys.executable)} -m gpumem \"$@\"\n", mode=0o755)
    manifest = {"owner": "local", "repo": f"hf-{NAME}", "repo_id": f"local/hf-{NAME}", "short_name": NAME,
                "executable_path": str(program), "type": "binary",
                "installed_at": datetime.now(UTC).isoformat(),
                "description": "GPU memory a Hugging Face model needs, and which GPUs to rent (gpumem)",
                "commit_sha": None}
    write_atomically(folder / "manifest.json", json.dumps(manifest, indent=2, sort_keys=True))
    return program
