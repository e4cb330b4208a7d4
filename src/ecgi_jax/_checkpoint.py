"""Checkpoints of a training loop with orbax: save every few chunks, resume bit-identically.

A checkpoint holds everything the loop needs to continue exactly where it stopped: the training
state pytree (parameters, optimizer state, step counter, divergence flags), the loop's PRNG key
(typed keys are stored as their raw key data), and as JSON the number of chunks done, the
history and the early-stopping bookkeeping. Resuming with the same problem and settings replays
the remaining chunks with the same keys, so the result equals an uninterrupted run bit for bit.

Writes are synchronous and atomic: orbax writes each checkpoint to a temporary folder and renames
it when complete, so a process killed mid-write leaves the previous checkpoint intact.

A fingerprint (SHA-256 of the problem data, the initial state, the key and the loop settings) is
stored with every checkpoint; resuming from a folder written for anything else is refused rather
than silently continuing someone else's run.

The folder is checked before anything is trained (:func:`check_directory`): it must be new, empty
or hold only this library's checkpoints (orbax deletes old checkpoint steps, so a folder of the
user's own numbered subfolders is refused rather than touched). A checkpoint that cannot be read
back (damaged files) gives a ``ValueError`` naming the folder, never a raw orbax error.
"""

from __future__ import annotations

import hashlib
import json
import os
import re

import jax
import numpy as np

__all__ = ["TrainingCheckpoint", "check_directory", "fingerprint"]

# What orbax's CheckpointManager writes into its folder: one finished step folder per checkpoint
# ("<step>/" holding "_CHECKPOINT_METADATA" and one subfolder per item, here "meta" and "state"),
# and "<step>.orbax-checkpoint-tmp-<timestamp>/" while a step is written (left over by a process
# killed mid-write).
_STEP_DIR = re.compile(r"[0-9]+")
_TMP_DIR = re.compile(r"[0-9]+\.orbax-checkpoint-tmp(-[0-9]+)?")
_ITEMS = ("meta", "state")


def _is_checkpoint_entry(path: str) -> bool:
    name = os.path.basename(path)
    if not os.path.isdir(path) or os.path.islink(path):
        return False
    if _TMP_DIR.fullmatch(name):
        return True
    if not _STEP_DIR.fullmatch(name):
        return False
    return os.path.isfile(os.path.join(path, "_CHECKPOINT_METADATA")) or all(
        os.path.isdir(os.path.join(path, item)) for item in _ITEMS
    )


def check_directory(directory) -> str:
    """The absolute path of ``directory`` after checking that it can hold this library's checkpoints.

    It may be missing (it is created at the first save), empty, or hold only checkpoints written by
    :class:`TrainingCheckpoint`. Nothing is created or deleted here.

    Raises:
        ValueError: ``directory`` is an existing file, or a folder holding anything else.
    """
    path = os.path.abspath(os.fspath(directory))
    if not os.path.exists(path):
        if os.path.islink(path):
            raise ValueError(f"checkpoint_dir {path} is a broken symbolic link: pass an empty or new folder.")
        return path
    if not os.path.isdir(path):
        raise ValueError(
            f"checkpoint_dir {path} is an existing file, not a folder: pass an empty or new folder for the checkpoints."
        )
    try:
        names = sorted(os.listdir(path))
    except OSError as e:
        raise ValueError(f"checkpoint_dir {path} cannot be read ({e}): pass an empty or new folder.") from e
    other = [n for n in names if not _is_checkpoint_entry(os.path.join(path, n))]
    if other:
        shown = ", ".join(repr(n) for n in other[:5]) + (f" and {len(other) - 5} more" if len(other) > 5 else "")
        raise ValueError(
            f"checkpoint_dir {path} holds other files ({shown}) besides this library's training checkpoints; "
            "nothing was changed there. Pass an empty or new folder for the checkpoints."
        )
    return path


def fingerprint(*trees, extra=None) -> str:
    """SHA-256 of the structure, shapes, dtypes and values of ``trees`` (and of ``extra``, any
    JSON-serializable value)."""
    h = hashlib.sha256()
    for tree in trees:
        leaves, treedef = jax.tree.flatten(tree)
        h.update(str(treedef).encode())
        for leaf in leaves:
            a = np.asarray(_key_data(leaf))
            h.update(f"{a.shape}{a.dtype}".encode())
            h.update(np.ascontiguousarray(a).tobytes())
    if extra is not None:
        h.update(json.dumps(extra, sort_keys=True, default=str).encode())
    return h.hexdigest()


def _is_typed_key(x) -> bool:
    return hasattr(x, "dtype") and jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key)


def _key_data(x):
    return jax.random.key_data(x) if _is_typed_key(x) else x


class TrainingCheckpoint:
    """The checkpoints of one training run in ``directory`` (created if needed).

    Args:
        directory: folder for this run's checkpoints (one run per folder): new, empty or holding
            only checkpoints (:func:`check_directory`, ``ValueError`` otherwise).
        fingerprint: identifies the run (see :func:`fingerprint`); a folder holding checkpoints
            with another fingerprint is refused.
        max_to_keep: number of most recent checkpoints kept.
    """

    def __init__(self, directory, fingerprint: str, max_to_keep: int = 2):
        import orbax.checkpoint as ocp  # deferred: ~1.5 s to import, needed only with checkpoints

        self.directory = check_directory(directory)  # before orbax touches (or garbage-collects) the folder
        self._ocp = ocp
        self.fingerprint = fingerprint
        options = ocp.CheckpointManagerOptions(max_to_keep=max_to_keep, enable_async_checkpointing=False)
        self._manager = ocp.CheckpointManager(self.directory, options=options)

    def latest(self) -> int | None:
        """Number of chunks done at the latest complete checkpoint, ``None`` if there is none."""
        return self._manager.latest_step()

    def save(self, chunks_done: int, state, key, meta: dict) -> None:
        """Write the state, the loop key and ``meta`` (JSON) after ``chunks_done`` chunks."""
        ocp = self._ocp
        meta = {**meta, "fingerprint": self.fingerprint, "chunks_done": int(chunks_done)}
        args = ocp.args.Composite(
            state=ocp.args.StandardSave({"state": state, "key": _key_data(key)}),
            meta=ocp.args.JsonSave(meta),
        )
        self._manager.save(int(chunks_done), args=args, force=True)
        self._manager.wait_until_finished()

    def restore(self, state, key):
        """The latest checkpoint as ``(state, key, meta)``, or ``None`` when there is none.

        ``state`` and ``key`` are templates (the freshly initialized values): they give the
        structure, shapes, dtypes and shardings to restore into.

        Raises:
            ValueError: the checkpoint was written for another problem or other settings, or it
                cannot be read (damaged files).
        """
        try:
            step = self.latest()
            if step is None:
                return None
            ocp = self._ocp
            meta = self._manager.restore(step, args=ocp.args.Composite(meta=ocp.args.JsonRestore()))["meta"]
            if not isinstance(meta, dict):
                raise TypeError(f"the checkpoint's metadata is a {type(meta).__name__}, not a JSON object")
        except Exception as e:
            raise self._unreadable(e) from e
        if meta.get("fingerprint") != self.fingerprint:
            raise ValueError(
                f"the checkpoint in {self.directory} was written by a different training run (other data, model or loss "
                "settings, initial state, key, training settings or package version). Use a new checkpoint_dir, or delete this one to start over."
            )
        try:
            template = {"state": state, "key": _key_data(key)}
            abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, template)
            restored = self._manager.restore(step, args=ocp.args.Composite(state=ocp.args.StandardRestore(abstract)))["state"]
            new_key = restored["key"]
            if _is_typed_key(key):
                new_key = jax.random.wrap_key_data(new_key, impl=jax.random.key_impl(key))
            if not isinstance(meta.get("chunks_done"), int):
                raise KeyError("the checkpoint's metadata has no number of chunks done")
        except Exception as e:
            raise self._unreadable(e) from e
        return restored["state"], new_key, meta

    def _unreadable(self, error: Exception) -> ValueError:
        return ValueError(
            f"the checkpoint in {self.directory} is unreadable (damaged or incomplete files: "
            f"{type(error).__name__}: {error}). Delete that folder to start over, or choose another checkpoint_dir."
        )

    def close(self) -> None:
        self._manager.close()
