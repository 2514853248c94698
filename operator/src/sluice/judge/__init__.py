"""The judge's bench: a corpus of labelled rollouts (`corpus`, `generate`), replayed through the real decision core
(`replay`) and through Flagger's and Argo Rollouts' documented rules (`rules`), and the table of recall, false
rollbacks and time to decision (`python -m sluice.judge.bench`; docs/judge.md)."""
