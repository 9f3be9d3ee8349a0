"""Run one ``maa`` command as one rank of ``torchrun`` and record, for the distributed tests,
the files this rank wrote and its trained parameters (``$MAA_TEST_RECORD/rank<R>.pt``).

Not a test itself: ``tests/test_distributed.py`` starts it with ``torchrun -m``-style arguments.
"""

from __future__ import annotations

import contextlib
import os
import sys
from pathlib import Path

import torch

import maa.fsutil as fsutil  # patched before any other maa module binds atomic_path

RANK = int(os.environ.get("RANK", "0"))
RECORD = Path(os.environ["MAA_TEST_RECORD"])
writes: list[str] = []
_atomic = fsutil.atomic_path


@contextlib.contextmanager
def _recorded(target):
    writes.append(str(target))
    with _atomic(target) as tmp:
        yield tmp


fsutil.atomic_path = _recorded

import maa.trainer as trainer  # noqa: E402

_train = trainer.train


def _train_and_record(task, out, cfg, resume=False):
    used: dict[str, torch.nn.Module] = {}
    build = task.modules

    def modules():
        used.update(build())
        return used

    object.__setattr__(task, "modules", modules)
    summary = _train(task, out, cfg, resume)
    params = {f"{n}.{k}": v.detach().cpu().clone() for n, m in used.items()
              for k, v in m.state_dict().items()}  # fmt: skip
    torch.save({"params": params, "writes": writes}, RECORD / f"rank{RANK}.pt")
    return summary


trainer.train = _train_and_record

from maa.cli.app import main  # noqa: E402

sys.argv = ["maa", *sys.argv[1:]]
main()
