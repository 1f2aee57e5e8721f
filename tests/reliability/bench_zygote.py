"""Start ``mobexport bench`` runs quickly, for the fault-injection test: import once, fork per run.

Importing mobexport (torch, onnx) takes seconds on a loaded machine; a kill test of twenty runs would spend
its time there. This process imports the CLI once and, for each "run" line on stdin, forks a child that
executes ``mobexport.cli.main(["bench", *argv])`` from the top, its output to a log file. It prints
"pid PID" when the child starts and "exit PID STATUS" when it ends (STATUS -9 for a SIGKILL), so that a
test can kill the child at any moment.

    python bench_zygote.py LOG_DIR ARG...
"""

from __future__ import annotations

import os
import sys

import mobexport.benchmarks.sweep.cli  # noqa: F401  (the heavy imports, done once)
import mobexport.benchmarks.sweep.plan  # noqa: F401
import mobexport.export.targets.onnx.target  # noqa: F401
from mobexport.cli import main


def run_child(log_path: str, argv: list[str]) -> None:
    fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    os.close(fd)
    try:
        status = main(["bench", *argv])
    except BaseException as exc:  # a traceback is what the test looks for in the log
        import traceback

        traceback.print_exc()
        status = 99 if not isinstance(exc, SystemExit) else (exc.code or 0)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(status)


def serve(log_dir: str, argv: list[str]) -> None:
    for number, line in enumerate(sys.stdin):
        if line.strip() != "run":
            continue
        log_path = os.path.join(log_dir, f"run{number}.log")
        pid = os.fork()
        if pid == 0:
            run_child(log_path, argv)
        print(f"pid {pid} {log_path}", flush=True)
        _, status = os.waitpid(pid, 0)
        code = -os.WTERMSIG(status) if os.WIFSIGNALED(status) else os.WEXITSTATUS(status)
        print(f"exit {pid} {code}", flush=True)


if __name__ == "__main__":
    serve(sys.argv[1], sys.argv[2:])
