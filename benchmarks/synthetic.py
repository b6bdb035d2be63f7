"""A realistic synthetic library written straight into a database, for benchmarks.

`build_library(db_path, n_images=100_000, seed=0)` creates (or replaces) a library database
at `db_path` through the normal migrations, then bulk-loads folders, contents with review
decisions and flags, images (a few duplicates, broken and missing files), generation
metadata with varied prompts/models/generators/samplers, LoRAs, results for every analyser
and about five tags per analysed image from a Zipf-distributed vocabulary of 2,000 tags, plus
ten weaker ones below the default tag threshold (the tagger stores tags down to
inference.catalog.TAG_STORE_FLOOR; the threshold applies when reading).

Speed comes from raw `executemany` in one transaction with the secondary indexes and the
prompt full-text triggers dropped during the load and rebuilt once at the end (building an
index over sorted data is much cheaper than maintaining it row by row; the sort:stack rank
the triggers would have kept is filled in one statement, db.stack_rank). The result is
byte-for-byte an ordinary library: same schema, same indexes, same triggers, same Alembic
revision. Deterministic for a given seed.

PostgreSQL (`db_path` a postgresql+psycopg:// URL naming an existing database): the same
rows, loaded with COPY through the driver's connection (psycopg's `cursor.copy`; nothing
here imports the driver), with the secondary indexes dropped and rebuilt and the
triggers off during the load (the sort:stack rank filled once), then the id sequences moved
past the loaded ids and VACUUM ANALYZE (the state autovacuum keeps a long-lived library in).

Run standalone: `python -m benchmarks.synthetic /tmp/lib.db|URL [n_images]`.
"""

from __future__ import annotations

import json
import random
import sqlite3
import sys
import time
from collections.abc import Callable, Iterable
from datetime import datetime, timedelta
from pathlib import Path

from db.stack_rank import fill_statement
from inference.catalog import CATALOG, STYLE_ANALYSERS, TAG_ANALYSERS, TAG_STORE_FLOOR
from library.families import stack_key, to_signed64

GENERATORS = (("comfyui", 40), ("a1111", 30), ("invokeai", 10), ("fooocus", 8),
              ("drawthings", 6), ("novelai", 4), (None, 2))
SAMPLERS = ("euler", "euler_ancestral", "dpmpp_2m", "dpmpp_2m_sde", "dpmpp_sde", "ddim",
            "uni_pc", "lcm", "heun", "DPM++ 2M Karras", "Euler a", "DPM++ SDE Karras")
MODEL_FAMILIES = ("sd_xl_base_1.0", "juggernautXL", "ponyDiffusionV6XL", "dreamshaper_8",
                  "realisticVisionV60B1", "animagineXL", "sd_v1-5-pruned-emaonly",
                  "flux1-dev-fp8", "epicrealism", "counterfeitV30", "deliberate_v3",
                  "RealVisXL_V4.0", "zavychromaxl", "albedobaseXL", "illustriousXL")
SUBJECTS = ("a woman", "a man", "an old sailor", "a cat", "a dog", "a dragon", "a robot",
            "a castle", "a forest", "a city street", "a spaceship", "a knight", "a witch",
            "a girl", "a boy", "a fox", "an owl", "a mountain lake", "a lighthouse", "a samurai",
            "a cyberpunk hacker", "a mermaid", "a wizard", "a vintage car", "a bowl of fruit")
ADJECTIVES = ("red", "blue", "golden", "silver", "dark", "bright", "misty", "ancient",
              "futuristic", "cozy", "gloomy", "vibrant", "pastel", "neon", "rustic", "ornate",
              "minimalist", "ethereal", "gritty", "serene", "stormy", "sunlit", "frozen")
NOUNS = ("hair", "eyes", "dress", "armor", "sky", "background", "lighting", "clouds",
         "flowers", "rain", "snow", "fire", "water", "reflections", "shadows", "garden",
         "ruins", "jewelry", "cloak", "hat", "sunset", "moon", "stars", "fog", "smoke")
STYLE = ("masterpiece", "best quality", "highly detailed", "8k", "photorealistic",
         "cinematic lighting", "oil painting", "watercolor", "concept art", "anime style",
         "digital art", "studio photo", "35mm film", "bokeh", "volumetric light",
         "sharp focus", "trending on artstation", "octane render", "unreal engine",
         "by greg rutkowski", "by alphonse mucha", "(intricate:1.2)", "(wide shot:1.1)")
NEGATIVES = ("lowres, bad anatomy, bad hands, text, error, missing fingers, worst quality",
             "blurry, jpeg artifacts, watermark, signature", "nsfw, deformed, ugly",
             "(worst quality:1.4), (low quality:1.4), monochrome", "", "extra limbs, mutated")
LORA_NAMES = tuple(f"{stem}_v{v}" for stem in (
    "detail_tweaker", "add_more_details", "film_grain", "pixel_art", "ghibli_style",
    "lcm_lora", "hyper_sdxl", "epi_noiseoffset", "more_art", "add_brightness",
    "cyberpunk_style", "watercolor_style", "hands_fix", "eyes_fix", "lowra", "clay_style",
    "paper_cut", "vector_art", "retro_anime", "neon_glow") for v in range(1, 6))
# Relative frequency of each label in the synthetic library (a plausible day of generations).
_LABEL_WEIGHT = {"sfw": 85, "normal": 87, "nsfw": 13, "coherent": 85, "semi-incoherent": 9,
                 "incoherent": 6}
ANALYSER_LABELS = {  # analyser -> (labels with weights, or None for score-only analysers)
    info.key: tuple((label, _LABEL_WEIGHT[label]) for label in info.labels) or None
    for info in CATALOG}
TAG_VOCABULARY_SIZE = 2_000
TAGS_PER_IMAGE = 5
# Stored with probabilities in [TAG_STORE_FLOOR, DEFAULT_TAG_THRESHOLD): counted only when
# the person lowers the threshold.
WEAK_TAGS_PER_IMAGE = 10
DEFAULT_TAG_THRESHOLD = 0.2
DUPLICATE_SHARE = 0.02  # files that show a picture another file already shows
# Families (library.families): generators write batches of seeds of one prompt (a stack), and
# some pictures are saved again re-encoded or resized (a near-duplicate: a perceptual hash a
# few bits from the original's).
BATCH_SHARE = 0.7  # a picture continuing the previous one's prompt, negative prompt, model
NEAR_COPY_SHARE = 0.05
ANALYSED_SHARE = 0.9
TIMESTAMP = "2026-01-01 00:00:00.000000"


def tag_vocabulary(size: int = TAG_VOCABULARY_SIZE) -> list[str]:
    """Booru-style tags: real-looking words first (the popular ones), then combinations."""
    words = sorted({f"{a}_{n}" for a in ADJECTIVES for n in NOUNS})
    base = ["1girl", "solo", "outdoors", "indoors", "smile", "looking_at_viewer", "simple_background",
            "upper_body", "full_body", "long_hair", "short_hair", "blush", "animal", "no_humans",
            "scenery", "sky", "tree", "water", "building", "night", "day", "portrait"]
    vocabulary = base + [w for w in words if w not in base]
    index = 0
    while len(vocabulary) < size:
        vocabulary.append(f"tag_{NOUNS[index % len(NOUNS)]}_{index:04d}")
        index += 1
    return vocabulary[:size]


def _weighted(pairs: tuple) -> tuple[list, list[float]]:
    values, weights = zip(*pairs)
    total, cum = 0.0, []
    for w in weights:
        total += w
        cum.append(total)
    return list(values), cum


def _prompt(rng: random.Random) -> str:
    parts = [f"{rng.choice(SUBJECTS)} with {rng.choice(ADJECTIVES)} {rng.choice(NOUNS)}"]
    parts += [f"{rng.choice(ADJECTIVES)} {rng.choice(NOUNS)}" for _ in range(rng.randint(1, 4))]
    parts += rng.sample(STYLE, rng.randint(2, 6))
    return ", ".join(parts)


def _file_name(rng: random.Random, generator: str | None, number: int) -> str:
    if generator == "comfyui":
        return f"ComfyUI_{number:05d}_.png"
    if generator == "a1111":
        return f"{number:05d}-{rng.getrandbits(32)}.png"
    if generator == "invokeai":
        return f"{rng.getrandbits(64):016x}.png"
    if generator == "fooocus":
        return f"2026-01-{1 + number % 28:02d}_{number % 86400:05d}_{number}.png"
    if generator == "novelai":
        return f"image ({number}).webp"
    return f"IMG_{number:06d}.{rng.choice(('png', 'jpg', 'webp'))}"


def _prepare_schema(db_path: Path) -> None:
    """Create an empty library at head revision through the normal open path."""
    from db.engine import open_library

    for suffix in ("", "-wal", "-shm"):
        Path(f"{db_path}{suffix}").unlink(missing_ok=True)
    open_library(db_path).dispose()


# (table, columns, rows): how the row generator hands each table to a backend's loader.
Writer = Callable[[str, tuple[str, ...], Iterable[tuple]], None]


def build_library(db_path: Path | str, n_images: int = 100_000, seed: int = 0) -> None:
    """Create a synthetic library of `n_images` files at `db_path` (an existing file there is
    replaced; a PostgreSQL URL: that database's library rows are replaced). Deterministic for
    a given seed."""
    if isinstance(db_path, str) and "://" in db_path:
        _build_postgresql(db_path, n_images, seed)
        return
    db_path = Path(db_path)
    _prepare_schema(db_path)
    rng = random.Random(seed)
    connection = sqlite3.connect(db_path, isolation_level=None)
    try:
        connection.execute("PRAGMA journal_mode=OFF")  # a failed build is simply rebuilt
        connection.execute("PRAGMA synchronous=OFF")
        connection.execute("PRAGMA foreign_keys=OFF")
        connection.execute("PRAGMA cache_size=-262144")
        index_sql = [row[0] for row in connection.execute(
            "SELECT sql FROM sqlite_master WHERE type='index' AND sql IS NOT NULL")]
        # Every trigger comes back after the load (the prompt index's and the change log's,
        # migration 0004), so the library behaves like one the app built.
        trigger_sql = [row[0] for row in connection.execute(
            "SELECT sql FROM sqlite_master WHERE type='trigger'")]
        connection.execute("BEGIN")
        for (name,) in connection.execute(
                "SELECT name FROM sqlite_master WHERE type IN ('index', 'trigger') "
                "AND sql IS NOT NULL").fetchall():
            kind = connection.execute(
                "SELECT type FROM sqlite_master WHERE name=?", (name,)).fetchone()[0]
            connection.execute(f'DROP {kind.upper()} "{name}"')
        def write(table: str, columns: tuple[str, ...], rows: Iterable[tuple]) -> None:
            marks = ",".join("?" * len(columns))
            connection.executemany(
                f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({marks})", rows)

        _load_rows(write, rng, n_images)
        connection.execute(fill_statement("sqlite"))  # what the triggers keep from now on
        for sql in index_sql:
            connection.execute(sql)
        connection.execute("INSERT INTO prompt_fts(prompt_fts) VALUES ('rebuild')")
        for sql in trigger_sql:
            connection.execute(sql)
        connection.execute("COMMIT")
        connection.execute("ANALYZE")
        connection.execute("PRAGMA journal_mode=WAL")
    finally:
        connection.close()


# Tables with a generated integer id, whose sequence must move past the loaded ids.
_SERIAL = ("folders", "contents", "images", "loras", "review_log", "saved_filters",
           "library_changes")


def _build_postgresql(url: str, n_images: int, seed: int) -> None:
    from sqlalchemy import create_engine, text

    from db.engine import open_library

    open_library(url).dispose()  # the schema at head, through the normal open path
    engine = create_engine(url)
    try:
        with engine.begin() as connection:
            connection.execute(text(
                "TRUNCATE folders, contents, images, generation, loras, analysis_results, "
                "tags, review_log, analysis_queue, library_changes, style_grams, "
                "clip_embeddings, saved_filters RESTART IDENTITY CASCADE"))
            indexes = connection.execute(text(
                "SELECT i.relname, pg_get_indexdef(i.oid) FROM pg_index x "
                "JOIN pg_class i ON i.oid = x.indexrelid "
                "JOIN pg_class t ON t.oid = x.indrelid "
                "WHERE t.relnamespace = current_schema()::regnamespace "
                "AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = i.oid)"
            )).all()
            for name, _definition in indexes:
                connection.execute(text(f'DROP INDEX "{name}"'))
            for table in ("contents", "images", "analysis_results"):
                connection.execute(text(f"ALTER TABLE {table} DISABLE TRIGGER USER"))
            driver = connection.connection.driver_connection

            def write(table: str, columns: tuple[str, ...], rows: Iterable[tuple]) -> None:
                with driver.cursor() as cursor, cursor.copy(
                        f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy:
                    for row in rows:
                        copy.write_row(row)

            _load_rows(write, random.Random(seed), n_images)
            connection.execute(text(fill_statement("postgresql")))
            for _name, definition in indexes:
                connection.execute(text(definition))
            for table in ("contents", "images", "analysis_results"):
                connection.execute(text(f"ALTER TABLE {table} ENABLE TRIGGER USER"))
            for table in _SERIAL:
                connection.execute(text(
                    f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                    f"coalesce(max(id), 1), max(id) IS NOT NULL) FROM {table}"))
        # VACUUM as well as ANALYZE: autovacuum keeps a long-lived library's visibility map
        # current, which index-only scans need (the tag suggestions ran 9x slower without).
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
            connection.execute(text("VACUUM ANALYZE"))
    finally:
        engine.dispose()


def _load_rows(write: Writer, rng: random.Random, n_images: int) -> None:
    """Generate every table's rows and hand them to `write`, in foreign-key order (folders,
    contents, their metadata, results and tags, then images: PostgreSQL checks the keys)."""
    n_contents = max(1, int(n_images * (1 - DUPLICATE_SHARE)))
    generators, generator_cum = _weighted(GENERATORS)
    models = [f"{family}{suffix}.safetensors" for family in MODEL_FAMILIES
              for suffix in ("", "_v2", "-fp16")]
    vocabulary = tag_vocabulary()
    tag_cum: list[float] = []
    total = 0.0
    for rank in range(1, len(vocabulary) + 1):  # Zipf: a few tags are everywhere
        total += 1.0 / rank
        tag_cum.append(total)
    decisions, decision_cum = _weighted((("none", 55), ("accepted", 33), ("rejected", 12)))

    folders = [(k, f"/synthetic/library/{name}", int(k == 3), TIMESTAMP)
               for k, name in enumerate(("comfyui_out", "a1111_outputs", "invoke", "private",
                                         "fooocus", "drawthings_export", "novelai", "misc"), 1)]
    write("folders", ("id", "path", "sensitive", "added_at"),
          [(k, path, bool(sensitive), added) for k, path, sensitive, added in folders])

    contents: list[tuple] = []
    generation: list[tuple] = []
    loras: list[tuple] = []
    results: list[tuple] = []
    tags: list[tuple] = []
    content_generator: list[str | None] = [None] * (n_contents + 1)
    families = random.Random(rng.random())  # its own stream: the other columns stay as they were
    hashes: list[int] = []
    for cid in range(1, n_contents + 1):
        decision = rng.choices(decisions, cum_weights=decision_cum)[0]
        analysed = rng.random() < ANALYSED_SHARE
        nsfw = analysed and rng.random() < 0.12
        incoherent = analysed and rng.random() < 0.08
        rating = rng.choice((1, 2, 3, 4, 5)) if decision == "accepted" and rng.random() < 0.4 else 0
        width, height = rng.choice(((512, 512), (512, 768), (768, 512), (1024, 1024),
                                    (832, 1216), (1216, 832), (896, 1152)))
        content = (cid, f"{rng.getrandbits(256):064x}", width, height,
                   rng.choice(("PNG", "PNG", "PNG", "JPEG", "WEBP")), decision, rating,
                   TIMESTAMP if decision != "none" else None,
                   int(nsfw or incoherent), int(nsfw), int(incoherent), int(analysed))
        generator = rng.choices(generators, cum_weights=generator_cum)[0]
        content_generator[cid] = generator
        if generator is not None or rng.random() < 0.5:
            generation.append((
                cid, generator, None, _prompt(rng), rng.choice(NEGATIVES),
                str(rng.getrandbits(rng.choice((32, 63, 64)))), rng.choice((20, 25, 30, 40, 8)),
                rng.choice(SAMPLERS), rng.choice(("normal", "karras", "exponential", None)),
                rng.choice((4.0, 5.5, 7.0, 7.5, 1.5)), width, height, rng.choice(models),
                f"{rng.getrandbits(40):010x}", "{}"))
            if len(generation) > 1 and families.random() < BATCH_SHARE:
                previous = generation[-2]  # the same prompt, negative prompt and model
                generation[-1] = generation[-1][:3] + previous[3:5] + generation[-1][5:12] + (
                    previous[12],) + generation[-1][13:]
            for _ in range(rng.choice((0, 0, 0, 1, 1, 2, 3))):
                loras.append((cid, rng.choice(LORA_NAMES), round(rng.uniform(0.2, 1.2), 2)))
        key = (stack_key(generation[-1][3], generation[-1][4], generation[-1][12])
               if generation and generation[-1][0] == cid else None)
        contents.append(content + (key, to_signed64(_phash(families, hashes)), None))
        if analysed:
            _results_for(rng, cid, nsfw, incoherent, results)
            chosen = list(dict.fromkeys(rng.choices(
                vocabulary, cum_weights=tag_cum, k=TAGS_PER_IMAGE + WEAK_TAGS_PER_IMAGE + 4)))
            for rank, tag in enumerate(chosen[:TAGS_PER_IMAGE + WEAK_TAGS_PER_IMAGE]):
                low, high = ((DEFAULT_TAG_THRESHOLD, 1.0) if rank < TAGS_PER_IMAGE
                             else (TAG_STORE_FLOOR, DEFAULT_TAG_THRESHOLD))
                tags.append((cid, TAG_ANALYSERS[0], tag, round(rng.uniform(low, high), 4)))

    write("contents", ("id", "sha256", "width", "height", "format", "decision", "rating",
                       "decided_at", "flagged", "flag_nsfw", "flag_incoherent", "analysed",
                       "stack_key", "phash", "dup_group"),
          (c[:8] + tuple(bool(flag) for flag in c[8:12]) + c[12:] for c in contents))
    write("generation", ("content_id", "generator", "generator_detail", "prompt",
                         "negative_prompt", "seed", "steps", "sampler", "scheduler",
                         "cfg_scale", "width", "height", "model", "model_hash", "raw"),
          generation)
    write("loras", ("content_id", "name", "weight"), loras)
    write("analysis_results", ("content_id", "analyser", "version", "label", "score", "scores",
                               "error", "analysed_at"), results)
    write("tags", ("content_id", "analyser", "tag", "score"), tags)
    write("images", ("id", "path", "name", "folder_id", "content_id", "size", "mtime_ns",
                     "status", "error", "first_seen", "indexed_at", "has_thumbnail"),
          _image_rows(rng, n_images, n_contents, content_generator, folders))


def _phash(rng: random.Random, hashes: list[int]) -> int:
    """A perceptual hash: a new picture's (random), or a near copy of an earlier one."""
    if hashes and rng.random() < NEAR_COPY_SHARE:
        value = rng.choice(hashes)
        for bit in rng.sample(range(64), rng.randint(0, 6)):
            value ^= 1 << bit
    else:
        value = rng.getrandbits(64)
    hashes.append(value)
    return value


def _results_for(rng: random.Random, cid: int, nsfw: bool, incoherent: bool,
                 out: list[tuple]) -> None:
    for analyser, labels in ANALYSER_LABELS.items():
        if analyser in STYLE_ANALYSERS:
            continue  # opt-in, off in a fresh library (and its Grams are ~600 KiB each)
        if analyser == "aesthetic":
            score = round(min(10.0, max(0.0, rng.gauss(5.6, 1.1))), 4)
            # CLIPScore 15..35, derived without drawing from rng (the rest of the library
            # stays what it was before this field existed).
            adherence = round(15.0 + (cid * 7919 % 2000) / 100.0, 2)
            out.append((cid, analyser, "synthetic", None, score,
                        json.dumps({"aesthetic": score, "prompt_adherence": adherence}), None,
                        TIMESTAMP))
            continue
        if analyser == TAG_ANALYSERS[0] or labels is None:  # tags, or an embedding (clip)
            out.append((cid, analyser, "synthetic", None, None, "{}", None, TIMESTAMP))
            continue
        if rng.random() < 0.003 or labels is None:  # failed on this picture (or no labels)
            out.append((cid, analyser, "synthetic", None, None, "{}", "decode error",
                        TIMESTAMP))
            continue
        names, cum = _weighted(labels)
        if analyser.startswith("nsfw") and nsfw:
            label = "nsfw"
        elif analyser == "coherence" and incoherent:
            label = rng.choice(("incoherent", "semi-incoherent"))
        else:
            label = rng.choices(names, cum_weights=cum)[0]
        score = round(rng.random(), 5)
        out.append((cid, analyser, "synthetic", label, score,
                    json.dumps({label: score}), None, TIMESTAMP))


def _image_rows(rng: random.Random, n_images: int, n_contents: int,
                content_generator: list[str | None], folders: list[tuple]):
    folder_for = {"comfyui": 1, "a1111": 2, "invokeai": 3, "fooocus": 5, "drawthings": 6,
                  "novelai": 7}
    start = datetime(2025, 1, 1)
    mtime_s = int(start.timestamp())
    for image_id in range(1, n_images + 1):
        # Content ids are shuffled against image ids only a little: generators write in order.
        if image_id <= n_contents:
            content_id = image_id
        else:
            content_id = rng.randint(1, n_contents)
        generator = content_generator[content_id]
        folder_id = folder_for.get(generator or "", 8) if rng.random() > 0.05 else 4
        # Batches land within the same second: equal mtimes are common and must sort exactly.
        mtime_s += rng.choice((0, 0, 1, 2, 5, 30))
        folder_path = folders[folder_id - 1][1]
        day = (start + timedelta(seconds=mtime_s - int(start.timestamp()))).strftime("%Y-%m-%d")
        name = _file_name(rng, generator, image_id)
        roll = rng.random()
        status, error = "ok", None
        if roll < 0.005:
            status, error = "broken", "cannot identify image file (truncated PNG)"
        elif roll < 0.015:
            status = "missing"
        yield (image_id, f"{folder_path}/{day}/{image_id:06d}_{name}", name, folder_id,
               content_id, rng.randint(300_000, 3_000_000), mtime_s * 1_000_000_000
               + rng.choice((0, 0, 0, rng.randint(0, 999_999_999))),
               status, error, TIMESTAMP, TIMESTAMP, True)


def main(argv: list[str]) -> int:
    if not argv:
        print("usage: python -m benchmarks.synthetic DB_PATH|URL [N_IMAGES]", file=sys.stderr)
        return 2
    n_images = int(argv[1]) if len(argv) > 1 else 100_000
    began = time.perf_counter()
    build_library(argv[0], n_images)
    print(f"built {n_images:,} images in {time.perf_counter() - began:.1f} s -> {argv[0]}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
