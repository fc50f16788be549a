//! `calculator`: evaluates arithmetic safely.
//!
//! A small recursive-descent evaluator over `f64`: numbers, `+ - * / % ^` (`^` and `**` are powers,
//! right-associative), parentheses, unary signs, the constants `pi` and `e`, and the functions
//! `sqrt abs ln log10 log2 exp sin cos tan floor ceil round min max pow`. Nothing else is accepted, so
//! a model cannot make it run code; input length and nesting depth are bounded.

use async_trait::async_trait;
use serde::Deserialize;

use crate::{Tool, ToolError};

/// Longest expression accepted, in bytes.
const MAX_EXPRESSION_LEN: usize = 1_000;
/// Deepest nesting of parentheses and unary operators accepted.
const MAX_DEPTH: usize = 64;

/// The `calculator` tool.
#[derive(Debug, Clone, Copy, Default)]
pub struct Calculator;

#[derive(Deserialize)]
struct CalculatorArguments {
    expression: String,
}

#[async_trait]
impl Tool for Calculator {
    fn name(&self) -> &str {
        "calculator"
    }

    fn examples(&self) -> Vec<crate::ToolExample> {
        [
            ("How much is 8 times 3 minus 2?", "8 * 3 - 2"),
            ("What is 20 divided by 4?", "20 / 4"),
            ("What is 3 to the power of 4?", "3 ^ 4"),
        ]
        .into_iter()
        .map(|(question, expression)| {
            crate::ToolExample::new(question, serde_json::json!({ "expression": expression }))
        })
        .collect()
    }

    fn description(&self) -> &str {
        "Evaluates an arithmetic expression exactly, e.g. `12 * 7 + 3` or `sqrt(2) ^ 2`. \
         Use it for any calculation instead of computing in your head."
    }

    // Arithmetic: the same expression, the same answer.
    fn idempotent(&self) -> bool {
        true
    }

    fn parameters(&self) -> serde_json::Value {
        serde_json::json!({
            "type": "object",
            "properties": {
                "expression": {
                    "type": "string",
                    "description": "The arithmetic expression to evaluate, e.g. 12 * 7 + 3"
                }
            },
            "required": ["expression"]
        })
    }

    async fn call(&self, arguments: serde_json::Value) -> Result<String, ToolError> {
        let args: CalculatorArguments = serde_json::from_value(arguments).map_err(|e| {
            ToolError::InvalidArguments(format!(
                "expected {{\"expression\": \"<arithmetic>\"}}: {e}"
            ))
        })?;
        let value = evaluate(&args.expression).map_err(ToolError::Failed)?;
        Ok(format_number(value))
    }
}

/// Evaluates `expression`; the error says what was wrong and where.
///
/// ```
/// assert_eq!(sextant_tools::builtin::evaluate("2 * (3 + 4) ^ 2").unwrap(), 98.0);
/// ```
pub fn evaluate(expression: &str) -> Result<f64, String> {
    if expression.len() > MAX_EXPRESSION_LEN {
        return Err(format!(
            "expression is longer than {MAX_EXPRESSION_LEN} characters"
        ));
    }
    let tokens = tokenize(expression)?;
    if tokens.is_empty() {
        return Err("expression is empty".into());
    }
    let mut parser = Parser {
        tokens,
        pos: 0,
        depth: 0,
    };
    let value = parser.expression()?;
    if let Some(token) = parser.tokens.get(parser.pos) {
        return Err(format!(
            "unexpected {} after a complete expression",
            token.describe()
        ));
    }
    if !value.is_finite() {
        return Err("the result is not a finite number".into());
    }
    Ok(value)
}

/// Integers print without a fraction; everything else with up to 12 significant decimals.
fn format_number(value: f64) -> String {
    if value.fract() == 0.0 && value.abs() < 1e15 {
        format!("{}", value as i64)
    } else {
        let text = format!("{value:.12}");
        text.trim_end_matches('0').trim_end_matches('.').to_owned()
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Token {
    Number(f64),
    Ident(String),
    Op(char),
    Open,
    Close,
    Comma,
}

impl Token {
    fn describe(&self) -> String {
        match self {
            Token::Number(n) => format!("number {n}"),
            Token::Ident(name) => format!("`{name}`"),
            Token::Op(op) => format!("`{op}`"),
            Token::Open => "`(`".into(),
            Token::Close => "`)`".into(),
            Token::Comma => "`,`".into(),
        }
    }
}

fn tokenize(text: &str) -> Result<Vec<Token>, String> {
    let chars: Vec<char> = text.chars().collect();
    let mut tokens = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        match c {
            c if c.is_whitespace() => i += 1,
            '0'..='9' | '.' => {
                let start = i;
                while i < chars.len()
                    && (chars[i].is_ascii_digit() || chars[i] == '.' || chars[i] == '_')
                {
                    i += 1;
                }
                // Scientific notation: 1e5, 2.5E-3.
                if i < chars.len() && (chars[i] == 'e' || chars[i] == 'E') {
                    let mut j = i + 1;
                    if j < chars.len() && (chars[j] == '+' || chars[j] == '-') {
                        j += 1;
                    }
                    if j < chars.len() && chars[j].is_ascii_digit() {
                        i = j;
                        while i < chars.len() && chars[i].is_ascii_digit() {
                            i += 1;
                        }
                    }
                }
                let literal: String = chars[start..i].iter().filter(|c| **c != '_').collect();
                let number = literal.parse::<f64>().map_err(|_| {
                    format!("`{literal}` at position {} is not a number", start + 1)
                })?;
                tokens.push(Token::Number(number));
            }
            c if c.is_alphabetic() => {
                let start = i;
                while i < chars.len() && (chars[i].is_alphanumeric() || chars[i] == '_') {
                    i += 1;
                }
                tokens.push(Token::Ident(
                    chars[start..i].iter().collect::<String>().to_lowercase(),
                ));
            }
            '*' if chars.get(i + 1) == Some(&'*') => {
                tokens.push(Token::Op('^'));
                i += 2;
            }
            '+' | '-' | '*' | '/' | '%' | '^' => {
                tokens.push(Token::Op(c));
                i += 1;
            }
            '×' | '·' => {
                tokens.push(Token::Op('*'));
                i += 1;
            }
            '÷' => {
                tokens.push(Token::Op('/'));
                i += 1;
            }
            '−' => {
                tokens.push(Token::Op('-'));
                i += 1;
            }
            '(' | '[' => {
                tokens.push(Token::Open);
                i += 1;
            }
            ')' | ']' => {
                tokens.push(Token::Close);
                i += 1;
            }
            ',' => {
                tokens.push(Token::Comma);
                i += 1;
            }
            other => {
                return Err(format!(
                    "unexpected character `{other}` at position {}",
                    i + 1
                ));
            }
        }
    }
    Ok(tokens)
}

struct Parser {
    tokens: Vec<Token>,
    pos: usize,
    depth: usize,
}

impl Parser {
    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.pos)
    }

    fn next(&mut self) -> Option<Token> {
        let token = self.tokens.get(self.pos).cloned();
        self.pos += 1;
        token
    }

    fn descend(&mut self) -> Result<(), String> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(format!(
                "expression is nested deeper than {MAX_DEPTH} levels"
            ));
        }
        Ok(())
    }

    /// expression := term (('+' | '-') term)*
    fn expression(&mut self) -> Result<f64, String> {
        let mut value = self.term()?;
        while let Some(Token::Op(op @ ('+' | '-'))) = self.peek().cloned() {
            self.pos += 1;
            let rhs = self.term()?;
            value = if op == '+' { value + rhs } else { value - rhs };
        }
        Ok(value)
    }

    /// term := unary (('*' | '/' | '%') unary)*
    fn term(&mut self) -> Result<f64, String> {
        let mut value = self.unary()?;
        while let Some(Token::Op(op @ ('*' | '/' | '%'))) = self.peek().cloned() {
            self.pos += 1;
            let rhs = self.unary()?;
            if rhs == 0.0 && op != '*' {
                return Err("division by zero".into());
            }
            value = match op {
                '*' => value * rhs,
                '/' => value / rhs,
                _ => value % rhs,
            };
        }
        Ok(value)
    }

    /// unary := ('+' | '-') unary | power
    fn unary(&mut self) -> Result<f64, String> {
        match self.peek() {
            Some(Token::Op('-')) => {
                self.pos += 1;
                self.descend()?;
                let value = -self.unary()?;
                self.depth -= 1;
                Ok(value)
            }
            Some(Token::Op('+')) => {
                self.pos += 1;
                self.descend()?;
                let value = self.unary()?;
                self.depth -= 1;
                Ok(value)
            }
            _ => self.power(),
        }
    }

    /// power := primary ('^' unary)?   (right-associative, binds tighter than unary minus on its left)
    fn power(&mut self) -> Result<f64, String> {
        let base = self.primary()?;
        if let Some(Token::Op('^')) = self.peek() {
            self.pos += 1;
            let exponent = self.unary()?;
            return Ok(base.powf(exponent));
        }
        Ok(base)
    }

    /// primary := number | constant | function '(' args ')' | '(' expression ')'
    fn primary(&mut self) -> Result<f64, String> {
        match self.next() {
            Some(Token::Number(n)) => Ok(n),
            Some(Token::Open) => {
                self.descend()?;
                let value = self.expression()?;
                self.depth -= 1;
                match self.next() {
                    Some(Token::Close) => Ok(value),
                    Some(other) => Err(format!("expected `)` but found {}", other.describe())),
                    None => Err("missing `)` at the end".into()),
                }
            }
            Some(Token::Ident(name)) => match name.as_str() {
                "pi" | "π" => Ok(std::f64::consts::PI),
                "e" => Ok(std::f64::consts::E),
                _ => {
                    let args = self.arguments(&name)?;
                    apply_function(&name, &args)
                }
            },
            Some(other) => Err(format!(
                "expected a number or `(` but found {}",
                other.describe()
            )),
            None => Err("the expression ends where a number was expected".into()),
        }
    }

    fn arguments(&mut self, function: &str) -> Result<Vec<f64>, String> {
        if self.next() != Some(Token::Open) {
            return Err(format!(
                "unknown name `{function}` (functions need parentheses, e.g. sqrt(2))"
            ));
        }
        self.descend()?;
        let mut args = vec![self.expression()?];
        loop {
            match self.next() {
                Some(Token::Comma) => args.push(self.expression()?),
                Some(Token::Close) => break,
                Some(other) => {
                    return Err(format!(
                        "expected `,` or `)` in {function}(…) but found {}",
                        other.describe()
                    ));
                }
                None => return Err(format!("missing `)` after the arguments of {function}")),
            }
        }
        self.depth -= 1;
        Ok(args)
    }
}

fn apply_function(name: &str, args: &[f64]) -> Result<f64, String> {
    let one = |f: fn(f64) -> f64| match args {
        [x] => Ok(f(*x)),
        _ => Err(format!("{name}() takes 1 argument, got {}", args.len())),
    };
    let two = |f: fn(f64, f64) -> f64| match args {
        [x, y] => Ok(f(*x, *y)),
        _ => Err(format!("{name}() takes 2 arguments, got {}", args.len())),
    };
    match name {
        "sqrt" => match args {
            [x] if *x < 0.0 => Err(format!("sqrt of a negative number ({x})")),
            _ => one(f64::sqrt),
        },
        "abs" => one(f64::abs),
        "ln" => one(f64::ln),
        "log" | "log10" => one(f64::log10),
        "log2" => one(f64::log2),
        "exp" => one(f64::exp),
        "sin" => one(f64::sin),
        "cos" => one(f64::cos),
        "tan" => one(f64::tan),
        "floor" => one(f64::floor),
        "ceil" => one(f64::ceil),
        "round" => one(f64::round),
        "min" => two(f64::min),
        "max" => two(f64::max),
        "pow" => two(f64::powf),
        _ => Err(format!("unknown function `{name}`")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn precedence_associativity_and_functions() {
        assert_eq!(evaluate("12 * 7 + 3").unwrap(), 87.0);
        assert_eq!(evaluate("2 + 3 * 4").unwrap(), 14.0);
        assert_eq!(evaluate("(2 + 3) * 4").unwrap(), 20.0);
        assert_eq!(evaluate("2 ^ 3 ^ 2").unwrap(), 512.0);
        assert_eq!(evaluate("2 ** 10").unwrap(), 1024.0);
        assert_eq!(evaluate("-2 ^ 2").unwrap(), -4.0);
        assert_eq!(evaluate("10 % 4").unwrap(), 2.0);
        assert_eq!(evaluate("sqrt(16) + max(2, 5)").unwrap(), 9.0);
        assert_eq!(evaluate("1e3 / 4").unwrap(), 250.0);
        assert_eq!(evaluate("6 × 7").unwrap(), 42.0);
        assert!((evaluate("pi").unwrap() - std::f64::consts::PI).abs() < 1e-15);
    }

    #[test]
    fn errors_say_what_and_where() {
        assert_eq!(evaluate("1 / 0").unwrap_err(), "division by zero");
        assert!(evaluate("2 + $").unwrap_err().contains("`$` at position 5"));
        assert!(evaluate("(1 + 2").unwrap_err().contains("missing `)`"));
        assert!(
            evaluate("system(1)")
                .unwrap_err()
                .contains("unknown function `system`")
        );
        assert!(evaluate("").unwrap_err().contains("empty"));
        assert!(evaluate("1 2").unwrap_err().contains("unexpected number 2"));
        assert!(
            evaluate(&"(".repeat(100))
                .unwrap_err()
                .contains("nested deeper")
        );
        assert!(
            evaluate(&"1+".repeat(600))
                .unwrap_err()
                .contains("longer than")
        );
    }

    #[test]
    fn formats_integers_without_fraction() {
        assert_eq!(format_number(87.0), "87");
        assert_eq!(format_number(0.1 + 0.2), "0.3");
        assert_eq!(format_number(-2.5), "-2.5");
    }

    #[tokio::test]
    async fn tool_call_reports_bad_arguments() {
        let err = Calculator
            .call(serde_json::json!({"expr": "1"}))
            .await
            .unwrap_err();
        assert_eq!(err.error_type(), "invalid_arguments");
        assert!(err.to_string().contains("expression"), "{err}");
        assert_eq!(
            Calculator
                .call(serde_json::json!({"expression": "2*21"}))
                .await
                .unwrap(),
            "42"
        );
    }
}
