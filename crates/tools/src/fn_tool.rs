//! [`tool_fn`]: a tool from a plain async Rust function whose argument type derives its JSON Schema.

use std::future::Future;
use std::marker::PhantomData;

use async_trait::async_trait;
use schemars::JsonSchema;
use serde::de::DeserializeOwned;

use crate::{Tool, ToolError};

/// A [`Tool`] made by [`tool_fn`].
pub struct FnTool<A, F> {
    name: String,
    description: String,
    parameters: serde_json::Value,
    function: F,
    idempotent: bool,
    arguments: PhantomData<fn(A)>,
}

impl<A, F> FnTool<A, F> {
    /// Declares the function safe to run twice (a lookup or a read), so a turn resumed after a
    /// crash may repeat a call that was in flight (see [`Tool::idempotent`]).
    pub fn mark_idempotent(mut self) -> Self {
        self.idempotent = true;
        self
    }
}

/// Makes a tool from an async function of one argument struct. The struct's JSON Schema (from
/// `#[derive(JsonSchema)]`, doc comments becoming descriptions) is what the model sees, and the
/// model's arguments are checked against it before the function runs.
///
/// ```
/// use schemars::JsonSchema;
/// use serde::Deserialize;
/// use sextant_tools::{Tool, ToolError, tool_fn};
///
/// #[derive(Deserialize, JsonSchema)]
/// struct Greet {
///     /// Who to greet.
///     name: String,
/// }
///
/// let greet = tool_fn("greet", "Greets someone by name.", |args: Greet| async move {
///     Ok::<_, ToolError>(format!("Hello, {}!", args.name))
/// });
/// assert_eq!(greet.parameters()["required"][0], "name");
/// # let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
/// let answer = runtime.block_on(greet.call(serde_json::json!({"name": "Ada"}))).unwrap();
/// assert_eq!(answer, "Hello, Ada!");
/// ```
pub fn tool_fn<A, F, Fut>(name: &str, description: &str, function: F) -> FnTool<A, F>
where
    A: DeserializeOwned + JsonSchema + Send + 'static,
    F: Fn(A) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<String, ToolError>> + Send,
{
    FnTool {
        name: name.to_owned(),
        description: description.to_owned(),
        parameters: schema_of::<A>(),
        function,
        idempotent: false,
        arguments: PhantomData,
    }
}

/// The JSON Schema of `A` as a tool's parameters: derived by schemars, without the meta-schema URL
/// and the Rust type's name, which are noise for a model.
pub(crate) fn schema_of<A: JsonSchema>() -> serde_json::Value {
    let mut parameters = serde_json::to_value(schemars::schema_for!(A)).unwrap_or_default();
    if let Some(object) = parameters.as_object_mut() {
        object.remove("$schema");
        object.remove("title");
    }
    parameters
}

#[async_trait]
impl<A, F, Fut> Tool for FnTool<A, F>
where
    A: DeserializeOwned + JsonSchema + Send + 'static,
    F: Fn(A) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<String, ToolError>> + Send,
{
    fn name(&self) -> &str {
        &self.name
    }

    fn description(&self) -> &str {
        &self.description
    }

    fn parameters(&self) -> serde_json::Value {
        self.parameters.clone()
    }

    fn idempotent(&self) -> bool {
        self.idempotent
    }

    async fn call(&self, arguments: serde_json::Value) -> Result<String, ToolError> {
        crate::validate_arguments(&self.parameters, &arguments)
            .map_err(|violation| ToolError::InvalidArguments(violation.to_string()))?;
        let arguments: A = serde_json::from_value(arguments)
            .map_err(|e| ToolError::InvalidArguments(e.to_string()))?;
        (self.function)(arguments).await
    }
}

#[cfg(test)]
mod tests {
    use serde::Deserialize;

    use super::*;

    /// Arguments of the test tool.
    #[derive(Deserialize, JsonSchema)]
    #[allow(dead_code)]
    struct Forecast {
        /// The city.
        city: String,
        /// Days ahead, 1 to 14.
        #[schemars(range(min = 1, max = 14))]
        days: u8,
        /// Include wind speed.
        #[serde(default)]
        wind: bool,
    }

    fn forecast() -> impl Tool {
        tool_fn(
            "forecast",
            "Weather forecast.",
            |args: Forecast| async move { Ok(format!("{} in {} days", args.city, args.days)) },
        )
    }

    #[test]
    fn the_schema_is_derived_with_descriptions_and_required_fields() {
        let schema = forecast().parameters();
        assert_eq!(schema["type"], "object");
        assert_eq!(schema["properties"]["city"]["type"], "string");
        assert_eq!(schema["properties"]["city"]["description"], "The city.");
        assert_eq!(schema["properties"]["days"]["maximum"], 14);
        let required: Vec<&str> = schema["required"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|v| v.as_str())
            .collect();
        assert!(
            required.contains(&"city") && required.contains(&"days") && !required.contains(&"wind")
        );
        assert!(schema.get("$schema").is_none() && schema.get("title").is_none());
    }

    #[tokio::test]
    async fn arguments_are_checked_against_the_schema_before_the_call() {
        let tool = forecast();
        assert_eq!(
            tool.call(serde_json::json!({"city": "Oslo", "days": 2}))
                .await
                .unwrap(),
            "Oslo in 2 days"
        );
        let error = tool
            .call(serde_json::json!({"city": "Oslo", "days": 40}))
            .await
            .unwrap_err();
        assert_eq!(
            error,
            ToolError::InvalidArguments("/days: must be at most 14, got 40".into())
        );
        let error = tool.call(serde_json::json!({"days": 2})).await.unwrap_err();
        assert!(error.to_string().contains("`city` is missing"), "{error}");
    }
}
