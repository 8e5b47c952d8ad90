"""Per-epoch checkpoints, so a training run that is cut off (a session ending, a killed job)
resumes at its last finished epoch instead of starting over.

One file per ensemble member, replaced atomically after every epoch: the model's weights,
the optimizer's state (its step counter drives the cosine schedule), the early-stopping
record (history, best score and weights) and the draw generator's state. A resumed run is
equivalent to an uninterrupted one, not bit-identical: TensorFlow's dropout seeds restart.
A checkpoint written under other settings, clips or member is refused, never half-used.

Not keras.callbacks.BackupAndRestore: it keeps weights, optimizer and epoch only (not the
early-stopping record, best weights or draw generator) and deletes its backup when fit
ends, so an ensemble member already trained, or a fold killed while its test views are
scored, would be trained again.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np


@dataclass
class MemberState:
    epoch: int  # epochs finished
    stopped: bool  # early stopping had fired: no epoch is left to run
    finished: bool  # training ended and `weights` are the kept (best) weights
    history: list[dict]
    best: float
    best_epoch: int
    rng: dict  # numpy bit generator state of the draws, masks and mixup
    weights: list[np.ndarray]
    optimizer: list[np.ndarray]
    best_weights: list[np.ndarray] | None


def fingerprint(config: dict, member: int, train: list[str], val: list[str]) -> str:
    """What a checkpoint must have been trained under to be resumed: settings, member and clips."""
    text = json.dumps({"config": config, "member": member, "train": train, "val": val}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()


class MemberCheckpoint:
    def __init__(self, path: Path, fingerprint: str) -> None:
        self.path, self.fingerprint = Path(path), fingerprint

    def save(self, state: MemberState) -> None:
        meta = {
            "fingerprint": self.fingerprint, "epoch": state.epoch, "stopped": state.stopped,
            "finished": state.finished, "history": state.history, "best": state.best,
            "best_epoch": state.best_epoch, "rng": state.rng,
            "sizes": [len(state.weights), len(state.optimizer), len(state.best_weights or [])],
        }  # fmt: skip
        arrays = {"meta": np.array(json.dumps(meta))}
        for prefix, values in (("w", state.weights), ("o", state.optimizer), ("b", state.best_weights or [])):
            arrays |= {f"{prefix}{i}": np.asarray(v) for i, v in enumerate(values)}
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(self.path.name + ".tmp")
        with open(tmp, "wb") as f:
            np.savez(f, **arrays)
        os.replace(tmp, self.path)  # a kill mid-write leaves the previous epoch's file intact

    def load(self) -> MemberState | None:
        if not self.path.exists():
            return None
        with np.load(self.path) as z:
            meta = json.loads(str(z["meta"]))
            if meta["fingerprint"] != self.fingerprint:
                raise ValueError(f"checkpoint {self.path} was written under other settings or clips; "
                                 "delete it to start this training over")  # fmt: skip
            nw, no, nb = meta["sizes"]
            return MemberState(
                epoch=meta["epoch"], stopped=meta["stopped"], finished=meta["finished"], history=meta["history"],
                best=meta["best"], best_epoch=meta["best_epoch"], rng=meta["rng"],
                weights=[z[f"w{i}"] for i in range(nw)], optimizer=[z[f"o{i}"] for i in range(no)],
                best_weights=[z[f"b{i}"] for i in range(nb)] if nb else None,
            )  # fmt: skip
