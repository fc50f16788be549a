//! The embedded prompt registry: SQLite in the data directory (`registry.db`).
//!
//! A version number is taken inside an immediate (write-locking) transaction and the table's
//! primary key is `(name, version)`, so writers in several processes take turns and never produce
//! a duplicate or a gap.

use std::collections::BTreeMap;
use std::path::Path;

use async_trait::async_trait;
use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};

use super::database::{Database, WorkError};
use crate::now_ms;
use crate::prompts::{
    LATEST, NewPromptVersion, PromptFilter, PromptInfo, PromptRegistry, PromptTemplate,
    PromptVersion, PromptVersionRef, RegistryError, validate_alias, validate_prompt_name,
};

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS prompts (
    name TEXT PRIMARY KEY,
    tags TEXT NOT NULL DEFAULT '{}',
    created_at_ms INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS prompt_versions (
    name TEXT NOT NULL REFERENCES prompts (name),
    version INTEGER NOT NULL,
    kind TEXT NOT NULL,
    template TEXT NOT NULL,
    commit_message TEXT,
    tags TEXT NOT NULL DEFAULT '{}',
    response_format TEXT,
    model_config TEXT,
    created_at_ms INTEGER NOT NULL,
    PRIMARY KEY (name, version)
);
CREATE TABLE IF NOT EXISTS prompt_aliases (
    name TEXT NOT NULL,
    alias TEXT NOT NULL,
    version INTEGER NOT NULL,
    updated_at_ms INTEGER NOT NULL,
    PRIMARY KEY (name, alias),
    FOREIGN KEY (name, version) REFERENCES prompt_versions (name, version)
);
CREATE TABLE IF NOT EXISTS prompt_trace_links (
    trace_id TEXT NOT NULL,
    name TEXT NOT NULL,
    version INTEGER NOT NULL,
    linked_at_ms INTEGER NOT NULL,
    PRIMARY KEY (trace_id, name, version)
);
CREATE INDEX IF NOT EXISTS prompt_trace_links_by_version ON prompt_trace_links (name, version);
";

/// Prompts in a SQLite file; see the [module docs](self).
#[derive(Clone)]
pub struct LocalPromptRegistry {
    database: Database,
}

impl std::fmt::Debug for LocalPromptRegistry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalPromptRegistry")
            .field("path", &self.database.path())
            .finish()
    }
}

impl LocalPromptRegistry {
    /// Opens (creating if needed) the registry at `path`, e.g. `data_dir/registry.db`.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, RegistryError> {
        let path = path.as_ref();
        let database =
            Database::open(path, SCHEMA).map_err(|error| RegistryError::Unavailable {
                backend: "local",
                location: path.display().to_string(),
                message: error.to_string(),
            })?;
        Ok(Self { database })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        self.database.path()
    }

    /// The traces linked to a prompt version, newest link first.
    pub async fn linked_traces(
        &self,
        version: &PromptVersionRef,
    ) -> Result<Vec<String>, RegistryError> {
        let version = version.clone();
        self.with_connection("read trace links", move |connection| {
            let mut statement = connection.prepare(
                "SELECT trace_id FROM prompt_trace_links WHERE name = ?1 AND version = ?2
                 ORDER BY linked_at_ms DESC, trace_id",
            )?;
            statement
                .query_map(params![version.name, version.version], |row| row.get(0))?
                .collect()
        })
        .await
    }

    /// Runs `work` on the connection on the blocking pool; SQLite errors become
    /// [`RegistryError::Backend`] naming `action`.
    async fn with_connection<T: Send + 'static>(
        &self,
        action: &'static str,
        work: impl FnOnce(&mut Connection) -> rusqlite::Result<T> + Send + 'static,
    ) -> Result<T, RegistryError> {
        self.try_with_connection(action, move |connection| Ok(work(connection)?))
            .await
    }

    /// Like [`Self::with_connection`], for work that can fail with a [`RegistryError`] too.
    async fn try_with_connection<T: Send + 'static>(
        &self,
        action: &'static str,
        work: impl FnOnce(&mut Connection) -> Result<T, LocalError> + Send + 'static,
    ) -> Result<T, RegistryError> {
        let path = self.database.path().display().to_string();
        self.database.call(work).await.map_err(|error| match error {
            WorkError::Domain(error) => error,
            WorkError::Sqlite(error) => RegistryError::Backend {
                backend: "local",
                message: format!("could not {action} in {path}: {error}"),
            },
            WorkError::Panicked(message) => RegistryError::Backend {
                backend: "local",
                message: format!("{action}: {message}"),
            },
        })
    }
}

/// What the work inside a connection can fail with.
type LocalError = WorkError<RegistryError>;

impl From<RegistryError> for WorkError<RegistryError> {
    fn from(error: RegistryError) -> Self {
        Self::Domain(error)
    }
}

fn tags_json(tags: &BTreeMap<String, String>) -> String {
    serde_json::to_string(tags).expect("string maps serialize")
}

fn json_column<T: serde::de::DeserializeOwned>(
    text: Option<String>,
    column: &str,
) -> rusqlite::Result<Option<T>> {
    text.map(|text| {
        serde_json::from_str(&text).map_err(|error| {
            rusqlite::Error::FromSqlConversionFailure(
                0,
                rusqlite::types::Type::Text,
                format!("column {column}: {error}").into(),
            )
        })
    })
    .transpose()
}

const VERSION_COLUMNS: &str = "name, version, kind, template, commit_message, tags, response_format, model_config, created_at_ms";

fn read_version(row: &rusqlite::Row<'_>) -> rusqlite::Result<PromptVersion> {
    let kind: String = row.get(2)?;
    let stored: String = row.get(3)?;
    let template = PromptTemplate::from_stored_string(&kind, &stored).map_err(|message| {
        rusqlite::Error::FromSqlConversionFailure(3, rusqlite::types::Type::Text, message.into())
    })?;
    Ok(PromptVersion {
        name: row.get(0)?,
        version: row.get(1)?,
        template,
        commit_message: row.get(4)?,
        tags: json_column(row.get(5)?, "tags")?.unwrap_or_default(),
        response_format: json_column(row.get(6)?, "response_format")?,
        model_config: json_column(row.get(7)?, "model_config")?,
        created_at_ms: row.get(8)?,
        aliases: Vec::new(),
    })
}

fn aliases_of(connection: &Connection, name: &str) -> rusqlite::Result<BTreeMap<String, u32>> {
    let mut statement =
        connection.prepare_cached("SELECT alias, version FROM prompt_aliases WHERE name = ?1")?;
    statement
        .query_map(params![name], |row| Ok((row.get(0)?, row.get(1)?)))?
        .collect()
}

fn with_aliases(
    connection: &Connection,
    mut version: PromptVersion,
) -> rusqlite::Result<PromptVersion> {
    version.aliases = aliases_of(connection, &version.name)?
        .into_iter()
        .filter(|(_, v)| *v == version.version)
        .map(|(alias, _)| alias)
        .collect();
    Ok(version)
}

fn prompt_info(connection: &Connection, name: &str) -> Result<PromptInfo, LocalError> {
    let row: Option<(String, i64)> = connection
        .query_row(
            "SELECT tags, created_at_ms FROM prompts WHERE name = ?1",
            params![name],
            |row| Ok((row.get(0)?, row.get(1)?)),
        )
        .optional()?;
    let Some((tags, created_at_ms)) = row else {
        return Err(RegistryError::prompt_not_found(name).into());
    };
    let latest_version: Option<u32> = connection.query_row(
        "SELECT MAX(version) FROM prompt_versions WHERE name = ?1",
        params![name],
        |row| row.get(0),
    )?;
    Ok(PromptInfo {
        name: name.to_owned(),
        tags: json_column(Some(tags), "tags")?.unwrap_or_default(),
        latest_version,
        aliases: aliases_of(connection, name)?,
        created_at_ms,
    })
}

fn require_version(connection: &Connection, name: &str, version: u32) -> Result<(), LocalError> {
    let exists: bool = connection.query_row(
        "SELECT EXISTS (SELECT 1 FROM prompt_versions WHERE name = ?1 AND version = ?2)",
        params![name, version],
        |row| row.get(0),
    )?;
    if exists {
        Ok(())
    } else {
        Err(RegistryError::version_not_found(name, version).into())
    }
}

#[async_trait]
impl PromptRegistry for LocalPromptRegistry {
    fn backend(&self) -> &'static str {
        "local"
    }

    async fn register(
        &self,
        name: &str,
        version: NewPromptVersion,
    ) -> Result<PromptVersion, RegistryError> {
        validate_prompt_name(name)?;
        version.template.validate()?;
        let name = name.to_owned();
        self.try_with_connection("register a prompt version", move |connection| {
            let transaction =
                connection.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let now = now_ms();
            transaction.execute(
                "INSERT OR IGNORE INTO prompts (name, tags, created_at_ms) VALUES (?1, '{}', ?2)",
                params![name, now],
            )?;
            let number: u32 = transaction.query_row(
                "SELECT COALESCE(MAX(version), 0) + 1 FROM prompt_versions WHERE name = ?1",
                params![name],
                |row| row.get(0),
            )?;
            let json = |value: &Option<serde_json::Value>| value.as_ref().map(|v| v.to_string());
            transaction.execute(
                "INSERT INTO prompt_versions (name, version, kind, template, commit_message, tags,
                     response_format, model_config, created_at_ms)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
                params![
                    name,
                    number,
                    version.template.kind(),
                    version.template.to_stored_string(),
                    version.commit_message,
                    tags_json(&version.tags),
                    json(&version.response_format),
                    json(&version.model_config),
                    now,
                ],
            )?;
            transaction.commit()?;
            Ok(PromptVersion {
                name,
                version: number,
                template: version.template,
                commit_message: version.commit_message,
                tags: version.tags,
                response_format: version.response_format,
                model_config: version.model_config,
                created_at_ms: now,
                aliases: Vec::new(),
            })
        })
        .await
    }

    async fn get_version(&self, name: &str, version: u32) -> Result<PromptVersion, RegistryError> {
        let name = name.to_owned();
        self.try_with_connection("read a prompt version", move |connection| {
            let found = connection
                .query_row(
                    &format!(
                        "SELECT {VERSION_COLUMNS} FROM prompt_versions WHERE name = ?1 AND version = ?2"
                    ),
                    params![name, version],
                    read_version,
                )
                .optional()?;
            match found {
                Some(found) => Ok(with_aliases(connection, found)?),
                None => Err(RegistryError::version_not_found(&name, version).into()),
            }
        })
        .await
    }

    async fn resolve_alias(&self, name: &str, alias: &str) -> Result<u32, RegistryError> {
        let (name, alias) = (name.to_owned(), alias.to_owned());
        self.try_with_connection("resolve an alias", move |connection| {
            let version: Option<u32> = if alias == LATEST {
                connection.query_row(
                    "SELECT MAX(version) FROM prompt_versions WHERE name = ?1",
                    params![name],
                    |row| row.get(0),
                )?
            } else {
                connection
                    .query_row(
                        "SELECT version FROM prompt_aliases WHERE name = ?1 AND alias = ?2",
                        params![name, alias],
                        |row| row.get(0),
                    )
                    .optional()?
            };
            match version {
                Some(version) => Ok(version),
                None if alias == LATEST => Err(RegistryError::prompt_not_found(&name).into()),
                None => Err(RegistryError::alias_not_found(&name, &alias).into()),
            }
        })
        .await
    }

    async fn set_alias(&self, name: &str, alias: &str, version: u32) -> Result<(), RegistryError> {
        validate_alias(alias)?;
        let (name, alias) = (name.to_owned(), alias.to_owned());
        self.try_with_connection("set an alias", move |connection| {
            let transaction =
                connection.transaction_with_behavior(TransactionBehavior::Immediate)?;
            require_version(&transaction, &name, version)?;
            transaction.execute(
                "INSERT INTO prompt_aliases (name, alias, version, updated_at_ms) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (name, alias) DO UPDATE SET version = excluded.version,
                     updated_at_ms = excluded.updated_at_ms",
                params![name, alias, version, now_ms()],
            )?;
            transaction.commit()?;
            Ok(())
        })
        .await
    }

    async fn delete_alias(&self, name: &str, alias: &str) -> Result<(), RegistryError> {
        let (name, alias) = (name.to_owned(), alias.to_owned());
        self.try_with_connection("delete an alias", move |connection| {
            let deleted = connection.execute(
                "DELETE FROM prompt_aliases WHERE name = ?1 AND alias = ?2",
                params![name, alias],
            )?;
            if deleted == 0 {
                return Err(RegistryError::alias_not_found(&name, &alias).into());
            }
            Ok(())
        })
        .await
    }

    async fn get_prompt(&self, name: &str) -> Result<PromptInfo, RegistryError> {
        let name = name.to_owned();
        self.try_with_connection("read a prompt", move |connection| {
            prompt_info(connection, &name)
        })
        .await
    }

    async fn search(&self, filter: &PromptFilter) -> Result<Vec<PromptInfo>, RegistryError> {
        let filter = filter.clone();
        self.try_with_connection("search prompts", move |connection| {
            let names: Vec<String> = connection
                .prepare("SELECT name FROM prompts ORDER BY name")?
                .query_map([], |row| row.get(0))?
                .collect::<rusqlite::Result<_>>()?;
            let mut found = Vec::new();
            for name in names {
                let info = prompt_info(connection, &name)?;
                if filter.matches(&info) {
                    found.push(info);
                }
            }
            Ok(found)
        })
        .await
    }

    async fn list_versions(&self, name: &str) -> Result<Vec<PromptVersion>, RegistryError> {
        let name = name.to_owned();
        self.try_with_connection("list prompt versions", move |connection| {
            prompt_info(connection, &name)?;
            let versions: Vec<PromptVersion> = connection
                .prepare(&format!(
                    "SELECT {VERSION_COLUMNS} FROM prompt_versions WHERE name = ?1 ORDER BY version"
                ))?
                .query_map(params![name], read_version)?
                .collect::<rusqlite::Result<_>>()?;
            Ok(versions
                .into_iter()
                .map(|v| with_aliases(connection, v))
                .collect::<rusqlite::Result<_>>()?)
        })
        .await
    }

    async fn set_prompt_tag(
        &self,
        name: &str,
        key: &str,
        value: &str,
    ) -> Result<(), RegistryError> {
        let (name, key, value) = (name.to_owned(), key.to_owned(), value.to_owned());
        self.try_with_connection("tag a prompt", move |connection| {
            let transaction =
                connection.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let mut info = prompt_info(&transaction, &name)?;
            info.tags.insert(key, value);
            transaction.execute(
                "UPDATE prompts SET tags = ?2 WHERE name = ?1",
                params![name, tags_json(&info.tags)],
            )?;
            transaction.commit()?;
            Ok(())
        })
        .await
    }

    async fn link_trace(
        &self,
        trace_id: &str,
        versions: &[PromptVersionRef],
    ) -> Result<(), RegistryError> {
        if trace_id.len() != 32 || !trace_id.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(RegistryError::Invalid {
                what: format!("trace id `{trace_id}`"),
                message: "must be 32 hexadecimal digits".into(),
            });
        }
        let (trace_id, versions) = (trace_id.to_ascii_lowercase(), versions.to_vec());
        self.try_with_connection("link a trace to prompt versions", move |connection| {
            let transaction =
                connection.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let now = now_ms();
            for version in &versions {
                require_version(&transaction, &version.name, version.version)?;
                transaction.execute(
                    "INSERT OR IGNORE INTO prompt_trace_links (trace_id, name, version, linked_at_ms)
                     VALUES (?1, ?2, ?3, ?4)",
                    params![trace_id, version.name, version.version, now],
                )?;
            }
            transaction.commit()?;
            Ok(())
        })
        .await
    }
}
