//! The tools that come with Sextant, and how a configuration builds them by name.

mod calculator;
mod current_time;
pub(crate) mod http_fetch;
mod weather;
pub mod web_search;

use std::sync::Arc;

pub use calculator::{Calculator, evaluate};
pub use current_time::CurrentTime;
pub use http_fetch::HttpFetch;
pub use weather::GetWeather;
pub use web_search::WebSearch;

use crate::Tool;
use crate::config::{ToolConfigError, ToolsConfig};

/// The names of the built-in tools, sorted.
pub const NAMES: &[&str] = &[
    "calculator",
    "current_time",
    "get_weather",
    "http_fetch",
    "web_search",
];

/// The built-in tool called `name`, configured by `config`; `None` if there is no such tool.
pub fn build(name: &str, config: &ToolsConfig) -> Result<Option<Arc<dyn Tool>>, ToolConfigError> {
    Ok(Some(match name {
        "calculator" => Arc::new(Calculator),
        "current_time" => Arc::new(CurrentTime::from_config(&config.current_time)?),
        "get_weather" => Arc::new(GetWeather::from_config(&config.get_weather)?),
        "http_fetch" => Arc::new(HttpFetch::from_config(&config.http_fetch)?),
        "web_search" => Arc::new(WebSearch::from_config(&config.web_search)?),
        _ => return Ok(None),
    }))
}
