//! `current_time`: the date and time now, in a time zone the model names (IANA, e.g.
//! `Europe/Oslo`) or the configured default.

use async_trait::async_trait;
use jiff::Zoned;
use jiff::tz::TimeZone;
use schemars::JsonSchema;
use serde::Deserialize;

use crate::config::{CurrentTimeConfig, ToolConfigError};
use crate::{Tool, ToolError};

/// The `current_time` tool.
#[derive(Debug, Clone)]
pub struct CurrentTime {
    default_zone: String,
}

#[derive(Deserialize, JsonSchema)]
struct CurrentTimeArguments {
    /// IANA time zone, e.g. "Europe/Oslo" or "America/New_York"; omit for the default.
    #[schemars(length(max = 64))]
    timezone: Option<String>,
}

impl CurrentTime {
    /// From `[tools.current_time]`; an unknown default zone is an error naming the key.
    pub fn from_config(config: &CurrentTimeConfig) -> Result<Self, ToolConfigError> {
        TimeZone::get(&config.timezone).map_err(|e| {
            ToolConfigError::new(
                "tools.current_time.timezone",
                format!("{e}; use an IANA name such as Europe/Oslo"),
            )
        })?;
        Ok(Self {
            default_zone: config.timezone.clone(),
        })
    }

    /// What the tool says for the instant `now`.
    fn describe(&self, now: &Zoned, zone_name: &str) -> Result<String, ToolError> {
        let zone = TimeZone::get(zone_name).map_err(|_| {
            ToolError::InvalidArguments(format!(
                "unknown time zone `{zone_name}`; use an IANA name such as Europe/Oslo or America/New_York"
            ))
        })?;
        let local = now.with_time_zone(zone);
        Ok(serde_json::json!({
            "timezone": zone_name,
            "local_time": local.strftime("%Y-%m-%dT%H:%M:%S%:z").to_string(),
            "date": local.strftime("%Y-%m-%d").to_string(),
            "weekday": local.strftime("%A").to_string(),
            "utc_offset": local.strftime("%:z").to_string(),
            "unix_seconds": local.timestamp().as_second(),
        })
        .to_string())
    }
}

#[async_trait]
impl Tool for CurrentTime {
    fn name(&self) -> &str {
        "current_time"
    }

    fn examples(&self) -> Vec<crate::ToolExample> {
        vec![
            crate::ToolExample::new(
                "What time is it in Paris?",
                serde_json::json!({ "timezone": "Europe/Paris" }),
            ),
            crate::ToolExample::new(
                "What is the date today in Sydney?",
                serde_json::json!({ "timezone": "Australia/Sydney" }),
            ),
        ]
    }

    fn description(&self) -> &str {
        "Returns the current date, time and weekday in a time zone. Use it for questions about \
         today, now, or how long until a date."
    }

    // Reads the clock.
    fn idempotent(&self) -> bool {
        true
    }

    fn parameters(&self) -> serde_json::Value {
        crate::fn_tool::schema_of::<CurrentTimeArguments>()
    }

    async fn call(&self, arguments: serde_json::Value) -> Result<String, ToolError> {
        let arguments: CurrentTimeArguments = serde_json::from_value(arguments)
            .map_err(|e| ToolError::InvalidArguments(e.to_string()))?;
        let zone = arguments
            .timezone
            .as_deref()
            .map(str::trim)
            .filter(|z| !z.is_empty())
            .unwrap_or(&self.default_zone);
        self.describe(&Zoned::now(), zone)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tool() -> CurrentTime {
        CurrentTime::from_config(&CurrentTimeConfig::default()).unwrap()
    }

    #[test]
    fn a_fixed_instant_is_described_in_the_asked_zone() {
        let instant: Zoned = "2026-11-22T05:30:00+00:00[UTC]".parse().unwrap();
        let oslo: serde_json::Value =
            serde_json::from_str(&tool().describe(&instant, "Europe/Oslo").unwrap()).unwrap();
        assert_eq!(oslo["local_time"], "2026-11-22T06:30:00+01:00");
        assert_eq!(oslo["weekday"], "Sunday");
        assert_eq!(oslo["unix_seconds"], instant.timestamp().as_second());
        let summer: Zoned = "2026-07-01T12:00:00+00:00[UTC]".parse().unwrap();
        let oslo: serde_json::Value =
            serde_json::from_str(&tool().describe(&summer, "Europe/Oslo").unwrap()).unwrap();
        assert_eq!(oslo["utc_offset"], "+02:00");
    }

    #[tokio::test]
    async fn now_is_now_and_unknown_zones_are_named() {
        let before = jiff::Timestamp::now().as_second();
        let text = tool().call(serde_json::json!({})).await.unwrap();
        let value: serde_json::Value = serde_json::from_str(&text).unwrap();
        let seconds = value["unix_seconds"].as_i64().unwrap();
        assert!(seconds >= before && seconds <= jiff::Timestamp::now().as_second());
        assert_eq!(value["timezone"], "UTC");

        let err = tool()
            .call(serde_json::json!({"timezone": "Mars/Olympus"}))
            .await
            .unwrap_err();
        assert!(
            err.to_string().contains("unknown time zone `Mars/Olympus`"),
            "{err}"
        );
        let err = CurrentTime::from_config(&CurrentTimeConfig {
            timezone: "Nowhere".into(),
        })
        .unwrap_err();
        assert_eq!(err.key, "tools.current_time.timezone");
    }
}
