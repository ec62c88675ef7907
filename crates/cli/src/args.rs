//! Parsers for the command line's values that also tell clap (and so the shell completions
//! and man pages) which values exist: device states, observed states, regions.

use clap::builder::{PossibleValue, TypedValueParser};
use daxplug_engine::{ObservedState, Target};

fn invalid(cmd: &clap::Command, message: &str) -> clap::Error {
    clap::Error::raw(clap::error::ErrorKind::InvalidValue, format!("{message}\n")).with_cmd(cmd)
}

/// A value of one of daxplug's token enums, as the command line takes it.
pub trait Token: std::str::FromStr + Copy + Send + Sync + 'static {
    /// Every value, in the order `--help` lists them.
    fn all() -> Vec<Self>;
    /// The token.
    fn token(self) -> &'static str;
    /// What a wrong value is told (the parse error, and which values exist unless it says).
    fn refusal(err: &Self::Err) -> String;
}

impl Token for Target {
    fn all() -> Vec<Self> {
        Target::ALL.to_vec()
    }
    fn token(self) -> &'static str {
        self.as_str()
    }
    // The engine's message says which states exist, and why `offline` is not one.
    fn refusal(err: &daxplug_engine::TargetError) -> String {
        err.to_string()
    }
}

impl Token for ObservedState {
    fn all() -> Vec<Self> {
        ObservedState::ALL.to_vec()
    }
    fn token(self) -> &'static str {
        self.as_str()
    }
    fn refusal(err: &daxplug_abi::ParseError) -> String {
        let names: Vec<&str> = ObservedState::ALL.iter().map(|s| s.as_str()).collect();
        format!("{err}: expected one of {}", names.join(", "))
    }
}

/// The parser of a [`Token`] argument (`set`'s STATE, `create --state`, `list --state`):
/// daxplug's own message for a wrong value, and the values for completions and man pages.
#[derive(Debug, Clone, Copy)]
pub struct TokenParser<T>(std::marker::PhantomData<T>);

impl<T> TokenParser<T> {
    pub const fn new() -> Self {
        TokenParser(std::marker::PhantomData)
    }
}

impl<T: Token> TypedValueParser for TokenParser<T> {
    type Value = T;

    fn parse_ref(
        &self,
        cmd: &clap::Command,
        _arg: Option<&clap::Arg>,
        value: &std::ffi::OsStr,
    ) -> Result<T, clap::Error> {
        value
            .to_string_lossy()
            .parse()
            .map_err(|e| invalid(cmd, &T::refusal(&e)))
    }

    fn possible_values(&self) -> Option<Box<dyn Iterator<Item = PossibleValue> + '_>> {
        Some(Box::new(
            T::all().into_iter().map(|t| PossibleValue::new(t.token())),
        ))
    }
}

/// A region as `0` or `region0`.
pub fn region(text: &str) -> Result<u32, String> {
    text.strip_prefix("region")
        .unwrap_or(text)
        .parse()
        .map_err(|_| {
            format!(
                "{text:?} is not a region: expected its id, such as 0 or region0 (see `daxplug list`)"
            )
        })
}
