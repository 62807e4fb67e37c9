"""The model registry: the versions ``deepcredit train`` wrote, which one is current, and why.

    <root>/<version>/          a model folder (card.json, scorer.npz, model.pt)
    <root>/CURRENT             {"version", "promoted_at", "by", "reason"}: the model to serve
    <root>/promotions.jsonl    the audit log: one decision per line (promote, rollback, ...)

Numpy and msgspec only (no torch), so a serving host can resolve ``--model current``.

CURRENT is a small JSON file, not a symlink. Both can be swapped atomically with
``os.replace``, but the file also carries who promoted the model, when and why; it survives
copies, archives and object stores that drop or follow symlinks; and a reader gets the version
with one ``read``, whereas resolving a symlink and then opening the folder can race a swap.

A promotion or rollback, under an exclusive lock on ``<root>/.lock`` (writers only):

1. check the target: a folder under root whose scorer weights load and carry its name;
2. append the decision to promotions.jsonl, flushed and fsync'ed (a durable log:
   ``deepcredit.jsonlines.append_durable``);
3. write the new CURRENT to a temporary file beside it, fsync it, ``os.replace`` it over
   CURRENT and fsync the folder (``deepcredit.atomic.write_atomic``).

If the process dies at each step:

| dies in | CURRENT           | promotions.jsonl                    | next promote/rollback |
|---------|-------------------|-------------------------------------|-----------------------|
| 1.      | unchanged         | unchanged                           | as usual              |
| 2.      | unchanged         | maybe a torn last line (no newline) | drops the torn line   |
| 3.      | unchanged, or new | the decision                        | as usual              |

Readers never see half a CURRENT: it is the old file or the new one. After a death in 3. before
the rename the log holds a decision that did not take effect; ``current()`` is the truth for what
serves, and promoting the same version again completes it (a repeat of the current version does
not stack up in rollback's history).
"""

from __future__ import annotations

import fcntl
import json
import logging
import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import msgspec

from deepcredit.atomic import write_atomic
from deepcredit.jsonlines import append_durable, read_log
from deepcredit.whatif import ModelImpact
from scorer.artifact import SCORER_FILE, ArtifactError, load_scorer
from scorer.card import CARD_FILE, CardError, TargetMetrics, read_card

__all__ = [
    "CURRENT_FILE",
    "LOG_FILE",
    "PROMOTE",
    "REJECT",
    "ROLLBACK",
    "ModelEntry",
    "ModelRegistry",
    "Promotion",
    "RegistryError",
]

log = logging.getLogger(__name__)

CURRENT_FILE = "CURRENT"
LOG_FILE = "promotions.jsonl"
_LOCK_FILE = ".lock"

#: Actions that move the CURRENT pointer. Other actions in the log (the retraining controller's
#: "reject", say) are decisions kept for the audit and do not change what serves.
PROMOTE = "promote"
ROLLBACK = "rollback"
#: The retraining gate's verdict against a challenger: promoting it by hand needs an override.
REJECT = "reject"

_VERSION_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")


class RegistryError(ValueError):
    """The registry cannot do what was asked; the message says why and what to do."""


class ModelEntry(msgspec.Struct, frozen=True, kw_only=True):
    """One model version as the registry lists it (from its card.json)."""

    version: str
    created_at: float  # Unix seconds
    parent_version: str | None
    data_path: str
    data_sha256: str
    data_users: int
    hidden_size: int | None
    test: dict[str, TargetMetrics]  # target ("delinquent", "default") -> metrics
    validation: dict[str, TargetMetrics]
    current: bool = False

    def test_auc(self, target: str) -> float | None:
        m = self.test.get(target)
        return None if m is None else m.auc


class Promotion(msgspec.Struct, frozen=True, kw_only=True):
    """One decision of the audit log (a line of promotions.jsonl)."""

    at: float  # Unix seconds
    action: str  # PROMOTE, ROLLBACK, or another decision that does not move CURRENT
    version: str
    previous: str | None  # the version current before this decision
    by: str
    reason: str
    metrics: dict[str, Any] | None = None
    #: A promotion of a model the retraining gate rejected, made by hand with a reason.
    override: bool = False
    #: Both models' decisions on the same recent posts at the live thresholds, when known.
    impact: ModelImpact | None = None


class _Pointer(msgspec.Struct, frozen=True):
    version: str
    promoted_at: float
    by: str
    reason: str


class ModelRegistry:
    """The model folders under ``root`` (default of ``deepcredit train``: artifacts/models)."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    # -- reading ---------------------------------------------------------------------------------

    def versions(self) -> list[ModelEntry]:
        """Every model folder with a readable card.json, oldest first.

        Folders being written (``.<version>.partial``) and other files are not versions; a card
        that does not decode is skipped with a warning, so one bad folder hides no other.
        """
        current = self._current_version()
        entries = []
        for path in self._folders():
            try:
                entries.append(self._entry(path, current))
            except RegistryError as exc:
                log.warning("skipping %s: %s", path, exc)
        return sorted(entries, key=lambda e: (e.created_at, e.version))

    def entry(self, version: str) -> ModelEntry:
        """The version's entry; RegistryError if there is no such model folder."""
        return self._entry(self._folder(version), self._current_version())

    def current(self) -> ModelEntry | None:
        """The promoted model, or None if no model was ever promoted."""
        pointer = self._pointer()
        if pointer is None:
            return None
        folder = self.root / pointer.version
        if not (folder / CARD_FILE).is_file():
            raise RegistryError(
                f"{self.root / CURRENT_FILE} names {pointer.version}, but {folder} is not a "
                "model folder any more: promote another version"
            )
        return self._entry(folder, pointer.version)

    def current_path(self) -> Path:
        """The folder of the promoted model (what ``deepcredit serve --model current`` loads)."""
        entry = self.current()
        if entry is None:
            raise RegistryError(
                f"no model was ever promoted in {self.root}: run 'deepcredit models promote "
                "VERSION --by NAME --reason TEXT' first"
            )
        return self.root / entry.version

    def history(self) -> list[Promotion]:
        """Every decision of the audit log, oldest first."""
        path = self.root / LOG_FILE
        decisions = []
        for number, line in read_log(path):  # a torn last line never took effect
            try:
                decisions.append(msgspec.json.decode(line, type=Promotion))
            except msgspec.DecodeError as exc:
                raise RegistryError(f"{path} line {number} is not a decision: {exc}") from None
        return decisions

    def lineage(self, version: str) -> list[ModelEntry]:
        """The version, its parent, the parent's parent, ...: until a parent without a folder
        here, or a version seen before (a cycle in hand-edited cards)."""
        current = self._current_version()
        chain = [self._entry(self._folder(version), current)]
        seen = {version}
        while (parent := chain[-1].parent_version) is not None and parent not in seen:
            if not (self.root / parent / CARD_FILE).is_file():
                break
            seen.add(parent)
            chain.append(self._entry(self.root / parent, current))
        return chain

    # -- deciding --------------------------------------------------------------------------------

    def promote(
        self,
        version: str,
        *,
        by: str,
        reason: str,
        metrics: dict[str, Any] | None = None,
        override: bool = False,
        impact: ModelImpact | None = None,
    ) -> Promotion:
        """Make ``version`` the current model, after checking its scorer weights load.

        A version the retraining gate rejected (``gate_rejection``) is refused unless
        ``override`` (logged with the reason); RegistryError says so."""
        _require_who_and_why(by, reason)
        with self._locked():
            self._check_servable(version)  # 1.
            self._check_gate(version, override)
            previous = self._current_version()
            decision = Promotion(at=time.time(), action=PROMOTE, version=version,
                                 previous=previous, by=by, reason=reason,
                                 metrics=metrics, override=override,
                                 impact=impact)  # fmt: skip
            self._append(decision)  # 2.
            self._point_to(decision)  # 3.
        return decision

    def check(self, version: str, *, override: bool = False) -> None:
        """What ``promote`` checks before it writes, without writing: the folder's scorer
        weights load and carry its name, and the gate did not reject it (unless
        ``override``). RegistryError says what is wrong."""
        self._check_servable(version)
        self._check_gate(version, override)

    def gate_rejection(self, version: str) -> Promotion | None:
        """The retraining gate's latest verdict on ``version`` when it was a rejection not
        followed by a promotion of it; None otherwise (never judged, or promoted since)."""
        verdict = None
        for d in self.history():
            if d.version == version and d.action in (REJECT, PROMOTE):
                verdict = d
        return verdict if verdict is not None and verdict.action == REJECT else None

    def _check_gate(self, version: str, override: bool) -> None:
        rejected = self.gate_rejection(version)
        if rejected is not None and not override:
            when = time.strftime("%Y-%m-%d %H:%M", time.gmtime(rejected.at))
            raise RegistryError(f"the retraining gate rejected {version} ({when} UTC, by "
                                f"{rejected.by}: {rejected.reason}); promote it anyway only "
                                "with --override and a --reason that says why")  # fmt: skip

    def rollback_target(self) -> str:
        """The version ``rollback`` would make current: the one current before the current
        one. RegistryError when there is none (see ``rollback``)."""
        current = self._current_version()
        if current is None:
            raise RegistryError(f"nothing to roll back in {self.root}: no model is current")
        stack = _pointer_stack(self.history())
        if not stack or stack[-1] != current:
            raise RegistryError(
                f"{self.root / CURRENT_FILE} names {current} but {LOG_FILE} ends with "
                f"{stack[-1] if stack else 'no promotion'}: promote the intended version "
                "explicitly"
            )
        if len(stack) < 2:
            raise RegistryError(
                f"nothing to roll back to: {current} is the first promoted model in {self.root}"
            )
        return stack[-2]

    def rollback(
        self, *, by: str, reason: str, impact: ModelImpact | None = None, expect: str | None = None
    ) -> Promotion:
        """Make current again the version that was current before the current one.

        The log is read as a stack: a promotion pushes its version, a rollback pops one, so
        repeated rollbacks walk further back (A, B, C promoted: rollback gives B, then A).
        ``expect``: the version the caller prepared for (``rollback_target`` earlier);
        RegistryError when another decision changed the target meanwhile.
        """
        _require_who_and_why(by, reason)
        with self._locked():
            current = self._current_version()
            target = self.rollback_target()
            if expect is not None and target != expect:
                raise RegistryError(f"the rollback now goes to {target}, not {expect}: another "
                                    "decision was made meanwhile; start again")  # fmt: skip
            self._check_servable(target)  # 1.
            decision = Promotion(at=time.time(), action=ROLLBACK, version=target,
                                 previous=current, by=by, reason=reason,
                                 impact=impact)  # fmt: skip
            self._append(decision)  # 2.
            self._point_to(decision)  # 3.
        return decision

    def record(
        self,
        action: str,
        version: str,
        *,
        by: str,
        reason: str,
        metrics: dict[str, Any] | None = None,
    ) -> Promotion:
        """Log a decision that does not move CURRENT (the retraining controller's "reject" of a
        challenger, say), in the same file and format as promotions."""
        if action in (PROMOTE, ROLLBACK):
            raise RegistryError(f"use promote() or rollback() for {action!r}")
        if not action:
            raise RegistryError("a decision needs an action")
        _require_who_and_why(by, reason)
        with self._locked():
            decision = Promotion(at=time.time(), action=action, version=version,
                                 previous=self._current_version(), by=by, reason=reason,
                                 metrics=metrics)  # fmt: skip
            self._append(decision)
        return decision

    # -- internals -------------------------------------------------------------------------------

    def _folders(self) -> Iterator[Path]:
        if not self.root.is_dir():
            return
        for path in self.root.iterdir():
            if path.name.startswith(".") or path.name.endswith(".partial"):
                continue
            if path.is_dir() and (path / CARD_FILE).is_file():
                yield path

    def _folder(self, version: str) -> Path:
        folder = self.root / version
        if not _VERSION_NAME.fullmatch(version) or not (folder / CARD_FILE).is_file():
            known = [p.name for p in self._folders()]
            hint = f"known: {', '.join(sorted(known))}" if known else "it holds no models"
            raise RegistryError(f"no model {version!r} in {self.root} ({hint})")
        return folder

    def _entry(self, folder: Path, current: str | None) -> ModelEntry:
        try:
            card = read_card(folder)
        except CardError as exc:
            raise RegistryError(str(exc)) from None
        hidden = card.model_config.get("hidden_size")
        return ModelEntry(
            version=folder.name,
            created_at=card.created_at,
            parent_version=card.parent_version,
            data_path=card.data.path,
            data_sha256=card.data.sha256,
            data_users=card.data.users,
            hidden_size=hidden if isinstance(hidden, int) else None,
            test=card.metrics.get("test", {}),
            validation=card.metrics.get("validation", {}),
            current=folder.name == current,
        )

    def _check_servable(self, version: str) -> None:
        folder = self._folder(version)
        try:
            weights = load_scorer(folder)
        except ArtifactError as exc:
            raise RegistryError(str(exc)) from None
        except Exception as exc:  # a damaged file fails in numpy or zipfile: refuse it the same
            raise RegistryError(f"{folder / SCORER_FILE} does not load: {exc!r}") from None
        if weights.version != version:
            raise RegistryError(
                f"{folder / SCORER_FILE} holds model {weights.version}, not {version}: a copied "
                "or renamed folder cannot be promoted"
            )

    def _pointer(self) -> _Pointer | None:
        path = self.root / CURRENT_FILE
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            return None
        try:
            return msgspec.json.decode(data, type=_Pointer)
        except msgspec.DecodeError as exc:
            raise RegistryError(f"{path} is not a current-model pointer: {exc}") from None

    def _current_version(self) -> str | None:
        pointer = self._pointer()
        return None if pointer is None else pointer.version

    @contextmanager
    def _locked(self) -> Iterator[None]:
        if not self.root.is_dir():
            raise RegistryError(f"no such models folder: {self.root}")
        with open(self.root / _LOCK_FILE, "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def _append(self, decision: Promotion) -> None:
        append_durable(self.root / LOG_FILE, msgspec.json.encode(decision))

    def _point_to(self, decision: Promotion) -> None:
        pointer = _Pointer(version=decision.version, promoted_at=decision.at, by=decision.by,
                           reason=decision.reason)  # fmt: skip
        payload = json.dumps(msgspec.to_builtins(pointer), indent=2).encode() + b"\n"
        write_atomic(self.root / CURRENT_FILE, payload, durable=True)


def _pointer_stack(history: list[Promotion]) -> list[str]:
    """The versions current one after another, as promotions push and rollbacks pop them."""
    stack: list[str] = []
    for d in history:
        if d.action == PROMOTE and (not stack or stack[-1] != d.version):
            stack.append(d.version)
        elif d.action == ROLLBACK:
            if stack:
                stack.pop()
            if not stack or stack[-1] != d.version:  # a log that began mid-history
                stack.append(d.version)
    return stack


def _require_who_and_why(by: str, reason: str) -> None:
    if not by.strip():
        raise RegistryError("say who decides (by)")
    if not reason.strip():
        raise RegistryError("say why (reason)")
