"""`python -m sluice.codegen [--check] [--root DIR]`: regenerate every generated file of the repository."""

import sys

from sluice.codegen.generate import main

sys.exit(main())
