"""The library's tables (SQLAlchemy 2.0 typed ORM).

Identity model: a *file* (`Image`, one row per path) shows a *content* (`Content`, one row per
SHA-256 of the bytes). Everything a person or a model decided about the picture — review
decision, rating, analysis results, tags, generation metadata — belongs to the content, so a
file renamed or moved inside the watched folders keeps it, and a file that vanishes and comes
back finds it again. Changes to this module need an Alembic migration in db/migrations.
"""

from __future__ import annotations

import enum
from datetime import UTC, datetime

from sqlalchemy import (
    BigInteger,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from db.dialect import json_document, sortable_text

# Both databases hold the same schema (migrations in db/migrations run on each); the two
# types below differ by dialect: JSON is JSONB on PostgreSQL, and text the query layer sorts
# or compares by range is byte-ordered there (COLLATE "C", as SQLite compares).
JSON = json_document()
SortableText = sortable_text()


def utcnow() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


class Base(DeclarativeBase):
    pass


class ImageStatus(str, enum.Enum):
    OK = "ok"
    BROKEN = "broken"  # exists but could not be read as an image; `error` says why
    MISSING = "missing"  # was indexed, is gone now; reviews are kept for when it returns


class Decision(str, enum.Enum):
    NONE = "none"
    ACCEPTED = "accepted"
    REJECTED = "rejected"


class Folder(Base):
    """A watched folder (recursive)."""

    __tablename__ = "folders"

    id: Mapped[int] = mapped_column(primary_key=True)
    path: Mapped[str] = mapped_column(SortableText, unique=True)
    # Unanalysed images in a sensitive folder stay blurred until analysed.
    sensitive: Mapped[bool] = mapped_column(Boolean, default=False)
    added_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    last_scan_at: Mapped[datetime | None] = mapped_column(DateTime)


class Content(Base):
    """One distinct picture (by SHA-256 of the file bytes) and what was decided about it."""

    __tablename__ = "contents"

    id: Mapped[int] = mapped_column(primary_key=True)
    sha256: Mapped[str] = mapped_column(String(64), unique=True)
    width: Mapped[int | None] = mapped_column(Integer)
    height: Mapped[int | None] = mapped_column(Integer)
    format: Mapped[str | None] = mapped_column(String(16))
    # Review — the decision belongs to the content, not the path.
    decision: Mapped[str] = mapped_column(String(16), default=Decision.NONE.value)
    rating: Mapped[int] = mapped_column(Integer, default=0)
    decided_at: Mapped[datetime | None] = mapped_column(DateTime)
    # Derived from analysis results and the thresholds (db.flags); stored so the grid can
    # filter and blur without recomputing per row.
    flagged: Mapped[bool] = mapped_column(Boolean, default=False)
    flag_nsfw: Mapped[bool] = mapped_column(Boolean, default=False)
    flag_incoherent: Mapped[bool] = mapped_column(Boolean, default=False)
    analysed: Mapped[bool] = mapped_column(Boolean, default=False)  # an NSFW analyser's verdict
    # Families (library.families): the stack (hash of normalised prompt, negative prompt and
    # model; None without a prompt), the 64-bit perceptual hash (signed, as SQLite stores
    # it; None until computed) and the near-duplicate group at the default distance (the
    # smallest content id of the group; None when the picture has no near-duplicate).
    stack_key: Mapped[str | None] = mapped_column(String(16))
    phash: Mapped[int | None] = mapped_column(BigInteger)
    dup_group: Mapped[int | None] = mapped_column(Integer)

    images: Mapped[list[Image]] = relationship(back_populates="content")
    generation: Mapped[Generation | None] = relationship(back_populates="content", uselist=False)
    results: Mapped[list[AnalysisResult]] = relationship(back_populates="content")

    __table_args__ = (
        Index("ix_contents_decision", "decision"),
        Index("ix_contents_flagged", "flagged"),
        Index("ix_contents_rating", "rating"),
        Index("ix_contents_stack_key", "stack_key"),
        Index("ix_contents_dup_group", "dup_group"),
    )


class Image(Base):
    """One file on disk inside a watched folder."""

    __tablename__ = "images"

    id: Mapped[int] = mapped_column(primary_key=True)
    path: Mapped[str] = mapped_column(SortableText, unique=True)
    name: Mapped[str] = mapped_column(SortableText)  # file name, for sorting by name
    folder_id: Mapped[int | None] = mapped_column(ForeignKey("folders.id", ondelete="SET NULL"))
    content_id: Mapped[int | None] = mapped_column(ForeignKey("contents.id", ondelete="SET NULL"))
    size: Mapped[int] = mapped_column(BigInteger, default=0)
    mtime_ns: Mapped[int] = mapped_column(BigInteger, default=0)
    status: Mapped[str] = mapped_column(String(16), default=ImageStatus.OK.value)
    error: Mapped[str | None] = mapped_column(Text)
    first_seen: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    indexed_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    has_thumbnail: Mapped[bool] = mapped_column(Boolean, default=False)
    # sort:stack's key (None: in no stack). Written only by triggers (migration 0009), never
    # by code, so every writer keeps it right; read by db.queries.
    stack_rank: Mapped[str | None] = mapped_column(SortableText)

    content: Mapped[Content | None] = relationship(back_populates="images")

    __table_args__ = (
        Index("ix_images_folder_mtime", "folder_id", "mtime_ns", "id"),
        Index("ix_images_mtime", "mtime_ns", "id"),
        Index("ix_images_name", "name", "id"),
        Index("ix_images_content", "content_id"),
        Index("ix_images_status", "status"),
        Index("ix_images_stack_rank", "stack_rank", "id"),
    )


class Generation(Base):
    """Generation metadata embedded by the generator (normalised fields + every raw chunk)."""

    __tablename__ = "generation"

    content_id: Mapped[int] = mapped_column(
        ForeignKey("contents.id", ondelete="CASCADE"), primary_key=True)
    generator: Mapped[str | None] = mapped_column(String(32))
    generator_detail: Mapped[str | None] = mapped_column(Text)
    prompt: Mapped[str | None] = mapped_column(Text)
    negative_prompt: Mapped[str | None] = mapped_column(Text)
    # Text, not INTEGER: ComfyUI seeds reach 2**64-1, beyond SQLite's signed 64-bit integers.
    seed: Mapped[str | None] = mapped_column(String(24))
    steps: Mapped[int | None] = mapped_column(Integer)
    sampler: Mapped[str | None] = mapped_column(Text)
    scheduler: Mapped[str | None] = mapped_column(Text)
    cfg_scale: Mapped[float | None] = mapped_column(Float)
    width: Mapped[int | None] = mapped_column(Integer)
    height: Mapped[int | None] = mapped_column(Integer)
    model: Mapped[str | None] = mapped_column(Text)
    model_hash: Mapped[str | None] = mapped_column(String(80))
    raw: Mapped[dict] = mapped_column(JSON, default=dict)

    content: Mapped[Content] = relationship(back_populates="generation")
    loras: Mapped[list[LoraUse]] = relationship(cascade="all, delete-orphan")

    __table_args__ = (
        Index("ix_generation_generator", "generator"),
        Index("ix_generation_model", "model"),
        Index("ix_generation_sampler", "sampler"),
    )


class LoraUse(Base):
    __tablename__ = "loras"

    id: Mapped[int] = mapped_column(primary_key=True)
    content_id: Mapped[int] = mapped_column(
        ForeignKey("generation.content_id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(Text)
    weight: Mapped[float | None] = mapped_column(Float)

    __table_args__ = (Index("ix_loras_name", "name"), Index("ix_loras_content", "content_id"))


class AnalysisResult(Base):
    """The current result of one analyser for one content (replaced when re-analysed)."""

    __tablename__ = "analysis_results"

    content_id: Mapped[int] = mapped_column(
        ForeignKey("contents.id", ondelete="CASCADE"), primary_key=True)
    analyser: Mapped[str] = mapped_column(String(32), primary_key=True)
    version: Mapped[str] = mapped_column(String(80))  # weights checksum
    label: Mapped[str | None] = mapped_column(String(32))
    score: Mapped[float | None] = mapped_column(Float)
    scores: Mapped[dict] = mapped_column(JSON, default=dict)
    error: Mapped[str | None] = mapped_column(Text)
    analysed_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)

    content: Mapped[Content] = relationship(back_populates="results")

    __table_args__ = (
        # content_id last: filters and score sorts read content ids from the index alone.
        Index("ix_results_analyser_label", "analyser", "label", "content_id"),
        Index("ix_results_analyser_score", "analyser", "score", "content_id"),
    )


class StyleGram(Base):
    """The `style` analyser's Gram matrices of one content, packed (inference/style_gram.py:
    fp16 upper triangles of conv1_1..conv5_1, 597.5 KiB). Versioned like the analysis result
    written beside it: the report compares only Grams made with the current weights."""

    __tablename__ = "style_grams"

    content_id: Mapped[int] = mapped_column(
        ForeignKey("contents.id", ondelete="CASCADE"), primary_key=True)
    version: Mapped[str] = mapped_column(String(80))  # the style analyser's weights checksum
    data: Mapped[bytes] = mapped_column(LargeBinary)


class Tag(Base):
    __tablename__ = "tags"

    content_id: Mapped[int] = mapped_column(
        ForeignKey("contents.id", ondelete="CASCADE"), primary_key=True)
    analyser: Mapped[str] = mapped_column(String(32), primary_key=True)
    tag: Mapped[str] = mapped_column(SortableText, primary_key=True)
    score: Mapped[float] = mapped_column(Float)

    __table_args__ = (Index("ix_tags_tag", "tag", "content_id"),)


class ClipEmbedding(Base):
    """The `clip` analyser's image embedding of one content (db.embeddings reads and writes it).

    `vector` holds `dim` little-endian float16 values, L2-normalised (LargeBinary: a BLOB in
    SQLite, BYTEA in PostgreSQL). `version` is the CLIP weights checksum it was computed with;
    `stored_seq` increases with every write batch, so an in-memory index catches up with
    `WHERE stored_seq > last seen` instead of re-reading every vector."""

    __tablename__ = "clip_embeddings"

    content_id: Mapped[int] = mapped_column(
        ForeignKey("contents.id", ondelete="CASCADE"), primary_key=True)
    version: Mapped[str] = mapped_column(String(80))
    dim: Mapped[int] = mapped_column(Integer)
    vector: Mapped[bytes] = mapped_column(LargeBinary)
    stored_seq: Mapped[int] = mapped_column(BigInteger)

    __table_args__ = (Index("ix_clip_embeddings_seq", "stored_seq"),)


class ReviewLog(Base):
    """Append-only history of review changes (and file moves) for undo and audit.

    Undo never deletes a row: it appends the inverse change. `group_id` ties together the rows
    of one user action (a decision applied to a multi-selection undoes as one step); group ids
    are unique across authors (taken under the write lock, db.review._next_group).
    """

    __tablename__ = "review_log"

    id: Mapped[int] = mapped_column(primary_key=True)
    group_id: Mapped[int] = mapped_column(Integer, index=True)
    content_id: Mapped[int | None] = mapped_column(
        ForeignKey("contents.id", ondelete="SET NULL"), index=True)
    field: Mapped[str] = mapped_column(String(16))  # "decision", "rating", "path"
    old_value: Mapped[str | None] = mapped_column(Text)
    new_value: Mapped[str | None] = mapped_column(Text)
    source: Mapped[str] = mapped_column(String(16), default="app")  # "app", "cli", "undo", "redo"
    # For "undo"/"redo" groups: the group they revert or re-apply.
    reverts_group: Mapped[int | None] = mapped_column(Integer)
    at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    # Who made the change (db.review.reviewer_of: the OS user name unless `--user` or the
    # app's setting names someone). Undo and redo are per author. Rows logged before
    # migration 0008 carry the name of the account that upgraded the library.
    author: Mapped[str] = mapped_column(String(64))

    __table_args__ = (Index("ix_review_log_author_group", "author", "group_id"),)


class QueuedAnalysis(Base):
    """Pending analysis work, persisted so work pending at exit resumes at the next start."""

    __tablename__ = "analysis_queue"

    content_id: Mapped[int] = mapped_column(
        ForeignKey("contents.id", ondelete="CASCADE"), primary_key=True)
    priority: Mapped[int] = mapped_column(Integer, default=0)  # higher first (visible images)
    enqueued_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    # The runner analysing this row now (the app and a headless scan may share the database):
    # others skip it until `leased_until`, so a row is never analysed twice at once, and the
    # lease of a killed process simply expires.
    leased_by: Mapped[str | None] = mapped_column(String(64))
    leased_until: Mapped[datetime | None] = mapped_column(DateTime)

    __table_args__ = (Index("ix_queue_order", "priority", "enqueued_at"),)


class SavedFilter(Base):
    __tablename__ = "saved_filters"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(Text, unique=True)
    query: Mapped[str] = mapped_column(Text)  # the shared filter syntax (db.filters)


class LibraryChange(Base):
    """One change of what the grid shows: a content's review or flags (`image_id` NULL), or
    an image row that is new, moved, changed status or shows another picture.

    Written only by triggers (migration 0004), never by code, so a change made by another
    process or another program is logged exactly like one of ours; read by db.changes. The
    id only grows (AUTOINCREMENT; on PostgreSQL in commit order, see migration 0004): it is
    the token a reader keeps."""

    __tablename__ = "library_changes"

    id: Mapped[int] = mapped_column(Integer().with_variant(BigInteger(), "postgresql"),
                                    primary_key=True)
    content_id: Mapped[int | None] = mapped_column(Integer)
    image_id: Mapped[int | None] = mapped_column(Integer)

    __table_args__ = {"sqlite_autoincrement": True}
