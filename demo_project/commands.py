"""How the demo tells people to run its commands: in a form that works as typed.

``python manage.py ...`` fails with ``No module named 'django'`` unless the project's
virtualenv is activated, so the demo prints the interpreter that is running it, as the
person can type it from the project's directory: ``.venv/bin/python manage.py ...`` after
``make demo``, plain ``python`` when that is the one on ``PATH`` (an activated virtualenv,
the container).
"""

from __future__ import annotations

import os
import shlex
import shutil
import sys
from pathlib import Path

__all__ = ["manage_py"]

PROJECT_DIR = Path(__file__).resolve().parent.parent


def _python() -> str:
    running = os.path.abspath(sys.executable)
    # Symbolic links are not resolved: a virtualenv's python is a link to the base
    # interpreter, which does not see the virtualenv's packages.
    on_path = shutil.which("python")
    if on_path is not None and os.path.abspath(on_path) == running:
        return "python"
    try:
        return str(Path(running).relative_to(PROJECT_DIR))
    except ValueError:
        return running


def manage_py(*args: str) -> str:
    """The command line that runs ``manage.py args`` from the project's directory.

    >>> manage_py("changepassword", "admin")  # after make demo
    '.venv/bin/python manage.py changepassword admin'
    """
    return shlex.join([_python(), "manage.py", *args])
