//! A cache in front of a prompt registry, so a hot agent does not ask the server every turn.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use async_trait::async_trait;

use super::{
    LATEST, NewPromptVersion, PromptFilter, PromptInfo, PromptRegistry, PromptVersion,
    PromptVersionRef, RegistryError,
};

/// Caches versions forever (they are immutable) and aliases for a time to live (default 60 s),
/// so moving an alias reaches a running agent within the TTL. When the backend is unavailable
/// ([`RegistryError::Unavailable`]), an expired alias is served from the cache with a warning.
/// Writes go through and update the cache.
pub struct CachedPromptRegistry {
    inner: Arc<dyn PromptRegistry>,
    alias_ttl: Duration,
    versions: Mutex<HashMap<(String, u32), PromptVersion>>,
    aliases: Mutex<HashMap<(String, String), (u32, Instant)>>,
}

impl CachedPromptRegistry {
    /// The default time to live of a cached alias.
    pub const DEFAULT_ALIAS_TTL: Duration = Duration::from_secs(60);

    /// A cache in front of `inner` with the default alias TTL.
    pub fn new(inner: Arc<dyn PromptRegistry>) -> Self {
        Self::with_alias_ttl(inner, Self::DEFAULT_ALIAS_TTL)
    }

    /// A cache in front of `inner` whose aliases live `alias_ttl`.
    pub fn with_alias_ttl(inner: Arc<dyn PromptRegistry>, alias_ttl: Duration) -> Self {
        Self {
            inner,
            alias_ttl,
            versions: Mutex::new(HashMap::new()),
            aliases: Mutex::new(HashMap::new()),
        }
    }

    /// The registry behind the cache.
    pub fn inner(&self) -> &Arc<dyn PromptRegistry> {
        &self.inner
    }

    fn versions(&self) -> MutexGuard<'_, HashMap<(String, u32), PromptVersion>> {
        // Plain maps: a panic elsewhere cannot leave them inconsistent.
        self.versions.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn aliases(&self) -> MutexGuard<'_, HashMap<(String, String), (u32, Instant)>> {
        self.aliases.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn remember_alias(&self, name: &str, alias: &str, version: u32) {
        self.aliases().insert(
            (name.to_owned(), alias.to_owned()),
            (version, Instant::now()),
        );
    }
}

#[async_trait]
impl PromptRegistry for CachedPromptRegistry {
    fn backend(&self) -> &'static str {
        self.inner.backend()
    }

    async fn register(
        &self,
        name: &str,
        version: NewPromptVersion,
    ) -> Result<PromptVersion, RegistryError> {
        let registered = self.inner.register(name, version).await?;
        self.remember_alias(name, LATEST, registered.version);
        self.versions()
            .insert((name.to_owned(), registered.version), registered.clone());
        Ok(registered)
    }

    async fn get_version(&self, name: &str, version: u32) -> Result<PromptVersion, RegistryError> {
        if let Some(cached) = self.versions().get(&(name.to_owned(), version)) {
            return Ok(cached.clone());
        }
        let fetched = self.inner.get_version(name, version).await?;
        self.versions()
            .insert((name.to_owned(), version), fetched.clone());
        Ok(fetched)
    }

    async fn resolve_alias(&self, name: &str, alias: &str) -> Result<u32, RegistryError> {
        let key = (name.to_owned(), alias.to_owned());
        let cached = self.aliases().get(&key).copied();
        if let Some((version, at)) = cached
            && at.elapsed() < self.alias_ttl
        {
            return Ok(version);
        }
        match self.inner.resolve_alias(name, alias).await {
            Ok(version) => {
                self.remember_alias(name, alias, version);
                Ok(version)
            }
            Err(error @ RegistryError::Unavailable { .. }) => match cached {
                Some((version, at)) => {
                    tracing::warn!(
                        prompt = name,
                        alias,
                        version,
                        age_secs = at.elapsed().as_secs(),
                        "{error}; serving the cached version of the alias"
                    );
                    Ok(version)
                }
                None => Err(error),
            },
            Err(error) => {
                if matches!(error, RegistryError::NotFound { .. }) {
                    self.aliases().remove(&key);
                }
                Err(error)
            }
        }
    }

    async fn set_alias(&self, name: &str, alias: &str, version: u32) -> Result<(), RegistryError> {
        self.inner.set_alias(name, alias, version).await?;
        self.remember_alias(name, alias, version);
        Ok(())
    }

    async fn delete_alias(&self, name: &str, alias: &str) -> Result<(), RegistryError> {
        self.inner.delete_alias(name, alias).await?;
        self.aliases().remove(&(name.to_owned(), alias.to_owned()));
        Ok(())
    }

    async fn set_prompt_tag(
        &self,
        name: &str,
        key: &str,
        value: &str,
    ) -> Result<(), RegistryError> {
        self.inner.set_prompt_tag(name, key, value).await
    }

    async fn get_prompt(&self, name: &str) -> Result<PromptInfo, RegistryError> {
        self.inner.get_prompt(name).await
    }

    async fn search(&self, filter: &PromptFilter) -> Result<Vec<PromptInfo>, RegistryError> {
        self.inner.search(filter).await
    }

    async fn list_versions(&self, name: &str) -> Result<Vec<PromptVersion>, RegistryError> {
        self.inner.list_versions(name).await
    }

    async fn link_trace(
        &self,
        trace_id: &str,
        versions: &[PromptVersionRef],
    ) -> Result<(), RegistryError> {
        self.inner.link_trace(trace_id, versions).await
    }
}
