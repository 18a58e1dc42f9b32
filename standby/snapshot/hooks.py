"""Pre and post hooks around a set or redolog snapshot: an argv, a time limit, an environment.

The hook runs in its own session (`setsid`), so when it overruns `hook_timeout_s` the whole
process group it started is killed — a hook that forks `sleep` cannot keep us waiting. Its
output goes to temporary files, never to a pipe a grandchild could hold open. Environment:
`STANDBY_HOOK` (pre|post), `STANDBY_KIND` (set|redolog), `STANDBY_SET_ID`, `STANDBY_SERVER_ID`,
and for the post hook `STANDBY_STATUS` (complete|failed).
"""

from __future__ import annotations

import os
import signal
import subprocess
import tempfile
from collections.abc import Mapping, Sequence

from standby import _process
from standby.errors import CommandNotFound, ServiceError


class HookFailed(ServiceError):
    """A pre or post hook failed or overran its time limit."""


def hook_command(argv: Sequence[str], env: Mapping[str, str]) -> _process.Command:
    try:
        setsid = _process.which("setsid")
        return _process.Command((setsid, *argv), env=dict(env))
    except CommandNotFound:
        return _process.Command(tuple(argv), env=dict(env))


def run_hook(stage: str, argv: Sequence[str], *, timeout_s: float,
             env: Mapping[str, str]) -> str:
    """Run the hook; return its output; HookFailed on a non-zero exit or a timeout."""
    cmd = hook_command(argv, {**env, "STANDBY_HOOK": stage})
    shown = " ".join(argv)
    with tempfile.TemporaryFile() as out:
        try:
            proc = _process.spawn(cmd, stdin=subprocess.DEVNULL, stdout=out,
                                  stderr=subprocess.STDOUT)
        except (OSError, CommandNotFound) as e:
            raise HookFailed(f"{stage} hook `{shown}` could not be started: {e}",
                             hint=f"fix snapshot.{stage}_hook") from e
        try:
            rc = proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            _kill_group(proc)
            raise HookFailed(f"{stage} hook `{shown}` did not finish within {timeout_s:g} s "
                             "and was killed",
                             hint="raise snapshot.hook_timeout_s, or fix the hook") from None
        out.seek(0)
        text = out.read().decode("utf-8", "replace")
    if rc != 0:
        tail = "; ".join(text.strip().splitlines()[-3:]) or "no output"
        raise HookFailed(f"{stage} hook `{shown}` failed with exit code {rc}: {tail}",
                         hint=f"fix the hook or snapshot.{stage}_hook")
    return text


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    try:
        if os.getpgid(proc.pid) == proc.pid:  # it is its own group leader (setsid)
            os.killpg(proc.pid, signal.SIGKILL)
        else:
            proc.kill()
    except ProcessLookupError:
        pass
    proc.wait()
