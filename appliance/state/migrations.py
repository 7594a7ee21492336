"""Schema migrations of the state store, applied in order; each runs once, inside one transaction.
Append new migrations at the end (long ones in a module of their own); never edit one that has shipped."""

from __future__ import annotations

from appliance.state import retrieval_tables

MIGRATIONS: tuple[tuple[int, str, str], ...] = (
    (
        1,
        "settings and audit log",
        """
        CREATE TABLE settings (
            key TEXT PRIMARY KEY,
            value TEXT NOT NULL
        );
        CREATE TABLE audit_log (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            ts REAL NOT NULL,
            actor TEXT NOT NULL,
            action TEXT NOT NULL,
            target TEXT NOT NULL DEFAULT '',
            detail TEXT NOT NULL DEFAULT '{}'
        );
        """,
    ),
    (
        2,
        "api keys",
        """
        CREATE TABLE api_keys (
            id TEXT PRIMARY KEY,
            name TEXT NOT NULL UNIQUE,
            scope TEXT NOT NULL CHECK (scope IN ('inference', 'admin')),
            token_hash TEXT NOT NULL,
            created_at REAL NOT NULL,
            revoked_at REAL,
            last_used_at REAL
        );
        """,
    ),
    (
        3,
        "model registry",
        """
        CREATE TABLE models (
            id TEXT PRIMARY KEY,
            name TEXT NOT NULL UNIQUE,
            kind TEXT NOT NULL DEFAULT 'base',
            format TEXT NOT NULL CHECK (format IN ('gguf', 'hf', 'peft')),
            path TEXT NOT NULL,
            sha256 TEXT NOT NULL,
            size_bytes INTEGER NOT NULL,
            architecture TEXT,
            params INTEGER,
            context_length INTEGER,
            quantization TEXT,
            parent_id TEXT REFERENCES models(id),
            source TEXT NOT NULL DEFAULT '',
            metadata TEXT NOT NULL DEFAULT '{}',
            created_at REAL NOT NULL
        );
        """,
    ),
    (
        4,
        "deployments",
        """
        CREATE TABLE deployments (
            name TEXT PRIMARY KEY,
            model_id TEXT NOT NULL REFERENCES models(id),
            backend TEXT NOT NULL,
            params TEXT NOT NULL DEFAULT '{}',
            desired_state TEXT NOT NULL DEFAULT 'running' CHECK (desired_state IN ('running', 'stopped')),
            state TEXT NOT NULL DEFAULT 'pending',
            state_message TEXT NOT NULL DEFAULT '',
            port INTEGER,
            pid INTEGER,
            restarts INTEGER NOT NULL DEFAULT 0,
            created_at REAL NOT NULL,
            updated_at REAL NOT NULL
        );
        """,
    ),
    (
        5,
        "datasets",
        """
        CREATE TABLE datasets (
            id TEXT NOT NULL,
            name TEXT NOT NULL,
            version INTEGER NOT NULL CHECK (version >= 1),
            source TEXT NOT NULL,
            source_sha256 TEXT NOT NULL,
            format TEXT NOT NULL CHECK (format IN ('jsonl', 'csv', 'parquet')),
            records_read INTEGER NOT NULL,
            records_valid INTEGER NOT NULL,
            records_invalid INTEGER NOT NULL,
            duplicates_removed INTEGER NOT NULL,
            train_count INTEGER NOT NULL,
            eval_count INTEGER NOT NULL,
            report TEXT NOT NULL DEFAULT '{}',
            created_at REAL NOT NULL,
            PRIMARY KEY (name, version),
            UNIQUE (name, id)
        );
        CREATE INDEX datasets_by_id ON datasets(id);
        """,
    ),
    (
        6,
        "jobs",
        """
        CREATE TABLE jobs (
            id TEXT PRIMARY KEY,
            type TEXT NOT NULL,
            state TEXT NOT NULL CHECK (state IN ('queued', 'running', 'succeeded', 'failed', 'cancelled',
                                                 'interrupted')),
            params TEXT NOT NULL DEFAULT '{}',
            progress TEXT NOT NULL DEFAULT '{}',
            result TEXT NOT NULL DEFAULT '{}',
            error TEXT NOT NULL DEFAULT '',
            attempts INTEGER NOT NULL DEFAULT 0,
            cancel_requested INTEGER NOT NULL DEFAULT 0,
            pid INTEGER,
            created_at REAL NOT NULL,
            started_at REAL,
            finished_at REAL,
            updated_at REAL NOT NULL
        );
        CREATE INDEX jobs_by_state ON jobs(state, created_at);
        """,
    ),
    (
        7,
        "deployment history and live adapters",
        """
        CREATE TABLE deployment_history (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            deployment TEXT NOT NULL,
            model_id TEXT NOT NULL,
            model_name TEXT NOT NULL,
            action TEXT NOT NULL,
            actor TEXT NOT NULL,
            detail TEXT NOT NULL DEFAULT '{}',
            at REAL NOT NULL
        );
        CREATE INDEX deployment_history_by_name ON deployment_history(deployment, id);
        CREATE TABLE deployment_adapters (
            name TEXT PRIMARY KEY,
            deployment TEXT NOT NULL REFERENCES deployments(name) ON DELETE CASCADE,
            model_id TEXT NOT NULL REFERENCES models(id),
            scale REAL NOT NULL DEFAULT 1.0,
            position INTEGER NOT NULL,
            attached_at REAL NOT NULL
        );
        """,
    ),
    (
        8,
        "why each deployment runs on its backend",
        """
        ALTER TABLE deployments ADD COLUMN backend_reason TEXT NOT NULL DEFAULT '';
        """,
    ),
    (
        9,
        "how many times a daemon crash interrupted each job (a retry cap)",
        """
        ALTER TABLE jobs ADD COLUMN interruptions INTEGER NOT NULL DEFAULT 0;
        """,
    ),
    (
        10,
        "tokens and requests per API key, model and hour; an optional daily token quota per key",
        """
        CREATE TABLE usage (
            hour INTEGER NOT NULL,
            key_id TEXT NOT NULL,
            key_name TEXT NOT NULL,
            model TEXT NOT NULL,
            requests INTEGER NOT NULL DEFAULT 0,
            prompt_tokens INTEGER NOT NULL DEFAULT 0,
            completion_tokens INTEGER NOT NULL DEFAULT 0,
            PRIMARY KEY (hour, key_id, model)
        );
        ALTER TABLE api_keys ADD COLUMN daily_token_quota INTEGER;
        """,
    ),
    (
        11,
        "captured answers (after the capture redaction), their feedback and their review (appliance.capture)",
        """
        CREATE TABLE captures (
            response_id TEXT PRIMARY KEY,
            deployment TEXT NOT NULL,
            model_id TEXT NOT NULL DEFAULT '',
            model_name TEXT NOT NULL DEFAULT '',
            key_id TEXT NOT NULL,
            key_name TEXT NOT NULL,
            created_at REAL NOT NULL,
            latency_ms REAL NOT NULL DEFAULT 0,
            prompt_tokens INTEGER NOT NULL DEFAULT 0,
            completion_tokens INTEGER NOT NULL DEFAULT 0,
            finish_reason TEXT NOT NULL DEFAULT '',
            endpoint TEXT NOT NULL DEFAULT '',
            stream INTEGER NOT NULL DEFAULT 0 CHECK (stream IN (0, 1)),
            messages TEXT NOT NULL,
            answer TEXT NOT NULL,
            size_bytes INTEGER NOT NULL CHECK (size_bytes >= 0)
        );
        CREATE INDEX captures_by_deployment ON captures(deployment, created_at);
        CREATE INDEX captures_by_time ON captures(created_at);
        CREATE INDEX captures_by_key ON captures(key_name, created_at);
        CREATE TABLE capture_feedback (
            response_id TEXT PRIMARY KEY REFERENCES captures(response_id) ON DELETE CASCADE,
            rating TEXT,
            score INTEGER CHECK (score BETWEEN 1 AND 5),
            label INTEGER CHECK (label IN (0, 1)),
            correction TEXT,
            comment TEXT NOT NULL DEFAULT '',
            tags TEXT NOT NULL DEFAULT '[]',
            key_id TEXT NOT NULL,
            key_name TEXT NOT NULL,
            created_at REAL NOT NULL
        );
        CREATE INDEX capture_feedback_by_label ON capture_feedback(label);
        CREATE TABLE capture_reviews (
            response_id TEXT PRIMARY KEY REFERENCES captures(response_id) ON DELETE CASCADE,
            state TEXT NOT NULL CHECK (state IN ('pending', 'accepted', 'edited', 'rejected')),
            messages TEXT,
            reviewer TEXT NOT NULL DEFAULT '',
            note TEXT NOT NULL DEFAULT '',
            decided_at REAL
        );
        CREATE INDEX capture_reviews_by_state ON capture_reviews(state);
        """,
    ),
    (
        12,
        "deployment policies (guardrails and capture), versioned",
        """
        CREATE TABLE deployment_policies (
            deployment TEXT NOT NULL REFERENCES deployments(name) ON DELETE CASCADE,
            version INTEGER NOT NULL CHECK (version >= 1),
            policy TEXT NOT NULL,
            actor TEXT NOT NULL,
            reason TEXT NOT NULL DEFAULT '',
            created_at REAL NOT NULL,
            PRIMARY KEY (deployment, version)
        );
        """,
    ),
    (
        13,
        "shadow pairs: a candidate's answers beside the live ones, redacted, with their figures (appliance.trials)",
        """
        CREATE TABLE shadow_pairs (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            live TEXT NOT NULL,
            candidate TEXT NOT NULL,
            created_at REAL NOT NULL,
            endpoint TEXT NOT NULL DEFAULT '',
            key_id TEXT NOT NULL DEFAULT '',
            messages TEXT NOT NULL,
            live_status INTEGER NOT NULL,
            live_answer TEXT NOT NULL,
            live_latency_s REAL NOT NULL,
            candidate_status INTEGER NOT NULL,
            candidate_answer TEXT NOT NULL,
            candidate_latency_s REAL NOT NULL,
            agreement REAL NOT NULL CHECK (agreement BETWEEN 0 AND 1),
            exact INTEGER NOT NULL CHECK (exact IN (0, 1)),
            chrf REAL NOT NULL,
            cosine REAL,
            length_delta_chars INTEGER NOT NULL,
            length_delta_tokens INTEGER,
            live_refusal TEXT NOT NULL DEFAULT '',
            candidate_refusal TEXT NOT NULL DEFAULT ''
        );
        CREATE INDEX shadow_pairs_by_shadow ON shadow_pairs(live, candidate, id);
        CREATE INDEX shadow_pairs_by_agreement ON shadow_pairs(live, candidate, agreement);
        """,
    ),
    (
        14,
        "trials of candidates on live deployments (shadow, canary)",
        """
        CREATE TABLE deployment_trials (
            deployment TEXT NOT NULL REFERENCES deployments(name) ON DELETE CASCADE,
            kind TEXT NOT NULL CHECK (kind IN ('shadow', 'canary')),
            settings TEXT NOT NULL,
            actor TEXT NOT NULL,
            created_at REAL NOT NULL,
            PRIMARY KEY (deployment, kind)
        );
        """,
    ),
    (15, retrieval_tables.MIGRATION_TITLE, retrieval_tables.MIGRATION_SQL),
)
