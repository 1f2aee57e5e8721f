"""The emulated phone's shell: a command line parsed with :mod:`shlex` and run from a small table.

No host shell ever sees the command line. Supported: ``;``, ``&&`` and ``||``
between simple commands, ``NAME=value`` prefixes (accepted, ignored), globs
over the sandbox (``*``, ``?``, ``[...]``; a quoted glob is expanded as well),
and the commands of :data:`COMMANDS`. A program given by path
(``./executor_runner``) runs only if it was pushed, is executable and is an
ELF for the phone's ABI (or a ``#!`` script); it is then replaced by its
host-side stand-in from ``standins/``, which runs the artifact on the host.
``$?`` is the only variable; redirections, pipes, other variables and
background jobs are refused with status 2.
"""

from __future__ import annotations

import glob
import os
import posixpath
import re
import shlex
import shutil
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from .sandbox import Sandbox, SandboxError

STANDINS = Path(__file__).parent / "standins"
ABI_ELF_MACHINE = {"arm64-v8a": 183, "armeabi-v7a": 40, "x86_64": 62, "x86": 3}
SH = "/system/bin/sh"


class HangUp(Exception):
    """The phone goes away now (the sandbox's ``disconnect_on_run``)."""


@dataclass
class Result:
    """What a command line wrote, in the order it wrote it (1 = stdout, 2 = stderr)."""

    chunks: list[tuple[int, bytes]] = field(default_factory=list)

    def write(self, channel: int, data: bytes) -> None:
        if data:
            self.chunks.append((channel, data))

    def out(self, text: str | bytes) -> None:
        self.write(1, text if isinstance(text, bytes) else text.encode())

    def err(self, text: str | bytes) -> None:
        self.write(2, text if isinstance(text, bytes) else text.encode())

    @property
    def stdout(self) -> bytes:
        return b"".join(d for c, d in self.chunks if c == 1)

    @property
    def stderr(self) -> bytes:
        return b"".join(d for c, d in self.chunks if c == 2)


class Shell:
    """One ``adb shell`` session on ``sandbox``."""

    def __init__(self, sandbox: Sandbox, running: dict | None = None):
        self.sandbox = sandbox
        self.cwd = "/"
        self.status = 0                                           # for ``$?``, the one variable supported
        self.running = running if running is not None else {}     # pid -> (name, Popen), shared per phone

    # -- parsing -------------------------------------------------------------------------------
    def run(self, line: str) -> tuple[int, Result]:
        result = Result()
        with self.sandbox.lock:
            self.sandbox.commands.append(line)
        try:
            lexer = shlex.shlex(line, posix=True, punctuation_chars=";&|<>")
            lexer.whitespace_split = True
            tokens = list(lexer)
        except ValueError as exc:
            result.err(f"{SH}: syntax error: {exc}\n")
            return 2, result
        status, command, joiner = 0, [], None
        for token in tokens + [";"]:
            if token not in (";", "&&", "||", "&", "|", "<", ">", ">>", "&>", "|&", ";;"):
                command.append(token)
                continue
            if token not in (";", "&&", "||"):
                result.err(f"{SH}: '{token}' is not supported by this emulated shell\n")
                return 2, result
            if command:
                if joiner is None or (joiner == "&&" and status == 0) or (joiner == "||" and status != 0) \
                        or joiner == ";":
                    status = self.status = self.simple(command, result)
                joiner, command = token, []
        return status, result

    def simple(self, argv: list[str], result: Result) -> int:
        while argv and re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*=.*", argv[0]):
            argv = argv[1:]                               # environment prefix: accepted, not needed here
        if not argv:
            return 0
        argv = [a.replace("$?", str(self.status)) for a in argv]
        if any("$" in a or "`" in a for a in argv):
            result.err(f"{SH}: variables and command substitution are not supported by this emulated shell\n")
            return 2
        argv = [argv[0], *self.expand(argv[1:])]
        name = argv[0]
        if "/" in name:
            return self.program(argv, result)
        handler = COMMANDS.get(name)
        if handler is None:
            result.err(f"{SH}: {name}: inaccessible or not found\n")
            return 127
        try:
            return handler(self, argv[1:], result)
        except SandboxError as exc:
            result.err(f"{name}: {exc}\n")
            return 1

    def expand(self, args: list[str]) -> list[str]:
        out = []
        for arg in args:
            if any(c in arg for c in "*?[") and arg.startswith(("/", ".")):
                try:
                    pattern = self.sandbox.host_path(arg, self.cwd)
                except SandboxError:
                    out.append(arg)
                    continue
                matches = sorted(glob.glob(str(pattern)))
                out.extend(self.sandbox.device_path(Path(m)) for m in matches) if matches else out.append(arg)
            else:
                out.append(arg)
        return out

    # -- programs ------------------------------------------------------------------------------
    def program(self, argv: list[str], result: Result) -> int:
        return self.spawn(argv, result)[0]

    def spawn(self, argv: list[str], result: Result):
        """A pushed binary, checked as the kernel would, then run as its host-side stand-in: (status, rusage)."""
        try:
            host = self.sandbox.host_path(argv[0], self.cwd)
        except SandboxError:
            result.err(f"{SH}: {argv[0]}: inaccessible or not found\n")
            return 127, None
        if not host.is_file():
            result.err(f"{SH}: {argv[0]}: inaccessible or not found\n")
            return 127, None
        if not os.stat(host).st_mode & 0o111:
            result.err(f"{SH}: {argv[0]}: can't execute: Permission denied\n")
            return 126, None
        head = host.read_bytes()[:20]
        if head[:4] == b"\x7fELF":
            machine = int.from_bytes(head[18:20], "little" if head[5] == 1 else "big")
            abi = self.sandbox.spec.props.get("ro.product.cpu.abi")
            if ABI_ELF_MACHINE.get(abi) != machine:
                result.err(f"{SH}: {argv[0]}: not executable: {'64' if head[4] == 2 else '32'}-bit ELF file\n")
                return 126, None
        elif not head.startswith(b"#!"):
            result.err(f"{SH}: {argv[0]}: not executable: magic {head[:4].hex().upper()}\n")
            return 126, None
        standin = STANDINS / host.name
        if not standin.is_file():
            result.err(f"{SH}: {argv[0]}: this emulated phone has no stand-in for '{host.name}'\n")
            return 126, None
        with self.sandbox.lock:
            self.sandbox.runs += 1
            runs = self.sandbox.runs
        if self.sandbox.spec.disconnect_on_run and runs == self.sandbox.spec.disconnect_on_run:
            raise HangUp(f"run {runs}")
        args = [self.to_host_arg(a) for a in argv[1:]]
        env = {k: v for k, v in os.environ.items() if not k.startswith("ANDROID_")}
        env["PYTHONPATH"] = os.pathsep.join(p for p in sys.path if p)
        proc = subprocess.Popen([sys.executable, str(standin), *args], cwd=self.sandbox.host_path(self.cwd),
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, env=env)
        self.running[proc.pid] = (host.name, proc)
        out, err = [], []
        readers = [threading.Thread(target=lambda s=s, b=b: b.append(s.read()), daemon=True)
                   for s, b in ((proc.stdout, out), (proc.stderr, err))]
        for reader in readers:
            reader.start()
        _, status, rusage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        for reader in readers:
            reader.join()
        self.running.pop(proc.pid, None)
        result.out(self.sandbox.hide_root(b"".join(out).decode(errors="replace")))
        result.err(self.sandbox.hide_root(b"".join(err).decode(errors="replace")))
        rc = proc.returncode
        return (128 - rc if rc < 0 else rc), rusage

    def to_host_arg(self, arg: str) -> str:
        """Device paths in a stand-in's arguments (``--model_path=/data/...`` too) become sandbox paths."""
        key, eq, value = arg.partition("=") if arg.startswith("-") else ("", "", arg)
        if value.startswith("/") or value.startswith("./"):
            try:
                value = str(self.sandbox.host_path(value, self.cwd))
            except SandboxError:
                pass
        return f"{key}{eq}{value}"


# -- the command table ------------------------------------------------------------------------

def _flags(args: list[str], allowed: str) -> tuple[set[str], list[str]]:
    flags, rest = set(), []
    for index, arg in enumerate(args):
        if arg == "--":
            rest.extend(args[index + 1:])
            break
        if arg.startswith("-") and len(arg) > 1 and not rest:
            unknown = set(arg[1:]) - set(allowed)
            if unknown:
                raise SandboxError(f"Unknown option '{sorted(unknown)[0]}'")
            flags |= set(arg[1:])
        else:
            rest.append(arg)
    return flags, rest


def cmd_getprop(shell: Shell, args, result: Result) -> int:
    props = shell.sandbox.spec.props
    if args:
        result.out(f"{props.get(args[0], args[1] if len(args) > 1 else '')}\n")
    else:
        for key in sorted(props):
            result.out(f"[{key}]: [{props[key]}]\n")
    return 0


def cmd_cat(shell: Shell, args, result: Result) -> int:
    status = 0
    for path in args:
        try:
            result.out(shell.sandbox.read(path, shell.cwd))
        except SandboxError as exc:
            result.err(f"cat: {exc}\n")
            status = 1
    return status


def cmd_grep(shell: Shell, args, result: Result) -> int:
    """``grep [-Hhs] PATTERN FILE...`` (the form the harness reads /sys with)."""
    flags, rest = _flags(args, "Hhs")
    if not rest:
        result.err("grep: Need 1 argument\n")
        return 2
    pattern, files = re.compile(rest[0]), rest[1:]
    with_name = ("H" in flags or len(files) > 1) and "h" not in flags
    found, error = False, False
    for path in files:
        try:
            text = shell.sandbox.read(path, shell.cwd).decode(errors="replace")
        except SandboxError as exc:
            error = True
            if "s" not in flags:
                result.err(f"grep: {exc}\n")
            continue
        for line in text.splitlines():
            if pattern.search(line):
                found = True
                result.out(f"{path}:{line}\n" if with_name else f"{line}\n")
    return 2 if error else (0 if found else 1)


def cmd_ls(shell: Shell, args, result: Result) -> int:
    _, paths = _flags(args, "1a")
    status = 0
    for path in paths or ["."]:
        host = shell.sandbox.host_path(path, shell.cwd)
        if host.is_dir():
            result.out("".join(f"{p.name}\n" for p in sorted(host.iterdir()) if not p.name.startswith(".")))
        elif host.exists():
            result.out(f"{path}\n")
        else:
            result.err(f"ls: {path}: No such file or directory\n")
            status = 1
    return status


def cmd_chmod(shell: Shell, args, result: Result) -> int:
    if len(args) < 2 or not re.fullmatch(r"[0-7]{3,4}", args[0]):
        result.err("chmod: usage: chmod OCTAL_MODE FILE... (this emulated shell takes octal modes)\n")
        return 1
    status = 0
    for path in args[1:]:
        host = shell.sandbox.host_path(path, shell.cwd)
        if not host.exists():
            result.err(f"chmod: {path}: No such file or directory\n")
            status = 1
            continue
        host.chmod(int(args[0], 8))
    return status


def cmd_rm(shell: Shell, args, result: Result) -> int:
    flags, paths = _flags(args, "rfR")
    status = 0
    for path in paths:
        host = shell.sandbox.host_path(path, shell.cwd)
        if host in (shell.sandbox.root / "data/local/tmp", shell.sandbox.root / "sys"):
            result.err(f"rm: {path}: Permission denied\n")
            status = 1
        elif host.is_dir() and not host.is_symlink():
            if flags & {"r", "R"}:
                shutil.rmtree(host)
            else:
                result.err(f"rm: {path}: Is a directory\n")
                status = 1
        elif host.exists() or host.is_symlink():
            host.unlink()
        elif "f" not in flags:
            result.err(f"rm: {path}: No such file or directory\n")
            status = 1
    return status


def cmd_mkdir(shell: Shell, args, result: Result) -> int:
    flags, paths = _flags(args, "p")
    status = 0
    for path in paths:
        host = shell.sandbox.host_path(path, shell.cwd)
        try:
            host.mkdir(parents="p" in flags, exist_ok="p" in flags)
        except FileExistsError:
            result.err(f"mkdir: {path}: File exists\n")
            status = 1
        except FileNotFoundError:
            result.err(f"mkdir: {path}: No such file or directory\n")
            status = 1
    return status


def cmd_echo(shell: Shell, args, result: Result) -> int:
    newline = not (args and args[0] == "-n")
    result.out(" ".join(args[0 if newline else 1:]) + ("\n" if newline else ""))
    return 0


def cmd_sleep(shell: Shell, args, result: Result) -> int:
    try:
        seconds = float(args[0])
    except (IndexError, ValueError):
        result.err("sleep: need a number of seconds\n")
        return 1
    time.sleep(min(seconds, 60.0))
    return 0


def cmd_cd(shell: Shell, args, result: Result) -> int:
    target = posixpath.normpath(posixpath.join(shell.cwd, args[0] if args else "/"))
    try:
        if not shell.sandbox.host_path(target).is_dir():
            raise SandboxError(f"{target}: No such file or directory")
    except SandboxError as exc:
        result.err(f"{SH}: cd: {exc}\n")
        return 2
    shell.cwd = target
    return 0


def cmd_taskset(shell: Shell, args, result: Result) -> int:
    """``taskset MASK COMMAND...``: the mask must name cores the phone has; the command then runs."""
    if len(args) < 2 or not re.fullmatch(r"(0x)?[0-9a-fA-F]+", args[0]):
        result.err("taskset: usage: taskset [-p] MASK [PID | COMMAND [ARGS...]]\n")
        return 1
    mask = int(args[0], 16)
    cores = shell.sandbox.cores()
    if mask == 0 or mask >> (max(cores) + 1):
        result.err("taskset: sched_setaffinity: Invalid argument\n")
        return 1
    with shell.sandbox.lock:
        shell.sandbox.taskset_masks.append(args[0])
    return shell.simple(args[1:], result)


def cmd_time(shell: Shell, args, result: Result) -> int:
    """toybox ``time [-pv] COMMAND...``; ``-v`` adds the child's peak RSS (its VmHWM)."""
    verbose = bool(args) and args[0] == "-v"
    argv = args[1:] if args and args[0] in ("-v", "-p") else args
    if not argv:
        result.err("time: Need 1 argument\n")
        return 1
    started = time.monotonic()
    if "/" in argv[0]:
        rc, rusage = shell.spawn([argv[0], *shell.expand(argv[1:])], result)
    else:
        rc, rusage = shell.simple(argv, result), None
    real = time.monotonic() - started
    user = rusage.ru_utime if rusage else 0.0
    system = rusage.ru_stime if rusage else 0.0
    if verbose:
        result.err(f"Real time (s): {real:f}\nSystem time (s): {system:f}\nUser time (s): {user:f}\n"
                   f"Max RSS (KiB): {rusage.ru_maxrss if rusage else 0}\n"
                   f"Major faults: {rusage.ru_majflt if rusage else 0}\nMinor faults: {rusage.ru_minflt if rusage else 0}\n"
                   f"File system inputs: 0\nFile system outputs: 0\n"
                   f"Voluntary context switches: {rusage.ru_nvcsw if rusage else 0}\n"
                   f"Involuntary context switches: {rusage.ru_nivcsw if rusage else 0}\n")
    else:
        result.err(f"real {real:f}\nuser {user:f}\nsys {system:f}\n")
    return rc


def cmd_pkill(shell: Shell, args, result: Result) -> int:
    flags, names = _flags(args, "x")
    killed = 0
    for pid, (name, proc) in list(shell.running.items()):
        if names and (name == names[0] if "x" in flags else names[0] in name):
            proc.send_signal(signal.SIGKILL)
            killed += 1
    return 0 if killed else 1


COMMANDS = {
    "getprop": cmd_getprop, "cat": cmd_cat, "grep": cmd_grep, "ls": cmd_ls, "chmod": cmd_chmod, "rm": cmd_rm,
    "mkdir": cmd_mkdir, "echo": cmd_echo, "sleep": cmd_sleep, "cd": cmd_cd, "taskset": cmd_taskset,
    "time": cmd_time, "pkill": cmd_pkill,
    "true": lambda shell, args, result: 0, "false": lambda shell, args, result: 1,
}
