"""The metadata store: executions, artifacts, events and contexts in SQLite (MLMD's model).

Tables:

* ``contexts``: a pipeline and each of its runs (``type`` ``pipeline`` / ``pipeline_run``).
* ``executions``: one per component per run: component, state (``RUNNING``, ``COMPLETE``,
  ``FAILED``, ``CACHED``), cache key, properties, code version, metrics, error, times.
* ``artifacts``: type, URI, properties (JSON), fingerprint.
* ``events``: ``INPUT``/``OUTPUT`` edges between executions and artifacts, with the name.
* ``associations``: which executions belong to which run context.

A cached execution is recorded too (state ``CACHED``, ``cached_from`` the original) with
events to the original's artifacts, so every run's lineage is complete.

A store on a bucket (``gs://.../metadata.sqlite``, the default for a pipeline root on a
bucket) is read into memory when opened and written back whole, as one atomic object write,
when an execution starts and ends and on close. One run at a time may write it: a write that
finds the object changed since this store read or last wrote it stops with a
:class:`PipelineError` instead of overwriting the other run's records.
"""

import hashlib
import json
import os
import sqlite3
import time
from typing import Any

from llm_tf import io_utils
from llm_tf.pipeline.artifacts import Artifact
from llm_tf.pipeline.errors import PipelineError

RUNNING, COMPLETE, FAILED, CACHED = "RUNNING", "COMPLETE", "FAILED", "CACHED"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS contexts (
  id INTEGER PRIMARY KEY, type TEXT NOT NULL, name TEXT NOT NULL, properties TEXT NOT NULL DEFAULT '{}',
  created REAL NOT NULL, UNIQUE (type, name));
CREATE TABLE IF NOT EXISTS executions (
  id INTEGER PRIMARY KEY, component TEXT NOT NULL, component_type TEXT NOT NULL, state TEXT NOT NULL,
  cache_key TEXT NOT NULL, properties TEXT NOT NULL, code_version TEXT NOT NULL, metrics TEXT NOT NULL DEFAULT '{}',
  error TEXT NOT NULL DEFAULT '', cached_from INTEGER, started REAL NOT NULL, finished REAL);
CREATE INDEX IF NOT EXISTS executions_key ON executions (component, cache_key, state);
CREATE TABLE IF NOT EXISTS artifacts (
  id INTEGER PRIMARY KEY, type TEXT NOT NULL, uri TEXT NOT NULL, properties TEXT NOT NULL,
  fingerprint TEXT NOT NULL, created REAL NOT NULL);
CREATE TABLE IF NOT EXISTS events (
  execution_id INTEGER NOT NULL REFERENCES executions (id), artifact_id INTEGER NOT NULL REFERENCES artifacts (id),
  type TEXT NOT NULL, name TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS events_artifact ON events (artifact_id, type);
CREATE INDEX IF NOT EXISTS events_execution ON events (execution_id, type);
CREATE TABLE IF NOT EXISTS associations (
  context_id INTEGER NOT NULL REFERENCES contexts (id), execution_id INTEGER NOT NULL REFERENCES executions (id));
"""


def _artifact(row: sqlite3.Row, name: str = "") -> Artifact:
    return Artifact(type=row["type"], uri=row["uri"], properties=json.loads(row["properties"]),
                    fingerprint=row["fingerprint"], id=row["id"], name=name)


class MetadataStore:
    """A SQLite metadata store (created on first use).

    Args:
        path: The database file; its directory is created. A ``scheme://`` path is held in
            memory and written back by :meth:`sync` (see the module docstring).

    Raises:
        PipelineError: The file cannot be opened as a database.
        DataError: A bucket store cannot be read (unreachable bucket, no permission).
    """

    def __init__(self, path: str):
        self.path = io_utils.abspath(path)
        self.remote = io_utils.is_remote(path)
        self._dirty = False
        self._synced: str | None = None  # SHA-256 of the bucket copy as last read or written
        try:
            if self.remote:
                self._db = sqlite3.connect(":memory:")
                if io_utils.exists(self.path):
                    data = io_utils.read_bytes(self.path)
                    self._db.deserialize(data)
                    self._synced = hashlib.sha256(data).hexdigest()
            else:
                os.makedirs(os.path.dirname(self.path), exist_ok=True)
                self._db = sqlite3.connect(self.path, timeout=30)
            self._db.row_factory = sqlite3.Row
            self._db.executescript(_SCHEMA)
            self._db.commit()
        except sqlite3.DatabaseError as e:
            raise PipelineError(f"{self.path}: cannot open the metadata store: {e}") from None

    def sync(self) -> None:
        """Writes a bucket store back (one atomic object write); nothing for a local file or no change.

        Raises:
            PipelineError: The bucket copy changed since this store read or wrote it (another run).
            DataError: The bucket cannot be written.
        """
        if not self.remote or not self._dirty:
            return
        current = hashlib.sha256(io_utils.read_bytes(self.path)).hexdigest() if io_utils.exists(self.path) else None
        self._dirty = False
        if current != self._synced:
            raise PipelineError(f"{self.path}: another run changed this metadata store while this one ran; run one "
                                "pipeline at a time per bucket pipeline root (or give each its own --metadata)")
        data = self._db.serialize()
        io_utils.atomic_write_bytes(self.path, data)
        self._synced = hashlib.sha256(data).hexdigest()

    def close(self) -> None:
        """Writes a bucket store back (:meth:`sync`) and closes the database."""
        try:
            self.sync()
        finally:
            self._db.close()

    def __enter__(self) -> "MetadataStore":
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def _write(self, sql: str, args: tuple = ()) -> int:
        cursor = self._db.execute(sql, args)
        self._db.commit()
        self._dirty = True
        return int(cursor.lastrowid or 0)

    # ---------------------------------------------------------------------- contexts
    def context(self, type_: str, name: str, properties: dict | None = None) -> int:
        """Returns the id of the context ``(type_, name)``, creating it with ``properties``."""
        row = self._db.execute("SELECT id FROM contexts WHERE type=? AND name=?", (type_, name)).fetchone()
        if row:
            return int(row["id"])
        return self._write("INSERT INTO contexts (type, name, properties, created) VALUES (?, ?, ?, ?)",
                           (type_, name, json.dumps(properties or {}, sort_keys=True), time.time()))

    def run_contexts(self, pipeline: str) -> list[dict[str, Any]]:
        """Runs of ``pipeline``, oldest first, as dicts (id, name, properties, created)."""
        rows = self._db.execute("SELECT * FROM contexts WHERE type='pipeline_run' AND name LIKE ? ORDER BY id",
                                (f"{pipeline}:%",)).fetchall()
        return [{"id": r["id"], "name": r["name"], "properties": json.loads(r["properties"]), "created": r["created"]}
                for r in rows]

    # -------------------------------------------------------------------- executions
    def start_execution(self, component: str, component_type: str, cache_key: str, properties: dict,
                        code_version: dict, context_ids: list[int], state: str = RUNNING,
                        cached_from: int | None = None) -> int:
        """Records a new execution and associates it with ``context_ids``; returns its id."""
        execution_id = self._write(
            "INSERT INTO executions (component, component_type, state, cache_key, properties, code_version, "
            "cached_from, started) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (component, component_type, state, cache_key, json.dumps(properties, sort_keys=True),
             json.dumps(code_version, sort_keys=True), cached_from, time.time()))
        for context_id in context_ids:
            self._write("INSERT INTO associations (context_id, execution_id) VALUES (?, ?)", (context_id, execution_id))
        self.sync()  # on a bucket: the id is taken even if this process is killed
        return execution_id

    def finish_execution(self, execution_id: int, state: str, metrics: dict | None = None, error: str = "") -> None:
        """Sets an execution's final state, metrics and error (and writes a bucket store back)."""
        self._write("UPDATE executions SET state=?, metrics=?, error=?, finished=? WHERE id=?",
                    (state, json.dumps(metrics or {}, sort_keys=True, default=str), error, time.time(), execution_id))
        self.sync()

    def execution(self, execution_id: int) -> dict[str, Any]:
        """An execution as a dict (JSON columns decoded).

        Raises:
            PipelineError: No such execution.
        """
        row = self._db.execute("SELECT * FROM executions WHERE id=?", (execution_id,)).fetchone()
        if row is None:
            raise PipelineError(f"{self.path}: no execution {execution_id}")
        result = dict(row)
        for key in ("properties", "code_version", "metrics"):
            result[key] = json.loads(result[key])
        return result

    def find_cached(self, component: str, cache_key: str) -> int | None:
        """The latest COMPLETE execution of ``component`` with ``cache_key`` whose outputs all exist."""
        rows = self._db.execute("SELECT id FROM executions WHERE component=? AND cache_key=? AND state=? "
                                "ORDER BY id DESC", (component, cache_key, COMPLETE)).fetchall()
        for row in rows:
            outputs = self.outputs(int(row["id"]))
            if all(io_utils.isdir(a.uri) for a in outputs.values()):
                return int(row["id"])
        return None

    def executions_of_context(self, context_id: int) -> list[dict[str, Any]]:
        """The executions associated with a context, in order."""
        rows = self._db.execute("SELECT e.id FROM executions e JOIN associations a ON a.execution_id=e.id "
                                "WHERE a.context_id=? ORDER BY e.id", (context_id,)).fetchall()
        return [self.execution(int(r["id"])) for r in rows]

    # --------------------------------------------------------------------- artifacts
    def add_artifact(self, artifact: Artifact) -> int:
        """Records ``artifact`` (sets and returns its id)."""
        artifact.id = self._write(
            "INSERT INTO artifacts (type, uri, properties, fingerprint, created) VALUES (?, ?, ?, ?, ?)",
            (artifact.type, artifact.uri, json.dumps(artifact.properties, sort_keys=True, default=str),
             artifact.fingerprint, time.time()))
        return artifact.id

    def artifact(self, artifact_id: int) -> Artifact:
        """The artifact with id ``artifact_id``.

        Raises:
            PipelineError: No such artifact.
        """
        row = self._db.execute("SELECT * FROM artifacts WHERE id=?", (artifact_id,)).fetchone()
        if row is None:
            raise PipelineError(f"{self.path}: no artifact {artifact_id}")
        return _artifact(row)

    def artifacts_of_type(self, type_: str) -> list[Artifact]:
        """All artifacts of a type, oldest first."""
        rows = self._db.execute("SELECT * FROM artifacts WHERE type=? ORDER BY id", (type_,)).fetchall()
        return [_artifact(r) for r in rows]

    # ------------------------------------------------------------------------ events
    def add_event(self, execution_id: int, artifact_id: int, type_: str, name: str) -> None:
        """Links an execution and an artifact (``type_`` ``INPUT`` or ``OUTPUT``)."""
        self._write("INSERT INTO events (execution_id, artifact_id, type, name) VALUES (?, ?, ?, ?)",
                    (execution_id, artifact_id, type_, name))

    def _linked(self, execution_id: int, type_: str) -> dict[str, Artifact]:
        rows = self._db.execute("SELECT a.*, ev.name AS event_name FROM events ev "
                                "JOIN artifacts a ON a.id=ev.artifact_id "
                                "WHERE ev.execution_id=? AND ev.type=? ORDER BY a.id",
                                (execution_id, type_)).fetchall()
        return {r["event_name"]: _artifact(r, r["event_name"]) for r in rows}

    def inputs(self, execution_id: int) -> dict[str, Artifact]:
        """Input name -> artifact of an execution."""
        return self._linked(execution_id, "INPUT")

    def outputs(self, execution_id: int) -> dict[str, Artifact]:
        """Output name -> artifact of an execution."""
        return self._linked(execution_id, "OUTPUT")

    def producer(self, artifact_id: int) -> int | None:
        """The execution that first output ``artifact_id`` (not a later CACHED reuse)."""
        row = self._db.execute("SELECT execution_id FROM events WHERE artifact_id=? AND type='OUTPUT' "
                               "ORDER BY execution_id LIMIT 1", (artifact_id,)).fetchone()
        return int(row["execution_id"]) if row else None
