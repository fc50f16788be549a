//! The price table: what a model's tokens cost, per million tokens, so every chat span, agent
//! span, trace, run and eval report can say what it cost, and a model without a price says so
//! instead of costing 0. The built-in table is `configs/prices.toml`; `[prices]` replaces or
//! extends it.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::chat::Usage;
use crate::config::ConfigError;

/// The built-in table, as shipped in `configs/prices.toml`.
pub const BUILT_IN_PRICES: &str = include_str!("../../../configs/prices.toml");

/// `[prices]`: where the price table comes from.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PricesConfig {
    /// A price table file that replaces the built-in one (relative to the working directory).
    #[serde(default)]
    pub file: Option<PathBuf>,
    /// Prices that come before the table's (`[[prices.models]]`), for a model the table lacks
    /// or a negotiated rate.
    #[serde(default)]
    pub models: Vec<ModelPrice>,
}

/// One model's prices, per million tokens.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelPrice {
    /// The provider it applies to (`openai`, `ollama`, `sextant.local`), `*` for any.
    #[serde(default = "any_provider")]
    pub provider: String,
    /// The model: an exact name, or a prefix ending in `*`.
    pub model: String,
    /// Per million prompt tokens.
    pub input: f64,
    /// Per million prompt tokens read from the provider's cache (default: `input`).
    #[serde(default)]
    pub cached_input: Option<f64>,
    /// Per million generated tokens.
    pub output: f64,
}

fn any_provider() -> String {
    "*".into()
}

/// A table of prices in one currency; see the [module docs](self).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PriceTable {
    /// ISO 4217 code of every price (`USD`).
    pub currency: String,
    /// When the prices were read (`2026-12-03`).
    pub as_of: String,
    /// The prices; the first entry that matches wins among equals.
    #[serde(default)]
    pub models: Vec<ModelPrice>,
}

/// What one call's tokens cost, in billionths of the table's currency.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cost {
    /// The prompt tokens (cached ones at their price).
    pub input_nanos: u64,
    /// The generated tokens.
    pub output_nanos: u64,
}

impl Cost {
    /// Input plus output.
    pub fn total_nanos(&self) -> u64 {
        self.input_nanos.saturating_add(self.output_nanos)
    }
}

impl Default for PriceTable {
    /// The built-in table.
    fn default() -> Self {
        Self::parse(BUILT_IN_PRICES, "the built-in configs/prices.toml")
            .expect("the built-in price table is valid (tested)")
    }
}

impl PriceTable {
    /// The built-in table, parsed once per process.
    pub fn built_in() -> std::sync::Arc<PriceTable> {
        static BUILT_IN: std::sync::LazyLock<std::sync::Arc<PriceTable>> =
            std::sync::LazyLock::new(|| std::sync::Arc::new(PriceTable::default()));
        BUILT_IN.clone()
    }

    /// Reads a table from TOML text; `source` names it in errors.
    pub fn parse(text: &str, source: &str) -> Result<Self, ConfigError> {
        let table: PriceTable = toml::from_str(text).map_err(|error| ConfigError::Value {
            key: "prices".into(),
            source_name: source.to_owned(),
            message: error.to_string(),
        })?;
        table.validate(source)?;
        Ok(table)
    }

    /// The table `[prices]` asks for: its file or the built-in one, with its own entries first.
    pub fn load(config: &PricesConfig) -> Result<Self, ConfigError> {
        let mut table = match &config.file {
            Some(path) if !path.as_os_str().is_empty() => Self::read(path)?,
            _ => Self::default(),
        };
        let extra = PriceTable {
            currency: table.currency.clone(),
            as_of: table.as_of.clone(),
            models: config.models.clone(),
        };
        extra.validate("[[prices.models]]")?;
        table.models.splice(0..0, config.models.iter().cloned());
        Ok(table)
    }

    fn read(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|error| ConfigError::Value {
            key: "prices.file".into(),
            source_name: path.display().to_string(),
            message: format!("cannot be read: {error}"),
        })?;
        Self::parse(&text, &path.display().to_string())
    }

    fn validate(&self, source: &str) -> Result<(), ConfigError> {
        let invalid = |key: String, message: String| ConfigError::Value {
            key,
            source_name: source.to_owned(),
            message,
        };
        if self.currency.len() != 3 || !self.currency.bytes().all(|b| b.is_ascii_uppercase()) {
            return Err(invalid(
                "currency".into(),
                format!(
                    "`{}` is not an ISO 4217 code like USD or EUR",
                    self.currency
                ),
            ));
        }
        if self.as_of.parse::<jiff::civil::Date>().is_err() {
            return Err(invalid(
                "as_of".into(),
                format!("`{}` is not a date like 2026-12-03", self.as_of),
            ));
        }
        for (i, price) in self.models.iter().enumerate() {
            let key = |field: &str| format!("models[{i}].{field} ({})", price.model);
            if price.model.trim().is_empty() {
                return Err(invalid(format!("models[{i}].model"), "is empty".into()));
            }
            if price
                .model
                .strip_suffix('*')
                .unwrap_or(&price.model)
                .contains('*')
            {
                return Err(invalid(
                    key("model"),
                    "`*` may only end a model pattern".into(),
                ));
            }
            for (field, value) in [
                ("input", Some(price.input)),
                ("cached_input", price.cached_input),
                ("output", Some(price.output)),
            ] {
                if let Some(value) = value
                    && (!value.is_finite() || value < 0.0)
                {
                    return Err(invalid(
                        key(field),
                        format!("{value} is not a price: use a number, 0 or more"),
                    ));
                }
            }
        }
        Ok(())
    }

    /// The price of `provider`'s model: the one it answered with (`response_model`), else the one
    /// asked for; an exact name first, then the longest matching prefix.
    pub fn price(
        &self,
        provider: &str,
        response_model: &str,
        request_model: &str,
    ) -> Option<&ModelPrice> {
        let candidates = self
            .models
            .iter()
            .filter(|price| price.provider == "*" || price.provider == provider);
        for model in [response_model, request_model] {
            if model.is_empty() {
                continue;
            }
            if let Some(exact) = candidates.clone().find(|price| price.model == model) {
                return Some(exact);
            }
        }
        [response_model, request_model]
            .into_iter()
            .filter(|model| !model.is_empty())
            .filter_map(|model| {
                candidates
                    .clone()
                    .filter_map(|price| {
                        let prefix = price.model.strip_suffix('*')?;
                        model.starts_with(prefix).then_some((prefix.len(), price))
                    })
                    // The longest prefix wins; among equals, the first entry.
                    .fold(
                        None,
                        |best: Option<(usize, &ModelPrice)>, (len, price)| match best {
                            Some((best_len, _)) if best_len >= len => best,
                            _ => Some((len, price)),
                        },
                    )
            })
            .next()
            .map(|(_, price)| price)
    }

    /// What `usage` cost on `provider`'s model, or `None` when it has no price.
    pub fn cost(
        &self,
        provider: &str,
        response_model: &str,
        request_model: &str,
        usage: &Usage,
    ) -> Option<Cost> {
        let price = self.price(provider, response_model, request_model)?;
        // A price per million tokens is that many billionths per token, times 1000.
        let nanos = |tokens: u64, per_million: f64| (tokens as f64 * per_million * 1e3).round();
        let cached = usage.cached_input_tokens.min(usage.input_tokens);
        let input = nanos(usage.input_tokens - cached, price.input)
            + nanos(cached, price.cached_input.unwrap_or(price.input));
        let output = nanos(usage.output_tokens, price.output);
        Some(Cost {
            input_nanos: input as u64,
            output_nanos: output as u64,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn usage(input: u64, cached: u64, output: u64) -> Usage {
        Usage {
            input_tokens: input,
            output_tokens: output,
            cached_input_tokens: cached,
            ..Usage::default()
        }
    }

    #[test]
    fn the_built_in_table_is_valid_and_prices_local_models_at_zero() {
        let table = PriceTable::default();
        assert_eq!(table.currency, "USD");
        let local = table
            .cost(
                "sextant.local",
                "SmolLM2-135M-Instruct",
                "",
                &usage(100, 0, 50),
            )
            .unwrap();
        assert_eq!(local.total_nanos(), 0, "free, not unknown");
        assert!(
            table
                .cost("ollama", "llama3.2", "llama3.2", &usage(1, 0, 1))
                .is_some()
        );
        assert_eq!(
            table.cost("openai", "my-finetune", "my-finetune", &usage(1, 0, 1)),
            None,
            "an unknown model has no price"
        );
    }

    #[test]
    fn cost_prices_cached_input_apart_and_is_exact_in_nanos() {
        let table = PriceTable::default();
        // gpt-4o-mini: 0.15 input, 0.075 cached, 0.60 output per million.
        let cost = table
            .cost(
                "openai",
                "gpt-4o-mini",
                "gpt-4o-mini",
                &usage(1_000, 400, 500),
            )
            .unwrap();
        assert_eq!(cost.input_nanos, 600 * 150 + 400 * 75);
        assert_eq!(cost.output_nanos, 500 * 600);
        assert_eq!(cost.total_nanos(), 420_000, "0.00042 USD");
    }

    #[test]
    fn matching_prefers_the_answered_model_then_exact_then_the_longest_prefix() {
        let table = PriceTable::parse(
            r#"
currency = "EUR"
as_of = "2026-01-31"
[[models]]
model = "acme-*"
input = 1.0
output = 1.0
[[models]]
model = "acme-large*"
input = 5.0
output = 5.0
[[models]]
provider = "ollama"
model = "acme-large-2"
input = 0.0
output = 0.0
"#,
            "test",
        )
        .unwrap();
        assert_eq!(
            table.price("openai", "acme-large-2", "acme").unwrap().input,
            5.0
        );
        assert_eq!(table.price("openai", "acme-small", "x").unwrap().input, 1.0);
        assert_eq!(
            table.price("ollama", "acme-large-2", "x").unwrap().input,
            0.0
        );
        assert_eq!(table.price("openai", "", "acme-large").unwrap().input, 5.0);
        assert!(table.price("openai", "other", "other").is_none());
    }

    #[test]
    fn overrides_come_first_and_bad_tables_name_the_entry() {
        let config = PricesConfig {
            file: None,
            models: vec![ModelPrice {
                provider: "openai".into(),
                model: "gpt-4o-mini".into(),
                input: 0.1,
                cached_input: None,
                output: 0.2,
            }],
        };
        let table = PriceTable::load(&config).unwrap();
        assert_eq!(table.price("openai", "gpt-4o-mini", "").unwrap().input, 0.1);

        let error = |text: &str| {
            PriceTable::parse(text, "prices.toml")
                .unwrap_err()
                .to_string()
        };
        let head = "currency = \"USD\"\nas_of = \"2026-12-03\"\n";
        assert!(error("currency = \"dollars\"\nas_of = \"2026-12-03\"").contains("ISO 4217"));
        assert!(error("currency = \"USD\"\nas_of = \"soon\"").contains("not a date"));
        let negative = error(&format!(
            "{head}[[models]]\nmodel = \"m\"\ninput = -1.0\noutput = 1.0"
        ));
        assert!(negative.contains("models[0].input (m)"), "{negative}");
        assert!(
            error(&format!(
                "{head}[[models]]\nmodel = \"a*b\"\ninput = 1.0\noutput = 1.0"
            ))
            .contains("may only end")
        );
        assert!(
            error(&format!(
                "{head}[[models]]\nmodel = \"m\"\ninput = 1.0\noutput = 1.0\nprice = 2"
            ))
            .contains("unknown field")
        );
        let missing = PriceTable::load(&PricesConfig {
            file: Some("/nonexistent/prices.toml".into()),
            models: Vec::new(),
        })
        .unwrap_err()
        .to_string();
        assert!(
            missing.contains("prices.file") && missing.contains("cannot be read"),
            "{missing}"
        );
    }

    #[test]
    fn sums_of_usage_keep_unknown_cost_unknown() {
        let priced = Usage {
            cost_nanos: Some(10),
            ..usage(5, 0, 5)
        };
        let unpriced = usage(5, 0, 5);
        let mut total = Usage::default();
        total += priced;
        assert_eq!(total.cost_nanos, Some(10));
        total += priced;
        assert_eq!(total.cost_nanos, Some(20));
        assert_eq!(total.since(&priced).cost_nanos, Some(10));
        total += unpriced;
        assert_eq!(
            total.cost_nanos, None,
            "one unpriced call makes the sum unknown"
        );
        assert_eq!(total.input_tokens, 15);
    }
}
