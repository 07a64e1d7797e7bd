"""`python -m srblock` is the `srblock` command."""

import sys

from .cli import main

sys.exit(main())
