#!/usr/bin/env python3
"""Runs the ```sh blocks of README.md, top to bottom, the way a reader would.

    readme_test.py SOURCE_DIR BUILD_DIR

The blocks are read from README.md itself, never from a copy. Conventions of the README:

- Each ```sh block is typed into a fresh terminal at the repository root (a fresh bash here).
- A line that starts ./scripts/run.sh (with or without VAR=value in front) is "the first
  terminal": a run.sh already running is stopped first, as with Ctrl-C, and the test checks
  that the broker and the gateway stopped with it, and every process they started (RabbitMQ's
  node runs in a session of its own and starts a daemon, epmd: they are found by a variable
  of run.sh's environment that they inherit). The processes of the other terminals are
  stopped too: they belonged to the broker that went away.
- A line whose comment says `leave this running` or `terminal N`, or that ends with `&`,
  keeps running; the next line is typed once it is ready (subscribed, or printed that it
  listens), as a reader would see before going on.
- `#> TEXT` is what a command makes appear in some terminal: a whole line, with `...` for the
  parts that vary. The test waits for it, with a deadline.
- `<!-- readme-test: skip (reason) -->` on the line before a block skips it; skipped blocks
  are counted and listed.

The blocks run in a directory that mirrors the checkout (a symlink per entry, `build` pointing
at BUILD_DIR), so that they find ./build whatever the build directory is, and run.sh keeps
its .run/ state away from a run.sh that the developer may have running in the checkout.
run.sh gets free ports through RTM_BROKER_PORT and RTM_OPS_PORT (other tests run at the same
time); the blocks find them as every reader does, in .run/env.
"""

import os
import re
import select
import shlex
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

COMMAND_DEADLINE_S = 60
EXPECT_DEADLINE_S = 20
READY_DEADLINE_S = 20
RUN_SH_DEADLINE_S = 900  # builds what is missing, which is nothing after the suite's build
STOP_DEADLINE_S = 20

# When a program left running is ready for the next line: it printed this (regex).
READY_OUTPUT = {
    "rtm": r"Ctrl-C to stop",
    "coplay-host": r"Ctrl-C to stop",
    "coplay-player": r"sending \S+ frames/s",
    "im-worker": r"is up on",
    "web.sh": r"Ctrl-C to stop",
}


class Failure(Exception):
    pass


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def parse_blocks(readme_text):
    """[(first line number, lines, skip reason or None)] of every ```sh block."""
    blocks = []
    lines = readme_text.splitlines()
    i = 0
    while i < len(lines):
        if lines[i].strip() == "```sh":
            start = i + 1
            j = start
            while j < len(lines) and lines[j].strip() != "```":
                j += 1
            if j == len(lines):
                raise Failure(f"README.md:{i + 1}: ```sh block is not closed")
            skip = None
            k = i - 1
            while k >= 0 and not lines[k].strip():
                k -= 1
            m = re.match(r"\s*<!--\s*readme-test:\s*skip\s*\((.+)\)\s*-->\s*$", lines[k]) if k >= 0 else None
            if m:
                skip = m.group(1)
            blocks.append((start + 1, lines[start:j], skip))
            i = j
        i += 1
    return blocks


def split_commands(block_lines, first_line_no):
    """Commands (continuation lines joined) and #> expectations, in order."""
    items = []
    pending = None
    for offset, raw in enumerate(block_lines):
        line_no = first_line_no + offset
        line = raw.rstrip()
        if pending is not None:
            pending = (pending[0], pending[1] + "\n" + line)
            if not line.endswith("\\"):
                items.append(("command",) + pending)
                pending = None
            continue
        stripped = line.strip()
        if not stripped:
            continue
        if stripped.startswith("#>"):
            items.append(("expect", line_no, stripped[2:].strip()))
            continue
        if stripped.startswith("#"):
            continue
        if line.endswith("\\"):
            pending = (line_no, line)
        else:
            items.append(("command", line_no, line))
    if pending is not None:
        raise Failure(f"README.md:{pending[0]}: the block ends inside a continued line")
    return items


def comment_start(command):
    """Index of the trailing `# ...` comment of a command line, outside quotes (None if none)."""
    in_single = in_double = escaped = False
    for i, ch in enumerate(command):
        if escaped:
            escaped = False
        elif ch == "\\" and not in_single:
            escaped = True
        elif ch == "'" and not in_double:
            in_single = not in_single
        elif ch == '"' and not in_single:
            in_double = not in_double
        elif ch == "#" and not in_single and not in_double and (i == 0 or command[i - 1].isspace()):
            return i
    return None


def comment_of(command):
    i = comment_start(command)
    return "" if i is None else command[i + 1:].strip()


def strip_comment(command):
    i = comment_start(command)
    return (command if i is None else command[:i]).rstrip()


def stays_running(command):
    comment = comment_of(command)
    return (
        strip_comment(command).endswith("&")
        or "leave this running" in comment
        or re.match(r"terminal \d+\b", comment) is not None
    )


def program_of(code):
    """The program a command line runs (after VAR=value words and $R-style variables)."""
    words = shlex.split(code, comments=False)
    for word in words:
        if re.match(r"^[A-Za-z_][A-Za-z0-9_]*=", word):
            continue
        return word
    return ""


def expectation_regex(text):
    parts = text.split("...")
    return re.compile("^" + ".*".join(re.escape(p) for p in parts) + "$")


class Output:
    """A file some process writes to, read from a remembered offset."""

    def __init__(self, path, name):
        self.path = Path(path)
        self.name = name

    def size(self):
        try:
            return self.path.stat().st_size
        except FileNotFoundError:
            return 0

    def text_from(self, offset):
        try:
            with open(self.path, "rb") as f:
                f.seek(offset)
                return f.read().decode("utf-8", "replace")
        except FileNotFoundError:
            return ""

    def tail(self, n=30):
        lines = self.text_from(0).splitlines()
        return "\n".join(lines[-n:])


def process_group_alive(pgid):
    """Whether a process of the group still runs (zombies waiting for a reaper do not count)."""
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":
            return True
    return False


def processes_with_env(entry_bytes):
    """[(pid, command line)] of the live processes whose environment holds entry_bytes
    (NAME=value): the descendants of a process started with it, also those that left its
    process group (setsid, daemons)."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            with open(f"/proc/{entry}/environ", "rb") as f:
                if entry_bytes not in f.read().split(b"\0"):
                    continue
            with open(f"/proc/{entry}/stat") as f:
                if f.read().rsplit(")", 1)[1].split()[0] == "Z":
                    continue
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                command = f.read().replace(b"\0", b" ").decode("utf-8", "replace").strip()
        except OSError:
            continue
        found.append((int(entry), command))
    return found


def stop_group(pgid, sig):
    try:
        os.killpg(pgid, sig)
    except ProcessLookupError:
        pass


class Terminal:
    """One bash, fed one command at a time, like a terminal a reader types into."""

    def __init__(self, index, workdir, logdir, env):
        self.index = index
        self.output = Output(logdir / f"terminal-{index}.log", f"terminal {index}")
        self.status_r, status_w = os.pipe()
        self.status_fd = status_w
        self.out_file = open(self.output.path, "wb")
        self.proc = subprocess.Popen(
            ["bash", "--noprofile", "--norc"],
            stdin=subprocess.PIPE,
            stdout=self.out_file,
            stderr=subprocess.STDOUT,
            cwd=workdir,
            env=env,
            pass_fds=(status_w,),
            start_new_session=True,
        )
        os.close(status_w)
        self.status_buffer = b""
        self.variables = {}  # NAME="value" lines typed so far, to find the program of `$NAME ...`

    def type(self, text):
        self.proc.stdin.write(text.encode())
        self.proc.stdin.flush()

    def run(self, code, background):
        # The command reads nothing from this bash's stdin (that is where the next lines come
        # from); it runs in the current shell so that its variables stay for the next lines.
        if background:
            self.type(f"{{\n{code}\n}} </dev/null &\nprintf '%s\\n' \"$?\" >&{self.status_fd}\n")
        else:
            self.type(f"{{\n{code}\n}} </dev/null\nprintf '%s\\n' \"$?\" >&{self.status_fd}\n")
        return self.wait_status(COMMAND_DEADLINE_S)

    def wait_status(self, timeout):
        deadline = time.monotonic() + timeout
        while b"\n" not in self.status_buffer:
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            ready, _, _ = select.select([self.status_r], [], [], left)
            if ready:
                chunk = os.read(self.status_r, 64)
                if not chunk:
                    return None
                self.status_buffer += chunk
        line, self.status_buffer = self.status_buffer.split(b"\n", 1)
        return int(line)

    def close(self):
        try:
            self.proc.stdin.close()
        except OSError:
            pass
        stop_group(self.proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + 5
        while process_group_alive(self.proc.pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        stop_group(self.proc.pid, signal.SIGKILL)
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            pass
        os.close(self.status_r)
        self.out_file.close()


class RunSh:
    """The first terminal: scripts/run.sh in the foreground, stopped with Ctrl-C."""

    def __init__(self, code, index, workdir, logdir, env):
        self.output = Output(logdir / f"run-sh-{index}.log", f"run.sh ({code})")
        self.out_file = open(self.output.path, "wb")
        self.workdir = workdir
        # Every process run.sh starts inherits this entry, wherever it goes afterwards.
        self.marker = f"RTM_README_RUN_SH={workdir}/{index}"
        env = dict(env, RTM_README_RUN_SH=f"{workdir}/{index}")
        self.proc = subprocess.Popen(
            ["bash", "--noprofile", "--norc", "-c", code],
            stdin=subprocess.DEVNULL,
            stdout=self.out_file,
            stderr=subprocess.STDOUT,
            cwd=workdir,
            env=env,
            start_new_session=True,
            # As in a terminal: Ctrl-C's SIGINT reaches run.sh even if this test was started
            # with SIGINT ignored (a shell's background job), which run.sh could not trap.
            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
        )

    def wait_ready(self):
        deadline = time.monotonic() + RUN_SH_DEADLINE_S
        env_file = self.workdir / ".run" / "env"
        while time.monotonic() < deadline:
            if "Ctrl-C stops both." in self.output.text_from(0) and env_file.exists():
                return
            if self.proc.poll() is not None:
                raise Failure(f"run.sh exited with {self.proc.returncode} before it was ready:\n"
                              + self.output.tail())
            time.sleep(0.1)
        raise Failure("run.sh was not ready in time:\n" + self.output.tail())

    def stop(self):
        """Ctrl-C: SIGINT to the whole foreground group. Everything it started must end."""
        stop_group(self.proc.pid, signal.SIGINT)
        try:
            self.proc.wait(timeout=STOP_DEADLINE_S)
        except subprocess.TimeoutExpired:
            stop_group(self.proc.pid, signal.SIGKILL)
            raise Failure("run.sh did not stop on Ctrl-C:\n" + self.output.tail())
        deadline = time.monotonic() + STOP_DEADLINE_S
        while process_group_alive(self.proc.pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        if process_group_alive(self.proc.pid):
            stop_group(self.proc.pid, signal.SIGKILL)
            raise Failure("after Ctrl-C, processes that run.sh started are still running")
        while self.descendants() and time.monotonic() < deadline:
            time.sleep(0.05)
        left = self.descendants()
        if left:
            self.kill_descendants()
            raise Failure("after Ctrl-C, processes that run.sh started outside its process group "
                          "are still running:\n" + "\n".join(f"  {pid} {cmd}" for pid, cmd in left))
        if (self.workdir / ".run" / "env").exists():
            raise Failure("run.sh left .run/env behind after it stopped")
        self.out_file.close()

    def descendants(self):
        return processes_with_env(self.marker.encode())

    def kill_descendants(self):
        for pid, _ in self.descendants():
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass

    def kill(self):
        stop_group(self.proc.pid, signal.SIGKILL)
        self.kill_descendants()
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            pass
        self.out_file.close()


def make_mirror(source_dir, build_dir, into):
    for entry in sorted(os.listdir(source_dir)):
        if entry in (".git", ".run") or entry.startswith("build"):
            continue
        (into / entry).symlink_to(source_dir / entry)
    (into / "build").symlink_to(build_dir)


class ReadmeRun:
    def __init__(self, source_dir, build_dir):
        self.source_dir = source_dir
        self.build_dir = build_dir
        self.tmp = Path(tempfile.mkdtemp(prefix="rtm-readme-"))
        self.workdir = self.tmp / "checkout"
        self.workdir.mkdir()
        self.logdir = self.tmp / "logs"
        self.logdir.mkdir()
        make_mirror(source_dir, build_dir, self.workdir)
        self.env = {
            "PATH": os.environ.get("PATH", "/usr/local/bin:/usr/bin:/bin:/usr/local/sbin:/usr/sbin:/sbin"),
            "HOME": os.environ.get("HOME", str(self.tmp)),
            "USER": os.environ.get("USER", "root"),
            "LANG": "C.UTF-8",
            "TERM": "dumb",
        }
        # The sanitizer build's settings reach its programs, as in every other test.
        self.env.update({k: v for k, v in os.environ.items() if k.endswith("SAN_OPTIONS")})
        self.ports = {"RTM_BROKER_PORT": str(free_port()), "RTM_OPS_PORT": str(free_port())}
        self.run_sh = None
        self.run_sh_count = 0
        self.terminals = []
        self.outputs = []  # every output a #> line may appear in
        self.anchor = {}
        self.counts = {"blocks": 0, "commands": 0, "background": 0, "expectations": 0}
        self.skipped = []

    # ---------------------------------------------------------------- outputs

    def mosquitto_log(self):
        return Output(self.workdir / ".run" / "mosquitto.log", "mosquitto.log")

    def remember_offsets(self):
        self.anchor = {id(o): o.size() for o in self.outputs}

    def wait_for_line(self, regex, outputs, anchor, deadline_s, what):
        deadline = time.monotonic() + deadline_s
        while True:
            for o in outputs:
                for line in o.text_from(anchor.get(id(o), 0)).splitlines():
                    if regex.match(line.rstrip("\r")):
                        return
            if time.monotonic() >= deadline:
                raise Failure(f"{what}: not seen within {deadline_s} s")
            time.sleep(0.05)

    # ---------------------------------------------------------------- run.sh

    def start_run_sh(self, code, line_no):
        if self.run_sh is not None:
            self.run_sh.stop()
            self.outputs.remove(self.run_sh.output)
        for t in self.terminals:
            t.close()
            self.outputs.remove(t.output)
        self.terminals = []
        self.run_sh_count += 1
        env = dict(self.env, **self.ports)
        self.run_sh = RunSh(code, self.run_sh_count, self.workdir, self.logdir, env)
        self.outputs.append(self.run_sh.output)
        self.run_sh.wait_ready()
        print(f"  README.md:{line_no}: {code.strip()}: ready", flush=True)

    # ---------------------------------------------------------------- blocks

    def wait_ready(self, terminal, code, before_log, before_out, line_no):
        program = os.path.basename(program_of(code))
        if program.startswith("$"):
            program = os.path.basename(self.expand_variable_program(terminal, program))
        if program == "mosquitto_sub":
            words = shlex.split(strip_comment(code).rstrip("&"))
            filters = [words[i + 1] for i, w in enumerate(words[:-1]) if w == "-t"]
            log = self.mosquitto_log()
            for f in filters:
                self.wait_for_line(re.compile(r"^\d+: \S+ \d " + re.escape(f) + "$"), [log],
                                   {id(log): before_log}, READY_DEADLINE_S,
                                   f"README.md:{line_no}: the broker log shows the subscription to {f}")
            return
        pattern = READY_OUTPUT.get(program)
        if pattern is None:
            raise Failure(f"README.md:{line_no}: no rule for when `{program}` (left running) is ready; "
                          "add one to READY_OUTPUT")
        self.wait_for_line(re.compile(".*" + pattern + ".*"), [terminal.output],
                           {id(terminal.output): before_out}, READY_DEADLINE_S,
                           f"README.md:{line_no}: `{program}` says it is ready (/{pattern}/)")

    def expand_variable_program(self, terminal, word):
        # `$R listen ...` with R="./build/tools/rtm --config config.yaml": the program is the
        # first word of R's value in that terminal.
        name = word.lstrip("$").strip("{}")
        value = terminal.variables.get(name, "")
        return value.split()[0] if value.split() else word

    def run_block(self, index, first_line_no, lines):
        items = split_commands(lines, first_line_no)
        terminal = None
        # A `#>` line may show the output of any command since the previous `#>` lines.
        new_anchor = True
        for kind, line_no, text in items:
            if kind == "expect":
                self.counts["expectations"] += 1
                self.wait_for_line(expectation_regex(text), self.outputs, self.anchor,
                                   EXPECT_DEADLINE_S, f"README.md:{line_no}: `#> {text}`")
                new_anchor = True
                continue
            code = strip_comment(text)
            if re.match(r"^([A-Za-z_][A-Za-z0-9_]*=\S*\s+)*\./scripts/run\.sh(\s|$)", code):
                self.start_run_sh(code, line_no)
                self.remember_offsets()
                new_anchor = False
                continue
            if terminal is None:
                terminal = Terminal(index, self.workdir, self.logdir, self.env)
                self.terminals.append(terminal)
                self.outputs.append(terminal.output)
            if new_anchor:
                self.remember_offsets()
                new_anchor = False
            m = re.match(r"^([A-Za-z_][A-Za-z0-9_]*)=\"([^\"]*)\"$", code)
            if m:
                terminal.variables[m.group(1)] = m.group(2)
            background = stays_running(text)
            before_log = self.mosquitto_log().size()
            before_out = terminal.output.size()
            run_code = code[:-1].rstrip() if code.endswith("&") else code
            self.counts["commands"] += 1
            status = terminal.run(run_code, background)
            if status is None:
                raise Failure(f"README.md:{line_no}: `{code}` did not finish within {COMMAND_DEADLINE_S} s")
            if status != 0:
                raise Failure(f"README.md:{line_no}: `{code}` exited with status {status}:\n"
                              + terminal.output.text_from(before_out)[-3000:])
            if background:
                self.counts["background"] += 1
                self.wait_ready(terminal, run_code, before_log, before_out, line_no)

    def run(self):
        readme = (self.source_dir / "README.md").read_text()
        blocks = parse_blocks(readme)
        if not blocks:
            raise Failure("README.md has no ```sh blocks")
        for index, (first_line_no, lines, skip) in enumerate(blocks, start=1):
            if skip:
                self.skipped.append((first_line_no, skip))
                print(f"block {index} (README.md:{first_line_no}): skipped ({skip})", flush=True)
                continue
            print(f"block {index} (README.md:{first_line_no})", flush=True)
            self.counts["blocks"] += 1
            self.run_block(index, first_line_no, lines)
        if self.run_sh is None:
            raise Failure("no block of README.md starts ./scripts/run.sh")

    def dump_logs(self):
        print("---- outputs ----")
        for o in self.outputs + [self.mosquitto_log(), Output(self.workdir / ".run" / "gateway.log", "gateway.log")]:
            print(f"== {o.name} ({o.path})")
            print(o.tail(40))

    def close(self, quietly=False):
        for t in self.terminals:
            t.close()
        if self.run_sh is not None:
            if quietly:
                self.run_sh.kill()
            else:
                self.run_sh.stop()


def main():
    if len(sys.argv) != 3:
        print(__doc__)
        return 2
    source_dir = Path(sys.argv[1]).resolve()
    build_dir = Path(sys.argv[2]).resolve()
    run = ReadmeRun(source_dir, build_dir)
    try:
        try:
            run.run()
        except Failure:
            run.close(quietly=True)
            raise
        run.close()
    except Failure as e:
        print(f"FAILED: {e}")
        run.dump_logs()
        print(f"(outputs kept in {run.tmp})")
        return 1
    c = run.counts
    print(f"README.md: {c['blocks']} blocks run ({c['commands']} commands, {c['background']} left running, "
          f"{c['expectations']} #> lines seen, run.sh started {run.run_sh_count} times); "
          f"{len(run.skipped)} blocks skipped:")
    for line_no, reason in run.skipped:
        print(f"  README.md:{line_no}: {reason}")
    subprocess.run(["rm", "-rf", str(run.tmp)], check=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
