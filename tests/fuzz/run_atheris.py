"""Coverage-guided fuzzing of the model server's decoders and HTTP glue with atheris (libFuzzer for Python).

    python tests/fuzz/run_atheris.py [libFuzzer flags, e.g. -max_total_time=120]

Starts from tests/fuzz/targets.py's seeds and the kept crashes in a temporary corpus; a failing input is written
to tests/fuzz/crashes/ (keep it: tests/fuzz/test_fuzz_targets.py replays every file there).
"""

from __future__ import annotations

import sys
import tempfile
import tracemalloc
from pathlib import Path

import atheris

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

with atheris.instrument_imports(include=["sluice_serving"]):
    from fuzz.targets import dispatch, seeds


def main() -> None:
    tracemalloc.start()  # the decode target bounds the memory a decode takes
    corpus = Path(tempfile.mkdtemp(prefix="sluice-fuzz-"))
    for name, data in seeds().items():
        (corpus / name).write_bytes(data)
    for crash in (HERE / "crashes").iterdir():
        (corpus / crash.name).write_bytes(crash.read_bytes())
    args = [sys.argv[0], *sys.argv[1:], f"-artifact_prefix={HERE / 'crashes'}/", "-max_len=4096", str(corpus)]
    atheris.Setup(args, dispatch)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
