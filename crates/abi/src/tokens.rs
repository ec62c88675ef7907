//! `token_enum!`: a fieldless enum whose variants are tokens, declared once with its token
//! list, with `as_str`, `ALL`, `Display`, `FromStr` (trailing newline tolerated, older
//! spellings read through aliases) and serde as the token derived from it. The kernel's
//! tokens here, and daxplug's own (observed states, outcomes) in the engine, use it, so a
//! token can never be spelled two ways.

use crate::error::ParseError;

/// Declares a token enum (see the module doc).
#[macro_export]
macro_rules! token_enum {
    (
        $(#[$meta:meta])*
        $name:ident, $expected:literal {
            $( $(#[$vmeta:meta])* $variant:ident = $token:literal $(| $alias:literal)* ),+ $(,)?
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum $name {
            $( $(#[$vmeta])* $variant ),+
        }

        impl $name {
            /// Every value, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// The token for this value.
            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $token),+ }
            }
        }

        impl ::std::fmt::Display for $name {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl ::std::str::FromStr for $name {
            type Err = $crate::ParseError;
            fn from_str(text: &str) -> Result<Self, $crate::ParseError> {
                match text.trim_end() {
                    $($token $(| $alias)* => Ok($name::$variant),)+
                    other => Err($crate::tokens::unknown(other, $expected)),
                }
            }
        }

        impl ::serde::Serialize for $name {
            fn serialize<S: ::serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.as_str())
            }
        }

        impl<'de> ::serde::Deserialize<'de> for $name {
            fn deserialize<D: ::serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let text = <::std::borrow::Cow<'de, str>>::deserialize(d)?;
                text.parse().map_err(::serde::de::Error::custom)
            }
        }
    };
}

/// The error of a token enum's `FromStr` (for the macro's expansion in other crates).
#[doc(hidden)]
pub fn unknown(text: &str, expected: &'static str) -> ParseError {
    ParseError::new(text, expected)
}
