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
        Self::from_value(std::env::var(variable).ok(), variable, key, purpose)
    }

    /// [`ApiKey::from_env`] with the variable's `value` read.
    fn from_value(
        value: Option<String>,
        variable: &str,
        key: &str,
        purpose: &str,
    ) -> Result<Self, ToolConfigError> {
        match value {
            // The key goes into a header, which cannot carry a line break or another control
            // character: refused here, where the error can name the variable.
            Some(value) if reqwest::header::HeaderValue::from_str(value.trim()).is_err() => {
                Err(ToolConfigError::new(
                    key,
                    format!(
                        "the environment variable {variable} holds characters an HTTP header \
                         cannot carry (a line break?); {purpose}"
                    ),
                ))
            }
            Some(value) if !value.trim().is_empty() => Ok(Self(value.trim().to_owned())),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_a_header_cannot_carry_is_a_config_error_that_does_not_show_it() {
        let err = ApiKey::from_value(
            Some("tvly-secret\nX-Injected: 1".into()),
            "TAVILY_API_KEY",
            "tools.web_search.tavily.api_key_env",
            "the tavily backend needs a key",
        )
        .unwrap_err();
        assert_eq!(err.key, "tools.web_search.tavily.api_key_env");
        assert!(err.message.contains("TAVILY_API_KEY"), "{err}");
        assert!(!err.to_string().contains("tvly-secret"), "{err}");
        let key = ApiKey::from_value(Some(" tvly-ok \n".into()), "V", "k", "p").unwrap();
        assert_eq!(key.expose(), "tvly-ok");
    }
}
