"""Fault injection: a user's files are never lost, checkpoints never lie, every failure is one line.

Each case asserts the exit status, one stderr line without a traceback, the user's files untouched and
no temporary file left. A full disk is a real 16 KiB tmpfs where this machine lets the tests mount one
(as root), and a patched write that raises ENOSPC everywhere.
"""
import errno
import json
import os
import signal
import stat
import subprocess
import sys

import pytest
from conftest import interruptible

from simulator.core import files
from simulator.core.errors import CheckpointNotice, OutputError, ParameterError
from simulator.runs import checkpoint as ckpt
from simulator.runs.sweep import sweep

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SIM = ("simulate", "--experiment", "inverted-dropout", "--set", "dist=normal", "--samples", "2000",
       "--threads", "1", "--format", "json")
SWEEP = ("sweep", "--experiment", "inverted-dropout", "--grid", "p=0.2,0.6", "--grid", "v=1,2",
         "--set", "dist=uniform", "--samples", "2000", "--threads", "1", "--no-progress")


def one_line(err):
    """The one message of stderr (progress redraws dropped), asserting there is exactly one and no traceback."""
    assert "Traceback" not in err and "Exception ignored" not in err, err
    lines = [segment.split("\r")[-1].strip() for segment in err.split("\n")]
    lines = [line for line in lines if line]
    assert len(lines) == 1, err
    return lines[0]


def snapshot(folder):
    """Every path under ``folder`` with its bytes (or its kind), to show nothing was touched or left."""
    found = {}
    for base, dirs, names in os.walk(folder):
        for name in dirs + names:
            path = os.path.join(base, name)
            rel = os.path.relpath(path, folder)
            if os.path.islink(path):
                found[rel] = "-> " + os.readlink(path)
            elif os.path.isfile(path):
                with open(path, "rb") as f:
                    found[rel] = f.read()
            else:
                found[rel] = "dir" if os.path.isdir(path) else "special"
    return found


@pytest.fixture
def small_disk(tmp_path):
    """A 16 KiB file system (a tmpfs), or skip where it cannot be mounted (the patched cases still run)."""
    mount = tmp_path / "disk"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16k", "tmpfs", str(mount)], capture_output=True)
    if done.returncode != 0:
        pytest.skip("no tmpfs can be mounted here: the patched ENOSPC cases cover a full disk")
    yield mount
    subprocess.run(["umount", str(mount)], capture_output=True)


# --- outputs never destroy what the user had ----------------------------------------------------------


def test_out_on_a_folder_is_refused_and_the_folder_untouched(cli_run, tmp_path):
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("precious")
    before = snapshot(tmp_path)
    code, _, err = cli_run(*SIM, "--out", str(tmp_path / "mine"))
    assert code == 2 and "is a folder" in one_line(err)
    assert snapshot(tmp_path) == before


def test_out_through_a_symlink_writes_the_target_and_keeps_the_link(cli_run, tmp_path):
    target = tmp_path / "real.json"
    target.write_text("old")
    os.chmod(target, 0o640)
    (tmp_path / "link.json").symlink_to(target)
    code, _, _ = cli_run(*SIM, "--out", str(tmp_path / "link.json"))
    assert code == 0 and os.path.islink(tmp_path / "link.json")
    assert json.loads(target.read_text())["meta"]["seed"]
    assert stat.S_IMODE(target.stat().st_mode) == 0o640  # an existing file keeps its mode
    assert sorted(os.listdir(tmp_path)) == ["link.json", "real.json"]


def test_a_new_file_gets_the_umask_permissions(cli_run, tmp_path):
    old = os.umask(0o027)
    try:
        code, _, _ = cli_run(*SIM, "--out", str(tmp_path / "r.json"))
    finally:
        os.umask(old)
    assert code == 0 and stat.S_IMODE((tmp_path / "r.json").stat().st_mode) == 0o640


def test_a_character_device_is_written_in_place(cli_run):
    code, _, _ = cli_run(*SIM, "--out", "/dev/null")
    assert code == 0 and stat.S_ISCHR(os.stat("/dev/null").st_mode)


def test_dev_stdout_is_written_in_place(tmp_path):
    done = subprocess.run([sys.executable, "cli.py", *SIM, "--out", "/dev/stdout"], cwd=ROOT, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0 and json.loads(done.stdout)["meta"]["seed"]


def test_a_named_pipe_is_written_in_place(cli_run, tmp_path):
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    reader = os.open(fifo, os.O_RDWR | os.O_NONBLOCK)  # a reader that never blocks the writer's open
    try:
        code, _, _ = cli_run(*SIM, "--out", str(fifo))
        text = os.read(reader, 1 << 16).decode()
    finally:
        os.close(reader)
    assert code == 0 and json.loads(text)["meta"]["seed"]
    assert stat.S_ISFIFO(os.stat(fifo).st_mode) and os.listdir(tmp_path) == ["pipe"]


@pytest.mark.parametrize("target", ["/proc/x", "/proc/no/such/file", "/dev/no-such-device"])
def test_unwritable_system_paths_are_one_line(cli_run, target):
    code, _, err = cli_run(*SIM, "--out", target)
    assert code == 2 and one_line(err).startswith("error: --out")


def test_a_read_only_file_is_not_replaced(cli_run, tmp_path):
    target = tmp_path / "r.json"
    target.write_text("keep")
    os.chmod(target, 0o444)
    code, _, err = cli_run(*SIM, "--out", str(target))
    assert code == 2 and "read-only" in one_line(err) and target.read_text() == "keep"


def test_a_socket_is_refused(cli_run, tmp_path):
    import socket
    path = str(tmp_path / "s")
    with socket.socket(socket.AF_UNIX) as s:
        s.bind(path)
        code, _, err = cli_run(*SIM, "--out", path)
    assert code == 2 and "a socket; not written" in one_line(err)


def test_a_block_device_is_refused():
    block = next((os.path.join("/dev", n) for n in sorted(os.listdir("/dev"))
                  if stat.S_ISBLK(os.stat(os.path.join("/dev", n)).st_mode)), None)
    if block is None:
        pytest.skip("no block device here")
    with pytest.raises(ParameterError, match="block device"):
        files.check_target(block)


def test_dev_stdout_appending_to_a_file_keeps_what_was_there(tmp_path):
    log = tmp_path / "log"
    log.write_text("before\n")
    with open(log, "a") as f:
        done = subprocess.run([sys.executable, "cli.py", *SIM, "--out", "/dev/stdout"], cwd=ROOT, stdout=f,
                              stderr=subprocess.PIPE, text=True, timeout=300)
    assert done.returncode == 0
    text = log.read_text()
    assert text.startswith("before\n") and json.loads(text[len("before\n"):])["meta"]["seed"]


def test_a_file_with_other_hard_links_or_a_symlink_loop_is_one_line(cli_run, tmp_path):
    (tmp_path / "a.json").write_text("keep")
    os.link(tmp_path / "a.json", tmp_path / "b.json")
    code, _, err = cli_run(*SIM, "--out", str(tmp_path / "b.json"))
    assert code == 2 and "hard links" in one_line(err) and (tmp_path / "a.json").read_text() == "keep"
    (tmp_path / "loop").symlink_to(tmp_path / "loop")
    code, _, err = cli_run(*SIM, "--out", str(tmp_path / "loop"))
    assert code == 2 and one_line(err).startswith("error: --out")


def test_the_library_writer_checks_by_itself(tmp_path):
    import socket
    path = str(tmp_path / "s")
    with socket.socket(socket.AF_UNIX) as s:
        s.bind(path)
        with pytest.raises(ParameterError):
            files.write_text(path, "x")
    assert stat.S_ISSOCK(os.stat(path).st_mode)


def test_a_report_folder_with_a_file_the_user_added_is_not_replaced(tmp_path):
    from simulator.present import report as rep
    out = tmp_path / "rep"
    out.mkdir()
    (out / "manifest.json").write_text(json.dumps({"written_by": rep.WRITTEN_BY}))
    (out / "index.html").write_text("<html></html>")
    assert rep.is_report(str(out))
    (out / "my-notes.txt").write_text("mine")
    assert not rep.is_report(str(out))


def test_a_checkpoint_whose_header_was_cut_before_its_newline_starts_anew(tmp_path):
    path = tmp_path / "c"
    ckpt.Checkpoint(str(path), {"command": "t"}).save("a", 1)
    header = path.read_bytes().split(b"\n")[0]
    path.write_bytes(header)  # the first write of the file, cut just before its newline
    c = ckpt.Checkpoint(str(path), {"command": "t"})
    c.save("b", 2)
    assert list(ckpt.Checkpoint(str(path), {"command": "t"}).done) == ["b"]


@pytest.mark.parametrize("make", ["folder", "file", "symlink"])
def test_report_out_on_a_users_path_is_refused(cli_run, tmp_path, make):
    out = tmp_path / "rep"
    if make == "folder":
        out.mkdir()
        (out / "thesis.tex").write_text("years of work")
    elif make == "file":
        out.write_text("a file")
    else:
        (tmp_path / "elsewhere").mkdir()
        out.symlink_to(tmp_path / "elsewhere")
    before = snapshot(tmp_path)
    code, _, err = cli_run("report", "--quick", "--samples", "1000", "--no-progress", "--out", str(out))
    assert code == 2 and one_line(err).startswith(f"error: --out {out}")
    assert snapshot(tmp_path) == before  # nothing moved aside, nothing left


def test_a_folder_is_replaced_only_when_it_is_ours(tmp_path):
    def owned(folder):
        return os.path.exists(os.path.join(folder, "mark"))

    out = tmp_path / "out"
    out.mkdir()
    (out / "mark").write_text("")
    (out / "old.txt").write_text("old")
    new = files.new_folder(str(out))
    with open(os.path.join(new, "new.txt"), "w") as f:
        f.write("new")
    files.replace_folder(new, str(out), owned)
    assert sorted(os.listdir(out)) == ["new.txt"] and os.listdir(tmp_path) == ["out"]
    other = files.new_folder(str(out))
    with pytest.raises(ParameterError):  # no mark now: not ours any more
        files.replace_folder(other, str(out), owned)
    assert sorted(os.listdir(out)) == ["new.txt"]


def test_a_report_checkpoint_folder_that_is_not_ours_is_refused(cli_run, tmp_path):
    out = tmp_path / "rep"
    (tmp_path / "rep.checkpoint").mkdir()
    (tmp_path / "rep.checkpoint" / "data.csv").write_text("mine")
    before = snapshot(tmp_path)
    code, _, err = cli_run("report", "--quick", "--samples", "1000", "--no-progress", "--out", str(out))
    assert code == 2 and "not this program's report checkpoint" in one_line(err)
    assert snapshot(tmp_path) == before


# --- a full disk ------------------------------------------------------------------------------------


def test_a_full_disk_names_the_file_and_leaves_nothing(cli_run, small_disk):
    with open(small_disk / "filler", "wb") as f:
        f.write(b"\0" * 12288)  # three of the four pages left
    target = small_disk / "r.json"
    code, _, err = cli_run(*SIM, "--out", str(target))
    assert code == 1 and one_line(err) == f"error: cannot write {target}: No space left on device"
    assert os.listdir(small_disk) == ["filler"]


def _enospc(*args, **kwargs):
    raise OSError(errno.ENOSPC, "No space left on device")


def test_a_patched_full_disk_for_every_writer(monkeypatch, tmp_path):
    real = os.fdopen
    monkeypatch.setattr(files.os, "fdopen", lambda *a, **k: _FullFile(real(*a, **k)))
    for writer, data in ((files.write_text, "text"), (files.write_bytes, b"bytes")):
        with pytest.raises(OutputError, match="No space left"):
            writer(str(tmp_path / "out"), data)
    assert os.listdir(tmp_path) == []


class _FullFile:
    """A file whose writes fail as on a full disk."""

    def __init__(self, f):
        self.f = f

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.f.close()

    def write(self, data):
        _enospc()

    def __getattr__(self, name):
        return getattr(self.f, name)


def test_a_full_disk_while_checkpointing_cuts_the_file_back(monkeypatch, tmp_path):
    path = str(tmp_path / "c.partial")
    c = ckpt.Checkpoint(path, {"command": "test"})
    c.save("a", [1])
    size = os.path.getsize(path)
    real_open = open

    def failing_open(file, mode="r", *args, **kwargs):
        f = real_open(file, mode, *args, **kwargs)
        return _FullFile(f) if "+" in mode else f

    monkeypatch.setattr(ckpt, "open", failing_open, raising=False)
    with pytest.raises(OutputError, match="checkpoint"):
        c.save("b", [2])
    with pytest.raises(OutputError):  # the first piece of a new file: no file is left at all
        ckpt.Checkpoint(str(tmp_path / "new.partial"), {"command": "test"}).save("a", [1])
    monkeypatch.undo()
    assert os.path.getsize(path) == size and list(ckpt.Checkpoint(path, {"command": "test"}).done) == ["a"]
    assert sorted(os.listdir(tmp_path)) == ["c.partial"]


# --- checkpoints that cannot lie ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    """The bytes of the sweep run in one go."""
    out = tmp_path_factory.mktemp("sweep") / "s.csv"
    import cli
    try:
        cli.main([*SWEEP, "--out", str(out)])
    except SystemExit as e:
        assert e.code in (0, None)
    return out.read_bytes()


def _partial(out, **change):
    """The checkpoint an interruption after the first two points leaves, as the command makes it."""
    args = {"samples": 2000, "settings": {"dist": "uniform"}, "threads": 1, **change}
    sweep("inverted-dropout", {"p": "0.2", "v": "1,2"}, checkpoint=str(out) + ".partial", **args)
    return str(out) + ".partial"


def _edit(path, line, edit):
    with open(path, "rb") as f:
        lines = f.read().split(b"\n")
    lines[line] = edit(lines[line])
    with open(path, "wb") as f:
        f.write(b"\n".join(lines))


DAMAGE = {
    "an estimate edited": lambda raw: raw.replace(b'"estimate": ', b'"estimate": 1', 1),
    "rows emptied to []": lambda raw: raw[:raw.index(b'"value": ') + 9] + b"[]}",
    "rows without point": lambda raw: raw.replace(b'"point"', b'"pont"'),
    "invalid UTF-8": lambda raw: raw[:80] + b"\xff\xfe" + raw[82:],
    "a number where rows belong": lambda raw: b"42",
    "a string where rows belong": lambda raw: b'"rows"',
}


@pytest.mark.parametrize("damage", list(DAMAGE))
def test_a_damaged_checkpoint_is_discarded_and_the_output_unchanged(cli_run, tmp_path, uninterrupted, damage):
    out = tmp_path / "s.csv"
    partial = _partial(out)
    _edit(partial, 1, DAMAGE[damage])
    code, _, err = cli_run(*SWEEP, "--out", str(out))
    assert code == 0 and "Traceback" not in err
    assert "is damaged" in err and "discarded, starting afresh" in err
    assert out.read_bytes() == uninterrupted and os.listdir(tmp_path) == ["s.csv"]


@pytest.mark.parametrize("other", ["seed", "samples", "code"])
def test_a_checkpoint_of_another_run_is_discarded(cli_run, tmp_path, uninterrupted, monkeypatch, other):
    out = tmp_path / "s.csv"
    if other == "code":
        monkeypatch.setattr(ckpt, "code_version", lambda: "0.0.0+another")
        _partial(out)
        monkeypatch.undo()
    else:
        _partial(out, **{"seed": 7} if other == "seed" else {"samples": 3000})
    code, _, err = cli_run(*SWEEP, "--out", str(out))
    assert code == 0 and f"belongs to another run ({other}" in err and "discarded" in err
    assert out.read_bytes() == uninterrupted and os.listdir(tmp_path) == ["s.csv"]


def test_a_torn_last_line_is_dropped_and_the_rest_resumed(cli_run, tmp_path, uninterrupted):
    out = tmp_path / "s.csv"
    partial = _partial(out)
    with open(partial, "ab") as f:
        f.write(b'0123abcd {"key": "torn')  # an append cut short by the interruption
    code, _, err = cli_run(*SWEEP, "--out", str(out))
    assert code == 0 and "discarded" not in err
    assert out.read_bytes() == uninterrupted and os.listdir(tmp_path) == ["s.csv"]


@pytest.mark.parametrize("content", [b"42\n", b'"rows"', b"\xff\xfe\xfd\n", b'{"key": "k", "value": []}\n',
                                     "folder"])
def test_what_is_not_our_checkpoint_is_refused_and_kept(cli_run, tmp_path, content):
    out = tmp_path / "s.csv"
    partial = tmp_path / "s.csv.partial"
    if content == "folder":
        partial.mkdir()
    else:
        partial.write_bytes(content)
    before = snapshot(tmp_path)
    code, _, err = cli_run(*SWEEP, "--out", str(out))
    assert code == 2 and one_line(err).startswith(f"error: checkpoint {partial}")
    assert snapshot(tmp_path) == before


def test_checkpoint_notices_are_warnings_in_the_library(tmp_path):
    path = str(tmp_path / "c")
    ckpt.Checkpoint(path, {"seed": 1}).save("a", 1)
    with pytest.warns(CheckpointNotice, match="seed 1 in the file, 2 now"):
        assert len(ckpt.Checkpoint(path, {"seed": 2})) == 0
    assert len(ckpt.Checkpoint(path, {"seed": 1})) == 1


def test_the_report_checkpoint_is_checked_like_any_other(tmp_path):
    from simulator.present import report as rep
    from simulator.runs.verify import verify
    folder = rep.checkpoint_folder(str(tmp_path / "rep"))
    path = os.path.join(folder, "verify.jsonl")
    verify(quick=True, samples=2000, experiments=["inverted-dropout"], checkpoint=path)
    _edit(path, 1, DAMAGE["an estimate edited"])
    with pytest.warns(CheckpointNotice, match="damaged"):
        verify(quick=True, samples=2000, experiments=["inverted-dropout"], checkpoint=path)


# --- sizes, extras, degenerate runs and errors that are not interrupts -------------------------------


@pytest.mark.parametrize("grid", [("p=0.1:1:1000000000000",), ("p=0.1:1:1000", "v=1:2:1000")])
def test_huge_grids_are_refused_before_allocating(cli_run, grid):
    args = [a for g in grid for a in ("--grid", g)]
    code, _, err = cli_run("sweep", "--experiment", "inverted-dropout", *args)
    assert code == 2 and "at most 100,000 points" in one_line(err)


def test_a_missing_extra_names_the_install_command(cli_run, monkeypatch):
    monkeypatch.setitem(sys.modules, "distributed", None)
    code, _, err = cli_run(*SWEEP, "--workers", "2")
    assert code == 2 and "pip install '.[distributed]'" in one_line(err)


def test_an_end_of_file_error_is_not_an_interrupt(cli_run, monkeypatch):
    import cli

    def broken(**kwargs):
        raise EOFError("Ran out of input")

    monkeypatch.setattr(cli, "simulate", broken)
    code, _, err = cli_run(*SIM)
    assert code == 1 and "interrupted" not in err and "end of input" in one_line(err)


def test_no_kept_gate_is_inconclusive_not_refuted(cli_run):
    code, out, err = cli_run("simulate", "--experiment", "inverted-dropout", "--p", "1e-9", "--samples", "1000",
                             "--format", "json")
    data = json.loads(out)
    assert code == 0 and not err
    assert {r["verdict"] for r in data["checks"]} == {"inconclusive"}
    assert all("too few to estimate an MCSE" in r["reason"] for r in data["checks"])
    assert data["claims"][0]["outcome"] == "inconclusive" and data["claims"][0]["ok"]


FROZEN = ("dropout-gradient", "inverted-dropout", "relu-shift", "batchnorm", "variance-shift", "network-shift",
          "task-impact")


def test_every_sampled_experiment_is_undecided_when_no_gate_is_kept(cli_run):
    code, out, _ = cli_run("simulate", "--p", "1e-9", "--samples", "1000", "--format", "json",
                           *[a for e in FROZEN for a in ("--experiment", e)])
    data = json.loads(out)
    assert code == 0 and all(c["ok"] for c in data["claims"])
    assert not [r for r in data["checks"] if r.get("reason") and r["verdict"] in ("refuted", "contradicted")]
    degenerate = {r["subclaim"] for r in data["checks"] if r.get("reason") and r["verdict"] == "inconclusive"}
    assert degenerate and all(c["outcome"] not in ("confirmed", "contradicted") for c in data["claims"]
                              if c["id"] in degenerate)


# --- interrupts ------------------------------------------------------------------------------------


def _interrupt_when(args, marker, second=False, signum=signal.SIGINT):
    """Run ``cli.py ARGS``, send SIGINT once ``marker`` shows on stderr (and a second one during shutdown);
    return the exit status and all of stderr (bytes read as they come: progress redraws keep their \\r).

    The signal goes to the whole process group, as a terminal's Ctrl-C does (the drawing process too).
    """
    proc = subprocess.Popen([sys.executable, "cli.py", *args], cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, start_new_session=True, preexec_fn=interruptible)
    seen = b""
    while marker.encode() not in seen:
        ch = proc.stderr.read(1)
        assert ch, f"process ended early: {seen}"
        seen += ch
    os.killpg(proc.pid, signum)
    if second:
        while b"interrupted" not in seen:
            ch = proc.stderr.read(1)
            if not ch:
                break
            seen += ch
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    return proc.returncode, (seen + err).decode()


@pytest.mark.parametrize("phase,marker", [("figure sweeps", "sweep points"), ("verify while drawing", "verify (")])
def test_ctrl_c_during_report_is_quiet_and_leaves_no_temporary(tmp_path, phase, marker):
    out = tmp_path / "rep"
    code, err = _interrupt_when(("report", "--quick", "--samples", "1000", "--progress", "--out", str(out)), marker)
    assert code == 130 and one_line(err).startswith("interrupted")
    left = os.listdir(tmp_path)
    assert left in ([], ["rep.checkpoint"]), left  # finished sweeps stay for a resume; nothing temporary
    if left:
        assert all(ckpt.is_checkpoint(os.path.join(tmp_path, "rep.checkpoint", n))
                   for n in os.listdir(tmp_path / "rep.checkpoint") if n.endswith(".jsonl"))


def test_ctrl_c_during_sweep_keeps_only_checked_pieces(tmp_path, uninterrupted):
    out = tmp_path / "s.csv"
    args = [a for a in SWEEP if a != "--no-progress"] + ["--samples", "2e7", "--progress", "--out", str(out)]
    code, err = _interrupt_when(args, "sweep points")
    assert code == 130 and one_line(err).startswith("interrupted")
    assert os.listdir(tmp_path) == ["s.csv.partial"] and ckpt.is_checkpoint(str(out) + ".partial")


def test_a_second_ctrl_c_during_shutdown_stays_quiet():
    code, err = _interrupt_when(("simulate", "--experiment", "training", "--set", "runs=4", "--progress",
                                 "--threads", "2"), "training", second=True)
    assert code == 130 and one_line(err).startswith("interrupted")


def test_audit_save_and_plot_follow_the_same_rules(tmp_path):
    from conftest import require_torch
    torch = require_torch()
    from simulator.audit.torch_model import save_state
    real = tmp_path / "real.pt"
    real.write_bytes(b"old")
    os.chmod(real, 0o640)
    (tmp_path / "link.pt").symlink_to(real)
    save_state(torch.nn.BatchNorm1d(3), str(tmp_path / "link.pt"))
    assert os.path.islink(tmp_path / "link.pt") and stat.S_IMODE(real.stat().st_mode) == 0o640
    assert set(torch.load(real, weights_only=True)) >= {"running_mean", "running_var"}
    assert sorted(os.listdir(tmp_path)) == ["link.pt", "real.pt"]


def test_sigterm_cleans_up_like_ctrl_c(tmp_path):
    out = tmp_path / "rep"
    code, err = _interrupt_when(("report", "--quick", "--samples", "1000", "--progress", "--out", str(out)),
                                "verify (", signum=signal.SIGTERM)
    assert code == 130 and one_line(err).startswith("interrupted")
    assert os.listdir(tmp_path) in ([], ["rep.checkpoint"])


# --- the second battery (issue 34): 32 failing cases of 225, each class replayed -----------------------
# Classes: [cache] stale numbers from a fallback cache; [lock] two runs on one output; [before] refused
# only after the work; [signal] SIGHUP and the leftovers of killed runs; [dask] Ctrl-C and other code on
# a cluster; [names] newlines in names; [env] tracebacks from the environment; [audit] degenerate data
# and a model that prints; [pipe] a closed stdout; [budget] a false self-test failure at a small budget.

IMPORT = "import numba, simulator; from simulator.core import jit; print(numba.config.CACHE_DIR, jit.OPTIONS['cache'])"


def _python(code, env=None, args=()):
    done = subprocess.run([sys.executable, *(("-c", code) if code else ()), *args], cwd=ROOT, capture_output=True,
                          text=True, env={**os.environ, **(env or {})}, timeout=300)
    return done.returncode, done.stdout, done.stderr


def test_cache_an_unwritable_cache_folder_moves_to_the_user_folder_of_the_same_digest(tmp_path):
    """[cache] A read-only NUMBA_CACHE_DIR: Numba would fall back to the in-tree cache (stale); here the
    cache moves to the per-user folder named by the digest, and Numba is told to use no other."""
    from simulator.core import cache
    (tmp_path / "file").write_text("")
    code, out, err = _python(IMPORT, {"NUMBA_CACHE_DIR": str(tmp_path / "file" / "cache"),
                                      "XDG_CACHE_HOME": str(tmp_path / "xdg")})
    assert code == 0 and err == "", err
    folder, cached = out.split()
    assert folder == str(tmp_path / "xdg" / cache.USER_FOLDER / (cache.PREFIX + cache.digest())) and cached == "True"


def test_cache_numba_never_falls_back_to_a_cache_that_ignores_the_digest():
    """[cache] The only locator is the user-provided one (the digest's folder): a kernel compiled here is
    stored there, never beside its source file."""
    import numba

    from simulator.core import cache
    from simulator.nn import chain
    assert numba.config.CACHE_LOCATOR_CLASSES == "UserProvidedCacheLocator"
    locator = chain.linear_rows._cache._impl.locator
    assert type(locator).__name__ == "UserProvidedCacheLocator"
    assert os.path.basename(numba.config.CACHE_DIR) == cache.PREFIX + cache.digest()


def test_cache_no_writable_folder_at_all_runs_without_a_cache_and_says_so(tmp_path, cli_run):
    """[cache] Read-only package folder and HOME ("no locator available" before): the same numbers,
    compiled without a cache, and one note."""
    (tmp_path / "file").write_text("")
    env = {"NUMBA_CACHE_DIR": str(tmp_path / "file" / "a"), "XDG_CACHE_HOME": str(tmp_path / "file" / "b")}
    code, out, err = _python(None, env, ("cli.py", *SIM))
    assert code == 0 and one_line(err).startswith("note: no writable folder for compiled kernels")
    code2, expected, _ = cli_run(*SIM)
    assert code2 == 0 and json.loads(out)["checks"] == json.loads(expected)["checks"]


def test_cache_use_kernel_cache_without_a_folder_turns_caching_off(monkeypatch):
    import numba

    from simulator.core import cache, jit
    notes = []
    monkeypatch.setattr(cache, "writable", lambda folder: False)
    monkeypatch.setattr(numba.config, "CACHE_DIR", numba.config.CACHE_DIR)
    monkeypatch.setitem(jit.OPTIONS, "cache", True)
    assert cache.use_kernel_cache(note=notes.append) is None
    assert jit.OPTIONS["cache"] is False and len(notes) == 1 and "running without a cache" in notes[0]


@pytest.mark.parametrize("setting,says", [("NUMBA_NUM_THREADS=0", "number of threads ≥ 1"),
                                          ("NUMBA_NUM_THREADS=abc", "is not an integer"),
                                          ("NUMBA_DISABLE_JIT=1", "NUMBA_DISABLE_JIT"),
                                          ("NUMBA_OPT=fast", "NUMBA_OPT")])
def test_env_numba_settings_that_cannot_run_are_one_line(setting, says):
    """[env] A traceback at import, a warning with traceback text, an AttributeError: now one line, exit 2."""
    name, _, value = setting.partition("=")
    code, out, err = _python(None, {name: value}, ("cli.py", "list"))
    assert code == 2 and out == "" and says in one_line(err) and one_line(err).startswith("error: environment")


# [lock] ---------------------------------------------------------------------------------------------


def test_lock_a_second_run_on_one_output_is_refused_naming_the_first(tmp_path, cli_run):
    out = tmp_path / "s.csv"
    partial = tmp_path / "s.csv.partial"
    partial.write_text("the first run's checkpoint\n")
    with files.output_lock(str(out)) as lock:
        before = snapshot(tmp_path)
        code, _, err = cli_run(*SWEEP, "--out", str(out))
        assert code == 2 and f"another run (process {os.getpid()})" in one_line(err)
        assert snapshot(tmp_path) == before  # the first run's checkpoint and lock untouched
        with pytest.raises(ParameterError, match="another run"):
            with files.output_lock(str(out)):
                pass
    assert not os.path.exists(lock)


@pytest.mark.parametrize("command", [("map", "--quick", "--no-progress"), ("report", "--quick", "--no-progress")])
def test_lock_map_and_report_take_the_same_lock(tmp_path, cli_run, command):
    out = tmp_path / "folder"
    with files.output_lock(str(out)):
        before = snapshot(tmp_path)
        code, _, err = cli_run(*command, "--out", str(out))
        assert snapshot(tmp_path) == before
    assert code == 2 and "another run" in one_line(err)


def test_lock_left_by_a_killed_run_is_taken_over(tmp_path, cli_run):
    out = tmp_path / "s.csv"
    (tmp_path / "s.csv.lock").write_text(f"{files.LOCK_MARK}\npid {_dead_pid()}\n")  # SIGKILL: no unlock
    code, _, err = cli_run(*SWEEP, "--out", str(out))
    assert code == 0 and sorted(os.listdir(tmp_path)) == ["s.csv"]


def test_lock_a_file_of_that_name_that_is_not_ours_is_refused_and_kept(tmp_path, cli_run):
    (tmp_path / "s.csv.lock").write_text("my notes\n")
    before = snapshot(tmp_path)
    code, _, err = cli_run(*SWEEP, "--out", str(tmp_path / "s.csv"))
    assert code == 2 and "not this program's lock file" in one_line(err)
    assert snapshot(tmp_path) == before


# [before] --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("make", ["file", "symlink", "empty name"])
def test_before_map_onto_a_file_a_link_or_no_name_is_refused_before_training(tmp_path, cli_run, make, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "mfile").write_text("mine")
    (tmp_path / "mlink").symlink_to("mfile")
    target = {"file": "mfile", "symlink": "mlink", "empty name": ""}[make]
    before = snapshot(tmp_path)
    code, _, err = cli_run("map", "--quick", "--no-progress", "--out", target)
    assert code == 2 and one_line(err).startswith("error: --out")
    assert snapshot(tmp_path) == before  # no mfile.partial, no .partial: nothing trained


def test_before_a_bad_value_anywhere_in_a_list_is_refused_before_the_first_cell(tmp_path, cli_run):
    code, _, err = cli_run("map", "--quick", "--keep", "0.5,1e-12", "--no-progress", "--out", str(tmp_path / "m"))
    assert code == 2 and "p=1e-12" in one_line(err) and os.listdir(tmp_path) == []


@pytest.mark.parametrize("command", [SWEEP, ("map", "--quick", "--no-progress"), SIM])
def test_before_names_the_suffixes_would_make_too_long_are_refused_first(tmp_path, cli_run, command):
    limit = os.pathconf(tmp_path, "PC_NAME_MAX")
    name = "n" * (limit - files.SUFFIX_BYTES - 3) + ".csv"  # fits itself; its temporary name would not
    code, _, err = cli_run(*command, "--out", str(tmp_path / name))
    assert code == 2 and "the name is" in one_line(err) and os.listdir(tmp_path) == []
    fits = "n" * (limit - files.SUFFIX_BYTES - 4) + ".csv"
    files.check_target(str(tmp_path / fits))  # the longest name that works passes


# [signal] -------------------------------------------------------------------------------------------


def _dead_pid():
    """The id of a process that has ended (and been reaped)."""
    done = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    return int(done.stdout)


def test_signal_sighup_during_report_cleans_up_like_sigterm(tmp_path):
    out = tmp_path / "rep"
    code, err = _interrupt_when(("report", "--quick", "--samples", "1000", "--progress", "--out", str(out)),
                                "verify (", signum=signal.SIGHUP)
    assert code == 130 and one_line(err).startswith("interrupted")
    assert os.listdir(tmp_path) in ([], ["rep.checkpoint"])  # no .rep.XXXX.tmp


def test_signal_leftovers_of_a_killed_run_are_removed_by_the_next_and_no_one_elses(tmp_path, cli_run):
    dead = _dead_pid()
    ours_file = tmp_path / f".s.csv.{dead}-abcd1234.tmp"        # SIGKILL during open_output's write
    ours_file.write_text("half")
    ours_dir = tmp_path / f".s.csv.{dead}-efgh5678.tmp"         # SIGKILL during a folder's write
    ours_dir.mkdir()
    (ours_dir / files.UNFINISHED).write_text(f"{dead}\n")
    unmarked = tmp_path / f".s.csv.{dead}-ijkl9012.tmp"         # the same pattern, but not marked: kept
    unmarked.mkdir()
    (unmarked / "notes").write_text("mine")
    alive = tmp_path / f".s.csv.{os.getppid()}-mnop3456.tmp"     # a live process's: kept
    alive.write_text("being written")
    other = tmp_path / ".s.csv.tmp"                             # another name: kept
    other.write_text("mine")
    code, _, err = cli_run(*SWEEP, "--out", str(tmp_path / "s.csv"))
    assert code == 0
    assert sorted(os.listdir(tmp_path)) == sorted(["s.csv", unmarked.name, alive.name, other.name])


def test_signal_killed_between_the_two_renames_the_previous_folder_comes_back(tmp_path):
    out = tmp_path / "m"
    dead = _dead_pid()
    aside = tmp_path / f".m.{dead}-abcd1234.old"
    (aside / "previous").mkdir(parents=True)
    (aside / "previous" / "map.json").write_text("{}")
    (aside / files.UNFINISHED).write_text(f"{dead}\n")
    assert files.remove_leftovers(str(out)) == [aside.name]
    assert sorted(os.listdir(tmp_path)) == ["m"] and (out / "map.json").read_text() == "{}"


# [names] [pipe] ---------------------------------------------------------------------------------------


def test_names_with_a_newline_are_quoted_in_the_message(tmp_path, cli_run):
    out = tmp_path / "a\nb.csv"
    code, _, err = cli_run(*SWEEP, "--out", str(out))
    assert code == 0 and out.exists() and repr(str(out)) in one_line(err)


def test_pipe_a_reader_that_closes_early_ends_the_program_quietly():
    """[pipe] ``cli.py list | head -c 20``: exit 141 (128 + SIGPIPE) as ls and git give it, nothing on stderr."""
    read, write = os.pipe()
    proc = subprocess.Popen([sys.executable, "cli.py", "list"], cwd=ROOT, stdout=write, stderr=subprocess.PIPE)
    os.close(write)
    os.close(read)  # before the program prints its first line (its import takes a second)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 141 and err == b""


# [audit] --------------------------------------------------------------------------------------------

NAN_MODEL = '''import torch, torch.nn as nn
class M(nn.Module):
    def __init__(self):
        super().__init__(); self.l = nn.Linear(8, 16); self.d = nn.Dropout(0.5); self.bn = nn.BatchNorm1d(16)
    def forward(self, x):
        print("printed by the model")
        return self.bn(self.d(torch.log(self.l(x))))
def model():
    print("printed at import")
    return M()
'''


@pytest.mark.parametrize("data", ["zeros", "huge", "constant column"])
def test_audit_degenerate_data_is_undecided_never_no_shift(tmp_path, cli_run, data):
    import numpy as np
    x = np.random.default_rng(0).normal(size=(640, 8))
    x = {"zeros": np.zeros_like(x), "huge": 1e200 * x, "constant column": np.c_[np.full(640, 2.0), x[:, 1:]]}[data]
    np.save(tmp_path / "x.npy", x)
    arch = "dropout:0.5,bn" if data == "constant column" else "linear:16,dropout:0.5,bn,relu,linear:1"
    code, out, err = cli_run("audit", "--arch", arch, "--data", str(tmp_path / "x.npy"), "--batches", "20",
                             "--format", "json")
    assert code == 0 and "Traceback" not in err
    rows = json.loads(out)["rows"]  # strict JSON: no NaN in it
    assert rows[0]["verdict"].startswith("undecided") and not rows[0]["shifted"]


def test_audit_a_model_that_makes_nan_and_prints_keeps_stdout_for_the_json(tmp_path, cli_run):
    pytest.importorskip("torch")
    (tmp_path / "m.py").write_text(NAN_MODEL)
    code, out, err = cli_run("audit", "--model", f"{tmp_path / 'm.py'}:model", "--input-shape", "8",
                             "--batches", "10", "--format", "json")
    assert code == 0 and "Traceback" not in err
    result = json.loads(out)  # the model's prints went to stderr
    assert result["rows"][0]["undecided"] and result["output"]["before"]["undecided"]
    assert "printed by the model" in err and "printed at import" in err


@pytest.mark.parametrize("width", ["inf", "1e400", "nan"])
def test_audit_a_width_that_is_not_finite_is_bad_usage(cli_run, width):
    code, _, err = cli_run("audit", "--arch", f"linear:{width},bn", "--in", "4")
    assert code == 2 and "not a finite number" in one_line(err)


# [budget] -------------------------------------------------------------------------------------------


def test_budget_a_self_test_without_a_calibrated_mcse_is_inconclusive_not_failed():
    """[budget] verify --samples 1000 --experiment relu-shift failed 'var growth (elementwise)' for 3 of 6
    seeds (c = −1, v = 0.25: about 2 kept samples with h > 0): now inconclusive with the reason, and the
    default budget keeps every cell judged."""
    from simulator.experiments import CATALOG
    from simulator.experiments.relu_shift import rare_events
    from simulator.runs.verify import verify
    for seed in range(1, 7):
        v = verify(samples=1000, seed=seed, experiments=["relu-shift"], derivations=False)
        assert not v.failed, (seed, v.failed)
        rare = [r for r in v.checks if r["check"] == "var growth (elementwise)" and r["params"]["c"] == -1.0
                and r["params"]["p"] == 0.1]
        assert rare and all(r["verdict"] == "inconclusive" and "too few" in r["reason"] for r in rare)
    default = CATALOG["relu-shift"].samples
    assert all(rare_events(p, c, v, default) is None
               for p in (0.1, 0.3, 0.5, 0.8, 0.9) for c, v in ((-1.0, 0.25), (0.0, 1.0), (0.5, 1.0)))
