"""`python -m sluice_serving`: same as the `sluice-serving` console script."""

from sluice_serving.main import main

main()
