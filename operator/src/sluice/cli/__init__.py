"""`kubectl-sluice`: a kubectl plugin to watch and steer ModelDeployment rollouts (docs/plugin.md).

Layout:
- `main`: the entry point; builds the argparse parser from `COMMANDS`, maps errors to exit codes.
- `base`: `Command` (one subcommand), `ExitCode`, `CliError`, `Parser` (short errors with "did you mean"),
  `add_name_argument` (the NAME positional), `add_output_argument` (`-o`), `duration_seconds` (every time flag).
- `kube`: the Kubernetes access the commands share (`Kube`: kubeconfig, context and namespace flags; reads,
  patches, Events, pods, the HTTPRoute's parents).
- `render`: pure text rendering (status view, the live view that fits 80x24, tables, weight bar, `-o json|yaml`)
  of `ModelDeployment` models, `EventLine`s and `PodLine`s; unit-tested without a cluster.
- `checks`: pure state checks run before anything is written (which action the current state allows, which model
  `undo` returns to).
- `listing` (list, history), `status` (status, --watch), `actions` (pause, resume, promote, abort, retry, undo),
  `analyze` (what-if replay, `sluice.cli.replay`), `completion` (shell completion scripts; `complete` is the
  `kubectl_complete-sluice` helper).

Adding a subcommand (for example `explain`): write a module `sluice/cli/explain.py` that defines

    def add_arguments(parser: argparse.ArgumentParser) -> None: ...   # its own flags and positionals
    def run(args: argparse.Namespace) -> int: ...                      # returns an ExitCode
    COMMAND = Command(name="explain", help="one line for --help", add_arguments=add_arguments, run=run)

and append `explain.COMMAND` to `COMMANDS` in `sluice/cli/main.py`. Every subcommand gets the connection flags
(`--kubeconfig`, `--context`, `-n/--namespace`) automatically; `Kube.from_args(args)` turns them into a client.
Raise `CliError(ExitCode..., message)` for user-facing failures: `main` prints `error: message` to stderr and exits
with that code, so no command prints tracebacks for expected problems. Keep presentation in pure functions (like
`render`) so they are unit-testable, and add the command to docs/plugin.md and to the completion tests.
"""
