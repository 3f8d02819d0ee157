"""Numbered, named schema migrations. Append only: never edit one that has shipped."""

from __future__ import annotations

MIGRATIONS: list[tuple[str, str]] = [
    (
        "0001_corpus",
        """
        CREATE TABLE documents (
            doc_id       TEXT PRIMARY KEY,
            source       TEXT NOT NULL,
            owner        TEXT,
            license      TEXT NOT NULL,
            may_retrieve INTEGER NOT NULL,
            may_train    INTEGER NOT NULL,
            groups       TEXT NOT NULL,            -- JSON list, sorted; empty means public
            path         TEXT,                     -- where it was last read from
            extra        TEXT NOT NULL DEFAULT '{}',
            status       TEXT NOT NULL CHECK (status IN ('active', 'retired')),
            created_at   TEXT NOT NULL,
            updated_at   TEXT NOT NULL
        );
        CREATE INDEX documents_source ON documents(source);

        CREATE TABLE versions (
            doc_id       TEXT NOT NULL REFERENCES documents(doc_id) ON DELETE CASCADE,
            version      INTEGER NOT NULL,
            content_hash TEXT NOT NULL,
            title        TEXT NOT NULL,
            text         TEXT NOT NULL,
            valid_from   TEXT NOT NULL,            -- ISO 8601, UTC
            valid_to     TEXT,                     -- NULL while current
            ingested_at  TEXT NOT NULL,
            PRIMARY KEY (doc_id, version)
        );

        CREATE TABLE segments (
            seg_id     INTEGER PRIMARY KEY,
            n_chunks   INTEGER NOT NULL,
            created_at TEXT NOT NULL
        );

        CREATE TABLE chunks (
            chunk_id  TEXT PRIMARY KEY,            -- doc_id@version#ordinal
            doc_id    TEXT NOT NULL,
            version   INTEGER NOT NULL,
            ordinal   INTEGER NOT NULL,
            start     INTEGER NOT NULL,            -- character span in the version's text
            end       INTEGER NOT NULL,
            heading   TEXT NOT NULL,
            n_tokens  INTEGER NOT NULL,
            seg_id    INTEGER NOT NULL REFERENCES segments(seg_id),
            FOREIGN KEY (doc_id, version) REFERENCES versions(doc_id, version) ON DELETE CASCADE
        );
        CREATE INDEX chunks_doc ON chunks(doc_id, version);
        CREATE INDEX chunks_seg ON chunks(seg_id);

        CREATE TABLE receipts (
            receipt_id TEXT PRIMARY KEY,
            kind       TEXT NOT NULL,
            created_at TEXT NOT NULL,
            body       TEXT NOT NULL               -- JSON; ids and counts, never forgotten text
        );

        CREATE TABLE meta (
            key   TEXT PRIMARY KEY,
            value TEXT NOT NULL
        );
        """,
    ),
    (
        "0002_traces",
        """
        CREATE TABLE traces (
            trace_id    TEXT PRIMARY KEY,          -- 32 hex digits, also the OpenTelemetry trace id
            created_at  TEXT NOT NULL,
            kind        TEXT NOT NULL,             -- ask | chat | eval
            arm         TEXT NOT NULL,
            caller      TEXT,                      -- the authenticated API caller, if any
            question    TEXT NOT NULL,
            answer      TEXT NOT NULL,
            as_of       TEXT,
            groups      TEXT NOT NULL,             -- JSON list
            model       TEXT NOT NULL,             -- JSON: backend, model, source, adapter
            index_state TEXT NOT NULL,             -- JSON: embedder, generation, visible chunks, fusion
            timings     TEXT NOT NULL,             -- JSON: stage -> ms
            tokens_in   INTEGER NOT NULL,
            tokens_out  INTEGER NOT NULL,
            chunks      TEXT NOT NULL,             -- JSON: every chunk considered, used or dropped, and why
            citations   TEXT NOT NULL,             -- JSON
            body        TEXT NOT NULL DEFAULT '{}' -- JSON: anything else (prompt size, invalid citations)
        );
        CREATE INDEX traces_created ON traces(created_at);

        -- which documents a trace touched, so forgetting a document can delete the traces that quote it
        CREATE TABLE trace_docs (
            trace_id TEXT NOT NULL REFERENCES traces(trace_id) ON DELETE CASCADE,
            doc_id   TEXT NOT NULL,
            PRIMARY KEY (trace_id, doc_id)
        );
        CREATE INDEX trace_docs_doc ON trace_docs(doc_id);
        """,
    ),
    (
        "0003_runs",
        """
        -- one evaluation run: a case file (by digest) asked of a fixed list of arms
        CREATE TABLE runs (
            run          TEXT PRIMARY KEY,
            created_at   TEXT NOT NULL,
            finished_at  TEXT,                     -- NULL until every (arm, case) result is stored
            cases_path   TEXT NOT NULL,
            cases_digest TEXT NOT NULL,            -- sha256 of the case file: a resume must see the same cases
            arms         TEXT NOT NULL,            -- JSON list, in run order
            n_cases      INTEGER NOT NULL,
            settings     TEXT NOT NULL DEFAULT '{}' -- JSON: scorers, batch size, generator identity
        );

        -- one arm's output for one case, committed alone so that a killed run resumes where it stopped
        CREATE TABLE run_results (
            run         TEXT NOT NULL REFERENCES runs(run) ON DELETE CASCADE,
            arm         TEXT NOT NULL,
            case_id     TEXT NOT NULL,
            position    INTEGER NOT NULL,          -- the case's place in the file
            answer      TEXT NOT NULL,
            error       TEXT,                      -- the arm raised instead of answering
            latency_ms  REAL NOT NULL,
            tokens_in   INTEGER NOT NULL,
            tokens_out  INTEGER NOT NULL,
            cpu_s       REAL NOT NULL,             -- this case's share of the process CPU time of its batch
            cost_usd    REAL NOT NULL,
            label       TEXT NOT NULL,             -- failure label: correct | wrong | stale | format | unscored
            output      TEXT NOT NULL,             -- JSON: citations, chunks, variants, trace_id
            created_at  TEXT NOT NULL,
            PRIMARY KEY (run, arm, case_id)
        );

        CREATE TABLE run_scores (
            run      TEXT NOT NULL,
            arm      TEXT NOT NULL,
            case_id  TEXT NOT NULL,
            scorer   TEXT NOT NULL,
            status   TEXT NOT NULL CHECK (status IN ('scored', 'unscored')),
            value    REAL,                         -- NULL when unscored, never NaN
            passed   INTEGER,
            reason   TEXT NOT NULL,
            details  TEXT NOT NULL DEFAULT '{}',
            PRIMARY KEY (run, arm, case_id, scorer),
            FOREIGN KEY (run, arm, case_id) REFERENCES run_results(run, arm, case_id) ON DELETE CASCADE
        );
        """,
    ),
    (
        "0004_datasets",
        """
        -- a training data set: content-addressed (digest over its examples in order), built once under a name
        CREATE TABLE datasets (
            name        TEXT PRIMARY KEY,
            digest      TEXT NOT NULL,             -- sha256 of the canonical JSON of its examples, in order
            created_at  TEXT NOT NULL,
            updated_at  TEXT NOT NULL,             -- moves when forget removes examples
            n_train     INTEGER NOT NULL,
            n_holdout   INTEGER NOT NULL,
            settings    TEXT NOT NULL,             -- JSON: inputs, pii mode, thresholds, seed, holdout share
            report      TEXT NOT NULL,             -- JSON: kept and excluded counts by reason, as built
            previous    TEXT NOT NULL DEFAULT '[]' -- JSON: earlier digests and what changed them (forget receipts)
        );

        CREATE TABLE dataset_examples (
            name      TEXT NOT NULL REFERENCES datasets(name) ON DELETE CASCADE,
            position  INTEGER NOT NULL,            -- order in the data set; gaps appear when examples are forgotten
            split     TEXT NOT NULL CHECK (split IN ('train', 'holdout')),
            digest    TEXT NOT NULL,               -- sha256 of the example's canonical messages
            messages  TEXT NOT NULL,               -- JSON: [{"role": ..., "content": ...}, ...]
            origin    TEXT NOT NULL,               -- JSON: kind (case | trace | jsonl), ids, documents as doc@version
            PRIMARY KEY (name, position)
        );

        -- which document versions each example came from, so forget and lineage find them by document
        CREATE TABLE dataset_example_docs (
            name     TEXT NOT NULL,
            position INTEGER NOT NULL,
            doc_id   TEXT NOT NULL,
            version  INTEGER NOT NULL,
            PRIMARY KEY (name, position, doc_id, version),
            FOREIGN KEY (name, position) REFERENCES dataset_examples(name, position) ON DELETE CASCADE
        );
        CREATE INDEX dataset_example_docs_doc ON dataset_example_docs(doc_id);

        CREATE VIEW dataset_docs AS SELECT DISTINCT name, doc_id, version FROM dataset_example_docs;
        """,
    ),
    (
        "0005_registry",
        """
        -- a trained model: base + LoRA adapter + the data set (by digest) it learned from, its settings and figures
        CREATE TABLE model_versions (
            version        TEXT PRIMARY KEY,        -- v1, v2, ... in training order
            created_at     TEXT NOT NULL,
            created_by     TEXT NOT NULL,
            base           TEXT NOT NULL,           -- 'smollm2' (the packaged model) or a Hugging Face folder
            adapter        TEXT NOT NULL,           -- the adapter folder, relative to the project root
            dataset        TEXT NOT NULL,
            dataset_digest TEXT NOT NULL,           -- what it learned from, exactly (the data set may change later)
            settings       TEXT NOT NULL,           -- JSON: training settings
            result         TEXT NOT NULL,           -- JSON: losses, steps, wall time, tokens/s, cost
            tainted        TEXT                     -- JSON: why it may not be promoted (forgotten training data)
        );

        -- the documents a version's training data came from (ids only), kept when the data set is forgotten
        CREATE TABLE model_docs (
            version TEXT NOT NULL REFERENCES model_versions(version) ON DELETE CASCADE,
            doc_id  TEXT NOT NULL,
            PRIMARY KEY (version, doc_id)
        );
        CREATE INDEX model_docs_doc ON model_docs(doc_id);

        CREATE TABLE aliases (
            alias      TEXT PRIMARY KEY,
            version    TEXT NOT NULL REFERENCES model_versions(version),
            updated_at TEXT NOT NULL
        );

        -- every move of an alias: who pointed it where, when, why, and what the gate saw
        CREATE TABLE alias_history (
            id       INTEGER PRIMARY KEY,
            alias    TEXT NOT NULL,
            version  TEXT NOT NULL,
            previous TEXT,
            action   TEXT NOT NULL CHECK (action IN ('promote', 'rollback')),
            forced   INTEGER NOT NULL DEFAULT 0,
            reason   TEXT,
            gate     TEXT NOT NULL DEFAULT '{}',     -- JSON: the comparison the promotion was allowed on
            by       TEXT NOT NULL,
            at       TEXT NOT NULL
        );
        CREATE INDEX alias_history_alias ON alias_history(alias, id);
        """,
    ),
    (
        "0006_run_docs",
        """
        -- which documents each stored result came from (its context chunks, its citations, the case's gold
        -- evidence), so that forgetting a document can redact every answer, output and score reason it shaped
        CREATE TABLE run_docs (
            run     TEXT NOT NULL,
            arm     TEXT NOT NULL,
            case_id TEXT NOT NULL,
            doc_id  TEXT NOT NULL,
            PRIMARY KEY (run, arm, case_id, doc_id),
            FOREIGN KEY (run, arm, case_id) REFERENCES run_results(run, arm, case_id) ON DELETE CASCADE
        );
        CREATE INDEX run_docs_doc ON run_docs(doc_id);

        -- JSON {receipt, documents, at} once forget redacted the row's text; its label and figures stay
        ALTER TABLE run_results ADD COLUMN redacted TEXT;

        -- results stored before this migration: their context chunks and citations are in the output JSON
        INSERT OR IGNORE INTO run_docs (run, arm, case_id, doc_id)
            SELECT r.run, r.arm, r.case_id, json_extract(c.value, '$.doc_id')
            FROM run_results r, json_each(r.output, '$.chunks') c
            WHERE json_extract(c.value, '$.doc_id') IS NOT NULL;
        INSERT OR IGNORE INTO run_docs (run, arm, case_id, doc_id)
            SELECT r.run, r.arm, r.case_id, json_extract(c.value, '$.doc_id')
            FROM run_results r, json_each(r.output, '$.citations') c
            WHERE json_extract(c.value, '$.doc_id') IS NOT NULL;
        """,
    ),
    (
        "0007_access_groups",
        """
        -- who may use what was trained on group-restricted documents: a JSON list of group lists, each a
        -- document's audience; a caller must hold one group of every list ([] means anyone)
        ALTER TABLE datasets ADD COLUMN groups TEXT NOT NULL DEFAULT '[]';
        ALTER TABLE model_versions ADD COLUMN groups TEXT NOT NULL DEFAULT '[]';
        """,
    ),
    (
        "0008_request_latency",
        """
        -- what one request waited for, timed alone on the arm's serving path (NULL: the case was answered in a
        -- batch and not timed alone); latency_ms is from now on the batch's wall time shared by its cases, a
        -- throughput figure. Rows stored before hold a batch figure in latency_ms and no request time.
        ALTER TABLE run_results ADD COLUMN request_ms REAL;
        """,
    ),
    (
        "0009_generation_cache",
        """
        -- answers the generator wrote, by a digest of everything that determines them (the generator's identity
        -- and weights, the exact messages, the decoding settings), so an unchanged eval is not generated twice.
        -- Greedy decoding only. The prompts themselves are not kept: only the digest and the answer.
        CREATE TABLE generation_cache (
            key           TEXT PRIMARY KEY,         -- sha256 hex (harness/cache.py: cache_key)
            created_at    TEXT NOT NULL,
            model         TEXT NOT NULL,            -- JSON: the generator's identity and weights digest
            model_version TEXT,                     -- the registered fine-tune that wrote it (v3), if any
            adapter       TEXT,                     -- its adapter folder, if any
            text          TEXT NOT NULL,
            tokens_in     INTEGER NOT NULL,
            tokens_out    INTEGER NOT NULL,
            finish_reason TEXT NOT NULL,
            ms            REAL NOT NULL             -- what generating it took then (never reported as a latency)
        );
        CREATE INDEX generation_cache_version ON generation_cache(model_version);

        -- which document versions' text was in the prompt, so that forget deletes every answer they shaped
        CREATE TABLE generation_cache_docs (
            key     TEXT NOT NULL REFERENCES generation_cache(key) ON DELETE CASCADE,
            doc_id  TEXT NOT NULL,
            version INTEGER NOT NULL,
            PRIMARY KEY (key, doc_id, version)
        );
        CREATE INDEX generation_cache_docs_doc ON generation_cache_docs(doc_id);

        -- 1 when the result's answer came from the generation cache: its latency and cost were not measured
        ALTER TABLE run_results ADD COLUMN cached INTEGER NOT NULL DEFAULT 0;
        """,
    ),
]
