//! `get_weather`: the current weather in a city — the seed demo's tool. Offline it is simulated:
//! deterministic for a city and day, plausible for the season, and labelled as simulated. With
//! `backend = "open_meteo"` it is real, from the Open-Meteo geocoding and forecast APIs (no key).

use std::time::Duration;

use async_trait::async_trait;
use schemars::JsonSchema;
use serde::Deserialize;

use crate::config::{ToolConfigError, WeatherBackendKind, WeatherConfig};
use crate::{Tool, ToolError, http};

/// The `get_weather` tool.
#[derive(Debug, Clone)]
pub struct GetWeather {
    source: Source,
}

#[derive(Debug, Clone)]
enum Source {
    Offline,
    OpenMeteo {
        geocoding_url: url::Url,
        forecast_url: url::Url,
        client: reqwest::Client,
    },
}

#[derive(Deserialize, JsonSchema, Clone, Copy, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
enum Unit {
    #[default]
    Celsius,
    Fahrenheit,
}

#[derive(Deserialize, JsonSchema)]
struct GetWeatherArguments {
    /// The city, e.g. "Oslo" or "Paris".
    #[schemars(length(min = 1, max = 100))]
    city: String,
    /// Temperature unit (default celsius).
    unit: Option<Unit>,
}

impl GetWeather {
    /// Simulated weather (the default).
    pub fn offline() -> Self {
        Self {
            source: Source::Offline,
        }
    }

    /// From `[tools.get_weather]`.
    pub fn from_config(config: &WeatherConfig) -> Result<Self, ToolConfigError> {
        let parse = |value: &str, key: &str| {
            url::Url::parse(value).map_err(|e| {
                let shown =
                    sextant_conventions::shown_url(value, sextant_conventions::UrlParts::Location);
                ToolConfigError::new(key, format!("`{shown}` is not a URL ({e})"))
            })
        };
        Ok(match config.backend {
            WeatherBackendKind::Offline => Self::offline(),
            WeatherBackendKind::OpenMeteo => Self {
                source: Source::OpenMeteo {
                    geocoding_url: parse(&config.geocoding_url, "tools.get_weather.geocoding_url")?,
                    forecast_url: parse(&config.forecast_url, "tools.get_weather.forecast_url")?,
                    client: http::api_client(Duration::from_secs(20)),
                },
            },
        })
    }
}

/// The weather a call reports.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
struct Report {
    location: String,
    temperature: f64,
    unit: &'static str,
    conditions: String,
    humidity_percent: u32,
    wind_kph: f64,
    observed: String,
    source: &'static str,
}

/// FNV-1a: stable across builds and platforms, unlike `std`'s hasher.
fn stable_hash(text: &str) -> u64 {
    text.bytes().fold(0xcbf2_9ce4_8422_2325, |hash, byte| {
        (hash ^ u64::from(byte)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// Simulated weather for `city` on `date`: the same answer all day, a different one tomorrow.
fn simulate(city: &str, date: jiff::civil::Date, unit: Unit) -> Report {
    let key = city.trim().to_lowercase();
    let place = stable_hash(&key);
    let day = stable_hash(&format!("{key}/{date}"));
    let fraction = |hash: u64, shift: u32| ((hash >> shift) & 0xffff) as f64 / 65535.0;
    // A climate per city (mean and seasonal swing), then the season (peak in late July), then
    // the day's deviation.
    let mean = -2.0 + 26.0 * fraction(place, 0);
    let swing = 3.0 + 11.0 * fraction(place, 16);
    let season =
        (2.0 * std::f64::consts::PI * (f64::from(date.day_of_year()) - 200.0) / 365.25).cos();
    let celsius = mean + swing * season + 6.0 * (fraction(day, 0) - 0.5);
    let wet = fraction(day, 16);
    let conditions = match wet {
        w if w < 0.35 => "clear sky",
        w if w < 0.55 => "partly cloudy",
        w if w < 0.70 => "overcast",
        w if w < 0.80 => "fog",
        _ if celsius < 0.5 => "light snow",
        w if w < 0.92 => "light rain",
        _ => "heavy rain",
    };
    let (temperature, unit) = match unit {
        Unit::Celsius => (celsius, "celsius"),
        Unit::Fahrenheit => (celsius * 9.0 / 5.0 + 32.0, "fahrenheit"),
    };
    Report {
        location: title_case(city.trim()),
        temperature: (temperature * 10.0).round() / 10.0,
        unit,
        conditions: conditions.to_owned(),
        humidity_percent: (35.0 + 60.0 * wet) as u32,
        wind_kph: ((2.0 + 40.0 * fraction(day, 32)) * 10.0).round() / 10.0,
        observed: date.to_string(),
        source: "simulated (offline; set tools.get_weather.backend = \"open_meteo\" for real weather)",
    }
}

fn title_case(text: &str) -> String {
    text.split(' ')
        .map(|word| {
            let mut chars = word.chars();
            chars.next().map_or_else(String::new, |first| {
                first.to_uppercase().chain(chars).collect()
            })
        })
        .collect::<Vec<_>>()
        .join(" ")
}

#[derive(Deserialize)]
struct Geocoding {
    #[serde(default)]
    results: Vec<Place>,
}

#[derive(Debug, Deserialize)]
struct Place {
    name: String,
    latitude: f64,
    longitude: f64,
    country: Option<String>,
    admin1: Option<String>,
}

#[derive(Deserialize)]
struct Forecast {
    current: Current,
}

#[derive(Deserialize)]
struct Current {
    time: String,
    temperature_2m: f64,
    relative_humidity_2m: Option<f64>,
    weather_code: Option<u32>,
    wind_speed_10m: Option<f64>,
}

/// The first place Open-Meteo's geocoding finds, or an error naming the city.
fn parse_place(body: &str, city: &str) -> Result<Place, ToolError> {
    let geocoding: Geocoding = http::parse_json(body, "Open-Meteo geocoding")?;
    geocoding.results.into_iter().next().ok_or_else(|| {
        ToolError::Failed(format!(
            "no place called `{city}` was found; check the spelling or name a larger city"
        ))
    })
}

fn parse_report(body: &str, place: &Place, unit: Unit) -> Result<Report, ToolError> {
    let forecast: Forecast = http::parse_json(body, "Open-Meteo")?;
    let current = forecast.current;
    let location = [
        Some(place.name.as_str()),
        place.admin1.as_deref(),
        place.country.as_deref(),
    ]
    .into_iter()
    .flatten()
    .collect::<Vec<_>>()
    .join(", ");
    Ok(Report {
        location,
        temperature: current.temperature_2m,
        unit: match unit {
            Unit::Celsius => "celsius",
            Unit::Fahrenheit => "fahrenheit",
        },
        conditions: current
            .weather_code
            .map_or("unknown", wmo_description)
            .to_owned(),
        humidity_percent: current.relative_humidity_2m.unwrap_or_default().round() as u32,
        wind_kph: current.wind_speed_10m.unwrap_or_default(),
        observed: current.time,
        source: "open-meteo.com",
    })
}

/// WMO weather interpretation codes, as Open-Meteo documents them.
fn wmo_description(code: u32) -> &'static str {
    match code {
        0 => "clear sky",
        1 => "mainly clear",
        2 => "partly cloudy",
        3 => "overcast",
        45 | 48 => "fog",
        51 | 53 | 55 => "drizzle",
        56 | 57 => "freezing drizzle",
        61 => "light rain",
        63 => "rain",
        65 => "heavy rain",
        66 | 67 => "freezing rain",
        71 => "light snow",
        73 => "snow",
        75 => "heavy snow",
        77 => "snow grains",
        80..=82 => "rain showers",
        85 | 86 => "snow showers",
        95 => "thunderstorm",
        96 | 99 => "thunderstorm with hail",
        _ => "unknown",
    }
}

#[async_trait]
impl Tool for GetWeather {
    fn name(&self) -> &str {
        "get_weather"
    }

    fn examples(&self) -> Vec<crate::ToolExample> {
        vec![
            crate::ToolExample::new(
                "What's the weather like in Rome?",
                serde_json::json!({ "city": "Rome" }),
            ),
            crate::ToolExample::new(
                "How cold is it in Chicago in fahrenheit?",
                serde_json::json!({ "city": "Chicago", "unit": "fahrenheit" }),
            ),
        ]
    }

    fn description(&self) -> &str {
        "Returns the current weather in a city: temperature, conditions, humidity and wind."
    }

    // A read-only lookup.
    fn idempotent(&self) -> bool {
        true
    }

    fn parameters(&self) -> serde_json::Value {
        crate::fn_tool::schema_of::<GetWeatherArguments>()
    }

    async fn call(&self, arguments: serde_json::Value) -> Result<String, ToolError> {
        let arguments: GetWeatherArguments = serde_json::from_value(arguments)
            .map_err(|e| ToolError::InvalidArguments(e.to_string()))?;
        let city = arguments.city.trim();
        if city.is_empty() {
            return Err(ToolError::InvalidArguments(
                "`city` is empty; name a city".into(),
            ));
        }
        let unit = arguments.unit.unwrap_or_default();
        let report = match &self.source {
            Source::Offline => simulate(city, jiff::Zoned::now().date(), unit),
            Source::OpenMeteo {
                geocoding_url,
                forecast_url,
                client,
            } => {
                let mut url = geocoding_url.clone();
                url.query_pairs_mut()
                    .append_pair("name", city)
                    .append_pair("count", "1")
                    .append_pair("language", "en")
                    .append_pair("format", "json");
                let request = client
                    .get(url)
                    .build()
                    .map_err(|e| ToolError::Failed(e.to_string()))?;
                let body = http::request_text(client, request, "Open-Meteo geocoding").await?;
                let place = parse_place(&body, city)?;

                let mut url = forecast_url.clone();
                url.query_pairs_mut()
                    .append_pair("latitude", &place.latitude.to_string())
                    .append_pair("longitude", &place.longitude.to_string())
                    .append_pair(
                        "current",
                        "temperature_2m,relative_humidity_2m,weather_code,wind_speed_10m",
                    )
                    .append_pair("timezone", "auto");
                if unit == Unit::Fahrenheit {
                    url.query_pairs_mut()
                        .append_pair("temperature_unit", "fahrenheit");
                }
                let request = client
                    .get(url)
                    .build()
                    .map_err(|e| ToolError::Failed(e.to_string()))?;
                let body = http::request_text(client, request, "Open-Meteo").await?;
                parse_report(&body, &place, unit)?
            }
        };
        Ok(serde_json::to_string(&report).expect("a report serialises"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn simulated_weather_is_stable_per_day_and_plausible() {
        let day: jiff::civil::Date = "2026-11-22".parse().unwrap();
        let next: jiff::civil::Date = "2026-11-23".parse().unwrap();
        let oslo = simulate("Oslo", day, Unit::Celsius);
        assert_eq!(oslo, simulate(" oslo ", day, Unit::Celsius));
        assert_eq!(oslo.location, "Oslo");
        assert!((-25.0..=45.0).contains(&oslo.temperature), "{oslo:?}");
        assert!(oslo.humidity_percent <= 100);
        assert!(oslo.source.starts_with("simulated"));
        let cities = ["Oslo", "Paris", "Lima", "Tokyo", "Cairo", "Perth"];
        let differs = cities
            .iter()
            .any(|c| simulate(c, day, Unit::Celsius) != simulate(c, next, Unit::Celsius));
        assert!(
            differs,
            "the weather never changes from one day to the next"
        );
        let f = simulate("Oslo", day, Unit::Fahrenheit);
        assert!((f.temperature - (oslo.temperature * 9.0 / 5.0 + 32.0)).abs() < 0.2);
    }

    #[test]
    fn recorded_open_meteo_responses_parse_into_a_report() {
        let place = parse_place(
            include_str!("../../tests/fixtures/weather/open_meteo_geocoding.json"),
            "Berlin",
        )
        .unwrap();
        assert_eq!(place.name, "Berlin");
        assert!((place.latitude - 52.52).abs() < 0.1);
        let report = parse_report(
            include_str!("../../tests/fixtures/weather/open_meteo_forecast.json"),
            &place,
            Unit::Celsius,
        )
        .unwrap();
        assert!(report.location.starts_with("Berlin"));
        assert!(report.conditions != "unknown", "{report:?}");
        assert!(report.observed.starts_with("20"), "{report:?}");
        assert_eq!(report.source, "open-meteo.com");
    }

    #[test]
    fn an_unknown_city_is_an_error_naming_it() {
        let err = parse_place(
            include_str!("../../tests/fixtures/weather/open_meteo_geocoding_empty.json"),
            "Atlantis",
        )
        .unwrap_err();
        assert!(
            err.to_string().contains("no place called `Atlantis`"),
            "{err}"
        );
    }

    #[tokio::test]
    async fn the_tool_answers_offline_with_json() {
        let text = GetWeather::offline()
            .call(serde_json::json!({"city": "Lisbon", "unit": "fahrenheit"}))
            .await
            .unwrap();
        let value: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(value["location"], "Lisbon");
        assert_eq!(value["unit"], "fahrenheit");
        assert!(value["temperature"].is_f64());
    }
}
