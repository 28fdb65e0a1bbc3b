"""`python -m synthfactory.cli`: the `synthfactory` command."""

import sys

from synthfactory.cli import main

sys.exit(main())
