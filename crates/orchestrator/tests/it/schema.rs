//! The two backends' migrations are kept in step: the same versions, and,
//! once applied, the same tables with the same columns in the same order.

use std::collections::BTreeMap;
use std::path::Path;

use funetun_orchestrator::store::{Backend, Store};
use sqlx::{Connection, Row};

use crate::common::{POSTGRES_VAR, db_url};

/// `NNNN_name.sql` file names of one backend's migrations.
fn migration_names(backend: &str) -> Vec<String> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("migrations")
        .join(backend);
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

type Columns = BTreeMap<String, Vec<String>>;

async fn sqlite_columns(url: &str) -> Columns {
    let mut conn = sqlx::SqliteConnection::connect(url).await.unwrap();
    let tables: Vec<String> = sqlx::query_scalar(
        "SELECT name FROM sqlite_master WHERE type = 'table'
           AND name NOT LIKE 'sqlite_%' AND name != '_sqlx_migrations'",
    )
    .fetch_all(&mut conn)
    .await
    .unwrap();
    let mut out = Columns::new();
    for table in tables {
        let rows = sqlx::query(&format!("PRAGMA table_info({table})"))
            .fetch_all(&mut conn)
            .await
            .unwrap();
        let columns = rows.iter().map(|r| r.get::<String, _>("name")).collect();
        out.insert(table, columns);
    }
    out
}

async fn postgres_columns(url: &str) -> Columns {
    let mut conn = sqlx::PgConnection::connect(url).await.unwrap();
    let rows = sqlx::query(
        "SELECT table_name::text AS t, column_name::text AS c FROM information_schema.columns
          WHERE table_schema = 'public' AND table_name != '_sqlx_migrations'
          ORDER BY table_name, ordinal_position",
    )
    .fetch_all(&mut conn)
    .await
    .unwrap();
    let mut out = Columns::new();
    for r in rows {
        out.entry(r.get::<String, _>("t"))
            .or_default()
            .push(r.get::<String, _>("c"));
    }
    out
}

#[tokio::test]
async fn both_backends_have_the_same_migrations_tables_and_columns() {
    let sqlite = migration_names("sqlite");
    assert!(sqlite.len() >= 6, "{sqlite:?}");
    assert_eq!(
        sqlite,
        migration_names("postgres"),
        "every migration needs a PostgreSQL twin with the same version and name"
    );

    let dir = tempfile::tempdir().unwrap();
    let lite_url = format!("sqlite://{}", dir.path().join("schema.db").display());
    let lite = Store::open(&lite_url).await.unwrap();
    assert_eq!(lite.backend(), Backend::Sqlite);
    lite.close().await;
    let lite_columns = sqlite_columns(&lite_url).await;
    assert!(lite_columns.contains_key("updates"), "{lite_columns:?}");

    if std::env::var(POSTGRES_VAR).is_err() {
        // The PostgreSQL half runs in the test command's second pass
        // (scripts/test.sh), which sets the variable.
        return;
    }
    let pg_url = db_url(dir.path()).await;
    let pg = Store::open(&pg_url).await.unwrap();
    assert_eq!(pg.backend(), Backend::Postgres);
    pg.close().await;
    assert_eq!(lite_columns, postgres_columns(&pg_url).await);
}

#[tokio::test]
async fn a_database_url_of_another_kind_is_refused_with_the_forms_that_work() {
    let err = Store::open("mysql://root:hunter2@db/funetun")
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("postgres://"), "{err}");
    assert!(err.contains("sqlite://"), "{err}");
    assert!(
        !err.contains("hunter2"),
        "the password is not echoed: {err}"
    );
}
