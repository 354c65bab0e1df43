"""The other side of the action fault tests: a process that trashes (or moves) files and may be killed.

Run as ``python action_faults_helper.py act|undo CONFIG.json`` with XDG_DATA_HOME pointing at the run's own
home; prints one JSON line. For ``act`` the config can ask the process to kill itself with SIGKILL right
before or after its N-th file-system step (os.open, os.link, os.unlink, os.rename), so every step of the
action is a possible crash point; the parent can also kill it from outside after a delay.
"""

from __future__ import annotations

import json
import os
import signal
import sys


def _records(paths):
    from core.results import ImageRecord

    out = []
    for p in paths:
        st = os.stat(p)
        out.append(ImageRecord(p, st.st_size, st.st_mtime_ns, 8, 8, "PNG"))
    return out


def _arm(kill_at: int, when: str) -> None:
    """Kill this process (SIGKILL, nothing runs after it) at the ``kill_at``-th file-system step."""
    steps = {"n": 0}

    def wrap(real):
        def step(*a, **kw):
            steps["n"] += 1
            if steps["n"] == kill_at and when == "before":
                os.kill(os.getpid(), signal.SIGKILL)
            out = real(*a, **kw)
            if steps["n"] == kill_at and when == "after":
                os.kill(os.getpid(), signal.SIGKILL)
            return out

        return step

    for name in ("open", "link", "unlink", "rename"):
        setattr(os, name, wrap(getattr(os, name)))


def act(cfg: dict) -> dict:
    from core.actions import Journal, remove_files
    from core.errors import ActionError
    from core.results import Group, Member

    journal = None
    try:
        journal = Journal(cfg["journal"])
        earlier = None
        if cfg.get("earlier"):  # an older action the crash must not make undo pick
            recs = _records(cfg["earlier"])
            group = Group(tuple(Member(r, 1.0) for r in recs), True, 0)
            earlier = remove_files(recs[1:], groups=[group], journal=journal).action_id
        recs = _records([cfg["keep"], *cfg["targets"]])
        group = Group(tuple(Member(r, 1.0) for r in recs), True, 0)
        if cfg.get("kill_at"):
            _arm(cfg["kill_at"], cfg["when"])
        print(json.dumps({"earlier": earlier, "started": True}), flush=True)
        res = remove_files(
            recs[1:],
            groups=[group],
            journal=journal,
            mode=cfg.get("mode", "trash"),
            dest=cfg.get("dest"),
        )
    except ActionError as e:
        return {"refused": str(e), "last": journal.last_undoable() if journal else None}
    return {"action": res.action_id, "done": len(res.done), "problems": [p.reason for p in res.problems]}


def undo(cfg: dict) -> dict:
    from core.actions import Journal
    from core.actions import undo as undo_action

    journal = Journal(cfg["journal"])
    last = journal.last_undoable()
    actions = journal.actions()
    if last is None:
        return {"nothing": True, "actions": actions}
    res = undo_action(journal=journal)
    return {
        "last": last,
        "actions": actions,
        "done": len(res.done),
        "problems": [p.reason for p in res.problems],
        "after": journal.last_undoable(),
    }


if __name__ == "__main__":
    with open(sys.argv[2]) as fh:
        config = json.load(fh)
    print(json.dumps({"act": act, "undo": undo}[sys.argv[1]](config)), flush=True)
