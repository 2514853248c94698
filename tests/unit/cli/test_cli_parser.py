"""The plugin's command line: the subcommand registry, --help everywhere, flags in both positions, completion."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from sluice.cli import complete
from sluice.cli.main import main
from sluice.cli.parser import COMMANDS, build_parser, completion_script

COMMAND_NAMES = [
    "list",
    "status",
    "history",
    "pause",
    "resume",
    "promote",
    "abort",
    "retry",
    "undo",
    "analyze",
    "completion",
]


def test_every_issue_command_is_registered() -> None:
    assert [command.name for command in COMMANDS] == COMMAND_NAMES


@pytest.mark.parametrize("name", ["", *COMMAND_NAMES])
def test_help_for_everything(name: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main([name, "--help"] if name else ["--help"])

    assert exited.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith(f"usage: kubectl sluice {name}".rstrip())
    if name not in ("", "list", "completion"):
        assert "--kubeconfig PATH" in out
        assert "example" in out


def test_connection_flags_work_before_and_after_the_subcommand() -> None:
    parser = build_parser()

    before = parser.parse_args(["-n", "ml", "--context", "prod", "status", "fraud", "--watch"])
    after = parser.parse_args(["status", "fraud", "-n", "ml", "--kubeconfig", "/k"])
    neither = parser.parse_args(["undo", "fraud", "--to-version", "1.0.0"])

    assert (before.namespace, before.context, before.watch, before.name) == ("ml", "prod", True, "fraud")
    assert (after.namespace, after.kubeconfig) == ("ml", "/k")
    assert (neither.namespace, neither.kubeconfig, neither.to_version) == (None, None, "1.0.0")


def test_a_mistyped_command_gets_a_did_you_mean_and_no_usage_dump(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["promot", "fraud"])

    assert exited.value.code == 2
    assert capsys.readouterr().err == (
        "error: unknown command 'promot'\n\nDid you mean this?\n\tpromote\n\nRun 'kubectl sluice --help' for usage.\n"
    )


def test_a_mistyped_output_format_gets_a_suggestion(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["list", "-o", "jsn"])

    assert "unknown value for -o/--output 'jsn'\n\nDid you mean this?\n\tjson\n" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("argv", "seconds"),
    [
        (["status", "fraud", "--watch", "--timeout", "15m"], 900.0),
        (["status", "fraud", "--watch", "--timeout", "1h30m"], 5400.0),
        (["status", "fraud", "--watch", "--timeout", "90"], 90.0),
        (["abort", "fraud", "--wait", "--timeout", "2m"], 120.0),
    ],
)
def test_every_time_flag_takes_a_duration(argv: list[str], seconds: float) -> None:
    assert build_parser().parse_args(argv).timeout == seconds


def test_time_flags_name_the_bad_value_and_the_forms_they_take(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["status", "fraud", "--interval", "soon"])

    assert "'soon' is not a duration such as 30s, 15m or 1h30m (a plain number means seconds)" in (
        capsys.readouterr().err
    )
    assert build_parser().parse_args(["list", "--request-timeout", "5s"]).request_timeout == 5.0
    assert (
        build_parser().parse_args(["analyze", "f", "--from", "1h", "--prometheus-timeout", "2s"]).prometheus_timeout
        == 2.0
    )


def test_usage_errors_exit_2(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    assert main([]) == 2
    with pytest.raises(SystemExit) as exited:
        main(["promote"])  # NAME missing
    assert exited.value.code == 2
    with pytest.raises(SystemExit) as exited:
        main(["frobnicate"])
    assert exited.value.code == 2
    capsys.readouterr()

    assert main(["list", "--kubeconfig", str(tmp_path / "missing")]) == 2
    assert capsys.readouterr().err.startswith("error: cannot load the kubeconfig")


def lookup(kind: str, flags: dict[str, str]) -> list[str]:
    names = {
        "modeldeployments": ["fraud", "churn"],
        "namespaces": ["ml", "default"],
        "contexts": ["prod", "dev"],
        "versions": ["1.0.0", "0.9.0"],
    }
    where = flags.get("namespace", "") + (f"/{flags['name']}" if "name" in flags else "")
    return [f"{name}@{where}" if where else name for name in names[kind]]


@pytest.mark.parametrize(
    ("words", "expected"),
    [
        ([""], COMMAND_NAMES),
        (["pro"], ["promote"]),
        (["status", ""], ["fraud", "churn"]),
        (["status", "f"], ["fraud"]),
        (["status", "fraud", ""], []),
        (["-n", "ml", "abort", ""], ["fraud@ml", "churn@ml"]),
        (["undo", "--namespace", "ml", "c"], ["churn@ml"]),
        (["status", "-n", ""], ["ml", "default"]),
        (["--context", "p"], ["prod"]),
        (["promote", "fraud", "--f"], ["--full"]),
        (["list", "-o", ""], ["wide", "name", "json", "yaml"]),
        (["status", "fraud", "-o", "y"], ["yaml"]),
        (["-n", "ml", "undo", "fraud", "--to-version", ""], ["1.0.0@ml/fraud", "0.9.0@ml/fraud"]),
        (["completion", ""], ["bash", "zsh"]),
        (["list", ""], []),
    ],
)
def test_kubectl_plugin_completion_candidates(words: list[str], expected: list[str]) -> None:
    assert complete.candidates(build_parser(), words, lookup) == expected


def test_kubectl_complete_helper_prints_candidates_and_the_no_file_directive(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["__complete", "st"]) == 0

    assert capsys.readouterr().out == "status\n:4\n"


def test_bash_completion_script_completes_subcommands_and_flags(tmp_path: Path) -> None:
    script = tmp_path / "kubectl-sluice.bash"
    script.write_text(completion_script("bash"))

    def complete_words(*words: str) -> list[str]:
        line = " ".join(words)
        probe = (
            # stands in for `kubectl-sluice list -o name`; names the namespace it was given
            'kubectl-sluice() {{ [ "$4 $5" = "-n ml" ] && echo modeldeployment.sluice.dev/in-ml; '
            "printf 'modeldeployment.sluice.dev/%s\\n' fraud fruit iris; }}; "
            f"source {script}; COMP_WORDS=(kubectl-sluice {line}); COMP_CWORD={len(words)}; "
            'COMP_LINE="kubectl-sluice {line}"; COMP_POINT=${{#COMP_LINE}}; _shtab_kubectl_sluice; '
            'printf "%s\\n" "${{COMPREPLY[@]}}"'
        ).format(line=line)
        done = subprocess.run(["bash", "-c", probe], capture_output=True, text=True, check=True)
        return done.stdout.split()

    assert complete_words("pro") == ["promote"]
    assert complete_words("status", "fraud", "--wa") == ["--watch"]
    assert complete_words("status", "fr") == ["fraud", "fruit"]
    assert complete_words("abort", "i") == ["iris"]
    assert complete_words("-n", "ml", "status", "in") == ["in-ml"], "the -n on the line is passed to the lookup"
    assert "kubectl-sluice list -o name" in script.read_text()


def test_zsh_completion_script_defines_the_command() -> None:
    script = completion_script("zsh")

    assert script.startswith("#compdef kubectl-sluice")
    assert "_kubectl_sluice_names" in script
