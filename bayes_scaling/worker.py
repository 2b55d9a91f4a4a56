"""A per-user background worker that keeps compiled models, so a second ``bayes-scaling fit`` takes seconds.

(``recipes`` and ``explain`` go there too, without ``--plot``/``--report``: their pooled and windowed models are
compiled once per worker instead of once per command.)

Compiling a law's model (numba, through nutpie) takes ~10 s and sampling it ~1 s; the compiled model lives in the
process (:mod:`bayes_scaling.compiled`), so every new command-line process paid the compile again. The console
script ``bayes-scaling`` (:mod:`bayes_scaling.console`) therefore hands ``fit`` to a worker process that outlives
it (``bayes-scaling worker serve``, started by the client):

* **Where**: a Unix socket in the user's cache folder, ``$XDG_CACHE_HOME/bayes_scaling/worker/`` (default
  ``~/.cache/...``), a folder only its owner can open (mode 0700, checked before every use; the worker also checks
  each caller's user id where the system tells it). One worker per user, Python environment, package version and
  package source (the socket's name hashes them), no network port.
* **Life**: started on first use (the first fit waits for it and compiles there), ended after
  :data:`IDLE_SECONDS` without a request (``$BAYES_SCALING_WORKER_IDLE``), removing its socket; nothing is left
  behind but the folder and a short log. ``bayes-scaling worker status|stop`` shows or ends it.
* **Safety**: the client checks nothing less than in-process: the worker parses the same arguments and runs the
  same pre-flight checks on the real output path, then fits and writes the fit to a file in its own private
  temporary folder; the bytes come back and the **client** publishes them at ``--out`` (atomically, never
  replacing a file unless ``--force``). A worker that crashes or cannot be started only costs time: the client
  then runs the command in its own process, so a result it was asked to save is never lost. Ctrl-C in the client
  saves nothing.
* **Same answer**: the worker runs the very code path of an in-process command (same parser, same fit, same seed:
  same draws; tested), with the warnings filters, interval defaults and ``BAYES_SCALING_*`` variables of each call.

``BAYES_SCALING_WORKER=off`` turns it off (the command then runs in its own process, as ``python -m
bayes_scaling.cli`` always does). This module imports only the standard library until it serves a request, so the
client starts in tens of milliseconds.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import io
import json
import os
import socket
import stat
import struct
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, Protocol

__all__ = ["ENV_IDLE", "ENV_SWITCH", "IDLE_SECONDS", "START_SECONDS", "Runner", "enabled", "folder", "idle_seconds",
           "routable", "run_remote", "serve", "socket_path", "status", "stop"]

#: Environment variable that turns the worker off (``off``, ``0``, ``no``, ``false``).
ENV_SWITCH = "BAYES_SCALING_WORKER"
#: Environment variable with the idle timeout in seconds.
ENV_IDLE = "BAYES_SCALING_WORKER_IDLE"
#: Seconds without a request after which the worker ends.
IDLE_SECONDS = 600.0
#: Seconds the client waits for a new worker to answer before running the command itself.
START_SECONDS = 60.0
#: Commands the worker runs (the ones whose time is mostly compiling; a subcommand as "command subcommand").
COMMANDS = ("fit", "recipes", "explain", "curve fit")
#: Options that keep a command in the client's process (a pooled fit, help, a live progress bar, a plot or report
#: written by the command itself: only ``--out`` files travel back from the worker).
LOCAL_OPTIONS = ("--group", "-h", "--help", "--progress", "--plot", "--report")
#: Version of the request/response format.
PROTOCOL = 1
#: Largest message accepted (bytes).
MAX_MESSAGE = 1 << 31
#: Longest socket path used (the system's limit is 107 bytes on Linux, 103 on macOS); beyond it, no worker.
MAX_SOCKET_PATH = 100
#: Exit status after Ctrl-C (as the CLI's).
EXIT_INTERRUPTED = 130



class Runner(Protocol):
    """What runs one command line in the worker: the CLI's ``main``."""

    def __call__(self, argv: Sequence[str], *, save_to: Path, saved: dict[str, Any]) -> int:
        """Run ``argv``, saving to ``save_to`` instead of ``--out`` (recorded in ``saved``); the exit status."""


# ---------------------------------------------------------------------------------------------------- client side


def enabled() -> bool:
    """Whether ``$BAYES_SCALING_WORKER`` allows the worker (default: yes, on systems with Unix sockets)."""
    value = os.environ.get(ENV_SWITCH, "on").strip().lower()
    return value not in ("off", "0", "no", "false") and hasattr(socket, "AF_UNIX")


def routable(argv: Sequence[str]) -> bool:
    """Whether the command line ``argv`` (without the program name) is one the worker runs."""
    if not argv or not enabled():
        return False
    words = 2 if argv[0] == "curve" else 1
    if " ".join(argv[:words]) not in COMMANDS:
        return False
    return not any(a.split("=", 1)[0] in LOCAL_OPTIONS for a in argv[words:])  # --group X and --group=X


def idle_seconds() -> float:
    """The worker's idle timeout: ``$BAYES_SCALING_WORKER_IDLE`` or :data:`IDLE_SECONDS`."""
    raw = os.environ.get(ENV_IDLE)
    if raw is None:
        return IDLE_SECONDS
    try:
        value = float(raw)
    except ValueError:
        raise ValueError(f"${ENV_IDLE} must be a number of seconds, got {raw!r}") from None
    if not value > 0:
        raise ValueError(f"${ENV_IDLE} must be positive, got {raw!r}")
    return value


def folder() -> Path:
    """The worker's folder in the user's cache (not created here)."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "bayes_scaling" / "worker"


def _private_folder() -> Path | None:
    """The worker's folder, created with mode 0700 if missing; None if it is not the user's own private folder."""
    path = folder()
    try:
        path.mkdir(mode=0o700, parents=True, exist_ok=True)
        info = os.lstat(path)
    except OSError:
        return None
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.getuid() or info.st_mode & 0o077:
        return None
    return path


def _source_stamp() -> str:
    """What identifies this installation: Python, environment, the package's folder and its files' latest change.

    So another version, or an edited install, gets a worker of its own.
    """
    package = Path(__file__).parent
    newest = 0
    for root, _dirs, files in os.walk(package):
        for name in files:
            if name.endswith(".py"):
                with contextlib.suppress(OSError):
                    newest = max(newest, os.stat(os.path.join(root, name)).st_mtime_ns)
    parts = [sys.executable, sys.prefix, str(package), str(newest),
             os.environ.get("PYTENSOR_FLAGS", ""), os.environ.get("NUMBA_CACHE_DIR", "")]
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()[:12]


def socket_path() -> Path:
    """The socket of this installation's worker."""
    return folder() / f"{_source_stamp()}.sock"


def _send(conn: socket.socket, message: dict[str, Any]) -> None:
    data = json.dumps(message).encode()
    conn.sendall(struct.pack(">Q", len(data)) + data)


def _receive(conn: socket.socket) -> dict[str, Any]:
    head = _read_exactly(conn, 8)
    (size,) = struct.unpack(">Q", head)
    if size > MAX_MESSAGE:
        raise ConnectionError(f"message of {size} bytes refused")
    return json.loads(_read_exactly(conn, size))


def _read_exactly(conn: socket.socket, size: int) -> bytes:
    chunks, left = [], size
    while left:
        chunk = conn.recv(min(left, 1 << 20))
        if not chunk:
            raise ConnectionError("the worker closed the connection")
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


def _connect(path: Path) -> socket.socket | None:
    conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        conn.connect(str(path))
    except OSError:
        conn.close()
        return None
    return conn


@contextlib.contextmanager
def _start_lock(where: Path) -> Iterator[None]:
    """One client at a time starts a worker (an advisory lock on a file in the private folder)."""
    import fcntl

    with open(where / "start.lock", "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _start_and_connect(path: Path) -> socket.socket | None:
    """Start a worker for ``path`` (unless one answers by now) and connect; None if none answers in time."""
    with _start_lock(path.parent):
        conn = _connect(path)
        if conn is not None:
            return conn
        if path.is_socket():  # a worker that died without cleaning up: its socket is ours to remove
            path.unlink()
        log = open(path.parent / "worker.log", "wb")  # handed to the child, closed here after the start
        try:
            child = subprocess.Popen(
                [sys.executable, "-m", "bayes_scaling.cli", "worker", "serve", "--socket", str(path),
                 "--idle", str(idle_seconds())],
                stdin=subprocess.DEVNULL, stdout=log, stderr=log, cwd=path.parent, start_new_session=True,
                close_fds=True)
        except OSError:
            return None
        finally:
            log.close()
        deadline = time.monotonic() + START_SECONDS
        while time.monotonic() < deadline:
            conn = _connect(path)
            if conn is not None:
                return conn
            if child.poll() is not None:
                return None
            time.sleep(0.05)
    return None


def _worker_connection(start: bool) -> socket.socket | None:
    where = _private_folder()
    if where is None:
        return None
    path = socket_path()
    if len(str(path)) > MAX_SOCKET_PATH:
        return None
    conn = _connect(path)
    if conn is None and start:
        conn = _start_and_connect(path)
    return conn


def run_remote(argv: Sequence[str]) -> int | None:
    """Run the command line ``argv`` in the worker; its exit status, or None to run it in this process instead.

    Prints what the command prints and publishes the file it saved. None when no worker can be reached or it
    stopped before answering (the caller then runs the command itself, so nothing asked for is lost).
    """
    try:
        conn = _worker_connection(start=True)
    except (OSError, ValueError):
        return None
    if conn is None:
        return None
    request = {"protocol": PROTOCOL, "command": "run", "argv": list(argv), "cwd": os.getcwd(),
               "env": {k: v for k, v in os.environ.items() if k.startswith("BAYES_SCALING_")}}
    try:
        with conn:
            _send(conn, request)
            reply = _receive(conn)
    except KeyboardInterrupt:
        print("\ninterrupted: stopped, nothing was saved", file=sys.stderr)
        return EXIT_INTERRUPTED
    except (OSError, ValueError) as exc:
        print(f"warning: the background worker stopped ({exc}); running the command in this process",
              file=sys.stderr)
        return None
    if reply.get("protocol") != PROTOCOL:
        return None
    if "fallback" in reply:
        print(f"warning: the background worker failed ({reply['fallback']}); running the command in this process",
              file=sys.stderr)
        return None
    return _deliver(reply)


def _deliver(reply: dict[str, Any]) -> int:
    """Publish the saved file of a worker's ``reply``, then print its output; the command's exit status."""
    saved = reply.get("saved")
    if saved is not None:
        from bayes_scaling.outputs import write_file

        data = base64.b64decode(saved["data"])
        try:
            write_file(saved["path"], lambda tmp: Path(tmp).write_bytes(data), overwrite=saved["force"])
        except OSError as exc:  # e.g. created by another process meanwhile: nothing replaced
            print(f"error: {exc}", file=sys.stderr)
            return 2
    sys.stdout.write(reply["stdout"])
    sys.stdout.flush()
    sys.stderr.write(reply["stderr"])
    return int(reply["code"])


def status() -> dict[str, Any] | None:
    """The running worker's state (pid, requests served, idle timeout, socket), or None if none runs."""
    conn = _worker_connection(start=False)
    if conn is None:
        return None
    with conn:
        _send(conn, {"protocol": PROTOCOL, "command": "status"})
        return _receive(conn)


def stop() -> bool:
    """End the running worker (it removes its socket); whether one was running."""
    conn = _worker_connection(start=False)
    if conn is None:
        return False
    with conn:
        _send(conn, {"protocol": PROTOCOL, "command": "stop"})
        with contextlib.suppress(OSError, ValueError):
            _receive(conn)
    return True


# ---------------------------------------------------------------------------------------------------- worker side


def _peer_is_owner(conn: socket.socket) -> bool:
    """Whether the caller runs as this user (where the system says; the folder's mode already restricts it)."""
    option = getattr(socket, "SO_PEERCRED", None)
    if option is None:
        return True
    _pid, uid, _gid = struct.unpack("3i", conn.getsockopt(socket.SOL_SOCKET, option, struct.calcsize("3i")))
    return uid == os.getuid()


@contextlib.contextmanager
def _call_context(cwd: str, env: dict[str, str]) -> Iterator[None]:
    """A request's working folder, ``BAYES_SCALING_*`` variables, fresh warnings filters and interval defaults."""
    import warnings

    from bayes_scaling import intervals

    here = os.getcwd()
    saved_env = {k: v for k, v in os.environ.items() if k.startswith("BAYES_SCALING_")}
    saved_rc = dict(intervals.rc)
    os.chdir(cwd)
    for key in saved_env:
        os.environ.pop(key)
    os.environ.update({k: v for k, v in env.items() if k.startswith("BAYES_SCALING_")})
    try:
        with warnings.catch_warnings():
            yield
    finally:
        os.chdir(here)
        for key in [k for k in os.environ if k.startswith("BAYES_SCALING_")]:
            os.environ.pop(key)
        os.environ.update(saved_env)
        intervals.rc.clear()
        intervals.rc.update(saved_rc)


def _run_command(request: dict[str, Any], scratch: Path, run: Runner) -> dict[str, Any]:
    """Run one command line with ``run`` (the CLI's ``main``); its output, exit status and saved file (bytes)."""
    import tempfile

    out, err = io.StringIO(), io.StringIO()
    saved: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(dir=scratch) as tmp:
        target = Path(tmp) / "result"
        with _call_context(request["cwd"], request.get("env", {})), contextlib.redirect_stdout(out), \
                contextlib.redirect_stderr(err):
            try:
                code = run(request["argv"], save_to=target, saved=saved)
            except SystemExit as exc:  # argparse: usage errors and --help
                code = exc.code if isinstance(exc.code, int) else 2
        text = out.getvalue()
        reply: dict[str, Any] = {"protocol": PROTOCOL, "code": code, "stdout": text, "stderr": err.getvalue(),
                                 "saved": None}
        if saved and target.exists():
            path = Path(saved["path"])
            reply["saved"] = {"path": str(path if path.is_absolute() else Path(request["cwd"]) / path),
                              "force": bool(saved["force"]),
                              "data": base64.b64encode(target.read_bytes()).decode()}
            reply["stdout"] = text.replace(str(target), str(saved["path"]))
            reply["stderr"] = reply["stderr"].replace(str(target), str(saved["path"]))
    return reply


def serve(path: str | Path, run: Runner, idle: float = IDLE_SECONDS) -> int:
    """Serve requests on the Unix socket ``path`` until ``idle`` seconds pass without one; the requests served.

    ``run(argv, save_to=, saved=)`` runs one command line (the CLI's ``main``, which starts this loop through
    ``bayes-scaling worker serve``). The socket's folder must be the user's private folder. The socket is removed
    on the way out (if it is still this worker's).
    """
    import signal
    import tempfile
    import threading

    path = Path(path)
    where = path.parent
    info = os.lstat(where)
    if info.st_uid != os.getuid() or info.st_mode & 0o077:
        raise PermissionError(f"{where} must be a folder only its owner can open (mode 0700)")
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(str(path))
    own = os.stat(path).st_ino
    listener.listen(8)
    listener.settimeout(idle)
    served = 0
    started = time.time()
    main_thread = threading.current_thread() is threading.main_thread()  # signals reach the main thread only
    previous = signal.signal(signal.SIGTERM, lambda *_: sys.exit(0)) if main_thread else None
    try:
        with tempfile.TemporaryDirectory(dir=where, prefix="scratch-") as scratch:
            while True:
                try:
                    conn, _ = listener.accept()
                except TimeoutError:
                    break
                with conn:
                    conn.settimeout(None)
                    if not _peer_is_owner(conn):
                        continue
                    try:
                        request = _receive(conn)
                    except (OSError, ValueError):
                        continue
                    if request.get("protocol") != PROTOCOL:
                        reply: dict[str, Any] = {"protocol": PROTOCOL, "code": 2, "stdout": "", "saved": None,
                                                 "stderr": "error: this worker speaks another protocol\n"}
                    elif request.get("command") == "status":
                        reply = {"protocol": PROTOCOL, "pid": os.getpid(), "served": served, "idle_seconds": idle,
                                 "started": started, "socket": str(path)}
                    elif request.get("command") == "stop":
                        with contextlib.suppress(OSError):
                            _send(conn, {"protocol": PROTOCOL, "stopped": True})
                        break
                    else:
                        try:
                            reply = _run_command(request, Path(scratch), run)
                        except Exception as exc:  # a failure of the worker, not a command's error: hand it back
                            reply = {"protocol": PROTOCOL, "fallback": f"{type(exc).__name__}: {exc}"}
                        served += 1
                    with contextlib.suppress(OSError):
                        _send(conn, reply)
    finally:
        if main_thread:
            signal.signal(signal.SIGTERM, previous)
        listener.close()
        with contextlib.suppress(OSError):
            if os.stat(path).st_ino == own:
                path.unlink()
    return served
