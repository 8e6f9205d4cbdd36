//! Field errors shaped like the API server's (`k8s.io/apimachinery/pkg/util/validation/field`).

use std::fmt;

/// What is wrong with a field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// A required field is missing or empty.
    Required,
    /// A value that must be unique is repeated.
    Duplicate,
    /// A value is malformed or out of range.
    Invalid,
    /// A reference points at nothing.
    NotFound,
    /// A value is not one of the allowed ones.
    NotSupported,
    /// A field may not be set here.
    Forbidden,
    /// A field is not part of the schema.
    Unknown,
    /// A value is longer than allowed.
    TooLong,
}

impl ErrorKind {
    fn as_str(self) -> &'static str {
        match self {
            ErrorKind::Required => "Required value",
            ErrorKind::Duplicate => "Duplicate value",
            ErrorKind::Invalid => "Invalid value",
            ErrorKind::NotFound => "Not found",
            ErrorKind::NotSupported => "Unsupported value",
            ErrorKind::Forbidden => "Forbidden",
            ErrorKind::Unknown => "Unknown field",
            ErrorKind::TooLong => "Too long",
        }
    }

    fn shows_value(self) -> bool {
        matches!(
            self,
            ErrorKind::Duplicate
                | ErrorKind::Invalid
                | ErrorKind::NotFound
                | ErrorKind::NotSupported
        )
    }
}

/// One problem with one field, displayed as `path: Kind: value: detail`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    /// The field's path, e.g. `spec.initContainers[1].name`.
    pub path: String,
    /// What is wrong.
    pub kind: ErrorKind,
    /// The offending value, already rendered (strings quoted).
    pub value: String,
    /// Why, when the kind alone does not say.
    pub detail: String,
}

impl FieldError {
    /// A new error; `value` is rendered as the API server renders it (strings quoted).
    pub fn new(
        path: impl Into<String>,
        kind: ErrorKind,
        value: impl Value,
        detail: impl Into<String>,
    ) -> Self {
        FieldError {
            path: path.into(),
            kind,
            value: value.render(),
            detail: detail.into(),
        }
    }

    /// A missing required field.
    pub fn required(path: impl Into<String>, detail: impl Into<String>) -> Self {
        Self::new(path, ErrorKind::Required, (), detail)
    }

    /// A field that may not be set.
    pub fn forbidden(path: impl Into<String>, detail: impl Into<String>) -> Self {
        Self::new(path, ErrorKind::Forbidden, (), detail)
    }

    /// A malformed value.
    pub fn invalid(path: impl Into<String>, value: impl Value, detail: impl Into<String>) -> Self {
        Self::new(path, ErrorKind::Invalid, value, detail)
    }

    /// A repeated value that must be unique.
    pub fn duplicate(path: impl Into<String>, value: impl Value) -> Self {
        Self::new(path, ErrorKind::Duplicate, value, "")
    }

    /// A value outside the allowed set.
    pub fn not_supported(path: impl Into<String>, value: impl Value, allowed: &[&str]) -> Self {
        let list: Vec<String> = allowed.iter().map(|a| format!("{a:?}")).collect();
        Self::new(
            path,
            ErrorKind::NotSupported,
            value,
            format!("supported values: {}", list.join(", ")),
        )
    }
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path, self.kind.as_str())?;
        if self.kind.shows_value() && !self.value.is_empty() {
            write!(f, ": {}", self.value)?;
        }
        if !self.detail.is_empty() {
            write!(f, ": {}", self.detail)?;
        }
        Ok(())
    }
}

/// A value as it appears in an error message.
pub trait Value {
    /// Strings are quoted, numbers are not.
    fn render(&self) -> String;
}

impl Value for () {
    fn render(&self) -> String {
        String::new()
    }
}

impl Value for &str {
    fn render(&self) -> String {
        format!("{self:?}")
    }
}

impl Value for &String {
    fn render(&self) -> String {
        format!("{self:?}")
    }
}

impl Value for String {
    fn render(&self) -> String {
        format!("{self:?}")
    }
}

impl Value for i32 {
    fn render(&self) -> String {
        self.to_string()
    }
}

impl Value for i64 {
    fn render(&self) -> String {
        self.to_string()
    }
}
