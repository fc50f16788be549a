//! `[mcp]`: the MCP servers a process may take tools, prompts and resources from.
//!
//! ```toml
//! [mcp.servers.time]                       # over stdio: a command Sextant spawns
//! command = "uvx"
//! args = ["mcp-server-time", "--local-timezone", "Europe/Paris"]
//!
//! [mcp.servers.github]                     # over Streamable HTTP
//! url = "https://api.githubcopilot.com/mcp/"
//! bearer_token_env = "GITHUB_MCP_TOKEN"    # Authorization: Bearer $GITHUB_MCP_TOKEN
//! headers = { "X-Team" = "TEAM_ID_VAR" }   # each value names an environment variable
//! ```
//!
//! Secrets are never in the file: a header's value and the bearer token come from the environment
//! variables the file names. A spawned server sees only a few variables of Sextant's environment
//! (`PATH`, `HOME`, locale, temp and XDG directories), the ones `pass_env` lists, and `env`.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::config::{ToolConfigError, seconds};

/// `[mcp]`. Empty by default: no server is contacted unless configured.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct McpConfig {
    /// The servers, by the name agent files use (`tools = ["mcp:time/*"]`).
    pub servers: BTreeMap<String, McpServerConfig>,
    /// Longest a server may take to start and answer `initialize`, in seconds.
    pub connect_timeout_secs: f64,
}

impl Default for McpConfig {
    fn default() -> Self {
        Self {
            servers: BTreeMap::new(),
            connect_timeout_secs: 30.0,
        }
    }
}

/// `[mcp.servers.NAME]`: how to reach one server. Exactly one of `command` and `url`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct McpServerConfig {
    /// The program to spawn; Sextant speaks MCP over its stdin and stdout.
    pub command: Option<String>,
    /// Its arguments.
    pub args: Vec<String>,
    /// Variables set for it (literal values: put secrets in `pass_env` instead).
    pub env: BTreeMap<String, String>,
    /// Variables of Sextant's environment passed on to it, by name.
    pub pass_env: Vec<String>,
    /// Its working directory; default: Sextant's.
    pub cwd: Option<PathBuf>,
    /// The Streamable HTTP endpoint (`http://host:port/mcp`).
    pub url: Option<String>,
    /// HTTP headers sent with every request: header name → the environment variable holding
    /// its value.
    pub headers: BTreeMap<String, String>,
    /// The environment variable holding a bearer token (`Authorization: Bearer …`).
    pub bearer_token_env: Option<String>,
    /// Prepended to each of its tools' names as the model sees them, when two servers offer a
    /// tool of the same name (`time_` → `time_get_current_time`).
    pub tool_prefix: Option<String>,
}

/// How a server is reached, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum McpTransportConfig {
    /// A child process over stdio.
    Stdio {
        /// The program.
        command: String,
        /// Its arguments.
        args: Vec<String>,
    },
    /// Streamable HTTP.
    Http {
        /// The endpoint.
        url: url::Url,
    },
}

impl McpConfig {
    /// How long connecting may take.
    pub fn connect_timeout(&self) -> Duration {
        seconds(self.connect_timeout_secs)
    }

    /// Checks every server entry; errors name the key (`mcp.servers.time.url`).
    pub fn validate(&self) -> Result<(), ToolConfigError> {
        if !(self.connect_timeout_secs > 0.0
            && Duration::try_from_secs_f64(self.connect_timeout_secs).is_ok())
        {
            return Err(ToolConfigError::new(
                "mcp.connect_timeout_secs",
                format!(
                    "must be a positive number of seconds, got {}",
                    self.connect_timeout_secs
                ),
            ));
        }
        for (name, server) in &self.servers {
            validate_server_name(name)
                .map_err(|message| ToolConfigError::new(format!("mcp.servers.{name}"), message))?;
            server.transport(name)?;
        }
        Ok(())
    }
}

/// A server name is what `mcp:NAME/tool` selects by: letters, digits, `-` and `_`.
fn validate_server_name(name: &str) -> Result<(), String> {
    if !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    {
        Ok(())
    } else {
        Err(format!(
            "`{name}` is not a usable server name: use 1 to 64 letters, digits, `-` or `_`"
        ))
    }
}

impl McpServerConfig {
    /// How the server `name` is reached, or what is wrong with its entry.
    pub fn transport(&self, name: &str) -> Result<McpTransportConfig, ToolConfigError> {
        let key = |field: &str| format!("mcp.servers.{name}.{field}");
        match (&self.command, &self.url) {
            (Some(_), Some(_)) => Err(ToolConfigError::new(
                format!("mcp.servers.{name}"),
                "has both `command` (stdio) and `url` (Streamable HTTP); keep one",
            )),
            (None, None) => Err(ToolConfigError::new(
                format!("mcp.servers.{name}"),
                "needs `command` (a program to spawn over stdio) or `url` (a Streamable HTTP endpoint)",
            )),
            (Some(command), None) => {
                if command.trim().is_empty() {
                    return Err(ToolConfigError::new(key("command"), "is empty"));
                }
                for field in ["headers", "bearer_token_env"] {
                    let set = match field {
                        "headers" => !self.headers.is_empty(),
                        _ => self.bearer_token_env.is_some(),
                    };
                    if set {
                        return Err(ToolConfigError::new(
                            key(field),
                            "applies to `url` servers only; a stdio server gets `env` or `pass_env`",
                        ));
                    }
                }
                Ok(McpTransportConfig::Stdio {
                    command: command.clone(),
                    args: self.args.clone(),
                })
            }
            (None, Some(url)) => {
                let parsed = url::Url::parse(url).map_err(|error| {
                    ToolConfigError::new(key("url"), format!("is not a URL ({error})"))
                })?;
                if !matches!(parsed.scheme(), "http" | "https") {
                    return Err(ToolConfigError::new(
                        key("url"),
                        format!("must be http or https, not `{}`", parsed.scheme()),
                    ));
                }
                if !parsed.username().is_empty() || parsed.password().is_some() {
                    return Err(ToolConfigError::new(
                        key("url"),
                        "must not hold credentials; name the variable that holds them in `bearer_token_env` or `headers`",
                    ));
                }
                for field in ["args", "env", "pass_env", "cwd"] {
                    let set = match field {
                        "args" => !self.args.is_empty(),
                        "env" => !self.env.is_empty(),
                        "pass_env" => !self.pass_env.is_empty(),
                        _ => self.cwd.is_some(),
                    };
                    if set {
                        return Err(ToolConfigError::new(
                            key(field),
                            "applies to `command` servers only",
                        ));
                    }
                }
                for header in self.headers.keys() {
                    if header.is_empty()
                        || !header
                            .bytes()
                            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
                    {
                        return Err(ToolConfigError::new(
                            key("headers"),
                            format!("`{header}` is not an HTTP header name"),
                        ));
                    }
                }
                Ok(McpTransportConfig::Http { url: parsed })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> McpConfig {
        toml::from_str(text).unwrap()
    }

    #[test]
    fn a_stdio_and_an_http_server_are_accepted() {
        let config = parse(
            r#"
            [servers.time]
            command = "mcp-server-time"
            args = ["--local-timezone", "UTC"]
            [servers.remote]
            url = "http://127.0.0.1:3001/mcp"
            bearer_token_env = "REMOTE_TOKEN"
            headers = { "X-Team" = "TEAM" }
            "#,
        );
        config.validate().unwrap();
        assert_eq!(
            config.servers["time"].transport("time").unwrap(),
            McpTransportConfig::Stdio {
                command: "mcp-server-time".into(),
                args: vec!["--local-timezone".into(), "UTC".into()],
            }
        );
    }

    #[test]
    fn bad_entries_name_their_key() {
        let cases = [
            (
                "[servers.x]\ncommand = \"a\"\nurl = \"http://h\"\n",
                "mcp.servers.x:",
                "both",
            ),
            (
                "[servers.x]\nargs = [\"a\"]\n",
                "mcp.servers.x:",
                "needs `command`",
            ),
            (
                "[servers.x]\nurl = \"ftp://h\"\n",
                "mcp.servers.x.url",
                "http or https",
            ),
            (
                "[servers.x]\nurl = \"http://u:p@h/mcp\"\n",
                "mcp.servers.x.url",
                "credentials",
            ),
            (
                "[servers.x]\ncommand = \"a\"\nbearer_token_env = \"T\"\n",
                "mcp.servers.x.bearer_token_env",
                "`url` servers only",
            ),
            (
                "[servers.x]\nurl = \"http://h/mcp\"\nheaders = { \"a b\" = \"V\" }\n",
                "mcp.servers.x.headers",
                "not an HTTP header name",
            ),
            (
                "[servers.\"a/b\"]\ncommand = \"a\"\n",
                "mcp.servers.a/b",
                "server name",
            ),
        ];
        for (text, key, message) in cases {
            let error = parse(text).validate().unwrap_err().to_string();
            assert!(
                error.starts_with(key) && error.contains(message),
                "{text}: {error}"
            );
        }
    }
}
