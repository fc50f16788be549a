//! [`ApiKey`]: a secret read from the environment that never shows in `Debug`, logs or errors.

use crate::config::ToolConfigError;

/// An API key or bearer token. Its `Debug` form is `ApiKey(***)`.
#[derive(Clone)]
pub(crate) struct ApiKey(String);

impl ApiKey {
    /// The key in the environment variable `variable`; `key` is the config key that names the
    /// variable, and `purpose` says what needs it, for the error when it is unset.
    pub(crate) fn from_env(
        variable: &str,
        key: &str,
        purpose: &str,
    ) -> Result<Self, ToolConfigError> {
        match std::env::var(variable) {
            Ok(value) if !value.trim().is_empty() => Ok(Self(value.trim().to_owned())),
            _ => Err(ToolConfigError::new(
                key,
                format!("the environment variable {variable} is not set; {purpose}"),
            )),
        }
    }

    /// The key itself, for the one header that carries it.
    pub(crate) fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ApiKey(***)")
    }
}

#[cfg(test)]
impl ApiKey {
    pub(crate) fn for_test(key: &str) -> Self {
        Self(key.to_owned())
    }
}
