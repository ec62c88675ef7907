//! One source for the tokens of daxplug's own enums (observed states, outcomes, protocols,
//! region kinds): `tokens!` declares the enum with its token list once, and derives
//! `as_str`, `ALL`, `Display`, `FromStr` and serde (old spellings read through aliases)
//! from it, so that JSON, logs, tables and arguments can never disagree.

/// Declares a fieldless enum with one token per variant (and optional aliases read back).
macro_rules! tokens {
    (
        $(#[$meta:meta])*
        pub enum $name:ident ($expected:literal) {
            $( $(#[$vmeta:meta])* $variant:ident = $token:literal $(| $alias:literal)* ),+ $(,)?
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum $name {
            $( $(#[$vmeta])* $variant ),+
        }

        impl $name {
            /// Every value, in declaration order (the order of the documentation).
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// The token used in output, JSON, logs and arguments.
            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $token),+ }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl std::str::FromStr for $name {
            type Err = String;
            fn from_str(text: &str) -> Result<Self, String> {
                match text.trim() {
                    $($token $(| $alias)* => Ok($name::$variant),)+
                    other => Err(format!(
                        "{other:?} is not {}: expected one of {}",
                        $expected,
                        [$($token),+].join(", ")
                    )),
                }
            }
        }

        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.as_str())
            }
        }

        impl<'de> serde::Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let text = <std::borrow::Cow<'de, str>>::deserialize(d)?;
                text.parse().map_err(serde::de::Error::custom)
            }
        }
    };
}
pub(crate) use tokens;
