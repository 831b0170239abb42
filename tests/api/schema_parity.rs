//! Parity of `migrations/sqlite` and `migrations/postgres`: both folders, applied to fresh
//! databases, must build the same tables, columns, keys, indexes and checks.
//!
//! Column types are compared by the storage both databases give them, since SQLite has
//! only a few: `text` (PostgreSQL text, timestamps, dates and JSON, which sqlx writes to
//! SQLite as text), `integer` (PostgreSQL integers and booleans), `bytes` (PostgreSQL bytea,
//! and uuid, which sqlx writes to SQLite as 16-byte blobs) and `real`. The declared types
//! are shown beside a difference but never cause one.
//!
//! The folders are read when the crate is compiled (`sqlx::migrate!` in src/db/mod.rs), and
//! cargo does not notice a file added to them: after adding a migration, `touch
//! src/db/mod.rs` or this test checks the folders as they were.

use std::collections::{BTreeMap, BTreeSet};

use clinic::config::DatabaseUrl;
use clinic::db::{Db, Pool};

use crate::helpers::{Backend, fresh_postgres_schema};

/// Per table, each fact about it (what is compared) with the declared detail behind it
/// (shown in a difference, not compared).
type Schema = BTreeMap<String, BTreeMap<String, String>>;

#[tokio::test]
async fn both_migration_folders_describe_the_same_schema() {
    let (sqlite, _dir) = migrated_sqlite().await;
    let sqlite = sqlite_schema(&sqlite).await;
    // Guards against an introspection query that silently matches nothing.
    assert!(
        sqlite.len() > 20 && sqlite.contains_key("appointments"),
        "SQLite introspection found only {:?}",
        sqlite.keys().collect::<Vec<_>>()
    );
    let Some(url) = Backend::postgres_url() else {
        eprintln!("TEST_DATABASE_URL is not set; PostgreSQL run skipped");
        return;
    };
    let (postgres, _schema) = fresh_postgres_schema(&url).await;
    postgres
        .migrate()
        .await
        .expect("the PostgreSQL migrations apply to a fresh schema");
    let postgres = postgres_schema(&postgres).await;
    let drift = differences(&sqlite, &postgres);
    assert!(
        drift.is_empty(),
        "migrations/sqlite and migrations/postgres describe different schemas \
         (types compared as text/integer/bytes/real; see tests/api/schema_parity.rs):\n{drift}"
    );
}

/// The comparison itself must see drift, or the test above passes whatever the folders say:
/// two SQLite databases, the second (reported as "postgres") changed by hand.
#[tokio::test]
async fn a_column_index_or_check_on_one_side_only_is_reported() {
    let (left, _left_dir) = migrated_sqlite().await;
    let (right, _right_dir) = migrated_sqlite().await;
    let Pool::Sqlite(pool) = right.pool() else {
        unreachable!("migrated_sqlite opens SQLite")
    };
    for sql in [
        "ALTER TABLE users ADD COLUMN parity_probe TEXT CHECK (length(parity_probe) < 40)",
        "DROP INDEX slots_hold_expiry_idx",
    ] {
        sqlx::query(sql).execute(pool).await.expect(sql);
    }
    let drift = differences(&sqlite_schema(&left).await, &sqlite_schema(&right).await);
    for expected in [
        "postgres only: column parity_probe: text, null",
        "postgres only: check on (parity_probe)",
        "sqlite only: index slots_hold_expiry_idx (hold_expires_at) where status = 'held'",
    ] {
        assert!(
            drift.contains(expected),
            "{expected:?} missing in:\n{drift}"
        );
    }
    assert_eq!(drift.lines().count(), 3, "{drift}");
}

async fn migrated_sqlite() -> (Db, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("temp dir");
    let url = DatabaseUrl::new(format!("sqlite://{}/parity.db", dir.path().display()));
    let db = Db::connect(&url, 1).await.expect("a fresh SQLite file");
    db.migrate()
        .await
        .expect("the SQLite migrations apply to a fresh database");
    (db, dir)
}

/// The facts both sides present differently, grouped by table; empty when they agree.
fn differences(sqlite: &Schema, postgres: &Schema) -> String {
    let mut out = String::new();
    let tables: BTreeSet<&String> = sqlite.keys().chain(postgres.keys()).collect();
    for table in tables {
        let (left, right) = match (sqlite.get(table), postgres.get(table)) {
            (Some(left), Some(right)) => (left, right),
            (Some(_), None) => {
                out.push_str(&format!("{table}: table only in migrations/sqlite\n"));
                continue;
            }
            (None, _) => {
                out.push_str(&format!("{table}: table only in migrations/postgres\n"));
                continue;
            }
        };
        for (side, this, other) in [("sqlite", left, right), ("postgres", right, left)] {
            for (fact, detail) in this {
                if !other.contains_key(fact) {
                    out.push_str(&format!("{table}: {side} only: {fact}{detail}\n"));
                }
            }
        }
    }
    out
}

fn column_fact(name: &str, family: &str, not_null: bool, has_default: bool) -> String {
    let null = if not_null { "not null" } else { "null" };
    let default = if has_default { ", default" } else { "" };
    format!("column {name}: {family}, {null}{default}")
}

/// SQLite's type affinity rules (https://sqlite.org/datatype3.html#determination_of_column_affinity).
fn sqlite_family(declared: &str) -> &'static str {
    let t = declared.to_ascii_uppercase();
    if t.contains("INT") {
        "integer"
    } else if ["CHAR", "CLOB", "TEXT"].iter().any(|s| t.contains(s)) {
        "text"
    } else if t.is_empty() || t.contains("BLOB") {
        "bytes"
    } else {
        "real"
    }
}

/// The SQLite storage that sqlx gives each PostgreSQL type (see the module comment).
fn postgres_family(data_type: &str) -> &'static str {
    match data_type {
        "uuid" | "bytea" => "bytes",
        "bigint" | "integer" | "smallint" | "boolean" => "integer",
        "real" | "double precision" | "numeric" => "real",
        _ => "text",
    }
}

fn postgres_on_delete(code: &str) -> &'static str {
    match code {
        "c" => "cascade",
        "n" => "set null",
        "d" => "set default",
        "r" => "restrict",
        _ => "no action",
    }
}

async fn sqlite_schema(db: &Db) -> Schema {
    const TABLES: &str = "SELECT name, sql FROM sqlite_master WHERE type = 'table' \
        AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\' AND name <> '_sqlx_migrations'";
    const COLUMNS: &str = "SELECT m.name, p.name, p.type, p.\"notnull\", p.dflt_value IS NOT NULL, p.pk \
        FROM sqlite_master m JOIN pragma_table_info(m.name) p WHERE m.type = 'table'";
    const INDEXES: &str = "SELECT m.name, l.name, l.\"unique\", l.origin, l.partial, i.seqno, i.cid, i.name \
        FROM sqlite_master m JOIN pragma_index_list(m.name) l JOIN pragma_index_info(l.name) i \
        WHERE m.type = 'table' ORDER BY l.name, i.seqno";
    const INDEX_SQL: &str =
        "SELECT name, sql FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL";
    const FOREIGN_KEYS: &str = "SELECT m.name, f.id, f.\"table\", f.\"from\", f.\"to\", f.on_delete \
        FROM sqlite_master m JOIN pragma_foreign_key_list(m.name) f WHERE m.type = 'table' \
        ORDER BY m.name, f.id, f.seq";
    let Pool::Sqlite(pool) = db.pool() else {
        unreachable!("a SQLite database")
    };
    let tables: Vec<(String, String)> = sqlx::query_as(TABLES).fetch_all(pool).await.expect(TABLES);
    let mut schema: Schema = tables
        .iter()
        .map(|(t, _)| (t.clone(), BTreeMap::new()))
        .collect();

    let columns: Vec<(String, String, String, i64, i64, i64)> = sqlx::query_as(COLUMNS)
        .fetch_all(pool)
        .await
        .expect(COLUMNS);
    let mut names: BTreeMap<&str, BTreeSet<String>> = BTreeMap::new();
    let mut keys: BTreeMap<&str, BTreeMap<i64, &str>> = BTreeMap::new();
    for (table, name, declared, not_null, has_default, pk) in &columns {
        let Some(facts) = schema.get_mut(table) else {
            continue;
        };
        let fact = column_fact(
            name,
            sqlite_family(declared),
            *not_null != 0,
            *has_default != 0,
        );
        facts.insert(fact, format!("  [{declared}]"));
        names.entry(table).or_default().insert(name.to_lowercase());
        if *pk > 0 {
            keys.entry(table).or_default().insert(*pk, name);
        }
    }
    for (table, key) in &keys {
        let columns: Vec<&str> = key.values().copied().collect();
        if let Some(facts) = schema.get_mut(*table) {
            facts.insert(
                format!("primary key ({})", columns.join(", ")),
                String::new(),
            );
        }
    }

    // One row per index column; the WHERE of a partial index is only in its CREATE text.
    let index_sql: BTreeMap<String, String> = sqlx::query_as(INDEX_SQL)
        .fetch_all(pool)
        .await
        .expect(INDEX_SQL)
        .into_iter()
        .collect();
    type IndexRow = (String, String, i64, String, i64, i64, i64, Option<String>);
    let rows: Vec<IndexRow> = sqlx::query_as(INDEXES)
        .fetch_all(pool)
        .await
        .expect(INDEXES);
    struct Index<'a> {
        table: &'a str,
        unique: bool,
        origin: &'a str,
        partial: bool,
        columns: Vec<String>,
    }
    // Index names are unique across a SQLite database, not only within a table.
    let mut indexes: BTreeMap<&str, Index> = BTreeMap::new();
    for (table, index, unique, origin, partial, _, cid, column) in &rows {
        let entry = indexes.entry(index).or_insert_with(|| Index {
            table,
            unique: *unique != 0,
            origin,
            partial: *partial != 0,
            columns: Vec::new(),
        });
        // cid -2 is an expression, -1 the rowid.
        entry.columns.push(match (cid, column) {
            (-2, _) | (_, None) => "<expr>".to_owned(),
            (_, Some(c)) => c.clone(),
        });
    }
    for (name, index) in indexes {
        let predicate = if index.partial {
            index_sql.get(name).map(|sql| sqlite_where(sql))
        } else {
            None
        };
        let Some(fact) = index_fact(name, index.unique, index.origin, &index.columns, predicate)
        else {
            continue;
        };
        if let Some(facts) = schema.get_mut(index.table) {
            facts.insert(fact, String::new());
        }
    }

    let rows: Vec<(String, i64, String, String, Option<String>, String)> =
        sqlx::query_as(FOREIGN_KEYS)
            .fetch_all(pool)
            .await
            .expect(FOREIGN_KEYS);
    struct ForeignKey<'a> {
        from: Vec<&'a str>,
        target: &'a str,
        to: Vec<String>,
        on_delete: &'a str,
    }
    let mut foreign: BTreeMap<(&str, i64), ForeignKey> = BTreeMap::new();
    for (table, id, target, from, to, on_delete) in &rows {
        let entry = foreign.entry((table, *id)).or_insert_with(|| ForeignKey {
            from: Vec::new(),
            target,
            to: Vec::new(),
            on_delete,
        });
        entry.from.push(from);
        // No column named means the target's primary key.
        let to = to.clone().unwrap_or_else(|| {
            let key = keys.get(target.as_str()).map(|k| k.values().copied());
            key.map(|k| k.collect::<Vec<_>>().join(", "))
                .unwrap_or_default()
        });
        entry.to.push(to);
    }
    for ((table, _), key) in foreign {
        let fact = foreign_key_fact(
            &key.from.join(", "),
            key.target,
            &key.to.join(", "),
            key.on_delete,
        );
        if let Some(facts) = schema.get_mut(table) {
            facts.insert(fact, String::new());
        }
    }

    for (table, sql) in &tables {
        let columns = names.get(table.as_str()).cloned().unwrap_or_default();
        let checks = check_columns(sql, &columns);
        if let Some(facts) = schema.get_mut(table) {
            insert_checks(facts, checks);
        }
    }
    schema
}

async fn postgres_schema(db: &Db) -> Schema {
    const COLUMNS: &str = "SELECT table_name::text, column_name::text, data_type::text, \
        is_nullable::text = 'NO', column_default IS NOT NULL \
        FROM information_schema.columns \
        WHERE table_schema = current_schema() AND table_name <> '_sqlx_migrations'";
    // Key columns in index order; attnum 0 is an expression.
    const INDEXES: &str = "SELECT t.relname::text, i.relname::text, x.indisunique, \
        CASE WHEN x.indisprimary THEN 'pk' WHEN c.contype = 'u' THEN 'u' ELSE 'c' END, \
        pg_get_expr(x.indpred, x.indrelid), \
        (SELECT string_agg(COALESCE(a.attname::text, '<expr>'), ',' ORDER BY k.n) \
           FROM unnest(x.indkey::int2[]) WITH ORDINALITY k(attnum, n) \
           LEFT JOIN pg_attribute a ON a.attrelid = x.indrelid AND a.attnum = k.attnum) \
        FROM pg_index x JOIN pg_class i ON i.oid = x.indexrelid JOIN pg_class t ON t.oid = x.indrelid \
        JOIN pg_namespace s ON s.oid = t.relnamespace \
        LEFT JOIN pg_constraint c ON c.conindid = x.indexrelid AND c.contype IN ('p', 'u') \
        WHERE s.nspname = current_schema() AND t.relname <> '_sqlx_migrations'";
    const CONSTRAINTS: &str = "SELECT t.relname::text, c.contype::text, \
        (SELECT string_agg(a.attname::text, ',' ORDER BY k.n) \
           FROM unnest(c.conkey) WITH ORDINALITY k(attnum, n) \
           JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = k.attnum), \
        r.relname::text, \
        (SELECT string_agg(a.attname::text, ',' ORDER BY k.n) \
           FROM unnest(c.confkey) WITH ORDINALITY k(attnum, n) \
           JOIN pg_attribute a ON a.attrelid = c.confrelid AND a.attnum = k.attnum), \
        c.confdeltype::text \
        FROM pg_constraint c JOIN pg_class t ON t.oid = c.conrelid \
        JOIN pg_namespace s ON s.oid = t.relnamespace LEFT JOIN pg_class r ON r.oid = c.confrelid \
        WHERE s.nspname = current_schema() AND c.contype IN ('p', 'f', 'c') \
          AND t.relname <> '_sqlx_migrations'";
    let Pool::Postgres(pool) = db.pool() else {
        unreachable!("a PostgreSQL database")
    };
    let mut schema = Schema::new();
    let columns: Vec<(String, String, String, bool, bool)> = sqlx::query_as(COLUMNS)
        .fetch_all(pool)
        .await
        .expect(COLUMNS);
    for (table, name, data_type, not_null, has_default) in columns {
        let fact = column_fact(&name, postgres_family(&data_type), not_null, has_default);
        schema
            .entry(table)
            .or_default()
            .insert(fact, format!("  [{data_type}]"));
    }

    type IndexRow = (String, String, bool, String, Option<String>, Option<String>);
    let indexes: Vec<IndexRow> = sqlx::query_as(INDEXES)
        .fetch_all(pool)
        .await
        .expect(INDEXES);
    for (table, index, unique, origin, predicate, columns) in indexes {
        let columns: Vec<String> = columns
            .unwrap_or_default()
            .split(',')
            .map(str::to_owned)
            .collect();
        let predicate = predicate.map(|p| normalised(&tokens(&p)));
        let Some(fact) = index_fact(&index, unique, &origin, &columns, predicate) else {
            continue;
        };
        if let Some(facts) = schema.get_mut(&table) {
            facts.insert(fact, String::new());
        }
    }

    type ConstraintRow = (
        String,
        String,
        Option<String>,
        Option<String>,
        Option<String>,
        String,
    );
    let constraints: Vec<ConstraintRow> = sqlx::query_as(CONSTRAINTS)
        .fetch_all(pool)
        .await
        .expect(CONSTRAINTS);
    let mut checks: BTreeMap<String, Vec<BTreeSet<String>>> = BTreeMap::new();
    for (table, kind, columns, target, to, on_delete) in constraints {
        let columns = columns.unwrap_or_default().replace(',', ", ");
        let fact = match kind.as_str() {
            "p" => format!("primary key ({columns})"),
            "f" => foreign_key_fact(
                &columns,
                &target.unwrap_or_default(),
                &to.unwrap_or_default().replace(',', ", "),
                postgres_on_delete(&on_delete),
            ),
            _ => {
                let columns = columns.split(", ").filter(|c| !c.is_empty());
                checks
                    .entry(table)
                    .or_default()
                    .push(columns.map(str::to_owned).collect());
                continue;
            }
        };
        if let Some(facts) = schema.get_mut(&table) {
            facts.insert(fact, String::new());
        }
    }
    for (table, checks) in checks {
        if let Some(facts) = schema.get_mut(&table) {
            insert_checks(facts, checks);
        }
    }
    schema
}

/// A primary key's index is the primary key fact; a UNIQUE constraint's index has no name
/// on SQLite (`sqlite_autoindex_…`), so it is known by its columns.
fn index_fact(
    name: &str,
    unique: bool,
    origin: &str,
    columns: &[String],
    predicate: Option<String>,
) -> Option<String> {
    let columns = columns.join(", ");
    let predicate = predicate.map(|p| format!(" where {p}")).unwrap_or_default();
    match origin {
        "pk" => None,
        "u" => Some(format!("unique ({columns}){predicate}")),
        _ => {
            let unique = if unique { "unique " } else { "" };
            Some(format!("{unique}index {name} ({columns}){predicate}"))
        }
    }
}

fn foreign_key_fact(from: &str, target: &str, to: &str, on_delete: &str) -> String {
    let on_delete = on_delete.to_lowercase();
    format!("foreign key ({from}) -> {target} ({to}) on delete {on_delete}")
}

/// CHECK constraints known by the columns they read: PostgreSQL rewrites their text
/// (`IN` becomes `= ANY (ARRAY[…])`, `BETWEEN` two comparisons), so texts would not match.
fn insert_checks(facts: &mut BTreeMap<String, String>, checks: Vec<BTreeSet<String>>) {
    let mut counted: BTreeMap<String, usize> = BTreeMap::new();
    for columns in checks {
        let columns: Vec<String> = columns.into_iter().collect();
        *counted.entry(columns.join(", ")).or_default() += 1;
    }
    for (columns, n) in counted {
        let times = if n > 1 {
            format!(" x{n}")
        } else {
            String::new()
        };
        facts.insert(format!("check on ({columns}){times}"), String::new());
    }
}

#[derive(Debug, PartialEq)]
enum Token {
    Word(String),
    Str(String),
    Sym(char),
}

/// Just enough SQL lexing to find CHECKs and WHEREs: comments and the inside of string
/// literals (`'a check'`) must not count.
fn tokens(sql: &str) -> Vec<Token> {
    let mut out = Vec::new();
    let mut chars = sql.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            c if c.is_whitespace() => {}
            '-' if chars.peek() == Some(&'-') => {
                for c in chars.by_ref() {
                    if c == '\n' {
                        break;
                    }
                }
            }
            '/' if chars.peek() == Some(&'*') => {
                chars.next();
                let mut prev = ' ';
                for c in chars.by_ref() {
                    if prev == '*' && c == '/' {
                        break;
                    }
                    prev = c;
                }
            }
            '\'' | '"' => {
                let mut text = String::new();
                while let Some(n) = chars.next() {
                    if n == c && chars.peek() == Some(&c) {
                        chars.next();
                    } else if n == c {
                        break;
                    }
                    text.push(n);
                }
                out.push(if c == '"' {
                    Token::Word(text.to_lowercase())
                } else {
                    Token::Str(text)
                });
            }
            c if c.is_alphanumeric() || c == '_' => {
                let mut word = String::from(c);
                while let Some(&n) = chars.peek() {
                    if !(n.is_alphanumeric() || n == '_') {
                        break;
                    }
                    word.push(n);
                    chars.next();
                }
                out.push(Token::Word(word.to_lowercase()));
            }
            c => out.push(Token::Sym(c)),
        }
    }
    out
}

/// The columns each CHECK in a CREATE TABLE reads (a word before `(` is a function).
fn check_columns(sql: &str, columns: &BTreeSet<String>) -> Vec<BTreeSet<String>> {
    let tokens = tokens(sql);
    let mut checks = Vec::new();
    let mut i = 0;
    while i < tokens.len() {
        if tokens[i] == Token::Word("check".into()) && tokens.get(i + 1) == Some(&Token::Sym('(')) {
            let mut depth = 0;
            let mut read = BTreeSet::new();
            i += 1;
            while let Some(token) = tokens.get(i) {
                match token {
                    Token::Sym('(') => depth += 1,
                    Token::Sym(')') if depth == 1 => break,
                    Token::Sym(')') => depth -= 1,
                    Token::Word(w)
                        if columns.contains(w) && tokens.get(i + 1) != Some(&Token::Sym('(')) =>
                    {
                        read.insert(w.clone());
                    }
                    _ => {}
                }
                i += 1;
            }
            checks.push(read);
        }
        i += 1;
    }
    checks
}

/// The WHERE of a CREATE INDEX, normalised.
fn sqlite_where(sql: &str) -> String {
    let tokens = tokens(sql);
    let at = tokens
        .iter()
        .position(|t| *t == Token::Word("where".into()))
        .map_or(tokens.len(), |i| i + 1);
    normalised(&tokens[at..])
}

/// A predicate without parentheses and casts, so that PostgreSQL's
/// `((status = 'held'::text))` reads as SQLite's `status = 'held'`.
fn normalised(tokens: &[Token]) -> String {
    let mut words: Vec<String> = Vec::new();
    let mut i = 0;
    while let Some(token) = tokens.get(i) {
        match token {
            Token::Sym(':') if tokens.get(i + 1) == Some(&Token::Sym(':')) => i += 2,
            Token::Sym('(' | ')') => {}
            // The lexer splits `<>` and `>=` into characters; joined, they read as written.
            Token::Sym(c)
                if i > 0 && matches!(tokens[i - 1], Token::Sym(p) if p != '(' && p != ')') =>
            {
                if let Some(last) = words.last_mut() {
                    last.push(*c);
                }
            }
            Token::Sym(c) => words.push(c.to_string()),
            Token::Word(w) => words.push(w.clone()),
            Token::Str(s) => words.push(format!("'{}'", s.replace('\'', "''"))),
        }
        i += 1;
    }
    words.join(" ")
}
