"""Generated files and their sources: the CRD and docs/api.md from the pydantic API models, and the model server's
copy of `sluice.contract`. A leaf: nothing in the operator's runtime imports it. `python -m sluice.codegen`
(`make crds`) regenerates them all; `--check` only reports the stale ones."""
