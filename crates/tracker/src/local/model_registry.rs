//! The embedded model registry: SQLite in the data directory (`registry.db`, beside the prompts).
//! Version numbers are taken inside an immediate transaction, so processes never collide.

use std::collections::BTreeMap;
use std::path::Path;

use async_trait::async_trait;
use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};

use super::database::{Database, WorkError};
use crate::model_registry::{
    ModelRegistry, ModelRegistryError, ModelVersion, NewModelVersion, RegisteredModel, Stage,
    validate_model_alias, validate_model_name,
};
use crate::now_ms;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS models (
    name TEXT PRIMARY KEY,
    description TEXT,
    tags TEXT NOT NULL DEFAULT '{}',
    created_at_ms INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS model_versions (
    name TEXT NOT NULL REFERENCES models (name),
    version INTEGER NOT NULL,
    source TEXT NOT NULL,
    run_id TEXT,
    description TEXT,
    tags TEXT NOT NULL DEFAULT '{}',
    stage TEXT NOT NULL DEFAULT 'None',
    created_at_ms INTEGER NOT NULL,
    PRIMARY KEY (name, version)
);
CREATE TABLE IF NOT EXISTS model_aliases (
    name TEXT NOT NULL,
    alias TEXT NOT NULL,
    version INTEGER NOT NULL,
    PRIMARY KEY (name, alias)
);
";

/// Registered models in a SQLite file; see the [module docs](self).
#[derive(Clone)]
pub struct LocalModelRegistry {
    database: Database,
}

impl std::fmt::Debug for LocalModelRegistry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalModelRegistry")
            .field("path", &self.database.path())
            .finish()
    }
}

impl From<ModelRegistryError> for WorkError<ModelRegistryError> {
    fn from(error: ModelRegistryError) -> Self {
        Self::Domain(error)
    }
}

type Work<T> = Result<T, WorkError<ModelRegistryError>>;

impl LocalModelRegistry {
    /// Opens (creating if needed) the registry at `path`, e.g. `data_dir/registry.db`.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, ModelRegistryError> {
        let path = path.as_ref();
        let database =
            Database::open(path, SCHEMA).map_err(|error| ModelRegistryError::Unavailable {
                backend: "local",
                location: path.display().to_string(),
                message: error.to_string(),
            })?;
        Ok(Self { database })
    }

    async fn call<T: Send + 'static>(
        &self,
        action: &'static str,
        work: impl FnOnce(&mut Connection) -> Work<T> + Send + 'static,
    ) -> Result<T, ModelRegistryError> {
        let path = self.database.path().display().to_string();
        self.database.call(work).await.map_err(|error| match error {
            WorkError::Domain(error) => error,
            WorkError::Sqlite(error) => ModelRegistryError::Backend {
                backend: "local",
                message: format!("could not {action} in {path}: {error}"),
            },
            WorkError::Panicked(message) => ModelRegistryError::Backend {
                backend: "local",
                message: format!("{action}: {message}"),
            },
        })
    }
}

fn json_map(text: String) -> BTreeMap<String, String> {
    serde_json::from_str(&text).unwrap_or_default()
}

fn aliases_of(connection: &Connection, name: &str) -> rusqlite::Result<BTreeMap<String, u32>> {
    connection
        .prepare_cached("SELECT alias, version FROM model_aliases WHERE name = ?1")?
        .query_map(params![name], |row| Ok((row.get(0)?, row.get(1)?)))?
        .collect()
}

const VERSION_COLUMNS: &str =
    "name, version, source, run_id, description, tags, stage, created_at_ms";

fn read_version(row: &rusqlite::Row<'_>) -> rusqlite::Result<ModelVersion> {
    let stage: String = row.get(6)?;
    Ok(ModelVersion {
        name: row.get(0)?,
        version: row.get(1)?,
        source: row.get(2)?,
        run_id: row.get(3)?,
        description: row.get(4)?,
        tags: json_map(row.get(5)?),
        stage: Stage::parse(&stage).unwrap_or(Stage::None),
        aliases: Vec::new(),
        created_at_ms: row.get(7)?,
    })
}

fn version(connection: &Connection, name: &str, number: u32) -> Work<ModelVersion> {
    let found = connection
        .query_row(
            &format!(
                "SELECT {VERSION_COLUMNS} FROM model_versions WHERE name = ?1 AND version = ?2"
            ),
            params![name, number],
            read_version,
        )
        .optional()?;
    let mut found = found.ok_or_else(|| ModelRegistryError::version_not_found(name, number))?;
    found.aliases = aliases_of(connection, name)?
        .into_iter()
        .filter(|(_, v)| *v == number)
        .map(|(a, _)| a)
        .collect();
    Ok(found)
}

fn model(connection: &Connection, name: &str) -> Work<RegisteredModel> {
    let row: Option<(Option<String>, String, i64)> = connection
        .query_row(
            "SELECT description, tags, created_at_ms FROM models WHERE name = ?1",
            params![name],
            |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)),
        )
        .optional()?;
    let (description, tags, created_at_ms) =
        row.ok_or_else(|| ModelRegistryError::model_not_found(name))?;
    let latest_version: Option<u32> = connection.query_row(
        "SELECT MAX(version) FROM model_versions WHERE name = ?1",
        params![name],
        |row| row.get(0),
    )?;
    Ok(RegisteredModel {
        name: name.to_owned(),
        description,
        tags: json_map(tags),
        latest_version,
        aliases: aliases_of(connection, name)?,
        created_at_ms,
    })
}

#[async_trait]
impl ModelRegistry for LocalModelRegistry {
    fn backend(&self) -> &'static str {
        "local"
    }

    async fn get_model(&self, name: &str) -> Result<RegisteredModel, ModelRegistryError> {
        let name = name.to_owned();
        self.call("read a model", move |c| model(c, &name)).await
    }

    async fn list_models(&self) -> Result<Vec<RegisteredModel>, ModelRegistryError> {
        self.call("list models", |connection| {
            let names: Vec<String> = connection
                .prepare("SELECT name FROM models ORDER BY name")?
                .query_map([], |row| row.get(0))?
                .collect::<rusqlite::Result<_>>()?;
            names.iter().map(|name| model(connection, name)).collect()
        })
        .await
    }

    async fn create_version(
        &self,
        name: &str,
        new: NewModelVersion,
    ) -> Result<ModelVersion, ModelRegistryError> {
        validate_model_name(name)?;
        let name = name.to_owned();
        self.call("register a model version", move |connection| {
            let transaction = connection.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let now = now_ms();
            transaction.execute(
                "INSERT OR IGNORE INTO models (name, created_at_ms) VALUES (?1, ?2)",
                params![name, now],
            )?;
            let number: u32 = transaction.query_row(
                "SELECT COALESCE(MAX(version), 0) + 1 FROM model_versions WHERE name = ?1",
                params![name],
                |row| row.get(0),
            )?;
            transaction.execute(
                "INSERT INTO model_versions (name, version, source, run_id, description, tags, created_at_ms)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                params![
                    name,
                    number,
                    new.source,
                    new.run_id,
                    new.description,
                    serde_json::to_string(&new.tags).unwrap_or_default(),
                    now
                ],
            )?;
            let created = version(&transaction, &name, number)?;
            transaction.commit()?;
            Ok(created)
        })
        .await
    }

    async fn get_version(
        &self,
        name: &str,
        number: u32,
    ) -> Result<ModelVersion, ModelRegistryError> {
        let name = name.to_owned();
        self.call("read a model version", move |c| version(c, &name, number))
            .await
    }

    async fn list_versions(&self, name: &str) -> Result<Vec<ModelVersion>, ModelRegistryError> {
        let name = name.to_owned();
        self.call("list model versions", move |connection| {
            model(connection, &name)?;
            let numbers: Vec<u32> = connection
                .prepare_cached(
                    "SELECT version FROM model_versions WHERE name = ?1 ORDER BY version",
                )?
                .query_map(params![name], |row| row.get(0))?
                .collect::<rusqlite::Result<_>>()?;
            numbers
                .into_iter()
                .map(|n| version(connection, &name, n))
                .collect()
        })
        .await
    }

    async fn set_alias(
        &self,
        name: &str,
        alias: &str,
        number: u32,
    ) -> Result<(), ModelRegistryError> {
        validate_model_alias(alias)?;
        let (name, alias) = (name.to_owned(), alias.to_owned());
        self.call("set a model alias", move |connection| {
            let transaction =
                connection.transaction_with_behavior(TransactionBehavior::Immediate)?;
            version(&transaction, &name, number)?;
            transaction.execute(
                "INSERT INTO model_aliases (name, alias, version) VALUES (?1, ?2, ?3)
                 ON CONFLICT (name, alias) DO UPDATE SET version = excluded.version",
                params![name, alias, number],
            )?;
            transaction.commit()?;
            Ok(())
        })
        .await
    }

    async fn delete_alias(&self, name: &str, alias: &str) -> Result<(), ModelRegistryError> {
        let (name, alias) = (name.to_owned(), alias.to_owned());
        self.call("delete a model alias", move |connection| {
            let deleted = connection.execute(
                "DELETE FROM model_aliases WHERE name = ?1 AND alias = ?2",
                params![name, alias],
            )?;
            if deleted == 0 {
                return Err(ModelRegistryError::NotFound {
                    what: format!("alias `{alias}` of model `{name}`"),
                }
                .into());
            }
            Ok(())
        })
        .await
    }

    async fn resolve_alias(&self, name: &str, alias: &str) -> Result<u32, ModelRegistryError> {
        let (name, alias) = (name.to_owned(), alias.to_owned());
        self.call("resolve a model alias", move |connection| {
            connection
                .query_row(
                    "SELECT version FROM model_aliases WHERE name = ?1 AND alias = ?2",
                    params![name, alias],
                    |row| row.get(0),
                )
                .optional()?
                .ok_or_else(|| {
                    ModelRegistryError::NotFound {
                        what: format!("alias `{alias}` of model `{name}`"),
                    }
                    .into()
                })
        })
        .await
    }

    async fn transition_stage(
        &self,
        name: &str,
        number: u32,
        stage: Stage,
        archive_existing: bool,
    ) -> Result<ModelVersion, ModelRegistryError> {
        let name = name.to_owned();
        self.call("move a model version to a stage", move |connection| {
            let transaction =
                connection.transaction_with_behavior(TransactionBehavior::Immediate)?;
            version(&transaction, &name, number)?;
            if archive_existing && matches!(stage, Stage::Staging | Stage::Production) {
                transaction.execute(
                    "UPDATE model_versions SET stage = 'Archived'
                     WHERE name = ?1 AND stage = ?2 AND version != ?3",
                    params![name, stage.as_str(), number],
                )?;
            }
            transaction.execute(
                "UPDATE model_versions SET stage = ?3 WHERE name = ?1 AND version = ?2",
                params![name, number, stage.as_str()],
            )?;
            let moved = version(&transaction, &name, number)?;
            transaction.commit()?;
            Ok(moved)
        })
        .await
    }
}
