//! Parsers for the command line's values that also tell clap (and so the shell completions
//! and man pages) which values exist: device states, observed states, regions.

use clap::builder::{PossibleValue, TypedValueParser};
use daxplug_engine::{ObservedState, Target};

fn invalid(cmd: &clap::Command, message: &str) -> clap::Error {
    clap::Error::raw(clap::error::ErrorKind::InvalidValue, format!("{message}\n")).with_cmd(cmd)
}

/// A state to move a device to (`set`'s STATE, `create --state`), with daxplug's own
/// message for a wrong one (`offline` says why it is not a whole-device state).
#[derive(Debug, Clone, Copy)]
pub struct TargetParser;

impl TypedValueParser for TargetParser {
    type Value = Target;

    fn parse_ref(
        &self,
        cmd: &clap::Command,
        _arg: Option<&clap::Arg>,
        value: &std::ffi::OsStr,
    ) -> Result<Target, clap::Error> {
        let text = value.to_string_lossy();
        text.parse()
            .map_err(|e: daxplug_engine::TargetError| invalid(cmd, &e.to_string()))
    }

    fn possible_values(&self) -> Option<Box<dyn Iterator<Item = PossibleValue> + '_>> {
        Some(Box::new(
            Target::ALL
                .into_iter()
                .map(|t| PossibleValue::new(t.as_str())),
        ))
    }
}

/// An observed state (`list --state`).
#[derive(Debug, Clone, Copy)]
pub struct ObservedParser;

impl TypedValueParser for ObservedParser {
    type Value = ObservedState;

    fn parse_ref(
        &self,
        cmd: &clap::Command,
        _arg: Option<&clap::Arg>,
        value: &std::ffi::OsStr,
    ) -> Result<ObservedState, clap::Error> {
        value
            .to_string_lossy()
            .parse()
            .map_err(|e: daxplug_abi::ParseError| {
                let names: Vec<&str> = ObservedState::ALL.iter().map(|s| s.as_str()).collect();
                invalid(cmd, &format!("{e}: expected one of {}", names.join(", ")))
            })
    }

    fn possible_values(&self) -> Option<Box<dyn Iterator<Item = PossibleValue> + '_>> {
        Some(Box::new(
            ObservedState::ALL
                .iter()
                .map(|s| PossibleValue::new(s.as_str())),
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
